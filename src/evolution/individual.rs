//! One member of the population: a genome (α per cell type), its lineage and its fitness.
//!
//! Corresponds to the reference's `chromosome` (chromosomes.py / chromosomesNAS201.py): the genome
//! is `arch_parameters`, drawn from U[0, 1) (`torch.rand(k, num_ops)`), and the fitness is the
//! validation `top1` / `top5` / loss meters, of which `top1` is what selection compares.

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::space::AlphaMatrix;

/// Shape of one cell type's α: `edges × ops`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CellShape {
    pub edges: usize,
    pub ops: usize,
}

/// DARTS: normal and reduce cell, each with 4 intermediate nodes (2+3+4+5 = 14 edges) and the 8
/// DARTS primitives.
pub const DARTS_GENOME_SHAPE: [CellShape; 2] =
    [CellShape { edges: 14, ops: 8 }, CellShape { edges: 14, ops: 8 }];

/// NAS-Bench-201: one cell with 4 nodes (6 edges) and the 5 NAS-Bench-201 primitives.
pub const NB201_GENOME_SHAPE: [CellShape; 1] = [CellShape { edges: 6, ops: 5 }];

/// Validation metrics of one individual, averaged over the validation set the way the reference's
/// `AvgrageMeter` does (sample-weighted mean of per-batch values); accuracies are in percent.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Fitness {
    pub top1: f64,
    pub top5: f64,
    pub loss: f64,
}

impl Fitness {
    /// The value selection and sorting compare (the reference's `get_fitness()`, i.e. top-1).
    /// NaN ranks below every number so a diverged evaluation never wins.
    pub fn rank_key(&self) -> f64 {
        if self.top1.is_nan() {
            f64::NEG_INFINITY
        } else {
            self.top1
        }
    }
}

/// A genome with its identity, lineage and (once evaluated) fitness.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Individual {
    /// Unique within a run; never reused.
    pub id: u64,
    /// Ids of the two crossover parents, or empty for a randomly initialised individual.
    pub parents: Vec<u64>,
    /// Generation in which this genome was created.
    pub born: u32,
    /// One α per cell type, in the order of the search space (DARTS: normal, reduce).
    pub genome: Vec<AlphaMatrix>,
    /// `None` until evaluated on the current supernet weights.
    pub fitness: Option<Fitness>,
}

impl Individual {
    /// A fresh individual with every α value drawn from U[0, 1), cell by cell, row-major.
    pub fn random<R: Rng + ?Sized>(id: u64, born: u32, shapes: &[CellShape], rng: &mut R) -> Self {
        let genome = shapes.iter().map(|s| AlphaMatrix::random(s.edges, s.ops, rng)).collect();
        Self { id, parents: Vec::new(), born, genome, fitness: None }
    }

    /// Shape of each cell of the genome.
    pub fn shapes(&self) -> Vec<CellShape> {
        self.genome.iter().map(|a| CellShape { edges: a.edges(), ops: a.ops() }).collect()
    }

    /// Total number of rows (edges) over all cells: the unit count of crossover and mutation.
    pub fn row_count(&self) -> usize {
        self.genome.iter().map(AlphaMatrix::edges).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn random_individual_has_requested_shapes_and_unit_interval_values() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let ind = Individual::random(7, 3, &DARTS_GENOME_SHAPE, &mut rng);
        assert_eq!(ind.id, 7);
        assert_eq!(ind.born, 3);
        assert!(ind.parents.is_empty());
        assert_eq!(ind.shapes(), DARTS_GENOME_SHAPE.to_vec());
        assert_eq!(ind.row_count(), 28);
        assert!(ind.genome.iter().flat_map(|a| a.values()).all(|v| (0.0..1.0).contains(v)));
        // Two cells are drawn independently, not copies of each other.
        assert_ne!(ind.genome[0], ind.genome[1]);
    }

    #[test]
    fn nan_fitness_ranks_lowest() {
        let nan = Fitness { top1: f64::NAN, top5: 0.0, loss: 0.0 };
        assert_eq!(nan.rank_key(), f64::NEG_INFINITY);
    }

    #[test]
    fn individual_round_trips_through_json() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let mut ind = Individual::random(1, 0, &NB201_GENOME_SHAPE, &mut rng);
        ind.fitness = Some(Fitness { top1: 51.25, top5: 90.5, loss: 1.375 });
        let json = serde_json::to_string(&ind).unwrap();
        let back: Individual = serde_json::from_str(&json).unwrap();
        assert_eq!(back, ind);
    }
}
