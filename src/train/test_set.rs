//! Test accuracy of a trained evaluation network (reference: test_cifar.py / test_imagenet.py
//! `infer`): eval-mode forward over the test split, top-1 and top-5.

use tch::{Device, Tensor};

use super::accuracy::{DeviceTally, Tally};
use super::TrainError;
use crate::data::Batch;

/// Feeds every batch through `forward` (logits of an eval-mode network) without gradients;
/// `on_batch` after each. The counts are summed on the device and read once, at the end.
pub fn evaluate_test_set<I, E>(
    forward: impl Fn(&Tensor) -> Tensor,
    batches: I,
    device: Device,
    mut on_batch: impl FnMut(),
) -> Result<Tally, TrainError>
where
    I: IntoIterator<Item = Result<Batch, E>>,
    E: std::fmt::Display,
{
    let mut tally = DeviceTally::default();
    tch::no_grad(|| {
        for batch in batches {
            let batch = batch.map_err(|e| TrainError::Data { reason: e.to_string() })?;
            let images = batch.images.to_device(device);
            let labels = batch.labels.to_device(device);
            let logits = forward(&images);
            let loss = logits.cross_entropy_for_logits(&labels);
            tally.add(&logits, &labels, &loss);
            on_batch();
        }
        Ok::<(), TrainError>(())
    })?;
    Ok(tally.read())
}
