//! The EvNAS search loop (Sinha & Chen 2021, Algorithm 1; reference: train_search.py): per
//! generation, train the supernet one pass with batch i through individual i mod P, measure every
//! individual's validation accuracy, then breed the next generation. State is checkpointed at
//! every generation boundary so that a resumed run ends exactly as an uninterrupted one.

use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{nn::VarStore, Device};

use crate::config::{BnMode, Config, Precision, SpaceKind, Strategy};
use crate::evolution::{Fitness, Population};
use crate::model::OneShotModel;
use crate::space::AlphaMatrix;
use crate::stop::StopFlag;
use crate::train::fitness::Replica;
use crate::train::reduced_precision::Bf16Shadow;
use crate::train::sgd::{Sgd, SgdConfig};

use super::checkpoint_writer::CheckpointWriter;
use super::checkpointing;
use super::data::SearchData;
use super::evaluator::FitnessEvaluators;
use super::observer::{Phase, SearchObserver};
use super::record::GenerationRecord;
use super::run_dir::RunDir;
use super::seeds::{derive_seed, streams};
use super::trainer::SupernetTrainer;
use super::SearchError;

/// Everything that evolves during a search besides the supernet weights and momentum.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SearchState {
    /// 0-based index of the generation to run next.
    pub next_generation: usize,
    /// The population of `next_generation` (unevaluated), or the final one once done.
    pub population: Population,
    /// The GA's random stream (selection, crossover, mutation, fresh individuals).
    pub ga_rng: ChaCha8Rng,
    pub history: Vec<GenerationRecord>,
}

/// The search's answer: the best individual of the last generation.
#[derive(Debug, Clone)]
pub struct SearchResult {
    pub architecture: String,
    pub genotype_json: serde_json::Value,
    pub fitness: Fitness,
    pub genotype_path: PathBuf,
}

pub struct SearchEngine {
    cfg: Config,
    space: SpaceKind,
    device: Device,
    trainer: SupernetTrainer,
    evaluators: FitnessEvaluators,
    data: SearchData,
    state: SearchState,
    run: RunDir,
    /// Writes each generation's checkpoint while the next one trains.
    writer: CheckpointWriter,
}

/// Which device a config asks for.
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

fn cuda_device(index: usize) -> Result<Device, SearchError> {
    let count = tch::Cuda::device_count();
    if (index as i64) < count {
        Ok(Device::Cuda(index))
    } else {
        Err(SearchError::Device {
            name: format!("cuda:{index}"),
            reason: format!("{count} CUDA device(s) available; use run.device = \"cpu\" or \"auto\""),
        })
    }
}

impl SearchEngine {
    /// Starts a new search in a fresh run directory (`run_dir`, or one under `cfg.run.dir`).
    pub fn create(cfg: Config, run_dir: Option<&Path>) -> Result<Self, SearchError> {
        let device = resolve_device(&cfg.run.device)?;
        apply_threads(&cfg);
        let data = SearchData::load(&cfg, device)?;
        let run = RunDir::create(&cfg.run.dir, cfg.search.seed, run_dir)?;
        run.write_config(&cfg)?;
        let (vs, model) = build_initial_model(&cfg, &data, device)?;
        let opt = Sgd::new(&vs, sgd_config(&cfg));
        let state = initial_state(&cfg);
        Self::assemble(cfg, device, data, run, (vs, model, opt), state)
    }

    /// Continues the run in `run_dir` from its newest intact checkpoint, or from its start when
    /// it was stopped before its first checkpoint. `cfg`, when given (the `--config` of the
    /// resuming command), must have the run's digest; otherwise the run's own config is used.
    /// Device and threads may differ from the original run. Also returns a line for each thing
    /// the user should know (checkpoints passed over as corrupt, a restart from the beginning).
    pub fn resume(
        run_dir: &Path,
        cfg: Option<Config>,
        device_override: Option<&str>,
    ) -> Result<(Self, Vec<String>), SearchError> {
        let run = RunDir::open(run_dir)?;
        let original = run.read_config()?;
        let mut cfg = match cfg {
            Some(c) if c.digest() != original.digest() => {
                return Err(SearchError::ConfigChanged { run: run_dir.to_path_buf() })
            }
            Some(c) => c,
            None => original,
        };
        if let Some(d) = device_override {
            cfg.run.device = d.to_string();
        }
        let device = resolve_device(&cfg.run.device)?;
        apply_threads(&cfg);
        let data = SearchData::load(&cfg, device)?;
        // Initialised exactly as `create` does, so that a run without a checkpoint starts again
        // from the very same weights; a checkpoint then overwrites them.
        let (mut vs, model) = build_initial_model(&cfg, &data, device)?;
        let mut opt = Sgd::new(&vs, sgd_config(&cfg));
        let (state, notes) = match checkpointing::load_latest(&run, &cfg, &mut vs, &mut opt)? {
            Some(loaded) => loaded,
            None => (
                initial_state(&cfg),
                vec![format!(
                    "run {} was stopped before its first checkpoint; starting it again from its saved config",
                    run_dir.display()
                )],
            ),
        };
        run.write_history(&state.history, baseline_label(&cfg))?;
        Ok((Self::assemble(cfg, device, data, run, (vs, model, opt), state)?, notes))
    }

