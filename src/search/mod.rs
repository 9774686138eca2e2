//! The EvNAS search as plain library code: building a search, the generation's transitions, the
//! trainer and fitness evaluators; the actor pipeline (`crate::actors`) drives them.

pub mod checkpointing;
pub mod compute_setup;
pub mod data;
pub mod engine;
pub mod evaluator;
pub mod generation;
mod model_factory;
pub use model_factory::replica_builder;
pub mod observer;
pub mod record;
pub mod run_dir;
pub mod settings;
pub mod snapshot;
mod space;
pub mod timings;
pub mod trainer;

use std::path::PathBuf;

pub use checkpointing::CapturedCheckpoint;
pub use data::{SearchData, TrainBatches, TrainPrefetch, ValidSource};
pub use engine::{
    child_streams, evaluator_devices, fitness_workers, resolve_device, SearchEngine, SearchParts,
    SearchResult, SearchState,
};
pub use evaluator::{FitnessEvaluator, FitnessModel};
pub use generation::{
    GenerationPhase, GenerationPlan, MeasuredFitness, PlannedIndividual, StoppedGeneration,
};
pub use observer::{Phase, SearchObserver, Silent};
pub use record::{GenerationRecord, IndividualRecord};
pub use settings::{
    DataSettings, FitnessSettings, HotSettings, RuntimeSettings, SearchSettings, SupernetSettings,
    TrainingSettings,
};
pub use snapshot::WeightsSnapshot;
pub use timings::GenerationTimings;
pub use trainer::{SupernetTrainer, Training};

/// `work` on a thread named `name` that ends with it ([`crate::threads::on_phase_thread`]): a
/// search phase's libtorch work never keeps an OpenMP team on the thread that asked for it.
pub fn on_phase_thread<T: Send>(name: &str, work: impl FnOnce() -> T + Send) -> Result<T, SearchError> {
    crate::threads::on_phase_thread(name, work)
        .map_err(|e| SearchError::Thread { name: name.to_string(), reason: e.to_string() })
}

/// Errors of a search. Each message names its own problem; a wrapped error is the `source`,
/// never repeated in the message (the printer at the edge joins the chain).
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("device {name}: {reason}")]
    Device { name: String, reason: String },
    #[error("{path}: {reason}", path = path.display())]
    Io { path: PathBuf, reason: String },
    #[error("run directory {path} already holds a run; use --resume {path} or another --run-dir", path = path.display())]
    RunExists { path: PathBuf },
    #[error(
        "run directory {path} holds {file} but no config.json: what another run left, which a new search would overwrite; use another --run-dir",
        path = path.display()
    )]
    HoldsOtherFiles { path: PathBuf, file: &'static str },
    #[error(transparent)]
    Locked(#[from] crate::run_lock::RunLockError),
    /// `why`: "it does not exist" or "it has no config.json".
    #[error("not a run directory ({why})")]
    NotARun { path: PathBuf, why: &'static str },
    #[error(
        "the config differs from the one the run was started with, in {} (the run's value -> this one's); resume without --config, or with {}",
        differences.join("; "),
        run.join("config.json").display()
    )]
    ConfigChanged { run: PathBuf, differences: Vec<String> },
    #[error(transparent)]
    Checkpoint(#[from] crate::checkpoint::CheckpointError),
    #[error("cannot encode checkpoint file {name}: {reason}")]
    CheckpointEncode { name: String, reason: String },
    #[error("checkpoint file {path} cannot be restored: {reason}", path = path.display())]
    CheckpointDecode { path: PathBuf, reason: String },
    #[error("the {actor} actor is gone")]
    ActorGone { actor: String },
    #[error("cannot start the thread {name}: {reason}")]
    Thread { name: String, reason: String },
    #[error("the search has not finished")]
    NotFinished,
    #[error("decoding an architecture: {0}")]
    Decode(String),
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    #[error(transparent)]
    Weights(#[from] crate::weights::WeightsError),
    #[error("model: {0}")]
    Model(String),
    #[error(transparent)]
    Train(#[from] crate::train::TrainError),
    #[error(transparent)]
    Evolution(#[from] crate::evolution::EvolutionError),
}
