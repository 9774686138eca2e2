//! What can go wrong between replicas.

#[derive(Debug, Clone, thiserror::Error)]
pub enum DistributedError {
    /// The launcher's environment (torchrun, Slurm) is incomplete or malformed.
    #[error("{variable}: {reason}")]
    LaunchEnv { variable: &'static str, reason: String },
    #[error("cannot set up the c10d store at {address}: {reason}")]
    Store { address: String, reason: String },
    /// The store at MASTER_ADDR:MASTER_PORT is another job's.
    #[error(
        "the c10d store at {address} belongs to {theirs}, this process to {ours}: give each job a MASTER_PORT of its own"
    )]
    OtherJob { address: String, theirs: String, ours: String },
    /// The store at MASTER_ADDR:MASTER_PORT is another launch attempt's of this job: its rank 0
    /// still holds the port (a restart may find it free).
    #[error(
        "the c10d store at {address} belongs to launch attempt {theirs} of this job, this process to attempt {ours}: that attempt's rank 0 still holds the port"
    )]
    OtherAttempt { address: String, theirs: usize, ours: usize },
    /// This process answered the job's roll call for a rank that had answered already.
    #[error(
        "rank {rank} is in the job already: another process was given {variable}={rank}, or this rank was started again after its process ended; {}",
        if *.job_ended { "the job ends (start it again, every process with a rank of its own)" } else { "the job goes on without this process" }
    )]
    RankTaken { rank: usize, variable: &'static str, job_ended: bool },
    /// Another process answered the roll call for a rank that had answered already.
    #[error(
        "rank {twice} was started by two processes (two given {variable}={twice}, or it was started again after its process ended): the job cannot form; start it again, every process with a rank of its own"
    )]
    RankTwice { rank: usize, size: usize, twice: usize, variable: &'static str },
    /// The job's store went away while this process waited for the others.
    #[error(
        "the job's store is gone (its host, rank 0 or torchrun's agent, ended or cannot be reached): {reason}"
    )]
    StoreLost { reason: String },
    /// Rank 0 cannot host the store: its port is taken on this machine.
    #[error(
        "port {port} is taken on this machine: another process given rank 0 (or an earlier launch's rank 0, still running) or another program holds it: {reason}"
    )]
    PortTaken { port: u16, reason: String },
    /// Ranks that never answered the roll call, or whose process went silent after it did, as
    /// rank `waited_by` found after `seconds`.
    #[error(
        "{} (rank {waited_by} waited {seconds} s for them): {}",
        .absent.describe(*.size),
        if .absent.missing.is_empty() { "start them again" } else { "were they started, with this MASTER_ADDR, MASTER_PORT and WORLD_SIZE?" }
    )]
    RanksMissing { size: usize, absent: super::roll_call::Absent, waited_by: usize, seconds: u64 },
    /// Setting or reading one key of a store failed.
    #[error("cannot {operation} key {key} of the c10d store at {address}: {reason}")]
    StoreKey { operation: &'static str, key: String, address: String, reason: String },
    /// Every process answered the roll call, yet the job's control group did not form.
    #[error(
        "all {size} processes of the job met in its store, but their group did not form within {seconds} s: a process ended meanwhile, or the machines cannot reach each other's Gloo ports (GLOO_SOCKET_IFNAME names the network interface to use; a firewall?): {reason}"
    )]
    GroupNotFormed { size: usize, seconds: u64, reason: String },
    #[error("cannot form the {backend} group as rank {rank} of {size}: {reason}")]
    Group { backend: &'static str, rank: usize, size: usize, reason: String },
    /// `run.collectives = "nccl"` where NCCL cannot run.
    #[error("NCCL cannot be used: {reason}; set run.collectives = \"gloo\" (or \"auto\")")]
    NcclUnavailable { reason: String },
    /// A collective between the job's processes failed: one of them is gone.
    #[error(
        "{operation} as rank {rank} of {size} failed: a process of the job is gone (it ended, or its machine cannot be reached): {reason}"
    )]
    ProcessLost { operation: &'static str, rank: usize, size: usize, reason: String },
    /// A peer died, timed out or disagreed on the tensor's shape.
    #[error("{operation} as rank {rank} of {size} failed: {reason}")]
    Collective { operation: &'static str, rank: usize, size: usize, reason: String },
}

impl DistributedError {
    /// A collective between this process's replicas and others failed (one gone, the network
    /// down): the failure of another process, or of the network, not of this one's own work.
    /// (A group that did not form is not counted: its reasons may be this process's own.)
    pub fn is_collective(&self) -> bool {
        matches!(self, Self::ProcessLost { .. } | Self::Collective { .. })
    }
}