    /// The engine around a supernet and a state, with the fitness copies the config asks for.
    fn assemble(
        cfg: Config,
        device: Device,
        data: SearchData,
        run: RunDir,
        (vs, model, opt): (VarStore, Box<dyn OneShotModel>, Sgd),
        state: SearchState,
    ) -> Result<Self, SearchError> {
        let space = cfg.search.space;
        let trainer = SupernetTrainer::new(vs, model, opt, cfg.train.grad_clip);
        let train_mode_bn = cfg.fitness.batchnorm == BnMode::Batch;
        let evaluators = FitnessEvaluators::new(
            build_shadow(&cfg, &data, device)?,
            build_replicas(&cfg, &data, device)?,
            train_mode_bn,
        );
        let writer = CheckpointWriter::spawn(checkpointing::store(&run, &cfg)?, cfg.digest())?;
        Ok(Self { cfg, space, device, trainer, evaluators, data, state, run, writer })
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn run_dir(&self) -> &Path {
        self.run.path()
    }

    pub fn device(&self) -> Device {
        self.device
    }

    pub fn state(&self) -> &SearchState {
        &self.state
    }

    pub fn is_finished(&self) -> bool {
        self.state.next_generation >= self.cfg.search.generations
    }

    pub fn train_batches_per_generation(&self) -> usize {
        self.data.num_train_batches()
    }

    /// Runs generations until the last one, or until `stop` is raised (then the run can be
    /// resumed from its last checkpoint).
    pub fn run(
        &mut self,
        observer: &mut dyn SearchObserver,
        stop: &StopFlag,
    ) -> Result<SearchResult, SearchError> {
        let mut outcome = Ok(());
        while outcome.is_ok() && !self.is_finished() {
            outcome = self.run_generation(observer, stop).map(drop);
        }
        // The last checkpoint handed over is made durable whatever happened since.
        let written = self.writer.wait();
        outcome?;
        written?;
        crate::fault::point("search.finished").map_err(crate::train::TrainError::from)?;
        self.result()
    }

    /// The result of a finished search.
    pub fn result(&self) -> Result<SearchResult, SearchError> {
        let last = self.state.history.last().ok_or(SearchError::NotFinished)?;
        if !self.is_finished() {
            return Err(SearchError::NotFinished);
        }
        let best = &last.best;
        let genome = self.best_genome()?;
        let arch = self.space.describe(&genome)?;
        let genotype_path = self.run.write_result(&arch.text, &arch.json)?;
        Ok(SearchResult {
            architecture: best.architecture.clone(),
            genotype_json: arch.json,
            fitness: best.fitness,
            genotype_path,
        })
    }

    fn best_genome(&self) -> Result<Vec<AlphaMatrix>, SearchError> {
        let last = self.state.history.last().ok_or(SearchError::NotFinished)?;
        self.state.population.get(last.best.id).map(|i| i.genome.clone()).ok_or(SearchError::NotFinished)
    }

    /// One generation: train, evaluate, record, breed, checkpoint (see [`GenerationPhase`]).
    ///
    /// [`GenerationPhase`]: super::generation::GenerationPhase
    pub fn run_generation(
        &mut self,
        observer: &mut dyn SearchObserver,
        stop: &StopFlag,
    ) -> Result<GenerationRecord, SearchError> {
        let plan = self.state.plan(&self.cfg)?;
        let g = plan.generation;

        observer.phase_started(g + 1, Phase::Train, self.data.num_train_batches() as u64);
        let batches = self.data.train_batches(g)?;
        let train =
            self.trainer.train(&plan, batches, stop, |i| observer.advanced(Phase::Train, i as u64 + 1))?;

        observer.phase_started(g + 1, Phase::Evaluate, plan.individuals.len() as u64);
        let started = Instant::now();
        let fitness = self.evaluators.evaluate(&self.trainer, &plan, &self.data, stop, |n| {
            observer.advanced(Phase::Evaluate, n as u64)
        })?;
        let evaluation_seconds = started.elapsed().as_secs_f64();
        let record = self.state.record(&self.cfg, &plan, train, &fitness, evaluation_seconds)?;
        self.write_best()?;
        self.run.write_history(&self.state.history, baseline_label(&self.cfg))?;
        self.state.breed(&self.cfg)?;
        let captured = self.trainer.capture(&self.state)?;
        let dir = self.writer.dir_of(captured.generation);
        self.writer.submit(captured)?;
        observer.generation_finished(&record, &dir);
        Ok(record)
    }

    fn write_best(&self) -> Result<(), SearchError> {
        let best = self.state.population.individuals.first().ok_or(SearchError::NotFinished)?;
        let arch = self.space.describe(&best.genome)?;
        let alpha = serde_json::to_value(&best.genome).map_err(|e| SearchError::Decode(e.to_string()))?;
        self.run.write_best(&arch.text, &arch.json, &alpha)?;
        self.space.write_pictures(&best.genome, &self.run.best_dir())?;
        Ok(())
    }
}

fn baseline_label(cfg: &Config) -> Option<&'static str> {
    match cfg.search.strategy {
        Strategy::Evolution => None,
        Strategy::Random => Some("Random search"),
    }
}

