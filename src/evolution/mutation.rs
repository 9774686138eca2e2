//! Per-edge mutation (Sinha & Chen 2021, §3.3; reference `GeneticAlgorithm.mutate_chromosome`).
//!
//! Every row (edge) of every cell is, with probability `rate`, replaced by a fresh row drawn from
//! U[0, 1) (the reference's `generate_parameters(1)`, i.e. `torch.rand(1, num_ops)`).

use rand::Rng;

use super::individual::Individual;

/// Mutates `individual` in place and returns how many rows were replaced.
/// Per row: one `f64` decision draw, then (if mutated) `ops` fresh `f32` values.
pub fn mutate<R: Rng + ?Sized>(individual: &mut Individual, rate: f64, rng: &mut R) -> usize {
    let mut replaced = 0;
    for cell in &mut individual.genome {
        for edge in 0..cell.edges() {
            let u: f64 = rng.random();
            if u < rate {
                for value in cell.row_mut(edge) {
                    *value = rng.random::<f32>();
                }
                replaced += 1;
            }
        }
    }
    replaced
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evolution::individual::{CellShape, DARTS_GENOME_SHAPE};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn changed_rows(before: &Individual, after: &Individual) -> usize {
        before
            .genome
            .iter()
            .zip(&after.genome)
            .map(|(a, b)| (0..a.edges()).filter(|&e| a.row(e) != b.row(e)).count())
            .sum()
    }

    #[test]
    fn rate_zero_changes_nothing_and_rate_one_changes_everything() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let original = Individual::random(0, 0, &DARTS_GENOME_SHAPE, &mut rng);
        let mut ind = original.clone();
        assert_eq!(mutate(&mut ind, 0.0, &mut rng), 0);
        assert_eq!(ind, original);
        assert_eq!(mutate(&mut ind, 1.0, &mut rng), 28);
        assert_eq!(changed_rows(&original, &ind), 28);
        assert!(ind.genome.iter().flat_map(|a| a.values()).all(|v| (0.0..1.0).contains(v)));
    }

    #[test]
    fn mutated_fraction_converges_to_the_rate() {
        // 200 000 rows per rate: the standard deviation of the fraction is at most 0.0011 (rate
        // 0.5), so a bound of 0.005 is generous (over 4 sigma) yet catches a wrong rate.
        let mut rng = ChaCha8Rng::seed_from_u64(2024);
        let shape = [CellShape { edges: 100, ops: 2 }, CellShape { edges: 100, ops: 2 }];
        for rate in [0.05, 0.1, 0.5] {
            let mut reported = 0;
            let mut observed = 0;
            for _ in 0..1000 {
                let original = Individual::random(0, 0, &shape, &mut rng);
                let mut ind = original.clone();
                reported += mutate(&mut ind, rate, &mut rng);
                observed += changed_rows(&original, &ind);
            }
            // A fresh row equal to the old one has probability ~2^-48: the counts agree.
            assert_eq!(reported, observed);
            let fraction = observed as f64 / 200_000.0;
            assert!((fraction - rate).abs() < 0.005, "rate {rate}: mutated fraction {fraction}");
        }
    }
}
