//! A training run from start (or a checkpoint) to its last epoch: per epoch the learning rate
//! and drop-path probability of train.py, one pass over the training set, the test split, then
//! the records, the weights and an atomic checkpoint. Every random draw is a function of the
//! seed and the epoch (data order, augmentation, drop-path masks), so a run resumed from the
//! checkpoint of epoch k computes what the uninterrupted run computed.

use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tch::nn::VarStore;
use tch::Tensor;

use super::epoch::{train_epoch, Step, StepSettings};
use super::network::TrainedNetwork;
use super::record::{EpochRecord, TrainingResult};
use super::run_dir::TrainingRunDir;
use super::settings::FinalTrainingSettings;
use super::FinalTrainingError;
use crate::checkpoint::{CheckpointFile, CheckpointStore, Upcoming};
use crate::data::{
    load_split, test_plan, test_source, BatchSource, CifarAugment, DatasetKind, EpochPlan, ImageFolder,
    ImageFolderSource, ImageNetTransform, InMemorySource, Producer, SplitName,
};
use crate::model::layers::{channels_last, to_channels_last_in_place};
use crate::model::parameter_count;
use crate::report::learning_curve_svg;
use crate::seeds::{derive_seed, streams};
use crate::stop::StopFlag;
use crate::train::sgd::Sgd;
use crate::train::test_set::evaluate_test_set;
use crate::train::Precision;
use crate::weights::{load_into, safetensors_bytes, safetensors_from_bytes, LoadOptions};

const STATE: &str = "state.json";
const NETWORK: &str = "network.safetensors";
const MOMENTUM: &str = "momentum.safetensors";

/// What happens during a run, for progress bars, log lines and metrics.
pub trait TrainingObserver {
    fn epoch_started(&mut self, _epoch: usize, _batches: usize, _learning_rate: f64) {}
    fn step(&mut self, _step: &Step<'_>) {}
    fn testing_started(&mut self, _batches: usize) {}
    fn tested_batch(&mut self) {}
    fn epoch_finished(&mut self, _record: &EpochRecord) {}
    fn checkpoint_written(&mut self, _epochs_done: usize, _bytes: u64, _seconds: f64) {}
}

impl TrainingObserver for () {}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum TrainingOutcome {
    Finished(TrainingResult),
    /// Stopped on request; the checkpoint of `epochs_done` epochs is the one to resume.
    Stopped {
        epochs_done: usize,
    },
}

/// The state a checkpoint holds besides the tensors.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrainingState {
    epochs_done: usize,
    records: Vec<EpochRecord>,
    /// (1-based epoch, test top-1) of the best tested epoch.
    best: Option<(usize, f64)>,
}

pub struct TrainingRun {
    settings: FinalTrainingSettings,
    run: TrainingRunDir,
    store: CheckpointStore,
    vs: VarStore,
    net: TrainedNetwork,
    opt: Sgd,
    train: Producer,
    train_items: Vec<usize>,
    test: Producer,
    test_plan: EpochPlan,
    test_images: usize,
    /// [`FinalTrainingSettings::identity`], the digest every checkpoint carries.
    identity: String,
    state: TrainingState,
}

impl TrainingRun {
    /// A run from freshly initialised weights.
    pub fn create(settings: FinalTrainingSettings, run: TrainingRunDir) -> Result<Self, FinalTrainingError> {
        Self::open(settings, run, false)
    }

    /// The run in `run` continued from its newest intact checkpoint (from the start when the
    /// first epoch never finished).
    pub fn resume(settings: FinalTrainingSettings, run: TrainingRunDir) -> Result<Self, FinalTrainingError> {
        Self::open(settings, run, true)
    }

