//! Uniform crossover at edge granularity (Sinha & Chen 2021, §3.3; reference
//! `GeneticAlgorithm.crossover_chromosomes`).
//!
//! For every cell and every row (edge) of the child, one draw u ~ U[0, 1) decides the donor:
//! the first parent when u >= 0.5, else the second. A row is the whole α vector of one edge, so
//! crossover never mixes operation weights of one edge between parents.

use rand::Rng;

use super::individual::Individual;
use super::EvolutionError;

/// A child of `first` and `second` with the given `id`, born in `generation`, without fitness.
/// Draws exactly one `f64` per row, cells in genome order, rows in edge order.
pub fn crossover<R: Rng + ?Sized>(
    first: &Individual,
    second: &Individual,
    id: u64,
    generation: u32,
    rng: &mut R,
) -> Result<Individual, EvolutionError> {
    check_same_shape(first, second)?;
    let mut genome = first.genome.clone();
    for (cell, donor2) in genome.iter_mut().zip(&second.genome) {
        for edge in 0..cell.edges() {
            let u: f64 = rng.random();
            if u < 0.5 {
                cell.row_mut(edge).copy_from_slice(donor2.row(edge));
            }
        }
    }
    Ok(Individual { id, parents: vec![first.id, second.id], born: generation, genome, fitness: None })
}

fn check_same_shape(first: &Individual, second: &Individual) -> Result<(), EvolutionError> {
    let mismatch =
        |reason: String| EvolutionError::GenomeMismatch { left: first.id, right: second.id, reason };
    if first.genome.len() != second.genome.len() {
        return Err(mismatch(format!("{} cells vs {} cells", first.genome.len(), second.genome.len())));
    }
    for (cell, (a, b)) in first.genome.iter().zip(&second.genome).enumerate() {
        if (a.edges(), a.ops()) != (b.edges(), b.ops()) {
            return Err(mismatch(format!(
                "cell {cell} is {}x{} vs {}x{}",
                a.edges(),
                a.ops(),
                b.edges(),
                b.ops()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evolution::individual::{CellShape, DARTS_GENOME_SHAPE, NB201_GENOME_SHAPE};
    use proptest::prelude::{any, prop, prop_assert, prop_assert_eq, proptest};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn child_records_its_parents_and_birth() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let a = Individual::random(1, 0, &DARTS_GENOME_SHAPE, &mut rng);
        let b = Individual::random(2, 0, &DARTS_GENOME_SHAPE, &mut rng);
        let child = crossover(&a, &b, 10, 3, &mut rng).unwrap();
        assert_eq!(child.id, 10);
        assert_eq!(child.parents, vec![1, 2]);
        assert_eq!(child.born, 3);
        assert_eq!(child.fitness, None);
    }

    #[test]
    fn mismatched_genomes_are_refused() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let a = Individual::random(1, 0, &DARTS_GENOME_SHAPE, &mut rng);
        let b = Individual::random(2, 0, &NB201_GENOME_SHAPE, &mut rng);
        let err = crossover(&a, &b, 3, 0, &mut rng).unwrap_err();
        assert!(matches!(err, EvolutionError::GenomeMismatch { left: 1, right: 2, .. }), "{err}");
    }

    #[test]
    fn donor_choice_follows_the_reference_threshold() {
        // Replaying the draws: u >= 0.5 takes the first parent's row, otherwise the second's.
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let a = Individual::random(1, 0, &DARTS_GENOME_SHAPE, &mut rng);
        let b = Individual::random(2, 0, &DARTS_GENOME_SHAPE, &mut rng);
        let mut replay = rng.clone();
        let child = crossover(&a, &b, 3, 1, &mut rng).unwrap();
        for (cell, shape) in DARTS_GENOME_SHAPE.iter().enumerate() {
            for edge in 0..shape.edges {
                let u: f64 = replay.random();
                let donor = if u >= 0.5 { &a } else { &b };
                assert_eq!(child.genome[cell].row(edge), donor.genome[cell].row(edge));
            }
        }
    }

    #[test]
    fn both_parents_contribute_about_half_the_rows() {
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        let shape = [CellShape { edges: 1000, ops: 3 }];
        let a = Individual::random(1, 0, &shape, &mut rng);
        let b = Individual::random(2, 0, &shape, &mut rng);
        let child = crossover(&a, &b, 3, 1, &mut rng).unwrap();
        let from_first = (0..1000).filter(|&e| child.genome[0].row(e) == a.genome[0].row(e)).count();
        assert!((400..=600).contains(&from_first), "{from_first} of 1000 rows from the first parent");
    }

    proptest! {
        #[test]
        fn every_child_row_is_the_same_row_of_one_parent(
            cells in prop::collection::vec((1usize..16, 1usize..9), 1..4),
            seed in any::<u64>(),
        ) {
            let shapes: Vec<CellShape> = cells.iter().map(|&(edges, ops)| CellShape { edges, ops }).collect();
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let a = Individual::random(1, 0, &shapes, &mut rng);
            let b = Individual::random(2, 0, &shapes, &mut rng);
            let child = crossover(&a, &b, 3, 1, &mut rng).unwrap();
            prop_assert_eq!(child.shapes(), shapes.clone());
            for (cell, shape) in shapes.iter().enumerate() {
                for edge in 0..shape.edges {
                    let row = child.genome[cell].row(edge);
                    prop_assert!(row == a.genome[cell].row(edge) || row == b.genome[cell].row(edge));
                }
            }
        }
    }
}
