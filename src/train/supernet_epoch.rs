//! One generation of supernet training (reference: train_search.py `train`): one pass over the
//! training split, batch i trained through the decoded architecture of individual i mod P.

use std::time::{Duration, Instant};

use super::accuracy::Tally;
use super::sgd::Sgd;
use super::TrainError;
use crate::data::Batch;
use crate::model::{ArchWeights, OneShotModel};
use crate::stop::StopFlag;

/// What one generation's training did (so far, when it was stopped).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpochReport {
    /// Per individual: the batches it was trained on.
    pub per_individual: Vec<Tally>,
    pub batches: usize,
    pub elapsed: Duration,
    /// Time the trainer spent waiting for the next batch.
    pub data_wait: Duration,
}

impl EpochReport {
    pub fn total(&self) -> Tally {
        let mut t = Tally::default();
        for x in &self.per_individual {
            t.merge(x);
        }
        t
    }
}

/// One training step, as `on_batch` hears of it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepReport {
    /// 0-based index of the batch in the pass.
    pub step: usize,
    pub images: usize,
    /// Waiting for the batch, then forward, backward and update.
    pub data_wait: Duration,
    pub compute: Duration,
}

/// Settings of one training pass.
pub struct EpochSettings<'a> {
    pub lr: f64,
    pub grad_clip: f64,
    /// Per individual, the op weights of its decoded architecture.
    pub architectures: &'a [ArchWeights],
    pub stop: &'a StopFlag,
}

/// How a training pass ended.
#[derive(Debug, Clone, PartialEq)]
pub enum EpochEnd {
    Finished(EpochReport),
    /// The stop flag was raised; the report covers the batches trained until then.
    Stopped(EpochReport),
}

/// Trains `model` on every batch of `batches`; `on_batch` is called after each.
pub fn train_epoch<I, E>(
    model: &dyn OneShotModel,
    opt: &mut Sgd,
    settings: &EpochSettings<'_>,
    batches: I,
    on_batch: impl FnMut(&StepReport),
) -> Result<EpochReport, TrainError>
where
    I: IntoIterator<Item = Result<Batch, E>>,
    E: std::fmt::Display,
{
    match continue_epoch(model, opt, settings, batches, EpochReport::default(), on_batch)? {
        EpochEnd::Finished(report) => Ok(report),
        EpochEnd::Stopped(_) => Err(TrainError::Interrupted),
    }
}

/// Continues a pass of which `done` trained the first `done.batches` batches (empty: a new
/// pass); `batches` starts at the next one. Batch i still goes to individual i mod P, and the
/// report adds up over both parts, as one uninterrupted pass would.
pub fn continue_epoch<I, E>(
    model: &dyn OneShotModel,
    opt: &mut Sgd,
    settings: &EpochSettings<'_>,
    batches: I,
    done: EpochReport,
    on_batch: impl FnMut(&StepReport),
) -> Result<EpochEnd, TrainError>
where
    I: IntoIterator<Item = Result<Batch, E>>,
    E: std::fmt::Display,
{
    continue_epoch_with(&mut SingleReplica { model, opt }, settings, batches, done, on_batch)
}

/// What trains the supernet on one batch: one replica, or several in step
/// ([`super::data_parallel::ReplicaSet`]).
pub trait BatchTrainer {
    /// One SGD step on `batch` through `arch`; the batch's tally. The loss is checked before
    /// the step: a non-finite one is [`TrainError::NonFiniteLoss`] with the weights untouched.
    fn train_batch(
        &mut self,
        batch: &Batch,
        arch: &ArchWeights,
        step: StepIndex,
        lr: f64,
        grad_clip: f64,
    ) -> Result<Tally, TrainError>;
}

/// Which batch of the pass a step trains, and through whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepIndex {
    pub batch: usize,
    pub individual: usize,
}

/// The supernet on one device.
pub struct SingleReplica<'a> {
    pub model: &'a dyn OneShotModel,
    pub opt: &'a mut Sgd,
}

impl BatchTrainer for SingleReplica<'_> {
    fn train_batch(
        &mut self,
        batch: &Batch,
        arch: &ArchWeights,
        step: StepIndex,
        lr: f64,
        grad_clip: f64,
    ) -> Result<Tally, TrainError> {
        self.opt.zero_grad();
        let logits = self.model.forward_arch(&batch.images, arch, true)?;
        let loss = logits.cross_entropy_for_logits(&batch.labels);
        // Checked before the step, so that a diverged batch never reaches the weights.
        let loss_value = if crate::fault::corrupts("train.loss") { f64::NAN } else { loss.double_value(&[]) };
        if !loss_value.is_finite() {
            return Err(TrainError::NonFiniteLoss { batch: step.batch, individual: step.individual });
        }
        loss.backward();
        self.opt.clip_grad_norm(grad_clip);
        self.opt.step(lr);
        let mut tally = Tally::default();
        tch::no_grad(|| tally.add(&logits, &batch.labels, loss_value));
        Ok(tally)
    }
}

/// [`continue_epoch`] with any [`BatchTrainer`].
pub fn continue_epoch_with<I, E>(
    trainer: &mut dyn BatchTrainer,
    settings: &EpochSettings<'_>,
    batches: I,
    done: EpochReport,
    mut on_batch: impl FnMut(&StepReport),
) -> Result<EpochEnd, TrainError>
where
    I: IntoIterator<Item = Result<Batch, E>>,
    E: std::fmt::Display,
{
    let population = settings.architectures.len();
    if population == 0 {
        return Err(TrainError::EmptyPopulation);
    }
    let started = Instant::now();
    let mut report = done;
    if report.per_individual.len() != population {
        if report.batches > 0 {
            return Err(TrainError::ResumeMismatch { population, saved: report.per_individual.len() });
        }
        report.per_individual = vec![Tally::default(); population];
    }
    let earlier = report.elapsed;
    let mut iter = batches.into_iter();
    loop {
        if settings.stop.is_stopped() {
            report.elapsed = earlier + started.elapsed();
            return Ok(EpochEnd::Stopped(report));
        }
        let wait_start = Instant::now();
        let Some(next) = iter.next() else { break };
        let data_wait = wait_start.elapsed();
        report.data_wait += data_wait;
        let compute_start = Instant::now();
        let batch = next.map_err(|e| TrainError::Data { reason: e.to_string() })?;
        crate::fault::point("train.batch")?;
        let step = report.batches;
        let who = step % population;
        let index = StepIndex { batch: step, individual: who };
        let tally = trainer.train_batch(
            &batch,
            &settings.architectures[who],
            index,
            settings.lr,
            settings.grad_clip,
        )?;
        report.per_individual[who].merge(&tally);
        report.batches += 1;
        let images = batch.labels.size().first().map_or(0, |&n| n as usize);
        on_batch(&StepReport { step, images, data_wait, compute: compute_start.elapsed() });
    }
    report.elapsed = earlier + started.elapsed();
    Ok(EpochEnd::Finished(report))
}
