//! Where this process stands in a job of several processes, read from the environment the
//! launchers ML engineers use set: torchrun, Kubeflow's PyTorchJob and any `env://` launcher
//! (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT), or Slurm's `srun`
//! (SLURM_PROCID, SLURM_STEP_NUM_TASKS, SLURM_LOCALID, with MASTER_ADDR given by the job script).

use super::error::DistributedError;

/// The port PyTorch's `env://` rendezvous uses when MASTER_PORT is not set under Slurm.
pub const DEFAULT_MASTER_PORT: u16 = 29500;

/// This process's place in the job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchEnv {
    /// 0 runs the search (controller, GA, run directory, checkpoints, metrics).
    pub rank: usize,
    /// The variable that gave `rank`: RANK, or SLURM_PROCID under srun.
    pub rank_variable: &'static str,
    /// Processes in the job.
    pub world_size: usize,
    /// This process's index among those of its machine.
    pub local_rank: usize,
    pub local_world_size: usize,
    /// Where the job's TCPStore listens.
    pub master_addr: String,
    pub master_port: u16,
    /// torchrun's agent hosts the store (TORCHELASTIC_USE_AGENT_STORE): every rank is a client.
    pub agent_store: bool,
    /// How often the launcher restarted the job (TORCHELASTIC_RESTART_COUNT, else Slurm's
    /// SLURM_RESTART_COUNT): each attempt meets under keys of its own.
    pub attempt: usize,
    /// The launcher's name for the job (TORCHELASTIC_RUN_ID, else SLURM_JOB_ID): its processes
    /// meet under keys of their own, so that a process of another job given the same
    /// MASTER_ADDR:MASTER_PORT (Slurm's default port is the same for every job) never joins it.
    pub job_id: Option<String>,
}

/// The launcher's count of restarts of this job, with the variable that gave it: torchrun's
/// TORCHELASTIC_RESTART_COUNT (`--max-restarts`), Slurm's SLURM_RESTART_COUNT (`--requeue`);
/// `None` for a first launch or none at all.
pub fn launcher_restart() -> Option<(&'static str, usize)> {
    ["TORCHELASTIC_RESTART_COUNT", "SLURM_RESTART_COUNT"].into_iter().find_map(|name| {
        let count = std::env::var(name).ok()?.trim().parse::<usize>().ok()?;
        (count > 0).then_some((name, count))
    })
}

/// The launcher's name for this process's job (TORCHELASTIC_RUN_ID, else SLURM_JOB_ID), also
/// where it runs alone (a world of 1, which torchrun's elastic agent may grow).
pub fn launcher_job_id() -> Option<String> {
    job_id_from(&|name: &str| std::env::var(name).ok())
}

/// torchrun's name for this process's job (TORCHELASTIC_RUN_ID, its `--rdzv-id`), which its
/// elastic agent keeps when it starts the workers again as a node joins.
pub fn elastic_run_id() -> Option<String> {
    run_id_from(&|name: &str| std::env::var(name).ok())
}