    fn open(
        mut settings: FinalTrainingSettings,
        run: TrainingRunDir,
        resume: bool,
    ) -> Result<Self, FinalTrainingError> {
        settings.check_supported()?;
        if settings.precision == Precision::Bf16 {
            crate::runtime::warn_if_bf16_is_emulated("final_training.precision", !settings.device.is_cuda());
        }
        let (train_source, test_source) = sources(&settings)?;
        // An image folder has as many classes as it has; the network is built to match.
        settings.network.num_classes = train_source.num_classes() as i64;
        let images = train_source.len();
        let used = match settings.train_subset {
            Some(n) if n > images => {
                return Err(FinalTrainingError::SubsetTooLarge { subset: n, images });
            }
            Some(n) => n,
            None => images,
        };
        let train = Producer::new(train_source, settings.prefetch.clone())?;
        let test_plan = test_plan(test_source.as_ref(), settings.test_batch_size)?;
        let test_images = test_source.len();
        let test = Producer::new(test_source, settings.prefetch.clone())?;
        let identity = settings.identity();

        // Numbers depend on the thread count (how sums are split), so a resumed run uses the
        // count its run started with.
        crate::threads::set_process_threads(settings.threads);
        tch::manual_seed(derive_seed(settings.seed, &[streams::WEIGHTS]) as i64);
        let mut vs = VarStore::new(settings.device);
        let net = TrainedNetwork::new(&vs.root(), settings.dataset, settings.network, &settings.genotype);
        if settings.uses_channels_last() {
            // Every 4-d variable is a convolution weight; activations follow the layout of the
            // input (converted per batch) and the weights.
            for (_, var) in vs.variables() {
                if var.dim() == 4 {
                    to_channels_last_in_place(&var);
                }
            }
        }
        let mut opt = Sgd::new(&vs, settings.sgd);
        let store = run.checkpoints(settings.keep_checkpoints)?;
        let mut state = TrainingState::default();
        if resume {
            if let Some(loaded) = store.load_latest(&identity)? {
                for skipped in &loaded.skipped {
                    tracing::warn!(
                        "checkpoint {} is unusable ({}); continuing after epoch {}",
                        skipped.dir.display(),
                        skipped.reason,
                        loaded.generation
                    );
                }
                let dir = &loaded.dir;
                state = serde_json::from_slice(loaded.require(STATE)?).map_err(|e| {
                    FinalTrainingError::Corrupt { path: dir.join(STATE), reason: e.to_string() }
                })?;
                let tensors = safetensors_from_bytes(&dir.join(NETWORK), loaded.require(NETWORK)?)?;
                load_into(&mut vs, tensors, &LoadOptions::strict())?;
                let momentum = safetensors_from_bytes(&dir.join(MOMENTUM), loaded.require(MOMENTUM)?)?;
                opt.restore_momentum(momentum)?;
            }
        }
        // A run that cannot write its checkpoints fails now, not after its next epoch.
        let state_json = serde_json::to_vec(&state)
            .map_err(|e| FinalTrainingError::Encode { name: STATE.to_string(), reason: e.to_string() })?;
        store.ensure_room(&Upcoming {
            checkpoint_bytes: opt.checkpoint_bytes(&vs) + state_json.len() as u64,
            saves: settings.epochs.saturating_sub(state.epochs_done),
            others: (0, ""),
            setting: "final_training.keep_checkpoints",
        })?;
        Ok(Self {
            settings,
            run,
            store,
            vs,
            net,
            opt,
            train,
            train_items: (0..used).collect(),
            test,
            test_plan,
            test_images,
            identity,
            state,
        })
    }

    pub fn settings(&self) -> &FinalTrainingSettings {
        &self.settings
    }

    pub fn run_dir(&self) -> &TrainingRunDir {
        &self.run
    }

    pub fn epochs_done(&self) -> usize {
        self.state.epochs_done
    }

    pub fn train_images(&self) -> usize {
        self.train_items.len()
    }

    /// Trainable parameters without the auxiliary head (the paper's count).
    pub fn parameters(&self) -> u64 {
        parameter_count(&self.vs)
    }

