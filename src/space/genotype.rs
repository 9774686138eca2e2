//! A derived architecture: per cell type, two (op, input) genes per intermediate node.

use serde::{Deserialize, Serialize};

use super::ops::DartsOp;

/// One gene: the operation on an edge and the index of the state it reads
/// (0 = c_{k-2}, 1 = c_{k-1}, 2.. = earlier intermediate nodes).
pub type Gene = (DartsOp, usize);

/// The reference's `Genotype(normal, normal_concat, reduce, reduce_concat)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Genotype {
    pub normal: Vec<Gene>,
    pub normal_concat: Vec<usize>,
    pub reduce: Vec<Gene>,
    pub reduce_concat: Vec<usize>,
}
