//! The EvNAS search loop (Sinha & Chen 2021, Algorithm 1; reference: train_search.py): per
//! generation, train the supernet one pass with batch i through individual i mod P, measure every
//! individual's validation accuracy, then breed the next generation. State is checkpointed at
//! every generation boundary so that a resumed run ends exactly as an uninterrupted one.
//!
//! This file builds a search (new or resumed); the daemon's actor pipeline runs it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tch::{nn::VarStore, Device};

use crate::checkpoint::CheckpointStore;
use crate::cudnn::CudnnMode;
use crate::evolution::Strategy;
use crate::evolution::{ChildStreams, Fitness, Population};
use crate::model::OneShotModel;
use crate::train::data_parallel::{BuildReplica, InJob, ReplicaOptions, ReplicaSet};
use crate::train::reduced_precision::Bf16Shadow;
use crate::train::remote_fitness::FitnessLink;
use crate::train::sgd::{Sgd, SgdConfig};
use crate::train::{BnMode, Precision};

use super::checkpointing;
use super::compute_setup::ComputeSetup;
use super::data::SearchData;
use super::evaluator::{FitnessEvaluator, FitnessModel};
use super::generation::StoppedGeneration;
use super::record::GenerationRecord;
use super::run_dir::RunDir;
use super::settings::{HotSettings, SearchSettings};
use super::trainer::SupernetTrainer;
use super::SearchError;
use crate::seeds::{derive_seed, streams};

/// Everything that evolves during a search besides the supernet weights and momentum.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SearchState {
    /// 0-based index of the generation to run next.
    pub next_generation: usize,
    /// The population of `next_generation` (unevaluated), or the final one once done.
    pub population: Population,
    pub history: Vec<GenerationRecord>,
    /// How far generation `next_generation` got when the search was stopped in its middle
    /// (a stop checkpoint); it continues from there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<StoppedGeneration>,
    /// The settings generation `next_generation` runs with.
    pub settings: HotSettings,
    /// Where and how this state was computed (absent in checkpoints written before evnas
    /// recorded it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub computed_with: Option<ComputeSetup>,
}

/// The search's answer: the best individual of the last generation.
#[derive(Debug, Clone)]
pub struct SearchResult {
    pub architecture: String,
    pub genotype_json: serde_json::Value,
    pub fitness: Fitness,
    pub genotype_path: PathBuf,
    /// The budget it ran to.
    pub generations: usize,
}

/// A search ready to run: the supernet with its trainer, the fitness evaluators, the data, the
/// state at the generation boundary it starts from and its run directory. The daemon's pipeline
/// takes it apart ([`SearchEngine::into_parts`]) and drives it generation by generation.
pub struct SearchEngine {
    settings: SearchSettings,
    trainer: SupernetTrainer,
    evaluators: Vec<FitnessEvaluator>,
    data: SearchData,
    state: SearchState,
    run: RunDir,
    store: CheckpointStore,
    stop_store: CheckpointStore,
    /// The process's CPU threads for libtorch, as the search was set up with them.
    cpu_threads: usize,
}

/// The parts of a [`SearchEngine`], each to be owned by whoever drives it.
pub struct SearchParts {
    pub settings: SearchSettings,
    pub trainer: SupernetTrainer,
    pub evaluators: Vec<FitnessEvaluator>,
    pub data: SearchData,
    pub state: SearchState,
    pub run: RunDir,
    /// Generation-boundary checkpoints.
    pub store: CheckpointStore,
    /// The checkpoint of a search stopped mid-generation.
    pub stop_store: CheckpointStore,
    /// The process's CPU threads for libtorch (a fitness evaluator alone on the CPU uses them
    /// all).
    pub cpu_threads: usize,
}

/// The device a name ("cpu", "cuda", "cuda:N", "auto") stands for.
pub fn resolve_device(name: &str) -> Result<Device, SearchError> {
    match name {
        "cpu" => Ok(Device::Cpu),
        "auto" => Ok(Device::cuda_if_available()),
        "cuda" => cuda_device(0),
        other => match other.strip_prefix("cuda:").and_then(|n| n.parse::<usize>().ok()) {
            Some(i) => cuda_device(i),
            None => Err(SearchError::Device { name: other.to_string(), reason: "unknown device".into() }),
        },
    }
}