/// Below this many channels in the first cells, several individuals at once beat one individual
/// on all threads (measured here, 2 threads: C=8 at 28x28 +42%; C=16 at 32x32 -9%, where
/// libtorch's intra-op threads already have enough work per op).
const NARROW_SUPERNET_CHANNELS: usize = 16;

/// How many individuals a fitness phase measures at once on the CPU for `run.fitness_workers =
/// requested` (0: automatic) with `threads` libtorch threads.
pub fn fitness_workers(requested: usize, init_channels: usize, threads: usize) -> usize {
    match requested {
        0 if init_channels < NARROW_SUPERNET_CHANNELS => threads.max(1),
        0 => 1,
        n => n,
    }
}

/// The fitness workers' copies of the supernet (see [`fitness_workers`]), on the CPU with fp32
/// fitness only; none when that comes to one.
fn build_replicas(cfg: &Config, data: &SearchData, device: Device) -> Result<Vec<Replica>, SearchError> {
    let threads = if cfg.run.threads > 0 { cfg.run.threads } else { tch::get_num_threads().max(1) as usize };
    let workers = fitness_workers(cfg.run.fitness_workers, cfg.supernet.init_channels, threads)
        .min(cfg.search.population);
    if device != Device::Cpu || cfg.fitness.precision != Precision::Fp32 || workers < 2 {
        return Ok(Vec::new());
    }
    (0..workers)
        .map(|_| {
            let (vs, model) = build_model(cfg, data, device)?;
            Ok(Replica { vs, model })
        })
        .collect()
}

fn sgd_config(cfg: &Config) -> SgdConfig {
    SgdConfig { momentum: cfg.train.momentum, weight_decay: cfg.train.weight_decay }
}

fn apply_threads(cfg: &Config) {
    if cfg.run.threads > 0 {
        tch::set_num_threads(cfg.run.threads as i32);
    }
}

/// The bf16 evaluation copy, when the config asks for one.
fn build_shadow(cfg: &Config, data: &SearchData, device: Device) -> Result<Option<Bf16Shadow>, SearchError> {
    match cfg.fitness.precision {
        Precision::Fp32 => Ok(None),
        Precision::Bf16 => {
            let (vs, model) = build_model(cfg, data, device)?;
            Ok(Some(Bf16Shadow::new(vs, model)))
        }
    }
}

/// The supernet of a new run: libtorch's generator seeded from the run's seed first.
fn build_initial_model(
    cfg: &Config,
    data: &SearchData,
    device: Device,
) -> Result<(VarStore, Box<dyn OneShotModel>), SearchError> {
    tch::manual_seed(derive_seed(cfg.search.seed, streams::WEIGHTS) as i64);
    build_model(cfg, data, device)
}

/// The state before the first generation: a random population from the GA's stream.
fn initial_state(cfg: &Config) -> SearchState {
    let mut ga_rng = ChaCha8Rng::seed_from_u64(derive_seed(cfg.search.seed, streams::GA));
    let population =
        Population::random(cfg.search.population, cfg.search.space.genome_shape(), 0, &mut ga_rng);
    SearchState { next_generation: 0, population, ga_rng, history: Vec::new() }
}

fn build_model(
    cfg: &Config,
    data: &SearchData,
    device: Device,
) -> Result<(VarStore, Box<dyn OneShotModel>), SearchError> {
    let vs = VarStore::new(device);
    let [channels, _, _] = data.input_shape();
    let model = super::model_factory::build(cfg, &vs, channels as i64, data.num_classes() as i64)?;
    Ok((vs, model))
}
