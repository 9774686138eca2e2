//! The supernet's owner during a search: its weights, BatchNorm buffers and SGD momentum. Trains
//! one generation from a [`GenerationPlan`] and captures checkpoints as host bytes; the one place
//! that mutates the shared weights (reference: train_search.py `train`).

use std::time::Duration;

use tch::nn::VarStore;
use tch::Device;

use crate::data::{Batch, DataError};
use crate::model::OneShotModel;
use crate::stop::StopFlag;
use crate::train::data_parallel::{DataParallel, ReplicaSet};
use crate::train::sgd::Sgd;
use crate::train::supernet_epoch::{
    continue_epoch_with, BatchTrainer, EpochEnd, EpochReport, EpochSettings, SingleReplica, StepReport,
};
use crate::train::Precision;

use super::checkpointing::{self, CapturedCheckpoint};
use super::engine::SearchState;
use super::generation::GenerationPlan;
use super::record::TrainSummary;
use super::snapshot::WeightsSnapshot;
use super::SearchError;

/// How a generation's training ended.
pub enum Training {
    Finished(TrainSummary),
    /// Stopped on request after `report.batches` batches.
    Stopped(EpochReport),
}

pub struct SupernetTrainer {
    vs: VarStore,
    model: Box<dyn OneShotModel>,
    opt: Sgd,
    grad_clip: f64,
    precision: Precision,
    /// The other replicas of data-parallel training; this supernet is the leader's.
    replicas: Option<ReplicaSet>,
}

impl SupernetTrainer {
    /// Steps clipped at `grad_clip`, their forward passes in `precision`. `replicas`:
    /// data-parallel training with them (started from this supernet's weights and momentum, in
    /// the same precision); `None`: this supernet alone.
    pub fn new(
        vs: VarStore,
        model: Box<dyn OneShotModel>,
        opt: Sgd,
        grad_clip: f64,
        precision: Precision,
        replicas: Option<ReplicaSet>,
    ) -> Self {
        Self { vs, model, opt, grad_clip, precision, replicas }
    }

    /// Training replicas in all: this supernet and every other replica of the job.
    pub fn replicas(&self) -> usize {
        self.replicas.as_ref().map_or(1, ReplicaSet::replicas)
    }

    /// Where the training batches from `data_device` (the supernet's) should be delivered: there
    /// when this supernet trains alone; with replicas, on the host (pinned where CUDA is), so that
    /// each replica copies its own shard to its device and another rank's is sent it without
    /// waiting for a GPU.
    pub fn batch_device(&self, data_device: Device) -> Device {
        if self.replicas.is_some() {
            Device::Cpu
        } else {
            data_device
        }
    }

    /// One pass over `batches`, batch i through individual i mod P of `plan`; `on_batch` after
    /// each. `done` continues a pass stopped earlier (`batches` then starts after its
    /// last batch); stopped by `stop`, it returns what to continue from.
    pub fn train(
        &mut self,
        plan: &GenerationPlan,
        batches: impl IntoIterator<Item = Result<Batch, DataError>>,
        done: Option<EpochReport>,
        stop: &StopFlag,
        on_batch: impl FnMut(&StepReport),
    ) -> Result<Training, SearchError> {
        let architectures = plan.architectures();
        let settings = EpochSettings {
            lr: plan.learning_rate,
            grad_clip: self.grad_clip,
            architectures: &architectures,
            stop,
        };
        let done = done.unwrap_or_default();
        let (model, opt) = (self.model.as_ref(), &mut self.opt);
        let (mut single, mut parallel);
        let trainer: &mut dyn BatchTrainer = match &self.replicas {
            None => {
                single = SingleReplica::new(model, opt).in_precision(self.precision);
                &mut single
            }
            Some(replicas) => {
                parallel = DataParallel::new(model, opt, replicas);
                &mut parallel
            }
        };
        // With replicas, this thread is one of several sharing the CPU threads.
        let threads = crate::threads::current_threads();
        if let Some(replicas) = &self.replicas {
            crate::threads::set_this_thread_threads(replicas.threads_per_replica());
        }
        let ended = continue_epoch_with(trainer, &settings, batches, done, on_batch);
        if self.replicas.is_some() {
            crate::threads::set_this_thread_threads(threads);
        }
        match ended? {
            EpochEnd::Finished(report) => {
                let total = report.total();
                let communication = report.communication + self.take_communication();
                Ok(Training::Finished(TrainSummary {
                    batches: report.batches,
                    images: total.images,
                    loss: total.mean_loss(),
                    top1: total.top1(),
                    seconds: report.elapsed.as_secs_f64(),
                    data_wait_seconds: report.data_wait.as_secs_f64(),
                    communication_seconds: communication.as_secs_f64(),
                }))
            }
            EpochEnd::Stopped(mut report) => {
                // The stop checkpoint carries it to the resumed pass's summary.
                report.communication += self.take_communication();
                Ok(Training::Stopped(report))
            }
        }
    }

    /// The replicas' all-reduce time since it was last taken (none with one device).
    fn take_communication(&self) -> Duration {
        self.replicas.as_ref().map_or(Duration::ZERO, ReplicaSet::take_communication)
    }

    /// The checkpoint of `state` with this supernet and momentum, as host bytes; with replicas,
    /// only once they are checked bit-identical to this one (trainable weights and momentum).
    pub fn capture(&self, state: &SearchState) -> Result<CapturedCheckpoint, SearchError> {
        if let Some(replicas) = &self.replicas {
            replicas.check_in_step(&self.vs, &self.opt)?;
        }
        checkpointing::capture(&self.vs, &self.opt, state)
    }

    /// A deep copy of the weights for fitness evaluators, after generation `generation`'s
    /// training.
    pub fn snapshot(&self, generation: usize) -> WeightsSnapshot {
        WeightsSnapshot::capture(&self.vs, generation)
    }
}
