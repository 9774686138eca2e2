//! This process's membership of a job of several processes (one per machine or per GPU, every
//! one started with the same command line): the job's TCPStore and the control group, a Gloo
//! group of one member per process over which rank 0 drives the others.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use tch::Tensor;

use super::error::DistributedError;
use super::launch_env::LaunchEnv;
use super::notices::StopWatch;
use super::process_group::{GlooBind, ProcessGroup};
use super::roll_call::{Heard, RollCall, Withdrawal};
use super::store::{Store, StoreRole};

/// How long the processes of a job wait for each other to start (torchrun's default join
/// timeout is the same 15 minutes).
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// How often a process waiting for the others says which ranks it waits for.
pub const WAIT_REPORT_EVERY: Duration = Duration::from_secs(30);

/// How long a rank waits for rank 0's next word. Rank 0 may be measuring fitness or training a
/// found network for days meanwhile; a rank 0 that died is noticed at once (its sockets close).
pub const CONTROL_TIMEOUT: Duration = Duration::from_secs(30 * 24 * 3600);

/// How long the members of a new group (a session's replicas, a fitness pair) wait for each
/// other's keys: rank 0 tells them all when to form it, so one still missing after this is
/// gone. (Gloo waits up to five times as long for a pair's connection.)
pub const FORM_TIMEOUT: Duration = Duration::from_secs(120);

pub struct Job {
    env: LaunchEnv,
    /// The job's TCPStore, open for the job's life: on the rank that hosts it, its server.
    _store: Arc<Store>,
    control: Mutex<ProcessGroup>,
    sessions: AtomicUsize,
    /// A collective of the control group failed (a process died): the group is not used again.
    broken: AtomicBool,
    /// Rank 0's watch for the others' stop requests (notices.rs).
    stop_watch: Mutex<Option<StopWatch>>,
}

static JOINED: OnceLock<Job> = OnceLock::new();

/// This process's roll-call answer while it waits for the others.
static WAITING_ANSWER: Withdrawal = Withdrawal::new();

/// Takes back this process's answer to the roll call, where it ends at a signal while it waits
/// for the others: its rank may then be started again.
pub fn withdraw_from_roll_call() {
    WAITING_ANSWER.withdraw();
}

impl Job {
    /// Meets the job's other processes: rank 0 hosts the TCPStore at MASTER_ADDR:MASTER_PORT
    /// (unless torchrun's agent does), the others connect; returns once all answered the roll
    /// call and joined the control group. `timeout` bounds each wait: for the store, for the
    /// others' answers, and (at most [`FORM_TIMEOUT`]) for the group. While it waits for
    /// answers, `report` hears every [`WAIT_REPORT_EVERY`] which ranks it waits for, and whether
    /// this process took the place of a silent one of its rank.
    pub fn join(
        env: LaunchEnv,
        timeout: Duration,
        report: &mut dyn FnMut(&Heard),
    ) -> Result<Self, DistributedError> {
        let role = if env.hosts_store() { StoreRole::Server } else { StoreRole::Client };
        let tcp = Store::tcp(&env.master_addr, env.master_port, role, timeout).map_err(|e| match e {
            DistributedError::Store { reason, .. }
                if role == StoreRole::Server && reason.contains("EADDRINUSE") =>
            {
                DistributedError::PortTaken { port: env.master_port, reason }
            }
            other => other,
        })?;
        if !env.agent_store {
            check_owner(&tcp, &env)?;
        }
        // A restarted job meets under fresh keys; the prefix store keeps the TCP store alive.
        let store = Arc::new(tcp.prefixed(&attempt_prefix(&env))?);
        let roll_call = RollCall {
            rank: env.rank,
            variable: env.rank_variable,
            size: env.world_size,
            hosts_store: env.hosts_store(),
            timeout,
            report_every: WAIT_REPORT_EVERY,
            withdrawal: Some(&WAITING_ANSWER),
        };
        roll_call.answer(&store, report)?;
        crate::fault::point("job.present").map_err(|e| DistributedError::Group {
            backend: "Gloo",
            rank: env.rank,
            size: env.world_size,
            reason: e.to_string(),
        })?;
        // Every process answered a moment ago: one that has not joined the group within
        // FORM_TIMEOUT ended meanwhile or cannot be reached; the join timeout is for starts.
        let form_timeout = timeout.min(FORM_TIMEOUT);
        let forming = std::time::Instant::now();
        let control = ProcessGroup::gloo(
            &store.prefixed("control")?,
            env.rank,
            env.world_size,
            &gloo_bind_from_env(),
            form_timeout,
        )
        .map_err(|e| match e {
            // (One that failed at once, a bad GLOO_SOCKET_IFNAME say, says its own reason.)
            DistributedError::Group { reason, .. } if forming.elapsed() >= form_timeout.mul_f64(0.9) => {
                DistributedError::GroupNotFormed {
                    size: env.world_size,
                    seconds: form_timeout.as_secs(),
                    reason,
                }
            }
            other => other,
        })?
        .marked_spanning_processes();
        control.set_timeout(CONTROL_TIMEOUT)?;
        Ok(Self {
            env,
            _store: store,
            control: Mutex::new(control),
            sessions: AtomicUsize::new(0),
            broken: AtomicBool::new(false),
            stop_watch: Mutex::new(None),
        })
    }