/// The name of `device` as a config writes it: "cpu", "cuda:N".
pub fn device_name(device: Device) -> String {
    match device {
        Device::Cuda(index) => format!("cuda:{index}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

fn cuda_device(index: usize) -> Result<Device, SearchError> {
    let count = tch::Cuda::device_count();
    if (index as i64) < count {
        Ok(Device::Cuda(index))
    } else {
        Err(SearchError::Device {
            name: format!("cuda:{index}"),
            reason: format!("{count} CUDA device(s) available"),
        })
    }
}

impl SearchEngine {
    /// Starts a new search in the fresh run directory `open_run` makes: called once the data
    /// has loaded, so that bad data leaves nothing behind, and discarded again when the search
    /// cannot start in it (no room for its checkpoints, say).
    pub fn create(
        settings: SearchSettings,
        open_run: impl FnOnce() -> Result<RunDir, SearchError>,
    ) -> Result<Self, SearchError> {
        let device = settings.runtime.device();
        apply_process_settings(&settings);
        let data = SearchData::load(&settings, device)?;
        let run = open_run()?;
        let made = run.clone();
        let started = build_initial_model(&settings, &data, device).and_then(|(vs, model)| {
            let opt = Sgd::new(&vs, sgd_config(&settings));
            let state = initial_state(&settings, settings.hot);
            Self::assemble(settings, data, run, (vs, model, opt), state)
        });
        started.inspect_err(|_| made.discard())
    }

    /// Continues the search in `run` from its newest intact checkpoint of `settings.identity`,
    /// or from its start (with `started_with`, its original hot values) when it was stopped
    /// before its first checkpoint. `wanted`: hot values that apply from its next generation
    /// boundary on (a reload's, or a config's given now); `None`: it goes on with those in
    /// force when it stopped. Device and threads may differ from the original run. Also
    /// returns a line for each thing the user should know (checkpoints passed over as corrupt,
    /// a restart from the beginning).
    pub fn resume(
        mut settings: SearchSettings,
        run: RunDir,
        started_with: HotSettings,
        wanted: Option<HotSettings>,
    ) -> Result<(Self, Vec<String>), SearchError> {
        let device = settings.runtime.device();
        apply_process_settings(&settings);
        let data = SearchData::load(&settings, device)?;
        // Initialised exactly as `create` does, so that a run without a checkpoint starts again
        // from the very same weights; a checkpoint then overwrites them.
        let (mut vs, model) = build_initial_model(&settings, &data, device)?;
        let mut opt = Sgd::new(&vs, sgd_config(&settings));
        let (state, mut notes) = match checkpointing::load_latest(&run, &settings, &mut vs, &mut opt)? {
            Some(loaded) => loaded,
            None => (
                initial_state(&settings, started_with),
                vec![format!(
                    "run {} was stopped before its first checkpoint; starting it again from its saved config",
                    run.path().display()
                )],
            ),
        };
        settings.hot = wanted.unwrap_or(state.settings);
        run.write_history(&state.history, baseline_label(&settings))?;
        let computed_with = state.computed_with.clone();
        let engine = Self::assemble(settings, data, run, (vs, model, opt), state)?;
        // Nothing to say of a finished search opened for its result: it computes nothing more.
        let computes = engine.state.next_generation < engine.settings.hot.generations;
        let changes = match (&computed_with, &engine.state.computed_with) {
            (Some(was), Some(now)) if computes => now.changes_from(was),
            _ => Vec::new(),
        };
        if !changes.is_empty() {
            notes.push(format!(
                "{} changed since its checkpoint was computed: the run continues, but libtorch rounds \
                 differently under another setup, so its numbers will not be an uninterrupted run's bit for bit",
                changes.join(", ")
            ));
        }
        Ok((engine, notes))
    }

    /// The engine around a supernet and a state, with the fitness evaluators the settings ask for.
    fn assemble(
        settings: SearchSettings,
        data: SearchData,
        run: RunDir,
        (vs, model, mut opt): (VarStore, Box<dyn OneShotModel>, Sgd),
        state: SearchState,
    ) -> Result<Self, SearchError> {
        if settings.training.precision == Precision::Bf16 {
            crate::runtime::warn_if_bf16_is_emulated("train.precision", !settings.runtime.device().is_cuda());
        }
        let store = checkpointing::store(&run, &settings)?;
        let stop_store = checkpointing::stop_store(&run)?;
        // None for a finished search (opened for its result): it writes no more checkpoints.
        let generations_left =
            settings.hot.generations.max(state.settings.generations).saturating_sub(state.next_generation);
        checkpointing::ensure_room(&store, (&vs, &opt), &state, generations_left)?;
        let cpu_threads = crate::threads::current_threads();
        // Threads that libtorch has not seen yet take the process's count at their first
        // parallel op, and keep an OpenMP team of that size for as long as they live. Gloo's
        // worker threads (a set per CPU replica, from the replicas' first broadcast on) live
        // for the whole search: with teams of their own, the process held more OpenMP threads
        // than CPUs, and every team, the fitness evaluator's included, slept between parallel
        // ops instead of spinning (paper supernet, 2 replicas on 2 cores, AMD EPYC Zen 3:
        // 117k voluntary context switches against 12.6k, fitness 0.88x one device's). With a
        // count of one they make none; the replicas' and evaluators' threads set theirs.
        if settings.runtime.devices.iter().filter(|d| **d == Device::Cpu).count() > 1 {
            crate::threads::lower_process_threads();
        }
        let mut replicas = start_replicas(&settings, &data, &vs, &mut opt, cpu_threads)?;
        let links = replicas.as_mut().map(ReplicaSet::take_fitness_links).unwrap_or_default();
        let training = &settings.training;
        let trainer = SupernetTrainer::new(vs, model, opt, training.grad_clip, training.precision, replicas);
        let remote_evaluators = links.len();
        let evaluators = build_evaluators(&settings, &data, links, cpu_threads)?;
        let mut state = state;
        state.computed_with = Some(ComputeSetup {
            threads: cpu_threads,
            devices: settings.runtime.devices.iter().map(|d| device_name(*d)).collect(),
            replicas: trainer.replicas(),
            fitness_evaluators: evaluators.len() - remote_evaluators,
        });
        Ok(Self { settings, trainer, evaluators, data, state, run, store, stop_store, cpu_threads })
    }

    pub fn into_parts(self) -> SearchParts {
        let Self { settings, trainer, evaluators, data, state, run, store, stop_store, cpu_threads } = self;
        SearchParts { settings, trainer, evaluators, data, state, run, store, stop_store, cpu_threads }
    }

    pub fn settings(&self) -> &SearchSettings {
        &self.settings
    }

    pub fn run_dir(&self) -> &Path {
        self.run.path()
    }

    pub fn device(&self) -> Device {
        self.settings.runtime.device()
    }

    /// Every training replica's device, the leader's first.
    pub fn devices(&self) -> &[Device] {
        &self.settings.runtime.devices
    }

    pub fn state(&self) -> &SearchState {
        &self.state
    }

    /// How many fitness evaluators measure each generation side by side.
    pub fn evaluator_count(&self) -> usize {
        self.evaluators.len()
    }

    pub fn train_batches_per_generation(&self) -> usize {
        self.data.num_train_batches()
    }
}

impl SearchState {
    pub fn is_finished(&self) -> bool {
        self.next_generation >= self.settings.generations
    }

    /// The result of a finished search, its genotype written into `run`.
    pub fn result(&self, settings: &SearchSettings, run: &RunDir) -> Result<SearchResult, SearchError> {
        let last = self.history.last().ok_or(SearchError::NotFinished)?;
        if !self.is_finished() {
            return Err(SearchError::NotFinished);
        }
        let best = &last.best;
        let genome =
            self.population.get(best.id).map(|i| i.genome.clone()).ok_or(SearchError::NotFinished)?;
        let arch = settings.space.describe(&genome)?;
        let genotype_path = run.write_result(&arch.text, &arch.json)?;
        Ok(SearchResult {
            architecture: best.architecture.clone(),
            genotype_json: arch.json,
            fitness: best.fitness,
            genotype_path,
            generations: self.settings.generations,
        })
    }

    /// Writes the best individual of the just-recorded generation (text, genotype, α, cells'
    /// pictures) and the history so far into `run`.
    pub fn write_progress(&self, settings: &SearchSettings, run: &RunDir) -> Result<(), SearchError> {
        let space = settings.space;
        let best = self.population.individuals.first().ok_or(SearchError::NotFinished)?;
        let arch = space.describe(&best.genome)?;
        let alpha = serde_json::to_value(&best.genome).map_err(|e| SearchError::Decode(e.to_string()))?;
        run.write_best(&arch.text, &arch.json, &alpha)?;
        space.write_pictures(&best.genome, &run.best_dir())?;
        run.write_history(&self.history, baseline_label(settings))
    }
}

fn baseline_label(settings: &SearchSettings) -> Option<&'static str> {
    match settings.strategy {
        Strategy::Evolution => None,
        Strategy::Random => Some("Random search"),
    }
}

/// Below this many channels in the first cells, several individuals at once beat one individual
/// on all threads (measured here, 2 threads: C=8 at 28x28 +42%; C=16 at 32x32 -9%, where
/// libtorch's intra-op threads already have enough work per op).
const NARROW_SUPERNET_CHANNELS: usize = 16;

/// How many individuals a fitness phase measures at once on the CPU for `run.fitness_workers =
/// requested` (0: automatic) with `threads` libtorch threads: at least one, never more than the
/// `population`.
pub fn fitness_workers(requested: usize, init_channels: usize, threads: usize, population: usize) -> usize {
    let workers = match requested {
        0 if init_channels < NARROW_SUPERNET_CHANNELS => threads,
        0 => 1,
        n => n,
    };
    workers.clamp(1, population.max(1))
}

/// The devices of a search's fitness evaluators, one entry per evaluator: on the CPU with fp32
/// fitness, [`fitness_workers`] of them (CPU replicas share the same cores); otherwise
/// `fitness_workers` as asked (automatic: one) on each distinct training device, dealt out
/// device by device. Never more than the population. `cpu_threads`: the process's.
pub fn evaluator_devices(settings: &SearchSettings, cpu_threads: usize) -> Vec<Device> {
    let requested = settings.runtime.fitness_workers;
    let leader = settings.runtime.device();
    let population = settings.hot.population.max(1);
    if leader == Device::Cpu && settings.fitness.precision == Precision::Fp32 {
        return vec![
            leader;
            fitness_workers(requested, settings.supernet.init_channels, cpu_threads, population)
        ];
    }
    let mut distinct: Vec<Device> = Vec::new();
    for &device in &settings.runtime.devices {
        if !distinct.contains(&device) {
            distinct.push(device);
        }
    }
    let per_device = requested.max(1);
    (0..per_device).flat_map(|_| distinct.iter().copied()).take(population).collect()
}

/// The other training replicas when the search trains on several devices or in a job of several
/// processes (this one rank 0), started from the leader's supernet `vs` and momentum `opt`; each
/// builds its own supernet of `settings`.
fn start_replicas(
    settings: &SearchSettings,
    data: &SearchData,
    vs: &VarStore,
    opt: &mut Sgd,
    cpu_threads: usize,
) -> Result<Option<ReplicaSet>, SearchError> {
    let devices = &settings.runtime.devices;
    let job = crate::distributed::joined();
    if devices.len() < 2 && job.is_none() {
        return Ok(None);
    }
    let [channels, _, _] = data.input_shape();
    let (channels, classes) = (channels as i64, data.num_classes() as i64);
    let replica_settings = settings.clone();
    let build: BuildReplica = Arc::new(move |vs: &VarStore| {
        super::model_factory::build(&replica_settings, vs, channels, classes).map_err(|e| e.to_string())
    });
    // The other ranks measure fitness on fp32 models of their own (bf16 fitness stays on rank 0).
    let fitness_batchnorm = (settings.fitness.precision == Precision::Fp32)
        .then_some(settings.fitness.batchnorm == BnMode::Batch);
    let in_job = job.map(|job| InJob {
        job,
        model_spec: super::model_factory::replica_spec(settings, channels, classes),
        fitness_batchnorm,
    });
    let options = ReplicaOptions {
        sgd: sgd_config(settings),
        threads: cpu_threads,
        collectives: settings.runtime.collectives,
        precision: settings.training.precision,
    };
    let replicas = ReplicaSet::start(vs, opt, devices, options, build, in_job)?;
    tracing::info!(
        replicas = replicas.replicas(),
        collectives = replicas.collectives(),
        "data-parallel training: gradients summed every step"
    );
    Ok(Some(replicas))
}

/// The fitness evaluators, each with a supernet of its own in the configured precision, then
/// one per link to another rank's model (a job of several processes).
fn build_evaluators(
    settings: &SearchSettings,
    data: &SearchData,
    links: Vec<FitnessLink>,
    cpu_threads: usize,
) -> Result<Vec<FitnessEvaluator>, SearchError> {
    let train_mode_bn = settings.fitness.batchnorm == BnMode::Batch;
    let mut evaluators = evaluator_devices(settings, cpu_threads)
        .into_iter()
        .map(|device| {
            let (vs, model) = build_model(settings, data, device)?;
            let model = match settings.fitness.precision {
                Precision::Fp32 => FitnessModel::Fp32 { vs, model },
                Precision::Bf16 => FitnessModel::Bf16(Bf16Shadow::new(vs, model)),
            };
            Ok(FitnessEvaluator::new(model, data.valid_source_on(device), train_mode_bn))
        })
        .collect::<Result<Vec<_>, SearchError>>()?;
    let remote = links.into_iter().map(FitnessModel::Remote);
    evaluators.extend(remote.map(|model| FitnessEvaluator::new(model, data.valid_source(), train_mode_bn)));
    Ok(evaluators)
}

fn sgd_config(settings: &SearchSettings) -> SgdConfig {
    SgdConfig { momentum: settings.training.momentum, weight_decay: settings.training.weight_decay }
}

/// libtorch's process-wide thread count, set here on the thread that builds the search, before
/// any actor thread exists; and cuDNN's reproducible mode, as the reference's search.
fn apply_process_settings(settings: &SearchSettings) {
    crate::threads::set_process_threads(settings.runtime.threads);
    crate::cudnn::set_mode(CudnnMode::Reproducible);
}

/// The supernet of a new run: libtorch's generator seeded from the run's seed first.
fn build_initial_model(
    settings: &SearchSettings,
    data: &SearchData,
    device: Device,
) -> Result<(VarStore, Box<dyn OneShotModel>), SearchError> {
    tch::manual_seed(derive_seed(settings.seed, &[streams::WEIGHTS]) as i64);
    build_model(settings, data, device)
}

/// The GA's per-child random streams of a run.
pub fn child_streams(seed: u64) -> ChildStreams {
    ChildStreams::new(derive_seed(seed, &[streams::GA]))
}

/// The state before the first generation, run with `hot`: a random population from the GA's
/// streams.
fn initial_state(settings: &SearchSettings, hot: HotSettings) -> SearchState {
    let population =
        Population::fresh(hot.population, settings.space.genome_shape(), &child_streams(settings.seed));
    SearchState {
        next_generation: 0,
        population,
        history: Vec::new(),
        stopped: None,
        settings: hot,
        computed_with: None,
    }
}

fn build_model(
    settings: &SearchSettings,
    data: &SearchData,
    device: Device,
) -> Result<(VarStore, Box<dyn OneShotModel>), SearchError> {
    let vs = VarStore::new(device);
    let [channels, _, _] = data.input_shape();
    let model = super::model_factory::build(settings, &vs, channels as i64, data.num_classes() as i64)?;
    Ok((vs, model))
}
