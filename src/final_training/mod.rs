//! The paper's second stage: a found genotype's evaluation network trained from scratch as the
//! reference's train.py (NetworkCIFAR: SGD, cosine learning rate, cutout, auxiliary head, drop
//! path ramped per epoch, gradient clipping) and train_imagenet.py (NetworkImageNet: label
//! smoothing, linear learning-rate decay, RandomResizedCrop + ColorJitter) do, tested every epoch, checkpointed every epoch
//! and resumable exactly. Plain library code: the command line and telemetry live at the edge.

pub mod epoch;
pub mod network;
pub mod record;
pub mod run;
pub mod run_dir;
pub mod settings;

pub use network::TrainedNetwork;
pub use record::{EpochRecord, TrainingResult};
pub use run::{TrainingObserver, TrainingOutcome, TrainingRun};
pub use run_dir::TrainingRunDir;
pub use settings::{FinalTrainingSettings, LrSchedule};

use std::path::PathBuf;

/// Errors of a training run.
#[derive(Debug, thiserror::Error)]
pub enum FinalTrainingError {
    #[error(
        "the training folder {} has {train} classes, the validation folder {} has {valid}",
        train_dir.display(),
        valid_dir.display()
    )]
    ClassesDiffer { train_dir: PathBuf, train: usize, valid_dir: PathBuf, valid: usize },
    #[error(
        "the auxiliary head reads 8x8 feature maps (32x32 images), {dataset} images are {size}x{size}: \
         set final_training.auxiliary = false"
    )]
    AuxiliaryNeeds32 { dataset: &'static str, size: usize },
    #[error(
        "the result of {} is not a DARTS genotype: only searches of the DARTS space train a NetworkCIFAR",
        search.display()
    )]
    NotADartsGenotype { search: PathBuf },
    #[error("final_training.train_subset = {subset} asks for more images than the training set's {images}")]
    SubsetTooLarge { subset: usize, images: usize },
    #[error("loss is not finite at epoch {epoch}, batch {batch}; lower final_training.learning_rate")]
    NonFiniteLoss { epoch: usize, batch: usize },
    #[error("{reason}")]
    Device { reason: String },
    #[error("data pipeline failed: {reason}")]
    Data { reason: String },
    #[error("{} is not a training run directory (no {file})", dir.display())]
    NotARunDir { dir: PathBuf, file: &'static str },
    #[error(
        "{} holds a search, not a training run: evnas search --resume continues it; once it has finished, --genotype {}/genotype.json trains its result",
        dir.display(),
        dir.display()
    )]
    SearchRunDir { dir: PathBuf },
    #[error("{} already holds a training run; continue it with --resume", dir.display())]
    RunExists { dir: PathBuf },
    #[error(
        "{} holds {file} but no config.json: what another run left, which a new training would overwrite; use another --run-dir",
        dir.display()
    )]
    HoldsOtherFiles { dir: PathBuf, file: &'static str },
    #[error(transparent)]
    Locked(#[from] crate::run_lock::RunLockError),
    #[error("cannot {op} {}", path.display())]
    Io { op: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{} is unreadable: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("cannot encode {name}: {reason}")]
    Encode { name: String, reason: String },
    #[error(transparent)]
    Checkpoint(#[from] crate::checkpoint::CheckpointError),
    #[error(transparent)]
    Weights(#[from] crate::weights::WeightsError),
    #[error(transparent)]
    Momentum(#[from] crate::train::sgd::SgdStateError),
    #[error(transparent)]
    DataSet(#[from] crate::data::DataError),
    #[error(transparent)]
    Test(#[from] crate::train::TrainError),
    #[error(transparent)]
    Fault(#[from] crate::fault::InjectedFault),
}

impl FinalTrainingError {
    /// Whether the settings asked for what cannot be done (the config or the command line is
    /// to change).
    pub fn is_settings_problem(&self) -> bool {
        matches!(
            self,
            FinalTrainingError::AuxiliaryNeeds32 { .. } | FinalTrainingError::SubsetTooLarge { .. }
        )
    }
}