fn named(var: &impl Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    var(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

fn run_id_from(var: &impl Fn(&str) -> Option<String>) -> Option<String> {
    // torchrun's --rdzv-id defaults to "none", every job's: no name.
    named(var, "TORCHELASTIC_RUN_ID").filter(|id| id != "none")
}

fn job_id_from(var: &impl Fn(&str) -> Option<String>) -> Option<String> {
    run_id_from(var).or_else(|| named(var, "SLURM_JOB_ID"))
}

impl LaunchEnv {
    /// The job this process belongs to; `None` when it runs alone (no launcher, or a world of 1).
    pub fn from_env() -> Result<Option<Self>, DistributedError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// As [`Self::from_env`], reading variables through `var`.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, DistributedError> {
        let number = |name: &'static str| -> Result<Option<usize>, DistributedError> {
            var(name)
                .map(|value| {
                    value.trim().parse::<usize>().map_err(|_| DistributedError::LaunchEnv {
                        variable: name,
                        reason: format!("{value:?} is not a non-negative integer"),
                    })
                })
                .transpose()
        };
        let (rank_var, world_var, local_var, world_size) = match number("WORLD_SIZE")? {
            Some(n) => ("RANK", "WORLD_SIZE", "LOCAL_RANK", n),
            None => match number("SLURM_STEP_NUM_TASKS")? {
                Some(n) => ("SLURM_PROCID", "SLURM_STEP_NUM_TASKS", "SLURM_LOCALID", n),
                None => return Ok(None),
            },
        };
        if world_size == 0 {
            return Err(DistributedError::LaunchEnv {
                variable: world_var,
                reason: "0: a job has at least 1 process".into(),
            });
        }
        if world_size == 1 {
            // A world of one runs alone, as rank 0 or not at all.
            return match number(rank_var)? {
                Some(rank) if rank > 0 => Err(DistributedError::LaunchEnv {
                    variable: rank_var,
                    reason: format!("{rank} is not below {world_var} = 1"),
                }),
                _ => Ok(None),
            };
        }
        let missing = |variable: &'static str| DistributedError::LaunchEnv {
            variable,
            reason: format!("not set, but {world_var} = {world_size}"),
        };
        let rank = number(rank_var)?.ok_or_else(|| missing(rank_var))?;
        if rank >= world_size {
            return Err(DistributedError::LaunchEnv {
                variable: rank_var,
                reason: format!("{rank} is not below {world_var} = {world_size}"),
            });
        }
        let master_addr =
            var("MASTER_ADDR").filter(|a| !a.trim().is_empty()).ok_or_else(|| missing("MASTER_ADDR"))?;
        let master_port = match var("MASTER_PORT") {
            Some(port) => port.trim().parse::<u16>().ok().filter(|&p| p > 0).ok_or_else(|| {
                DistributedError::LaunchEnv {
                    variable: "MASTER_PORT",
                    reason: format!("{port:?} is not a TCP port"),
                }
            })?,
            None if rank_var == "SLURM_PROCID" => DEFAULT_MASTER_PORT,
            None => return Err(missing("MASTER_PORT")),
        };
        let local_rank = number(local_var)?.unwrap_or(0);
        let local_world_size = number("LOCAL_WORLD_SIZE")?.unwrap_or(1).max(local_rank + 1);
        let agent_store = var("TORCHELASTIC_USE_AGENT_STORE").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let attempt = match number("TORCHELASTIC_RESTART_COUNT")? {
            Some(count) => count,
            None => number("SLURM_RESTART_COUNT")?.unwrap_or(0),
        };
        let job_id = job_id_from(&var);
        Ok(Some(Self {
            rank,
            rank_variable: rank_var,
            world_size,
            local_rank,
            local_world_size,
            master_addr: master_addr.trim().to_string(),
            master_port,
            agent_store,
            attempt,
            job_id,
        }))
    }

    /// Whether this process hosts the job's TCPStore.
    pub fn hosts_store(&self) -> bool {
        self.rank == 0 && !self.agent_store
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn read(vars: &[(&str, &str)]) -> Result<Option<LaunchEnv>, DistributedError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        LaunchEnv::from_vars(|name| map.get(name).cloned())
    }

    const TORCHRUN: [(&str, &str); 9] = [
        ("RANK", "3"),
        ("WORLD_SIZE", "4"),
        ("LOCAL_RANK", "1"),
        ("LOCAL_WORLD_SIZE", "2"),
        ("MASTER_ADDR", "node-a"),
        ("MASTER_PORT", "29400"),
        ("TORCHELASTIC_USE_AGENT_STORE", "True"),
        ("TORCHELASTIC_RESTART_COUNT", "2"),
        ("TORCHELASTIC_RUN_ID", "f3a9"),
    ];

    #[test]
    fn torchrun_environment_is_read_whole() {
        let env = read(&TORCHRUN).unwrap().unwrap();
        assert_eq!(
            env,
            LaunchEnv {
                rank: 3,
                rank_variable: "RANK",
                world_size: 4,
                local_rank: 1,
                local_world_size: 2,
                master_addr: "node-a".into(),
                master_port: 29400,
                agent_store: true,
                attempt: 2,
                job_id: Some("f3a9".into()),
            }
        );
        assert!(!env.hosts_store());
        // torchrun's default --rdzv-id, the same for every job, names none.
        let mut unnamed = TORCHRUN.to_vec();
        unnamed[8].1 = "none";
        assert_eq!(read(&unnamed).unwrap().unwrap().job_id, None);
    }

    #[test]
    fn alone_without_a_launcher_or_in_a_world_of_one() {
        assert_eq!(read(&[]).unwrap(), None);
        assert_eq!(read(&[("WORLD_SIZE", "1"), ("RANK", "0")]).unwrap(), None);
        // An sbatch script's own shell has Slurm's job variables but no job step's.
        assert_eq!(read(&[("SLURM_NTASKS", "4"), ("SLURM_PROCID", "0")]).unwrap(), None);
    }

    #[test]
    fn slurm_step_with_its_master_address() {
        let env = read(&[
            ("SLURM_STEP_NUM_TASKS", "2"),
            ("SLURM_PROCID", "0"),
            ("SLURM_LOCALID", "0"),
            ("MASTER_ADDR", "gpu01"),
            ("SLURM_JOB_ID", "4711"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!((env.rank, env.world_size, env.master_port), (0, 2, DEFAULT_MASTER_PORT));
        assert_eq!(env.job_id.as_deref(), Some("4711"));
        assert_eq!(env.rank_variable, "SLURM_PROCID");
        assert_eq!(env.attempt, 0);
        assert!(env.hosts_store());
        let err = read(&[("SLURM_STEP_NUM_TASKS", "2"), ("SLURM_PROCID", "1")]).unwrap_err();
        assert!(err.to_string().contains("MASTER_ADDR"), "{err}");
        // A requeued job: its second launch attempt.
        let requeued = [
            ("SLURM_STEP_NUM_TASKS", "2"),
            ("SLURM_PROCID", "1"),
            ("MASTER_ADDR", "gpu01"),
            ("SLURM_RESTART_COUNT", "1"),
        ];
        assert_eq!(read(&requeued).unwrap().unwrap().attempt, 1);
    }

    #[test]
    fn bad_values_name_their_variable() {
        let cases: [(&[(&str, &str)], &str); 6] = [
            (&[("WORLD_SIZE", "two")], "WORLD_SIZE"),
            (&[("WORLD_SIZE", "2"), ("MASTER_ADDR", "a"), ("MASTER_PORT", "1")], "RANK"),
            (&[("WORLD_SIZE", "2"), ("RANK", "2"), ("MASTER_ADDR", "a"), ("MASTER_PORT", "1")], "RANK"),
            (
                &[("WORLD_SIZE", "2"), ("RANK", "1"), ("MASTER_ADDR", "a"), ("MASTER_PORT", "99999")],
                "MASTER_PORT",
            ),
            (&[("WORLD_SIZE", "0")], "WORLD_SIZE"),
            (&[("WORLD_SIZE", "1"), ("RANK", "1")], "RANK"),
        ];
        for (vars, variable) in cases {
            let err = read(vars).unwrap_err().to_string();
            assert!(err.starts_with(variable), "{variable}: {err}");
        }
    }
}