    /// Trains the remaining epochs; stops between batches when `stop` is raised.
    pub fn run(
        mut self,
        observer: &mut dyn TrainingObserver,
        stop: &StopFlag,
    ) -> Result<TrainingOutcome, FinalTrainingError> {
        // As the reference's train.py: each shape's fastest cuDNN algorithm (on a GPU, a resumed
        // run is then close to, not bit-equal with, an uninterrupted one).
        crate::cudnn::set_mode(crate::cudnn::CudnnMode::Fastest);
        // Whatever a killed process left beyond its last checkpoint is rewritten from it.
        self.run.write_epochs(&self.state.records)?;
        let epochs = self.settings.epochs;
        while self.state.epochs_done < epochs {
            let epoch = self.state.epochs_done;
            let Some(record) = self.train_and_test(epoch, observer, stop)? else {
                return Ok(TrainingOutcome::Stopped { epochs_done: epoch });
            };
            // Encoded once: the same bytes are the last weights, maybe the best, and the checkpoint's.
            let weights = self.weights_bytes()?;
            if let Some(top1) = record.test_top1 {
                if self.state.best.is_none_or(|(_, best)| top1 > best) {
                    self.state.best = Some((record.epoch, top1));
                    self.run.write_weights("best", &weights)?;
                }
            }
            self.run.write_weights("last", &weights)?;
            self.state.records.push(record.clone());
            self.state.epochs_done = epoch + 1;
            self.checkpoint(weights, observer)?;
            self.run.write_epochs(&self.state.records)?;
            self.run.write_learning_curve(&learning_curve_svg(
                &self.state.records,
                &format!("{} on {}", self.settings.genotype_name, self.settings.dataset.name()),
            ))?;
            observer.epoch_finished(&record);
        }
        let result = self.result();
        self.run.write_result(&result)?;
        Ok(TrainingOutcome::Finished(result))
    }

    /// One epoch; `None` when stopped before its end.
    fn train_and_test(
        &mut self,
        epoch: usize,
        observer: &mut dyn TrainingObserver,
        stop: &StopFlag,
    ) -> Result<Option<EpochRecord>, FinalTrainingError> {
        let s = &self.settings;
        let learning_rate = s.learning_rate_at(epoch);
        let drop_path_prob = s.drop_path_at(epoch);
        self.net.set_drop_path_prob(drop_path_prob);
        // The masks of epoch k come from a generator seeded for epoch k, wherever the run began.
        tch::manual_seed(derive_seed(s.seed, &[streams::DROP_PATH, epoch as u64]) as i64);
        let plan = EpochPlan::shuffled(
            &self.train_items,
            s.batch_size,
            derive_seed(s.seed, &[streams::DATA]),
            epoch,
        )?;
        observer.epoch_started(epoch, plan.num_batches(), learning_rate);
        let step = StepSettings {
            epoch,
            learning_rate,
            grad_clip: s.grad_clip,
            auxiliary_weight: s.auxiliary_weight,
            label_smoothing: s.label_smoothing,
            channels_last: s.uses_channels_last(),
            precision: s.precision,
            device: s.device,
        };
        // Each stream gets its own flag: dropping a stream raises it to end its producer.
        let batches = self.train.start_epoch(plan, StopFlag::new())?;
        let started = Instant::now();
        let totals = train_epoch(&self.net, &mut self.opt, step, batches, stop, |st| observer.step(st))?;
        let Some(totals) = totals else { return Ok(None) };
        let train_seconds = started.elapsed().as_secs_f64();

        let tested = if s.tests_after(epoch) {
            let started = Instant::now();
            observer.testing_started(self.test_plan.num_batches());
            let batches = self.test.start_epoch(self.test_plan.clone(), StopFlag::new())?;
            let batches = batches.take_while(|_| !stop.is_stopped());
            let net = &self.net;
            let layout =
                |x: &Tensor| if s.uses_channels_last() { channels_last(x) } else { x.shallow_clone() };
            let tally = evaluate_test_set(
                |x| net.forward_t(&layout(x), false).0,
                batches,
                s.device,
                || observer.tested_batch(),
            )?;
            if stop.is_stopped() && tally.images < self.test_images as u64 {
                return Ok(None);
            }
            Some((tally, started.elapsed().as_secs_f64()))
        } else {
            None
        };
        let t = &totals.tally;
        Ok(Some(EpochRecord {
            epoch: epoch + 1,
            learning_rate,
            drop_path_prob,
            train_loss: t.mean_loss(),
            train_top1: t.top1(),
            train_top5: t.top5(),
            test_loss: tested.as_ref().map(|(x, _)| x.mean_loss()),
            test_top1: tested.as_ref().map(|(x, _)| x.top1()),
            test_top5: tested.as_ref().map(|(x, _)| x.top5()),
            train_images: t.images,
            train_seconds,
            test_seconds: tested.as_ref().map_or(0.0, |(_, secs)| *secs),
            images_per_second: t.images as f64 / train_seconds.max(1e-9),
        }))
    }

