//! One training epoch of an evaluation network (train.py `train`): cross-entropy on the logits
//! plus the auxiliary head's weighted loss, gradients clipped, one SGD step per batch.

use std::time::{Duration, Instant};

use tch::{Device, Kind, Reduction, Tensor};

use super::network::TrainedNetwork;
use super::FinalTrainingError;
use crate::data::Batch;
use crate::model::layers::channels_last;
use crate::stop::StopFlag;
use crate::train::accuracy::DeviceTally;
use crate::train::autocast::Autocast;
use crate::train::loss_check::LossCheck;
use crate::train::sgd::Sgd;
use crate::train::{Precision, Tally};

/// The step settings of one epoch.
#[derive(Debug, Clone, Copy)]
pub struct StepSettings {
    pub epoch: usize,
    pub learning_rate: f64,
    pub grad_clip: f64,
    pub auxiliary_weight: f64,
    pub label_smoothing: f64,
    pub channels_last: bool,
    /// bf16: the forward pass and loss under autocast.
    pub precision: Precision,
    pub device: Device,
}

/// Totals of a finished epoch.
#[derive(Debug, Default)]
pub struct EpochTotals {
    /// The batches' hits and losses, as of the last loss check (every step on the CPU, every
    /// [`CUDA_INTERVAL`](crate::train::loss_check::CUDA_INTERVAL) on CUDA; all of the epoch once
    /// it is done).
    pub tally: Tally,
    pub batches: usize,
    pub compute: Duration,
    pub data_wait: Duration,
    /// The sums on the device, read into `tally` at each loss check.
    running: DeviceTally,
}

/// After each step: the running totals and the images of this step.
pub struct Step<'a> {
    pub totals: &'a EpochTotals,
    pub images: usize,
    pub compute: Duration,
}

/// Trains `net` on every batch; `None` when `stop` was raised before the epoch's end (the
/// weights then hold a partial epoch and must not be checkpointed).
pub fn train_epoch<I, E>(
    net: &TrainedNetwork,
    opt: &mut Sgd,
    step: StepSettings,
    batches: I,
    stop: &StopFlag,
    mut on_step: impl FnMut(&Step<'_>),
) -> Result<Option<EpochTotals>, FinalTrainingError>
where
    I: IntoIterator<Item = Result<Batch, E>>,
    E: std::fmt::Display,
{
    let mut totals = EpochTotals::default();
    let mut losses = LossCheck::for_device(step.device);
    let mut iter = batches.into_iter();
    loop {
        if stop.is_stopped() {
            return Ok(None);
        }
        let wait_start = Instant::now();
        let Some(next) = iter.next() else { break };
        totals.data_wait += wait_start.elapsed();
        let started = Instant::now();
        let batch = next.map_err(|e| FinalTrainingError::Data { reason: e.to_string() })?;
        crate::fault::point("final_training.batch")?;
        let images = batch.images.to_device(step.device);
        let images = if step.channels_last { channels_last(&images) } else { images };
        let labels = batch.labels.to_device(step.device);
        opt.zero_grad();
        let autocast = Autocast::for_precision(step.device, step.precision);
        let (logits, auxiliary) = net.forward_t(&images, true);
        // The loss in fp32 from the (possibly bf16) logits, as a mixed-precision step does.
        let criterion = |x: &Tensor| {
            x.to_kind(Kind::Float).cross_entropy_loss::<Tensor>(
                &labels,
                None,
                Reduction::Mean,
                -100,
                step.label_smoothing,
            )
        };
        let main_loss = criterion(&logits);
        let loss = match auxiliary {
            Some(aux) => main_loss + criterion(&aux) * step.auxiliary_weight,
            None => main_loss,
        };
        drop(autocast);
        // Checked before the step (on CUDA, before the last step of a group of them), so that a
        // diverged batch never reaches the saved weights.
        let checked = if crate::fault::corrupts("final_training.loss") {
            loss.full_like(f64::NAN)
        } else {
            loss.shallow_clone()
        };
        let group_checked = losses.will_check();
        if let Some(batch) = losses.record(totals.batches, &checked) {
            return Err(FinalTrainingError::NonFiniteLoss { epoch: step.epoch + 1, batch });
        }
        loss.backward();
        opt.clip_grad_norm(step.grad_clip);
        opt.step(step.learning_rate);
        tch::no_grad(|| totals.running.add(&logits, &labels, &loss.detach()));
        if group_checked {
            totals.tally = totals.running.read();
        }
        totals.batches += 1;
        let compute = started.elapsed();
        totals.compute += compute;
        let n = labels.size().first().map_or(0, |&n| n as usize);
        on_step(&Step { totals: &totals, images: n, compute });
    }
    if let Some(batch) = losses.check() {
        return Err(FinalTrainingError::NonFiniteLoss { epoch: step.epoch + 1, batch });
    }
    totals.tally = totals.running.read();
    Ok(Some(totals))
}
