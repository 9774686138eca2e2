//! Fitness of each individual (reference: train_search.py `validation`): supernet accuracy
//! through its decoded architecture on the validation split, without gradients.

use std::sync::atomic::{AtomicBool, Ordering};

use tch::Tensor;

use super::accuracy::Tally;
use super::TrainError;
use crate::model::OneShotModel;

/// Validation batches ready on the model's device (images normalised f32, labels i64).
pub struct EvalBatch {
    pub images: Tensor,
    pub labels: Tensor,
}

/// Measures one individual over `batches`.
///
/// `train_mode_bn` keeps BatchNorm on batch statistics, as the reference (which never calls
/// `model.eval()` during the search); running statistics otherwise.
pub fn evaluate_individual<'a>(
    model: &dyn OneShotModel,
    architecture: &[Tensor],
    batches: impl IntoIterator<Item = &'a EvalBatch>,
    train_mode_bn: bool,
    stop: &AtomicBool,
) -> Result<Tally, TrainError> {
    let mut tally = Tally::default();
    tch::no_grad(|| {
        for batch in batches {
            if stop.load(Ordering::Relaxed) {
                return Err(TrainError::Interrupted);
            }
            let logits = model.forward_arch(&batch.images, architecture, train_mode_bn);
            let loss = logits.cross_entropy_for_logits(&batch.labels).double_value(&[]);
            tally.add(&logits, &batch.labels, loss);
        }
        Ok(())
    })?;
    Ok(tally)
}
