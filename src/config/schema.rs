//! The typed configuration of a search: one struct per TOML section, unknown keys rejected.
//!
//! Defaults are the paper's (Sinha & Chen 2021, §4.1) unless a field says otherwise; the shipped
//! config/evnas.toml sizes them down for a CPU.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

// The domain's enums live with the code they steer; the config names them here.
pub use crate::distributed::CollectivesSetting;
pub use crate::evolution::Strategy;
pub use crate::final_training::LrSchedule;
pub use crate::space::SpaceKind;
pub use crate::train::{BnMode, Precision};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub search: SearchSection,
    pub supernet: SupernetSection,
    pub train: TrainSection,
    pub fitness: FitnessSection,
    pub data: DataSection,
    pub run: RunSection,
    /// (Absent from the config.json of runs started before evnas served metrics.)
    #[serde(default)]
    pub metrics: MetricsSection,
    /// Training the found cells from scratch (`evnas train`, or after a search). (Absent from
    /// the config.json of runs started before evnas trained networks.)
    #[serde(default)]
    pub final_training: FinalTrainingSection,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchSection {
    pub space: SpaceKind,
    pub strategy: Strategy,
    pub population: usize,
    pub generations: usize,
    pub tournament_size: usize,
    pub elites: usize,
    pub mutation_rate: f64,
    /// Master seed: every random stream of the run derives from it.
    pub seed: u64,
    /// Names the search's run directory under `run.dir` for `evnas serve`, which resumes it on
    /// start; empty: derived from the config (`search-` and its digest's first 16 digits).
    #[serde(default)]
    pub id: String,
    /// What `evnas serve` does with the search: run it, pause it (checkpoint, idle, resumable)
    /// or stop it (checkpoint, idle, best so far in the run directory). Changed by a reload.
    #[serde(default)]
    pub state: SearchStateSetting,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SearchStateSetting {
    #[default]
    Running,
    Paused,
    Stopped,
}

impl SearchStateSetting {
    pub fn name(self) -> &'static str {
        match self {
            SearchStateSetting::Running => "running",
            SearchStateSetting::Paused => "paused",
            SearchStateSetting::Stopped => "stopped",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupernetSection {
    pub init_channels: usize,
    pub layers: usize,
    /// Lay activations out channels-last (NHWC): same numbers, faster convolutions on CPU.
    pub channels_last: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSection {
    pub batch_size: usize,
    pub learning_rate: f64,
    pub learning_rate_min: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    pub grad_clip: f64,
    /// Arithmetic of the supernet's training steps: fp32 (the reference's) or bf16 autocast
    /// (beyond the paper). Absent (fp32) from configs saved before it existed, whose digest it
    /// leaves as it was.
    #[serde(default, skip_serializing_if = "Precision::is_fp32")]
    pub precision: Precision,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FitnessSection {
    pub batch_size: usize,
    pub batchnorm: BnMode,
    /// Pass validation images through the training augmentation, as the reference does by
    /// accident (it takes them from the training dataset object). Off by default.
    pub augment: bool,
    /// Evaluate on a fixed random subset of this many validation images; 0 = all (paper).
    pub subset: usize,
    /// Arithmetic of fitness evaluation: fp32 (the reference's numbers) or bf16 (beyond the paper).
    pub precision: Precision,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// cifar10, cifar100, fashion-mnist or imagenet.
    pub dataset: String,
    pub path: PathBuf,
    pub train_portion: f64,
    /// Use only the first N images of the training split; 0 = all (paper). For CPU-sized runs.
    pub train_subset: usize,
    pub cutout: bool,
    pub cutout_length: usize,
    /// Batches made ahead of the trainer.
    pub prefetch_depth: usize,
    /// Threads that decode and augment batches.
    pub workers: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSection {
    /// Parent directory of run directories.
    pub dir: PathBuf,
    /// "cpu", "cuda", "cuda:N" or "auto" (CUDA when available).
    pub device: String,
    /// Data-parallel training on several devices (e.g. ["cuda:0", "cuda:1"], or ["cpu", "cpu"]
    /// for CPU replicas); the first is the leader's. Empty: `device` alone. (Absent from the
    /// config.json of runs started before evnas trained on several devices.)
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<String>,
    /// Which c10d backend sums the replicas' gradients: "auto" (NCCL between GPUs, else Gloo),
    /// "nccl" or "gloo". (Absent from configs written before evnas had NCCL: "auto".)
    #[serde(default, skip_serializing_if = "CollectivesSetting::is_auto")]
    pub collectives: CollectivesSetting,
    /// Checkpoints kept in a run directory.
    pub keep_checkpoints: usize,
    /// CPU threads for libtorch; 0 = libtorch's default.
    pub threads: usize,
    /// Individuals measured at once on the CPU, one thread each; 0 = `threads`; 1 = one at a time.
    pub fitness_workers: usize,
    /// Log filter of `evnas serve`, e.g. "info" or "info,evnas=debug" (tracing's EnvFilter
    /// syntax); changed by a reload. The EVNAS_LOG variable, when set, wins at start.
    #[serde(default = "default_log_level")]
    pub log_level: String,
}

fn default_log_level() -> String {
    "info".into()
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    /// Where `evnas serve` serves Prometheus metrics (`/metrics`); empty: nowhere.
    pub listen: String,
}

/// `[final_training]`: the reference's train.py protocol (see config/evnas.toml).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinalTrainingSection {
    /// Train the search's best genotype once the search has ended.
    pub enabled: bool,
    pub epochs: usize,
    pub learning_rate: f64,
    pub learning_rate_min: f64,
    pub lr_schedule: LrSchedule,
    pub init_channels: i64,
    pub layers: usize,
    pub batch_size: usize,
    pub test_batch_size: usize,
    pub momentum: f64,
    pub weight_decay: f64,
    pub grad_clip: f64,
    pub auxiliary: bool,
    pub auxiliary_weight: f64,
    pub drop_path_prob: f64,
    pub label_smoothing: f64,
    pub cutout: bool,
    pub cutout_length: usize,
    /// Use only the first N training images; 0 = all.
    pub train_subset: usize,
    pub channels_last: bool,
    /// fp32, or bf16 autocast of the forward passes of training (absent from the config.json of
    /// runs from before it existed: fp32).
    #[serde(default)]
    pub precision: Precision,
    pub test_every: usize,
    pub seed: u64,
    pub keep_checkpoints: usize,
}

impl Default for FinalTrainingSection {
    /// The shipped default's section, so that the file stays the one place its values live.
    fn default() -> Self {
        super::load::default_section("final_training")
    }
}
