//! What a training run computes, in the core's own types (the config maps onto it at the edge,
//! `launch::training_settings`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tch::Device;

use super::FinalTrainingError;
use crate::data::{DatasetKind, PrefetchConfig};
use crate::model::EvalNetConfig;
use crate::space::Genotype;
use crate::train::schedule::cosine_lr;
use crate::train::sgd::SgdConfig;
use crate::train::Precision;

#[derive(Debug, Clone)]
pub struct FinalTrainingSettings {
    pub genotype: Genotype,
    /// As the user named it (built-in name or file), for logs and result.json.
    pub genotype_name: String,
    pub dataset: DatasetKind,
    pub data_dir: PathBuf,
    pub network: EvalNetConfig,
    pub epochs: usize,
    pub batch_size: usize,
    pub test_batch_size: usize,
    pub learning_rate: f64,
    pub learning_rate_min: f64,
    pub lr_schedule: LrSchedule,
    pub sgd: SgdConfig,
    pub grad_clip: f64,
    pub auxiliary_weight: f64,
    pub drop_path_prob: f64,
    /// Label smoothing of the training loss (train_imagenet.py's `CrossEntropyLabelSmooth`).
    pub label_smoothing: f64,
    pub cutout: Option<usize>,
    /// Only the first N training images.
    pub train_subset: Option<usize>,
    /// Convolution weights and activations laid out channels-last (NetworkCIFAR only: see
    /// [`FinalTrainingSettings::uses_channels_last`]).
    pub channels_last: bool,
    /// The arithmetic of the training steps' forward passes.
    pub precision: Precision,
    pub test_every: usize,
    pub seed: u64,
    pub device: Device,
    /// CPU threads of libtorch (0: its default), set when the run opens.
    pub threads: usize,
    pub keep_checkpoints: usize,
    pub prefetch: PrefetchConfig,
}

/// How the learning rate moves over the epochs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LrSchedule {
    /// From learning_rate to learning_rate_min along a half cosine (train.py).
    Cosine,
    /// train_imagenet.py's `adjust_lr`: linear to 0 over all but the last 5 epochs, a fifth of
    /// that slope over them, and a 5-epoch linear warm-up when the batch is above 256 (runs of
    /// up to 5 epochs: linear to 0).
    Linear,
}

/// Whether a NetworkCIFAR (NetworkImageNet for ImageNet) with or without its auxiliary head can
/// train on `dataset`'s images.
pub fn check_network_fits(dataset: DatasetKind, auxiliary: bool) -> Result<(), FinalTrainingError> {
    let size = dataset.input_shape()[1];
    if auxiliary && dataset != DatasetKind::ImageNet && size != 32 {
        return Err(FinalTrainingError::AuxiliaryNeeds32 { dataset: dataset.name(), size });
    }
    Ok(())
}

fn linear_lr(lr: f64, epoch: usize, epochs: usize, batch_size: usize) -> f64 {
    let (e, n) = (epoch as f64, epochs as f64);
    // adjust_lr's formula goes negative for runs of 5 epochs or fewer; those decay linearly to 0.
    let decayed = if epochs <= 5 {
        lr * (n - e) / n
    } else if epochs > epoch + 5 {
        lr * (n - 5.0 - e) / (n - 5.0)
    } else {
        lr * (n - e) / ((n - 5.0) * 5.0)
    };
    if epoch < 5 && batch_size > 256 {
        decayed * (e + 1.0) / 5.0
    } else {
        decayed
    }
}

/// The values that decide a run's numbers; a run resumes only under the same digest of them.
#[derive(Serialize)]
struct Identity<'a> {
    genotype: &'a Genotype,
    dataset: &'static str,
    init_channels: i64,
    layers: usize,
    num_classes: i64,
    auxiliary: bool,
    epochs: usize,
    batch_size: usize,
    learning_rate: f64,
    learning_rate_min: f64,
    lr_schedule: LrSchedule,
    label_smoothing: f64,
    momentum: f64,
    weight_decay: f64,
    grad_clip: f64,
    auxiliary_weight: f64,
    drop_path_prob: f64,
    cutout: Option<usize>,
    train_subset: Option<usize>,
    channels_last: bool,
    /// Left out when fp32, so that runs from before bf16 keep their digest.
    #[serde(skip_serializing_if = "Precision::is_fp32")]
    precision: Precision,
    seed: u64,
}

