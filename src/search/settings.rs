//! The settings of a search, in the core's own types: the config file maps onto them at the edge
//! (`crate::launch`), so the core never sees `config::Config`.
//!
//! [`HotSettings`] are those an operator may change while a search runs (a config reload): the
//! GA's hyper-parameters, the generation budget and the fitness subset. A generation runs with the
//! settings in force when it starts; its population was bred with them. They are kept in the
//! search state and in each generation's record, so a resumed search goes on with the values in
//! force, not with those it was started with.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::data::DatasetKind;
use crate::evolution::{GaParams, Strategy};
use crate::space::SpaceKind;
use crate::train::{BnMode, Precision};

/// Everything a search is built from.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchSettings {
    pub space: SpaceKind,
    pub strategy: Strategy,
    /// Master seed: every random stream of the run derives from it.
    pub seed: u64,
    /// The hot values asked for: a new search starts with them.
    pub hot: HotSettings,
    pub supernet: SupernetSettings,
    pub training: TrainingSettings,
    pub fitness: FitnessSettings,
    pub data: DataSettings,
    pub runtime: RuntimeSettings,
    /// What the run's checkpoints belong to (the config's digest): a checkpoint of another
    /// identity is never restored.
    pub identity: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SupernetSettings {
    pub init_channels: usize,
    /// Cells (DARTS), or cells per stage (NAS-Bench-201).
    pub layers: usize,
    /// Activations laid out channels-last (NHWC).
    pub channels_last: bool,
}

/// The supernet's SGD: cosine learning rate from `learning_rate` to `learning_rate_min`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainingSettings {
    pub batch_size: usize,
    pub learning_rate: f64,
    pub learning_rate_min: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    pub grad_clip: f64,
    /// Arithmetic of the training steps' forward passes.
    pub precision: Precision,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FitnessSettings {
    pub batch_size: usize,
    pub batchnorm: BnMode,
    /// Validation images pass through the training augmentation.
    pub augment: bool,
    pub precision: Precision,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DataSettings {
    pub dataset: DatasetKind,
    pub path: PathBuf,
    /// Fraction of the training set the supernet trains on; the rest measures fitness.
    pub train_portion: f64,
    /// Only the first N images of the training part; 0: all.
    pub train_subset: usize,
    /// Cutout's square side, when cutout is on.
    pub cutout: Option<usize>,
    pub prefetch_depth: usize,
    pub workers: usize,
}

/// Where and how the search computes; none of it changes its results (but several devices
/// train with BatchNorm statistics per replica).
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeSettings {
    /// Every replica's device, the leader's first (never empty); more than one: data-parallel
    /// training.
    pub devices: Vec<tch::Device>,
    /// The c10d backend of data-parallel replicas.
    pub collectives: crate::distributed::CollectivesSetting,
    /// Generation checkpoints kept.
    pub keep_checkpoints: usize,
    /// libtorch's CPU threads; 0: its default.
    pub threads: usize,
    /// Individuals measured side by side on the CPU; 0: automatic.
    pub fitness_workers: usize,
}

impl RuntimeSettings {
    /// The leader's device: the supernet the search checkpoints lives there.
    pub fn device(&self) -> tch::Device {
        self.devices.first().copied().unwrap_or(tch::Device::Cpu)
    }
}

/// (`Default`, all zeros, stands for "not recorded": histories written before evnas recorded them.)
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct HotSettings {
    pub population: usize,
    /// The budget: the search ends after this many generations.
    pub generations: usize,
    pub tournament_size: usize,
    pub elites: usize,
    pub mutation_rate: f64,
    /// Validation images each fitness is measured on (a fixed random subset); 0: all of them.
    pub fitness_subset: usize,
}

impl HotSettings {
    /// The GA's parameters for breeding `parents` individuals into a population of
    /// `self.population`: selection and crossover see at most the parents there are.
    pub fn ga_params(&self) -> GaParams {
        GaParams {
            population: self.population,
            tournament_size: self.tournament_size,
            elites: self.elites,
            mutation_rate: self.mutation_rate,
        }
    }

    /// The names and values of the fields that differ from `other`, for log lines.
    pub fn changes_from(&self, other: &HotSettings) -> Vec<(&'static str, String, String)> {
        let mut changes = Vec::new();
        let mut field = |name, old: String, new: String| {
            if old != new {
                changes.push((name, old, new));
            }
        };
        field("search.population", other.population.to_string(), self.population.to_string());
        field("search.generations", other.generations.to_string(), self.generations.to_string());
        field("search.tournament_size", other.tournament_size.to_string(), self.tournament_size.to_string());
        field("search.elites", other.elites.to_string(), self.elites.to_string());
        field("search.mutation_rate", other.mutation_rate.to_string(), self.mutation_rate.to_string());
        field("fitness.subset", other.fitness_subset.to_string(), self.fitness_subset.to_string());
        changes
    }
}
