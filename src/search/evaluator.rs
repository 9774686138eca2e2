//! Fitness of one individual (reference: train_search.py `validation`): its validation accuracy
//! through its α^d and a generation's trained weights, measured on a model of the evaluator's
//! own: an fp32 copy of the supernet, or a bf16 one (`fitness.precision`). Several evaluators
//! measure a generation side by side; a result does not depend on which measured what.

use std::time::{Duration, Instant};

use tch::nn::VarStore;

use crate::data::DataError;
use crate::evolution::Fitness;
use crate::model::OneShotModel;
use crate::stop::StopFlag;
use crate::telemetry;
use crate::train::fitness::evaluate_individual;
use crate::train::fitness::EvalBatch;
use crate::train::reduced_precision::Bf16Shadow;
use crate::train::remote_fitness::FitnessLink;

use super::data::ValidSource;
use super::generation::{MeasuredFitness, PlannedIndividual};
use super::snapshot::WeightsSnapshot;
use super::SearchError;

/// The model an evaluator measures on.
pub enum FitnessModel {
    Fp32 {
        vs: VarStore,
        model: Box<dyn OneShotModel>,
    },
    Bf16(Bf16Shadow),
    /// Another process's fp32 model, fed this process's validation batches.
    Remote(FitnessLink),
}

pub struct FitnessEvaluator {
    model: FitnessModel,
    valid: ValidSource,
    /// BatchNorm on batch statistics, as the reference (`fitness.batchnorm = "batch"`).
    train_mode_bn: bool,
}

impl FitnessEvaluator {
    pub fn new(model: FitnessModel, valid: ValidSource, train_mode_bn: bool) -> Self {
        Self { model, valid, train_mode_bn }
    }

    /// Whether it measures on another process's model.
    pub fn is_remote(&self) -> bool {
        matches!(self.model, FitnessModel::Remote(_))
    }

    /// Measures on a fitness subset of `subset` validation images (0: all) from now on.
    pub fn set_subset(&mut self, subset: usize) -> Result<(), SearchError> {
        self.valid.set_subset(subset)
    }

    /// Makes the evaluator's model hold `snapshot`'s weights.
    pub fn load(&mut self, snapshot: &WeightsSnapshot) -> Result<(), SearchError> {
        let vs = match &self.model {
            FitnessModel::Fp32 { vs, .. } => vs,
            FitnessModel::Bf16(shadow) => shadow.var_store(),
            FitnessModel::Remote(link) => return Ok(snapshot.with_sorted(|tensors| link.load(tensors))??),
        };
        snapshot.load_into(vs)
    }

    /// The fitness of `individual` of generation `generation` with the weights last loaded.
    pub fn measure(
        &self,
        generation: usize,
        individual: &PlannedIndividual,
        stop: &StopFlag,
    ) -> Result<MeasuredFitness, SearchError> {
        let started = Instant::now();
        let mut batches = Timed {
            inner: self.valid.batches(generation, individual.position)?,
            waited: Duration::ZERO,
            previous: None,
        };
        let (arch, bn) = (&individual.architecture, self.train_mode_bn);
        let tally = match &self.model {
            FitnessModel::Fp32 { model, .. } => {
                evaluate_individual(model.as_ref(), arch, batches.by_ref(), bn, stop)?
            }
            FitnessModel::Bf16(shadow) => evaluate_individual(shadow, arch, batches.by_ref(), bn, stop)?,
            FitnessModel::Remote(link) => link.measure(arch, batches.by_ref(), stop)?,
        };
        Ok(MeasuredFitness {
            id: individual.id,
            fitness: Fitness { top1: tally.top1(), top5: tally.top5(), loss: tally.mean_loss() },
            images: tally.images,
            seconds: started.elapsed().as_secs_f64(),
            data_wait_seconds: batches.waited.as_secs_f64(),
        })
    }
}

/// Validation batches with the time spent waiting for each added up; each batch's wait and
/// compute (the time until the next is asked for) go to the metrics.
struct Timed<I> {
    inner: I,
    waited: Duration,
    /// The batch handed out last: its images, its wait, and when it was handed out.
    previous: Option<(usize, Duration, Instant)>,
}

impl<I: Iterator<Item = Result<EvalBatch, DataError>>> Iterator for Timed<I> {
    type Item = I::Item;

    fn next(&mut self) -> Option<I::Item> {
        let started = Instant::now();
        if let Some((images, data_wait, handed_out)) = self.previous.take() {
            telemetry::FitnessBatch { images, compute: started - handed_out, data_wait }.emit();
        }
        let next = self.inner.next();
        let waited = started.elapsed();
        self.waited += waited;
        if let Some(Ok(batch)) = &next {
            let images = batch.labels.size().first().map_or(0, |&n| n as usize);
            self.previous = Some((images, waited, Instant::now()));
        }
        next
    }
}
