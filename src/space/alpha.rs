//! The architecture parameter α of one cell type: a matrix of `edges × ops` real values.
//!
//! EvNAS (Sinha & Chen 2021, §3) keeps α as the genome: each row is one edge of the cell, each
//! column one candidate operation. Rows are the unit of crossover and mutation.

use rand::Rng;
use serde::{Deserialize, Serialize};

/// Row-major `edges × ops` matrix of architecture weights (before softmax).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlphaMatrix {
    edges: usize,
    ops: usize,
    values: Vec<f32>,
}

/// Shape mismatch when building an [`AlphaMatrix`] from raw values.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("alpha matrix {edges}x{ops} needs {} values, got {got}", edges * ops)]
pub struct AlphaShapeError {
    pub edges: usize,
    pub ops: usize,
    pub got: usize,
}

impl AlphaMatrix {
    /// All zeros.
    pub fn zeros(edges: usize, ops: usize) -> Self {
        Self { edges, ops, values: vec![0.0; edges * ops] }
    }

    /// Values drawn i.i.d. from U[0, 1), as the reference's `torch.rand(k, num_ops)`.
    pub fn random<R: Rng + ?Sized>(edges: usize, ops: usize, rng: &mut R) -> Self {
        let values = (0..edges * ops).map(|_| rng.random::<f32>()).collect();
        Self { edges, ops, values }
    }

    pub fn from_values(edges: usize, ops: usize, values: Vec<f32>) -> Result<Self, AlphaShapeError> {
        if values.len() != edges * ops {
            return Err(AlphaShapeError { edges, ops, got: values.len() });
        }
        Ok(Self { edges, ops, values })
    }

    pub fn edges(&self) -> usize {
        self.edges
    }

    pub fn ops(&self) -> usize {
        self.ops
    }

    /// Row-major values, `edges * ops` long.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    pub fn row(&self, edge: usize) -> &[f32] {
        &self.values[edge * self.ops..(edge + 1) * self.ops]
    }

    pub fn row_mut(&mut self, edge: usize) -> &mut [f32] {
        &mut self.values[edge * self.ops..(edge + 1) * self.ops]
    }

    pub fn get(&self, edge: usize, op: usize) -> f32 {
        self.values[edge * self.ops + op]
    }

    pub fn set(&mut self, edge: usize, op: usize, value: f32) {
        self.values[edge * self.ops + op] = value;
    }

    /// Softmax of one row, computed in f32 like `F.softmax(alpha, dim=-1)`.
    pub fn softmax_row(&self, edge: usize) -> Vec<f32> {
        let row = self.row(edge);
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let exps: Vec<f32> = row.iter().map(|v| (v - max).exp()).collect();
        let sum: f32 = exps.iter().sum();
        exps.into_iter().map(|e| e / sum).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn random_values_lie_in_unit_interval() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let a = AlphaMatrix::random(14, 8, &mut rng);
        assert_eq!(a.values().len(), 112);
        assert!(a.values().iter().all(|v| (0.0..1.0).contains(v)));
    }

    #[test]
    fn softmax_rows_sum_to_one() {
        let a = AlphaMatrix::from_values(1, 3, vec![0.0, 1.0, 2.0]).unwrap();
        let s = a.softmax_row(0);
        assert!((s.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(s[2] > s[1] && s[1] > s[0]);
    }

    #[test]
    fn wrong_length_is_rejected() {
        let err = AlphaMatrix::from_values(2, 2, vec![0.0; 3]).unwrap_err();
        assert_eq!(err.got, 3);
    }
}
