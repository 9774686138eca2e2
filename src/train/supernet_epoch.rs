//! One generation of supernet training (reference: train_search.py `train`): one pass over the
//! training split, batch i trained through the decoded architecture of individual i mod P.

use std::time::{Duration, Instant};

use tch::{Device, Kind, Tensor};

use super::accuracy::{DeviceTally, Tally};
use super::autocast::Autocast;
use super::loss_check::LossCheck;
use super::sgd::Sgd;
use super::Precision;
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
    /// Of `elapsed`, the gradient all-reduces of several replicas, up to a stop (kept by the
    /// trainer, which measures them; absent from older stop checkpoints).
    #[serde(default)]
    pub communication: Duration,
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
    continue_epoch_with(&mut SingleReplica::new(model, opt), settings, batches, done, on_batch)
}

/// What trains the supernet on one batch: one replica, or several in step
/// ([`super::data_parallel::ReplicaSet`]).
pub trait BatchTrainer {
    /// One SGD step on `batch` through `arch`, the batch added to `tally` (or, where counts are
    /// kept elsewhere, to the tallies [`settle`](Self::settle) is given). A non-finite loss is
    /// [`TrainError::NonFiniteLoss`], found before the step that trains on it (or, where checks
    /// are batched, by [`settle`](Self::settle) or a later step's check).
    fn train_batch(
        &mut self,
        batch: &Batch,
        arch: &ArchWeights,
        step: StepIndex,
        lr: f64,
        grad_clip: f64,
        tally: &mut DeviceTally,
    ) -> Result<(), TrainError>;

    /// Finishes the checks of the steps trained so far and adds to `tallies` (per individual)
    /// what the steps counted elsewhere, before their tallies or weights are used.
    fn settle(&mut self, _tallies: &mut [DeviceTally]) -> Result<(), TrainError> {
        Ok(())
    }
}

/// Which batch of the pass a step trains, and through whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepIndex {
    pub batch: usize,
    pub individual: usize,
}

impl StepIndex {
    /// The error of a step whose loss is not finite.
    pub(super) fn non_finite_loss(self) -> TrainError {
        TrainError::NonFiniteLoss { batch: self.batch, individual: self.individual }
    }
}

/// The supernet on one device. Nothing of a step is read back to the host, apart from the
/// losses' batched finiteness checks.
pub struct SingleReplica<'a> {
    model: &'a dyn OneShotModel,
    opt: &'a mut Sgd,
    losses: LossCheck<StepIndex>,
    precision: Precision,
}

impl<'a> SingleReplica<'a> {
    /// Checks losses as [`LossCheck::for_device`] does on the supernet's device.
    pub fn new(model: &'a dyn OneShotModel, opt: &'a mut Sgd) -> Self {
        let losses = LossCheck::for_device(opt.device());
        Self::with_loss_check(model, opt, losses)
    }

    pub fn with_loss_check(
        model: &'a dyn OneShotModel,
        opt: &'a mut Sgd,
        losses: LossCheck<StepIndex>,
    ) -> Self {
        Self { model, opt, losses, precision: Precision::Fp32 }
    }

    /// Its forward passes in `precision` (bf16: under autocast; weights, gradients and SGD stay
    /// fp32).
    pub fn in_precision(self, precision: Precision) -> Self {
        Self { precision, ..self }
    }
}

/// A training step's logits of `images` through `arch` and their mean cross-entropy: the
/// forward pass under `precision`'s autocast on `device`, the loss in fp32 from the (possibly
/// bf16) logits, as a mixed-precision step does.
pub(crate) fn forward_loss(
    model: &dyn OneShotModel,
    images: &Tensor,
    labels: &Tensor,
    arch: &ArchWeights,
    device: Device,
    precision: Precision,
) -> Result<(Tensor, Tensor), TrainError> {
    let autocast = Autocast::for_precision(device, precision);
    let logits = model.forward_arch(images, arch, true)?;
    let loss = logits.to_kind(Kind::Float).cross_entropy_for_logits(labels);
    drop(autocast);
    Ok((logits, loss))
}

impl BatchTrainer for SingleReplica<'_> {
    fn train_batch(
        &mut self,
        batch: &Batch,
        arch: &ArchWeights,
        step: StepIndex,
        lr: f64,
        grad_clip: f64,
        tally: &mut DeviceTally,
    ) -> Result<(), TrainError> {
        self.opt.zero_grad();
        let (logits, loss) =
            forward_loss(self.model, &batch.images, &batch.labels, arch, self.opt.device(), self.precision)?;
        let checked = if crate::fault::corrupts("train.loss") {
            loss.full_like(f64::NAN)
        } else {
            loss.shallow_clone()
        };
        // Checked before the step, so that a diverged batch never reaches the saved weights.
        if let Some(bad) = self.losses.record(step, &checked) {
            return Err(bad.non_finite_loss());
        }
        loss.backward();
        self.opt.clip_grad_norm(grad_clip);
        self.opt.step(lr);
        tch::no_grad(|| tally.add(&logits, &batch.labels, &loss.detach()));
        Ok(())
    }

    fn settle(&mut self, _tallies: &mut [DeviceTally]) -> Result<(), TrainError> {
        self.losses.check().map_or(Ok(()), |bad| Err(bad.non_finite_loss()))
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
    let mut tallies: Vec<DeviceTally> =
        report.per_individual.iter().copied().map(DeviceTally::starting_at).collect();
    let mut iter = batches.into_iter();
    let stopped = loop {
        if settings.stop.is_stopped() {
            break true;
        }
        let wait_start = Instant::now();
        let Some(next) = iter.next() else { break false };
        let data_wait = wait_start.elapsed();
        report.data_wait += data_wait;
        let compute_start = Instant::now();
        let batch = next.map_err(|e| TrainError::Data { reason: e.to_string() })?;
        crate::fault::point("train.batch")?;
        let step = report.batches;
        let who = step % population;
        let index = StepIndex { batch: step, individual: who };
        trainer.train_batch(
            &batch,
            &settings.architectures[who],
            index,
            settings.lr,
            settings.grad_clip,
            &mut tallies[who],
        )?;
        report.batches += 1;
        let images = batch.labels.size().first().map_or(0, |&n| n as usize);
        on_batch(&StepReport { step, images, data_wait, compute: compute_start.elapsed() });
    };
    // A stopped pass is checkpointed: its losses are checked first, as a finished one's.
    trainer.settle(&mut tallies)?;
    report.per_individual = tallies.iter().map(DeviceTally::read).collect();
    report.elapsed = earlier + started.elapsed();
    Ok(if stopped { EpochEnd::Stopped(report) } else { EpochEnd::Finished(report) })
}

