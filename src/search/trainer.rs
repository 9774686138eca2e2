//! The supernet's owner during a search: its weights, BatchNorm buffers and SGD momentum. Trains
//! one generation from a [`GenerationPlan`] and captures checkpoints as host bytes; the one place
//! that mutates the shared weights (reference: train_search.py `train`).

use tch::nn::VarStore;

use crate::data::{Batch, DataError};
use crate::model::OneShotModel;
use crate::stop::StopFlag;
use crate::train::sgd::Sgd;
use crate::train::supernet_epoch::{train_epoch, EpochSettings};

use super::checkpointing::{self, CapturedCheckpoint};
use super::engine::SearchState;
use super::generation::GenerationPlan;
use super::record::TrainSummary;
use super::snapshot::WeightsSnapshot;
use super::SearchError;

pub struct SupernetTrainer {
    vs: VarStore,
    model: Box<dyn OneShotModel>,
    opt: Sgd,
    grad_clip: f64,
}

impl SupernetTrainer {
    pub fn new(vs: VarStore, model: Box<dyn OneShotModel>, opt: Sgd, grad_clip: f64) -> Self {
        Self { vs, model, opt, grad_clip }
    }

    /// One pass over `batches`, batch i through individual i mod P of `plan`; `on_batch(i)`
    /// after each.
    pub fn train(
        &mut self,
        plan: &GenerationPlan,
        batches: impl IntoIterator<Item = Result<Batch, DataError>>,
        stop: &StopFlag,
        on_batch: impl FnMut(usize),
    ) -> Result<TrainSummary, SearchError> {
        let architectures = plan.architectures();
        let settings = EpochSettings {
            lr: plan.learning_rate,
            grad_clip: self.grad_clip,
            architectures: &architectures,
            stop,
        };
        let report = train_epoch(self.model.as_ref(), &mut self.opt, &settings, batches, on_batch)?;
        let total = report.total();
        Ok(TrainSummary {
            batches: report.batches,
            images: total.images,
            loss: total.mean_loss(),
            top1: total.top1(),
            seconds: report.elapsed.as_secs_f64(),
            data_wait_seconds: report.data_wait.as_secs_f64(),
        })
    }

    /// The checkpoint of `state` with this supernet and momentum, as host bytes.
    pub fn capture(&self, state: &SearchState) -> Result<CapturedCheckpoint, SearchError> {
        checkpointing::capture(&self.vs, &self.opt, state)
    }

    /// A deep copy of the weights for fitness evaluators, after generation `generation`'s
    /// training.
    pub fn snapshot(&self, generation: usize) -> WeightsSnapshot {
        WeightsSnapshot::capture(&self.vs, generation)
    }
}
