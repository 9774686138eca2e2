//! Search configuration: typed sections, layered loading, validation, and a digest for resume.

mod load;
mod schema;
mod validate;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::search::HotSettings;

pub use load::{load, load_text, load_with, read_file, Override, DEFAULT_TOML};
pub use schema::*;
pub use validate::{untrainable_result, validate};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path} does not exist")]
    Missing { path: PathBuf },
    #[error("cannot read config file {path}")]
    Read { path: PathBuf, source: std::io::Error },
    /// `item`: the override as the user wrote it (`--set KEY=VALUE`, or a flag).
    #[error("bad {item}: {reason}")]
    BadOverride { item: String, reason: String },
    #[error("cannot read {source_name}: {reason}")]
    Parse { source_name: String, reason: String },
    /// `place`: the file, `--set KEY=VALUE` or `environment variable EVNAS__…`, whichever set it.
    #[error("{place}: key `{key}`: {reason}")]
    Field { place: String, key: String, reason: String },
    #[error("{source_name} has {} problem(s):\n  - {}", problems.len(), problems.join("\n  - "))]
    Invalid { source_name: String, problems: Vec<String> },
    /// The config names a search directory holding a search it could not resume.
    #[error(
        "the search in {dir} was started with another config, differing in {} (its value -> this one's); give search.id a new value for a new search, or set these as it has them",
        differences.join("; "),
        dir = dir.display()
    )]
    SearchMismatch { dir: PathBuf, differences: Vec<String> },
    /// `data.dataset` names a dataset a search cannot read.
    #[error(
        "data.dataset = {dataset:?}: a search reads its dataset into memory, so it runs on one of {}; ImageNet is for training the cells it finds (`evnas train`), as in the paper",
        crate::data::DatasetKind::searchable_names()
    )]
    NotSearchable { dataset: String },
    /// `data.path` does not hold the training set of `data.dataset`, or not all of it.
    #[error("data.path = {}: does not hold the {dataset} training set", path.display())]
    DataUnusable {
        path: PathBuf,
        dataset: &'static str,
        #[source]
        source: crate::data::DataError,
    },
    /// `data.train_portion` leaves one side of the search's split empty.
    #[error(
        "data.train_portion = {train_portion}: it splits the {images} training images into {train} to train the supernet and {} to measure fitness; both need some",
        images - train
    )]
    EmptySplit { train_portion: f64, images: usize, train: usize },
    #[error("run.dir = {}: {} is not a directory, so no search directory can be made under it", dir.display(), blocker.display())]
    RunDirNotADirectory { dir: PathBuf, blocker: PathBuf },
    #[error("the search directory {} holds no search: {why}", dir.display())]
    NotASearchDir { dir: PathBuf, why: &'static str },
}

impl ConfigError {
    /// Whether `err` or one of its causes is a config error: the command line or the config is
    /// wrong (exit 2, which systemd does not restart), not what happened while running.
    pub fn is_in(err: &anyhow::Error) -> bool {
        err.chain().any(|cause| cause.downcast_ref::<ConfigError>().is_some())
    }

    /// The message on one line (a journal entry): a list of problems joined by "; ", a cause
    /// after its context.
    pub fn one_line(&self) -> String {
        let mut line = match self {
            ConfigError::Invalid { source_name, problems } => {
                format!("{source_name} has {} problem(s): {}", problems.len(), problems.join("; "))
            }
            other => other.to_string().replace('\n', " "),
        };
        let mut cause = std::error::Error::source(self);
        while let Some(error) = cause {
            line = format!("{line}: {error}");
            cause = error.source();
        }
        line
    }
}

impl Config {
    /// How many supernet replicas this process trains side by side, each on a host thread of
    /// its own: the length of `run.devices`, at least 1.
    pub fn replicas(&self) -> usize {
        self.run.devices.len().max(1)
    }