#[cfg(test)]
mod tests {
    use tch::Tensor;

    use super::*;
    use crate::train::fixed_start::{fixed_architectures, fixed_batches, fixed_supernet, trainable};
    use crate::train::sgd::SgdConfig;

    const SGD_PAPER: SgdConfig = SgdConfig { momentum: 0.9, weight_decay: 3e-4 };

    /// `count` batches of 4 images; batch `nan_at`'s images are NaN. Batches, weights and
    /// architectures come from a fixed formula ([`fixed_start`](crate::train::fixed_start)):
    /// each test compares two passes that must start alike.
    fn batches(count: usize, nan_at: Option<usize>) -> Vec<Result<Batch, String>> {
        fixed_batches(count, 4, nan_at)
    }

    /// Trains a fresh supernet over `batches` with losses checked every `interval` steps: the
    /// pass's end and the trainable weights after it (BatchNorm's running statistics take in
    /// every forward pass, as PyTorch's).
    fn pass(
        interval: usize,
        batches: Vec<Result<Batch, String>>,
    ) -> (Result<EpochEnd, TrainError>, Vec<Tensor>) {
        pass_in(Precision::Fp32, interval, batches)
    }

    /// As [`pass`], the forward passes in `precision`.
    fn pass_in(
        precision: Precision,
        interval: usize,
        batches: Vec<Result<Batch, String>>,
    ) -> (Result<EpochEnd, TrainError>, Vec<Tensor>) {
        let (vs, model) = fixed_supernet();
        let mut opt = Sgd::new(&vs, SGD_PAPER);
        let architectures = fixed_architectures(3);
        let stop = StopFlag::new();
        let settings = EpochSettings { lr: 0.05, grad_clip: 5.0, architectures: &architectures, stop: &stop };
        let mut trainer = SingleReplica::with_loss_check(&model, &mut opt, LossCheck::every(interval))
            .in_precision(precision);
        let end = continue_epoch_with(&mut trainer, &settings, batches, EpochReport::default(), |_| {});
        (end, trainable(&vs).iter().map(|t| t.detach().copy()).collect())
    }

    /// Losses checked in groups (as on a GPU) train the same weights and count the same
    /// tallies, bit for bit, as losses checked at every step.
    #[test]
    fn grouped_loss_checks_change_no_number() {
        let (every_step, w1) = pass(1, batches(7, None));
        let (grouped, w4) = pass(4, batches(7, None));
        let (Ok(EpochEnd::Finished(a)), Ok(EpochEnd::Finished(b))) = (every_step, grouped) else {
            panic!("a pass failed")
        };
        assert_eq!(a.batches, 7);
        assert_eq!(a.per_individual, b.per_individual);
        assert_eq!(a.total().images, 28);
        for (x, y) in w1.iter().zip(&w4) {
            assert!(x.equal(y));
        }
    }

    /// bf16 autocast trains other weights than fp32 (so it took effect), on a loss close to fp32's.
    #[test]
    fn bf16_training_follows_the_fp32_loss() {
        let (fp32, w32) = pass_in(Precision::Fp32, 1, batches(7, None));
        let (bf16, w16) = pass_in(Precision::Bf16, 1, batches(7, None));
        let (Ok(EpochEnd::Finished(a)), Ok(EpochEnd::Finished(b))) = (fp32, bf16) else {
            panic!("a pass failed")
        };
        assert_eq!(a.total().images, b.total().images);
        let (la, lb) = (a.total().mean_loss(), b.total().mean_loss());
        assert!(lb.is_finite() && (la - lb).abs() < 0.05 * la, "fp32 loss {la}, bf16 {lb}");
        assert!(w32.iter().zip(&w16).any(|(x, y)| !x.equal(y)), "bf16 changed no weight");
    }

    /// A non-finite loss is named by its batch and individual whether it is found at once or
    /// with its group (here by the pass's final check); checked at every step, it never reaches
    /// the trained weights.
    #[test]
    fn a_non_finite_loss_is_named_exactly_in_any_grouping() {
        for interval in [1, 4, 32] {
            let (end, _) = pass(interval, batches(7, Some(5)));
            assert!(
                matches!(end, Err(TrainError::NonFiniteLoss { batch: 5, individual: 2 })),
                "interval {interval}: {end:?}"
            );
        }
        let (_, clean) = pass(1, batches(5, None));
        let (_, stopped_at_nan) = pass(1, batches(7, Some(5)));
        for (x, y) in clean.iter().zip(&stopped_at_nan) {
            assert!(x.equal(y));
        }
    }
}