    /// Makes `job` the process's job, for the search to find ([`joined`]); once per process.
    pub fn install(job: Job) -> &'static Job {
        let _ = JOINED.set(job);
        JOINED.get().expect("the job was just installed")
    }

    pub fn env(&self) -> &LaunchEnv {
        &self.env
    }

    pub fn rank(&self) -> usize {
        self.env.rank
    }

    pub fn world_size(&self) -> usize {
        self.env.world_size
    }

    /// Overwrites `tensor` on every rank with rank 0's, over the control group. Collectives of
    /// the control group come in the same order on every rank.
    pub fn broadcast(&self, tensor: &mut Tensor) -> Result<(), DistributedError> {
        self.on_control("broadcast", |group| group.broadcast(tensor, 0))
    }

    /// Sums `tensor` over the job's processes, over the control group.
    pub fn all_reduce_sum(&self, tensor: &mut Tensor) -> Result<(), DistributedError> {
        self.on_control("all-reduce", |group| group.all_reduce_sum(tensor))
    }

    /// Whether a collective of the control group failed (a process of the job is gone), or
    /// the others cannot follow it ([`Self::mark_broken`]).
    pub fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Relaxed)
    }

    /// The control group is not used again: the other processes cannot follow it (their
    /// replicas wait in a collective this process gave up). They learn of the job's end as this
    /// process exits and its sockets close.
    pub fn mark_broken(&self) {
        self.broken.store(true, Ordering::Relaxed);
    }

    fn on_control(
        &self,
        operation: &'static str,
        collective: impl FnOnce(&ProcessGroup) -> Result<(), DistributedError>,
    ) -> Result<(), DistributedError> {
        if self.is_broken() {
            return Err(DistributedError::Collective {
                operation,
                rank: self.rank(),
                size: self.world_size(),
                reason: "an earlier collective of the job failed".into(),
            });
        }
        let group = self.control();
        collective(&group).inspect_err(|_| self.broken.store(true, Ordering::Relaxed))
    }

    fn control(&self) -> MutexGuard<'_, ProcessGroup> {
        self.control.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(super) fn stop_watch(&self) -> MutexGuard<'_, Option<StopWatch>> {
        self.stop_watch.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A number for the next group of replicas rank 0 forms (it tells the others).
    pub fn next_session(&self) -> usize {
        self.sessions.fetch_add(1, Ordering::Relaxed)
    }

    /// The keys where the replicas of session `number` meet, through a TCPStore client of its
    /// own: call it once per group formed. A TCPStore client keeps its lock while it waits for
    /// a key, so groups formed side by side through one client wait on each other. (They did:
    /// rank 1's fitness pair, waiting for rank 0's key, held the client that rank 1's replica
    /// needed to join the session group, which rank 0 had to finish before writing that key.)
    pub fn session_store(&self, number: usize) -> Result<Store, DistributedError> {
        let client =
            Store::tcp(&self.env.master_addr, self.env.master_port, StoreRole::Client, FORM_TIMEOUT)?;
        client.prefixed(&format!("{}/session_{number}", attempt_prefix(&self.env)))
    }

    /// How this process's Gloo devices reach the other machines.
    pub fn gloo_bind(&self) -> GlooBind {
        gloo_bind_from_env()
    }
}

