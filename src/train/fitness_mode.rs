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

/// The precision fitness is measured in (training is always fp32).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Precision {
    Fp32,
    Bf16,
}
