//! Which architecture space a search explores.

use serde::{Deserialize, Serialize};

/// Which architecture space is searched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SpaceKind {
    /// DARTS cells (S1): normal + reduce cell, 14 edges x 8 ops.
    Darts,
    /// NAS-Bench-201 cells (S2): one cell, 6 edges x 5 ops. Beyond the paper's main results.
    #[serde(rename = "nas-bench-201")]
    NasBench201,
}