/// Where this launch attempt's keys live: a restarted job meets under fresh ones, another job
/// (named otherwise by its launcher) under its own. The world size too: torchrun's elastic
/// agent restarts the workers when a node joins without counting a restart (only failures
/// count), and the grown job must not meet the keys of the one before.
pub(super) fn attempt_prefix(env: &LaunchEnv) -> String {
    let job = env.job_id.as_deref().unwrap_or("job");
    format!("evnas/{job}/attempt_{}_of_{}", env.attempt, env.world_size)
}

/// The key where rank 0, hosting the store, names the job and attempt it is for.
const OWNER_KEY: &str = "evnas/owner";
/// How long a process waits for that name once it reached the store (rank 0 writes it as soon
/// as it listens).
const OWNER_WAIT: Duration = Duration::from_secs(5);

/// Rank 0 names the job whose store it hosts; another rank fails at once where the store is
/// another job's (two jobs given the same port, Slurm's default 29500 for every job, or an
/// earlier attempt's rank 0 still holding it): it would wait out the join timeout for keys that
/// never come.
fn check_owner(tcp: &Store, env: &LaunchEnv) -> Result<(), DistributedError> {
    let ours = format!("{}\n{}", env.job_id.as_deref().unwrap_or(""), env.attempt);
    if env.hosts_store() {
        return tcp.set(OWNER_KEY, ours.as_bytes());
    }
    let address = format!("{}:{}", env.master_addr, env.master_port);
    let deadline = std::time::Instant::now() + OWNER_WAIT;
    loop {
        if let Some(owner) = tcp.get_if_set(OWNER_KEY)? {
            let theirs = String::from_utf8_lossy(&owner).into_owned();
            let (their_job, their_attempt) = theirs.split_once('\n').unwrap_or((&theirs, ""));
            let our_job = env.job_id.as_deref().unwrap_or("");
            if their_job != our_job {
                let name = |job: &str| match job {
                    "" => "a job without a launcher's id".to_string(),
                    job => format!("job {job}"),
                };
                return Err(DistributedError::OtherJob {
                    address,
                    theirs: name(their_job),
                    ours: name(our_job),
                });
            }
            return match their_attempt.parse::<usize>() {
                Ok(attempt) if attempt == env.attempt => Ok(()),
                Ok(attempt) => {
                    Err(DistributedError::OtherAttempt { address, theirs: attempt, ours: env.attempt })
                }
                Err(_) => Err(DistributedError::OtherJob {
                    address,
                    theirs: format!("a job named {theirs:?}"),
                    ours: format!("job {our_job:?}"),
                }),
            };
        }
        if std::time::Instant::now() >= deadline {
            // Not an evnas job's rank 0 (another program's store?): the join's wait tells.
            crate::daemon::journal::eprint_at(
                tracing::Level::WARN,
                format_args!(
                    "evnas: rank {}: warning: the c10d store at {address} names no evnas job",
                    env.rank
                ),
            );
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The job this process joined at start ([`Job::install`]), if it runs in one.
pub fn joined() -> Option<&'static Job> {
    JOINED.get()
}

/// GLOO_SOCKET_IFNAME as PyTorch reads it (its first interface), else the machine's address.
fn gloo_bind_from_env() -> GlooBind {
    match std::env::var("GLOO_SOCKET_IFNAME") {
        Ok(names) => match names.split(',').map(str::trim).find(|n| !n.is_empty()) {
            Some(first) => GlooBind::Interface(first.to_string()),
            None => GlooBind::Default,
        },
        Err(_) => GlooBind::Default,
    }
}