    /// How many fitness evaluators measure whole individuals side by side on the CPU: fp32
    /// fitness on a CPU device ("auto" counts as one: main asks before CUDA may be looked at),
    /// as many as [`crate::search::fitness_workers`] makes of `run.fitness_workers` with
    /// `run.threads` (0: one per CPU); else 1.
    pub fn cpu_fitness_evaluators(&self) -> usize {
        let on_cpu = self.run.devices.first().unwrap_or(&self.run.device);
        if !matches!(on_cpu.as_str(), "cpu" | "auto") || self.fitness.precision != Precision::Fp32 {
            return 1;
        }
        let threads = match self.run.threads {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        let (requested, channels) = (self.run.fitness_workers, self.supernet.init_channels);
        crate::search::fitness_workers(requested, channels, threads, self.search.population)
    }

    /// Digest of everything that shapes a search's results; a run resumes only under the same one.
    ///
    /// The search id, run directory, devices, thread count and prefetch settings are left out: they change
    /// where and how fast a run goes, not what it computes. So are the values a reload may change
    /// while the search runs ([`Config::hot_settings`]): the state records those in force.
    pub fn digest(&self) -> String {
        let json = serde_json::to_vec(&self.digest_tree()).expect("config serialises to JSON");
        let hash = Sha256::digest(&json);
        hash.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// `section.key: this -> other` for each field of the digest in which `other` differs.
    pub fn digest_differences(&self, other: &Config) -> Vec<String> {
        let (mine, theirs) = (flatten(self.digest_tree()), flatten(other.digest_tree()));
        let keys: BTreeSet<&String> = mine.keys().chain(theirs.keys()).collect();
        // A key left out of the saved form stands for its default (e.g. `train.precision`).
        let shown = |v: Option<&Value>| v.map_or_else(|| "(default)".to_string(), Value::to_string);
        keys.into_iter()
            .filter(|key| mine.get(*key) != theirs.get(*key))
            .map(|key| format!("{key}: {} -> {}", shown(mine.get(key)), shown(theirs.get(key))))
            .collect()
    }

    /// `section.key` → value for every field.
    pub fn fields(&self) -> BTreeMap<String, Value> {
        flatten(serde_json::to_value(self).expect("config serialises to JSON"))
    }

    /// What [`Config::digest`] hashes.
    fn digest_tree(&self) -> Value {
        let mut relevant = self.clone().with_hot_settings(&HotSettings::default());
        relevant.search.state = SearchStateSetting::Running;
        relevant.run.log_level = String::new();
        relevant.metrics.listen = String::new();
        relevant.search.id = String::new();
        relevant.run.dir = PathBuf::new();
        relevant.run.device = String::new();
        relevant.run.devices = Vec::new();
        relevant.run.collectives = CollectivesSetting::Auto;
        relevant.run.keep_checkpoints = 0;
        relevant.run.threads = 0;
        relevant.run.fitness_workers = 0;
        relevant.data.path = PathBuf::new();
        relevant.data.prefetch_depth = 0;
        relevant.data.workers = 0;
        let mut tree = serde_json::to_value(&relevant).expect("config serialises to JSON");
        // Training the result afterwards changes nothing the search computes (and configs from
        // before the section existed keep their digest).
        if let Some(sections) = tree.as_object_mut() {
            sections.remove("final_training");
        }
        tree
    }

    /// The values of this config that a reload may change while a search runs.
    pub fn hot_settings(&self) -> HotSettings {
        HotSettings {
            population: self.search.population,
            generations: self.search.generations,
            tournament_size: self.search.tournament_size,
            elites: self.search.elites,
            mutation_rate: self.search.mutation_rate,
            fitness_subset: self.fitness.subset,
        }
    }

    /// This config with `settings` as its hot values.
    pub fn with_hot_settings(mut self, settings: &HotSettings) -> Self {
        self.search.population = settings.population;
        self.search.generations = settings.generations;
        self.search.tournament_size = settings.tournament_size;
        self.search.elites = settings.elites;
        self.search.mutation_rate = settings.mutation_rate;
        self.fitness.subset = settings.fitness_subset;
        self
    }

    /// The search's name: `search.id`, or one derived from the digest (same results, same name).
    pub fn search_id(&self) -> String {
        if self.search.id.is_empty() {
            format!("search-{}", &self.digest()[..16])
        } else {
            self.search.id.clone()
        }
    }
}

/// `section.key` → value for every field of a config's JSON tree.
fn flatten(tree: Value) -> BTreeMap<String, Value> {
    let mut fields = BTreeMap::new();
    if let Value::Object(sections) = tree {
        for (section, body) in sections {
            match body {
                Value::Object(keys) => {
                    for (key, value) in keys {
                        fields.insert(format!("{section}.{key}"), value);
                    }
                }
                other => {
                    fields.insert(section, other);
                }
            }
        }
    }
    fields
}