impl FinalTrainingSettings {
    /// Learning rate of epoch `epoch` (0-based).
    pub fn learning_rate_at(&self, epoch: usize) -> f64 {
        match self.lr_schedule {
            // train.py: CosineAnnealingLR(T_max = epochs), stepped after each epoch.
            LrSchedule::Cosine => cosine_lr(self.learning_rate, self.learning_rate_min, epoch, self.epochs),
            LrSchedule::Linear => linear_lr(self.learning_rate, epoch, self.epochs, self.batch_size),
        }
    }

    /// Drop-path probability of epoch `epoch`: `drop_path_prob * epoch / epochs`, as train.py.
    pub fn drop_path_at(&self, epoch: usize) -> f64 {
        self.drop_path_prob * epoch as f64 / self.epochs.max(1) as f64
    }

    /// Whether the run lays its network out channels-last: as asked, for NetworkCIFAR. The
    /// ImageNet network stays NCHW: trained channels-last, oneDNN's 1x1-convolution weight
    /// gradient (libtorch 2.11 CPU, `jit_*_1x1_convolution_bwd_weights`) writes past its buffer
    /// and corrupts the heap (valgrind, C=4).
    pub fn uses_channels_last(&self) -> bool {
        self.channels_last && self.dataset != DatasetKind::ImageNet
    }

    /// Whether test accuracy is measured after epoch `epoch` (0-based).
    pub fn tests_after(&self, epoch: usize) -> bool {
        (epoch + 1).is_multiple_of(self.test_every.max(1)) || epoch + 1 == self.epochs
    }

    /// What can be trained: NetworkCIFAR's auxiliary head needs 32x32 images.
    pub fn check_supported(&self) -> Result<(), FinalTrainingError> {
        check_network_fits(self.dataset, self.network.auxiliary)
    }

    /// Hex sha256 of the values that shape the run's results (not the device, the data's
    /// directory, the test cadence or how many checkpoints are kept).
    pub fn identity(&self) -> String {
        let id = Identity {
            genotype: &self.genotype,
            dataset: self.dataset.name(),
            init_channels: self.network.init_channels,
            layers: self.network.layers,
            num_classes: self.network.num_classes,
            auxiliary: self.network.auxiliary,
            epochs: self.epochs,
            batch_size: self.batch_size,
            learning_rate: self.learning_rate,
            learning_rate_min: self.learning_rate_min,
            lr_schedule: self.lr_schedule,
            label_smoothing: self.label_smoothing,
            momentum: self.sgd.momentum,
            weight_decay: self.sgd.weight_decay,
            grad_clip: self.grad_clip,
            auxiliary_weight: self.auxiliary_weight,
            drop_path_prob: self.drop_path_prob,
            cutout: self.cutout,
            train_subset: self.train_subset,
            channels_last: self.channels_last,
            precision: self.precision,
            seed: self.seed,
        };
        let json = serde_json::to_vec(&id).expect("settings serialise to JSON");
        Sha256::digest(&json).iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_linear_schedule_is_train_imagenets() {
        // adjust_lr with 250 epochs: 0.1 * (245 - e) / 245 until the last five epochs.
        assert!((linear_lr(0.1, 0, 250, 256) - 0.1).abs() < 1e-15);
        assert!((linear_lr(0.1, 100, 250, 256) - 0.1 * 145.0 / 245.0).abs() < 1e-15);
        assert!((linear_lr(0.1, 246, 250, 256) - 0.1 * 4.0 / (245.0 * 5.0)).abs() < 1e-15);
        // Warm-up of batches above 256.
        assert!((linear_lr(0.1, 0, 250, 512) - 0.1 / 5.0).abs() < 1e-15);
        assert!((linear_lr(0.1, 5, 250, 512) - 0.1 * 240.0 / 245.0).abs() < 1e-15);
        assert!((linear_lr(0.1, 1, 2, 256) - 0.05).abs() < 1e-15);
    }
}
