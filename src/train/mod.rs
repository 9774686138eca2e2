//! Training and evaluation of the one-shot supernet during a search.

pub mod accuracy;
pub mod autocast;
pub mod data_parallel;
pub mod fitness;
pub mod fitness_mode;
#[cfg(test)]
mod fixed_start;
pub mod loss_check;
pub mod reduced_precision;
pub mod remote_fitness;
pub mod schedule;
pub mod sgd;
pub mod supernet_epoch;
pub mod test_set;

pub use accuracy::Tally;
pub use fitness_mode::{BnMode, Precision};

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("the population is empty")]
    EmptyPopulation,
    #[error("stopped on request")]
    Interrupted,
    #[error(
        "the stopped training pass being continued has {saved} individuals, the population {population}"
    )]
    ResumeMismatch { population: usize, saved: usize },
    #[error("a fitness worker thread ended without a result")]
    WorkerLost,
    #[error("data pipeline failed: {reason}")]
    Data { reason: String },
    #[error("loss is not finite at batch {batch} (individual {individual}); lower train.learning_rate")]
    NonFiniteLoss { batch: usize, individual: usize },
    /// A replica gave its step's all-reduce up: another of its process failed the step first
    /// (that one's error says why).
    #[error("a supernet replica gave its step up: another replica failed it")]
    StepGivenUp,
    #[error("supernet replica {replica}: {reason}")]
    Replica { replica: usize, reason: String },
    /// A replica's collective with the others failed (kept typed for [`Self::is_collective`]).
    #[error("supernet replica {replica}: {failure}")]
    ReplicaCollective { replica: usize, failure: crate::distributed::DistributedError },
    /// Another process of the job failed or broke the protocol; its own log says more.
    #[error("rank {rank} of the job: {reason}")]
    Rank { rank: usize, reason: String },
    #[error("training batch {batch} holds no images")]
    EmptyBatch { batch: usize },
    #[error(transparent)]
    Distributed(#[from] crate::distributed::DistributedError),
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
    #[error(transparent)]
    Fault(#[from] crate::fault::InjectedFault),
}

impl TrainError {
    /// A collective with other processes or replicas failed ([`DistributedError::is_collective`]):
    /// this process only saw another one fail.
    ///
    /// [`DistributedError::is_collective`]: crate::distributed::DistributedError::is_collective
    pub fn is_collective(&self) -> bool {
        match self {
            Self::Distributed(e) | Self::ReplicaCollective { failure: e, .. } => e.is_collective(),
            _ => false,
        }
    }
}
