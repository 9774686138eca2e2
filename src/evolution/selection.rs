//! Tournament selection (Sinha & Chen 2021, §3.3; reference `GeneticAlgorithm.tournament_selection`).
//!
//! The reference draws `tournament_size` distinct positions with
//! `np.random.choice(n, k, replace=False)` (a random permutation, first k), sorts the sample by
//! fitness with a stable descending sort and takes the head: the fittest of the sample, and among
//! equally fit ones the one sampled first.

use rand::Rng;

use super::population::Population;
use super::EvolutionError;

/// `tournament_size` distinct positions in `0..population`, uniformly at random and in random
/// order (a partial Fisher–Yates shuffle, so the order of the sample is itself uniform).
pub fn tournament_sample<R: Rng + ?Sized>(
    population: usize,
    tournament_size: usize,
    rng: &mut R,
) -> Result<Vec<usize>, EvolutionError> {
    if tournament_size == 0 || tournament_size > population {
        return Err(EvolutionError::TournamentSize { tournament_size, population });
    }
    let mut positions: Vec<usize> = (0..population).collect();
    for i in 0..tournament_size {
        let j = rng.random_range(i..population);
        positions.swap(i, j);
    }
    positions.truncate(tournament_size);
    Ok(positions)
}

/// The position, among `sample`, of the fittest individual; the first sampled wins ties.
pub fn tournament_winner(population: &Population, sample: &[usize]) -> Result<usize, EvolutionError> {
    let mut winner: Option<(usize, f64)> = None;
    for &index in sample {
        let ind = population
            .individuals
            .get(index)
            .ok_or(EvolutionError::SampleOutOfRange { index, population: population.len() })?;
        let key = ind.fitness.ok_or(EvolutionError::MissingFitness { id: ind.id, index })?.rank_key();
        if winner.is_none_or(|(_, best)| key > best) {
            winner = Some((index, key));
        }
    }
    winner
        .map(|(index, _)| index)
        .ok_or(EvolutionError::TournamentSize { tournament_size: 0, population: population.len() })
}

/// Runs one tournament and returns the winner's position in the population.
pub fn tournament_select<R: Rng + ?Sized>(
    population: &Population,
    tournament_size: usize,
    rng: &mut R,
) -> Result<usize, EvolutionError> {
    let sample = tournament_sample(population.len(), tournament_size, rng)?;
    tournament_winner(population, &sample)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evolution::individual::{Fitness, NB201_GENOME_SHAPE};
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn population_with(top1: &[f64]) -> Population {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut pop = Population::random(top1.len(), &NB201_GENOME_SHAPE, 0, &mut rng);
        for (ind, &t) in pop.individuals.iter_mut().zip(top1) {
            ind.fitness = Some(Fitness { top1: t, top5: 0.0, loss: 0.0 });
        }
        pop
    }

    #[test]
    fn ties_go_to_the_first_sampled() {
        let pop = population_with(&[5.0, 9.0, 9.0, 1.0]);
        assert_eq!(tournament_winner(&pop, &[2, 0, 1]), Ok(2));
        assert_eq!(tournament_winner(&pop, &[1, 2]), Ok(1));
    }

    #[test]
    fn oversized_or_empty_tournament_is_refused() {
        let pop = population_with(&[1.0, 2.0]);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let too_big = EvolutionError::TournamentSize { tournament_size: 3, population: 2 };
        assert_eq!(tournament_select(&pop, 3, &mut rng), Err(too_big));
        let empty = EvolutionError::TournamentSize { tournament_size: 0, population: 2 };
        assert_eq!(tournament_select(&pop, 0, &mut rng), Err(empty));
    }

    #[test]
    fn missing_fitness_in_the_sample_is_refused() {
        let mut pop = population_with(&[1.0, 2.0, 3.0]);
        pop.individuals[2].fitness = None;
        assert_eq!(tournament_winner(&pop, &[0, 2]), Err(EvolutionError::MissingFitness { id: 2, index: 2 }));
    }

    #[test]
    fn full_tournament_picks_the_population_best() {
        let pop = population_with(&[3.0, 8.0, 1.0, 8.0, 7.0]);
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        for _ in 0..50 {
            let w = tournament_select(&pop, 5, &mut rng).unwrap();
            assert!(w == 1 || w == 3);
        }
    }

    #[test]
    fn every_position_is_sampled_about_equally_often() {
        // Uniformity: with n = 10, k = 3 each position appears with probability 0.3.
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let trials = 20_000;
        let mut counts = [0usize; 10];
        for _ in 0..trials {
            for i in tournament_sample(10, 3, &mut rng).unwrap() {
                counts[i] += 1;
            }
        }
        for c in counts {
            let p = c as f64 / trials as f64;
            assert!((p - 0.3).abs() < 0.02, "inclusion frequency {p}");
        }
    }

    proptest! {
        #[test]
        fn winner_is_the_fittest_of_a_distinct_sample(
            fitness in prop::collection::vec(0u8..6, 1..30),
            size_seed in any::<usize>(),
            seed in any::<u64>(),
        ) {
            // Few distinct fitness values, so ties are common.
            let top1: Vec<f64> = fitness.iter().map(|&f| f as f64 * 10.0).collect();
            let pop = population_with(&top1);
            let size = 1 + size_seed % pop.len();
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut replay = rng.clone();
            let winner = tournament_select(&pop, size, &mut rng).unwrap();
            let sample = tournament_sample(pop.len(), size, &mut replay).unwrap();

            prop_assert_eq!(sample.len(), size);
            let mut distinct = sample.clone();
            distinct.sort_unstable();
            distinct.dedup();
            prop_assert_eq!(distinct.len(), size);
            prop_assert!(sample.iter().all(|&i| i < pop.len()));

            // Naive oracle: maximum top1, first occurrence in sampling order.
            let best = sample.iter().map(|&i| top1[i]).fold(f64::NEG_INFINITY, f64::max);
            let expected = *sample.iter().find(|&&i| top1[i] == best).unwrap();
            prop_assert_eq!(winner, expected);
        }
    }
}
