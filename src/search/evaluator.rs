//! Fitness of a generation (reference: train_search.py `validation`): every individual's
//! validation accuracy through its α^d and the trainer's current weights, recorded by id.
//!
//! Measured on the trainer's own supernet, on a bf16 shadow of it (`fitness.precision`), or on
//! CPU copies that measure several individuals at once (`run.fitness_workers`), which receive
//! the weights once per generation. The result does not depend on which measured what.

use crate::data::DataError;
use crate::evolution::Fitness;
use crate::model::OneShotModel;
use crate::stop::StopFlag;
use crate::train::fitness::{evaluate_in_parallel, evaluate_individual, FitnessJob, Replica};
use crate::train::reduced_precision::Bf16Shadow;
use crate::train::Tally;

use super::data::{SearchData, ValidBatches};
use super::generation::{GenerationPlan, MeasuredFitness};
use super::trainer::SupernetTrainer;
use super::SearchError;

pub struct FitnessEvaluators {
    /// bf16 copy that measures fitness when `fitness.precision = "bf16"`.
    shadow: Option<Bf16Shadow>,
    /// Copies that measure several individuals at once on the CPU; empty: one at a time.
    replicas: Vec<Replica>,
    /// BatchNorm on batch statistics, as the reference (`fitness.batchnorm = "batch"`).
    train_mode_bn: bool,
}

impl FitnessEvaluators {
    pub fn new(shadow: Option<Bf16Shadow>, replicas: Vec<Replica>, train_mode_bn: bool) -> Self {
        Self { shadow, replicas, train_mode_bn }
    }

    /// Measures every individual of `plan` on `data`'s validation batches; `on_done(n)` after
    /// the n-th result.
    pub fn evaluate(
        &mut self,
        trainer: &SupernetTrainer,
        plan: &GenerationPlan,
        data: &SearchData,
        stop: &StopFlag,
        mut on_done: impl FnMut(usize),
    ) -> Result<Vec<MeasuredFitness>, SearchError> {
        let g = plan.generation;
        let train_mode_bn = self.train_mode_bn;
        let mut measured = Vec::with_capacity(plan.individuals.len());
        let measured_of = |id: u64, tally: &Tally| MeasuredFitness {
            id,
            fitness: Fitness { top1: tally.top1(), top5: tally.top5(), loss: tally.mean_loss() },
            images: tally.images,
        };
        if self.replicas.is_empty() {
            let evaluator: &dyn OneShotModel = match &mut self.shadow {
                Some(shadow) => {
                    shadow
                        .refresh_from(trainer.var_store())
                        .map_err(|e| SearchError::Model(e.to_string()))?;
                    shadow
                }
                None => trainer.model(),
            };
            for ind in &plan.individuals {
                let tally = match data.valid_batches(g, ind.position)? {
                    ValidBatches::Fixed(batches) => {
                        let batches = batches.iter().map(Ok::<_, DataError>);
                        evaluate_individual(evaluator, &ind.architecture, batches, train_mode_bn, stop)?
                    }
                    ValidBatches::Fresh(batches) => {
                        evaluate_individual(evaluator, &ind.architecture, batches, train_mode_bn, stop)?
                    }
                };
                measured.push(measured_of(ind.id, &tally));
                on_done(measured.len());
            }
        } else {
            for replica in &mut self.replicas {
                replica.vs.copy(trainer.var_store()).map_err(|e| SearchError::Model(e.to_string()))?;
            }
            // Batches by position (the augmented option draws per position), results by id.
            let jobs = plan.individuals.iter().map(|ind| {
                Ok::<_, SearchError>(FitnessJob {
                    id: ind.id,
                    architecture: ind.architecture.clone(),
                    batches: data.valid_batches(g, ind.position)?.into_owned(),
                })
            });
            evaluate_in_parallel(&mut self.replicas, jobs, train_mode_bn, stop, |id, tally| {
                measured.push(measured_of(id, tally));
                on_done(measured.len());
                Ok(())
            })?;
        }
        Ok(measured)
    }
}
