//! Networks of the paper in tch, with the reference code's parameter names: the candidate ops,
//! the DARTS and NAS-Bench-201 one-shot supernets (weights shared by every individual, α given
//! per forward), the evaluation networks built from a genotype, and parameter/MAC counting.

pub mod arch_weights;
pub mod count;
pub mod eval_cell;
pub mod eval_cifar;
pub mod eval_imagenet;
pub mod layers;
pub mod nb201;
pub mod ops;
pub mod supernet;

pub use arch_weights::{ArchWeights, CellWeights};
pub use count::{count_eval_network, parameter_count, EvalDataset, ModelCounts};
pub use eval_cifar::{EvalNetConfig, NetworkCifar};
pub use eval_imagenet::NetworkImageNet;
pub use nb201::{Nb201Config, Nb201Supernet};
pub use supernet::{Supernet, SupernetConfig};

use tch::Tensor;

/// A supernet whose architecture weights are an input of each forward, so one set of weights
/// serves every individual of the population.
/// `Send` so that fitness workers can each own a copy of the supernet.
pub trait OneShotModel: Send {
    /// Logits for `x` under the architecture `arch`: the softmax of the (decoded) α matrices,
    /// `[normal, reduce]` for DARTS and `[cell]` for NAS-Bench-201. `train` selects batch
    /// statistics (and updates the BatchNorm running statistics) as PyTorch's train mode does.
    /// Errors when `arch` does not fit the supernet.
    fn forward_arch(&self, x: &Tensor, arch: &ArchWeights, train: bool) -> Result<Tensor, ModelError>;
}

/// Errors of the model module.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("expected {expected} alpha matrices, got {got}")]
    AlphaCount { expected: usize, got: usize },
    #[error("{which} alpha has shape {got:?}, expected {expected:?}")]
    AlphaShape { which: &'static str, expected: Vec<i64>, got: Vec<i64> },
    #[error("an alpha must be an (edges, ops) matrix, got shape {got:?}")]
    AlphaRank { got: Vec<i64> },
    #[error("{context}")]
    Torch {
        context: &'static str,
        #[source]
        source: tch::TchError,
    },
}