    fn weights_bytes(&self) -> Result<Vec<u8>, FinalTrainingError> {
        let mut variables: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
        variables.sort_by(|a, b| a.0.cmp(&b.0));
        safetensors_bytes(&variables)
            .map_err(|reason| FinalTrainingError::Encode { name: NETWORK.into(), reason })
    }

    /// Makes the state after `epochs_done` epochs, with the network's encoded `weights`, durable.
    fn checkpoint(
        &mut self,
        weights: Vec<u8>,
        observer: &mut dyn TrainingObserver,
    ) -> Result<(), FinalTrainingError> {
        let started = Instant::now();
        let state = serde_json::to_vec(&self.state)
            .map_err(|e| FinalTrainingError::Encode { name: STATE.into(), reason: e.to_string() })?;
        let momentum = safetensors_bytes(&self.opt.momentum_buffers())
            .map_err(|reason| FinalTrainingError::Encode { name: MOMENTUM.into(), reason })?;
        let files = [
            CheckpointFile::new(STATE, state),
            CheckpointFile::new(NETWORK, weights),
            CheckpointFile::new(MOMENTUM, momentum),
        ];
        let bytes = files.iter().map(|f| f.bytes.len() as u64).sum();
        crate::fault::point("final_training.checkpoint")?;
        self.store.save(self.state.epochs_done as u32, &self.identity, &files)?;
        observer.checkpoint_written(self.state.epochs_done, bytes, started.elapsed().as_secs_f64());
        Ok(())
    }

    fn result(&self) -> TrainingResult {
        let last = self.state.records.last();
        let (best_epoch, best_test_top1) = self.state.best.unwrap_or((0, 0.0));
        TrainingResult {
            genotype: self.settings.genotype_name.clone(),
            dataset: self.settings.dataset.name().to_string(),
            epochs: self.state.epochs_done,
            test_top1: last.and_then(|r| r.test_top1).unwrap_or(0.0),
            test_top5: last.and_then(|r| r.test_top5).unwrap_or(0.0),
            best_epoch,
            best_test_top1,
            parameters: self.parameters(),
            seconds: self.state.records.iter().map(|r| r.train_seconds + r.test_seconds).sum(),
        }
    }
}

type Source = Arc<dyn BatchSource>;

/// The training set with its augmentation and the test set with the evaluation transform: the
/// in-memory datasets' train and test splits (CIFAR augmentation, cutout as set), or ImageNet's
/// `train/` and `val/` folders (RandomResizedCrop + flip + ColorJitter; Resize + CenterCrop).
fn sources(s: &FinalTrainingSettings) -> Result<(Source, Source), FinalTrainingError> {
    let kind = s.dataset;
    let norm = kind.normalization();
    if kind == DatasetKind::ImageNet {
        let (train_dir, valid_dir) = (s.data_dir.join("train"), s.data_dir.join("val"));
        let folder = Arc::new(ImageFolder::open(&train_dir)?);
        let train = ImageFolderSource::new(folder, ImageNetTransform::default(), norm, true)?;
        let test = test_source(kind, &valid_dir)?;
        if train.num_classes() != test.num_classes() {
            return Err(FinalTrainingError::ClassesDiffer {
                train_dir,
                train: train.num_classes(),
                valid_dir,
                valid: test.num_classes(),
            });
        }
        return Ok((Arc::new(train), test));
    }
    let train_set = Arc::new(load_split(kind, &s.data_dir, SplitName::Train)?);
    let augment = CifarAugment { padding: 4, flip: true, cutout: s.cutout };
    let train = InMemorySource::new(train_set, &norm, Some(augment))?;
    Ok((Arc::new(train), test_source(kind, &s.data_dir)?))
}
