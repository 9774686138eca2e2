//! How fitness is measured: BatchNorm statistics and numeric precision.

use serde::{Deserialize, Serialize};

/// How BatchNorm behaves while fitness is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BnMode {
    /// Batch statistics, as the reference (it never calls `model.eval()`).
    Batch,
    /// Running statistics (`model.eval()`).
    Running,
}

/// The arithmetic of fitness (`fitness.precision`: a bf16 copy of the supernet) or of a final
/// training's or the supernet's forward passes (`final_training.precision`, `train.precision`:
/// bf16 autocast, weights and optimizer fp32).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Precision {
    #[default]
    Fp32,
    Bf16,
}

impl Precision {
    pub fn is_fp32(&self) -> bool {
        *self == Precision::Fp32
    }
}
