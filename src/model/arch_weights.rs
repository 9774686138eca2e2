//! An individual's architecture as a supernet consumes it: for each cell kind, each edge's
//! softmax over the candidate ops (reference: `F.softmax(alpha, dim=-1)` in model_search.py).
//!
//! Computed once per individual on the host, then handed to every forward as plain numbers: a
//! forward never moves α to the device and back (on CUDA that was a sync per forward), and the
//! value is owned data that can travel in a message to another thread.

use tch::{Device, Kind, Tensor};

use super::ModelError;
use crate::space::AlphaMatrix;

/// Softmax weights of one cell kind: `edges` rows of `ops` values, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct CellWeights {
    ops: usize,
    values: Vec<f32>,
}

impl CellWeights {
    pub fn edges(&self) -> usize {
        self.values.len() / self.ops.max(1)
    }

    pub fn ops(&self) -> usize {
        self.ops
    }

    /// Edge `e`'s weights, one per candidate op.
    pub fn edge(&self, e: usize) -> &[f32] {
        &self.values[e * self.ops..(e + 1) * self.ops]
    }

    /// Every edge's weights in order.
    pub fn rows(&self) -> impl Iterator<Item = &[f32]> {
        self.values.chunks(self.ops.max(1))
    }
}

/// Per cell kind (DARTS: `[normal, reduce]`; NAS-Bench-201: `[cell]`), the op weights.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchWeights {
    cells: Vec<CellWeights>,
}

impl ArchWeights {
    /// The softmax of each α matrix (decoded α^d during a search), by libtorch on the CPU in f32.
    pub fn from_matrices(alphas: &[AlphaMatrix]) -> Result<Self, ModelError> {
        let tensors: Vec<Tensor> = alphas
            .iter()
            .map(|a| Tensor::from_slice(a.values()).view([a.edges() as i64, a.ops() as i64]))
            .collect();
        Self::from_alphas(&tensors)
    }

    /// The softmax of each `(edges, ops)` α tensor (any device and float kind), on the CPU, on
    /// the calling thread alone (it runs on the controller's runtime thread:
    /// [`crate::threads::on_this_thread_alone`]).
    pub fn from_alphas(alphas: &[Tensor]) -> Result<Self, ModelError> {
        crate::threads::on_this_thread_alone(|| Self::softmax_of(alphas))
    }

    fn softmax_of(alphas: &[Tensor]) -> Result<Self, ModelError> {
        let cells = alphas
            .iter()
            .map(|alpha| {
                let &[_, ops] = alpha.size().as_slice() else {
                    return Err(ModelError::AlphaRank { got: alpha.size() });
                };
                let weights = alpha.to_device(Device::Cpu).to_kind(Kind::Float).softmax(-1, Kind::Float);
                let values = Vec::<f32>::try_from(weights.flatten(0, -1))
                    .map_err(|source| ModelError::Torch { context: "reading softmax(alpha)", source })?;
                Ok(CellWeights { ops: ops as usize, values })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { cells })
    }

    /// Weights computed elsewhere (another process's), as [`Self::shapes`] and
    /// [`Self::flat_values`] give them.
    pub fn from_flat(shapes: &[(usize, usize)], flat: &[f32]) -> Result<Self, ModelError> {
        let wanted: usize = shapes.iter().map(|(edges, ops)| edges * ops).sum();
        if wanted != flat.len() || shapes.iter().any(|&(_, ops)| ops == 0) {
            return Err(ModelError::AlphaRank { got: vec![flat.len() as i64] });
        }
        let mut at = 0;
        let cells = shapes
            .iter()
            .map(|&(edges, ops)| {
                let values = flat[at..at + edges * ops].to_vec();
                at += edges * ops;
                CellWeights { ops, values }
            })
            .collect();
        Ok(Self { cells })
    }

    /// (edges, ops) of each cell.
    pub fn shapes(&self) -> Vec<(usize, usize)> {
        self.cells.iter().map(|c| (c.edges(), c.ops())).collect()
    }

    /// Every cell's weights, one after the other.
    pub fn flat_values(&self) -> Vec<f32> {
        self.cells.iter().flat_map(|c| c.values.iter().copied()).collect()
    }

    pub fn cells(&self) -> &[CellWeights] {
        &self.cells
    }

    /// The cells, checked against what a supernet expects: `shapes[i]` = (edges, ops) of cell `i`.
    pub(crate) fn expect(
        &self,
        names: &[&'static str],
        shapes: &[(usize, usize)],
    ) -> Result<&[CellWeights], ModelError> {
        if self.cells.len() != shapes.len() {
            return Err(ModelError::AlphaCount { expected: shapes.len(), got: self.cells.len() });
        }
        for ((cell, &(edges, ops)), &which) in self.cells.iter().zip(shapes).zip(names) {
            if (cell.edges(), cell.ops()) != (edges, ops) {
                return Err(ModelError::AlphaShape {
                    which,
                    expected: vec![edges as i64, ops as i64],
                    got: vec![cell.edges() as i64, cell.ops() as i64],
                });
            }
        }
        Ok(&self.cells)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_softmax_of_alpha() {
        let alpha = AlphaMatrix::from_values(2, 3, vec![0.0, 0.0, 0.0, 1.0, 0.0, 0.0]).unwrap();
        let arch = ArchWeights::from_matrices(&[alpha]).unwrap();
        let cell = &arch.cells()[0];
        assert_eq!((cell.edges(), cell.ops()), (2, 3));
        for w in cell.edge(0) {
            assert!((w - 1.0 / 3.0).abs() < 1e-7);
        }
        let e = 1f32.exp();
        assert!((cell.edge(1)[0] - e / (e + 2.0)).abs() < 1e-6);
        assert_eq!(cell.rows().count(), 2);
    }

    #[test]
    fn flat_values_and_shapes_give_the_weights_back() {
        let alphas = [
            Tensor::randn([14, 8], (Kind::Float, Device::Cpu)),
            Tensor::randn([6, 5], (Kind::Float, Device::Cpu)),
        ];
        let arch = ArchWeights::from_alphas(&alphas).unwrap();
        assert_eq!(arch.shapes(), vec![(14, 8), (6, 5)]);
        assert_eq!(ArchWeights::from_flat(&arch.shapes(), &arch.flat_values()).unwrap(), arch);
        assert!(ArchWeights::from_flat(&[(14, 8)], &[0.0; 3]).is_err());
        assert!(ArchWeights::from_flat(&[(3, 0)], &[]).is_err());
    }

    #[test]
    fn wrong_shapes_are_errors() {
        let arch = ArchWeights::from_alphas(&[Tensor::zeros([14, 8], (Kind::Float, Device::Cpu))]).unwrap();
        assert!(matches!(
            arch.expect(&["normal", "reduce"], &[(14, 8), (14, 8)]),
            Err(ModelError::AlphaCount { .. })
        ));
        assert!(matches!(arch.expect(&["cell"], &[(6, 5)]), Err(ModelError::AlphaShape { .. })));
        assert!(arch.expect(&["normal"], &[(14, 8)]).is_ok());
        let bad = ArchWeights::from_alphas(&[Tensor::zeros([14], (Kind::Float, Device::Cpu))]);
        assert!(matches!(bad, Err(ModelError::AlphaRank { .. })));
    }
}
