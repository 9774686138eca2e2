//! One generation step of EvNAS (Sinha & Chen 2021, Algorithm 1; reference
//! `GeneticAlgorithm.evolve` = `mutate(crossover(population))`), and the random-search baseline.
//!
//! Order of random draws (fixed, so a seeded run is reproducible): for each child, the first
//! tournament's sample, the second tournament's sample, then the crossover draws; after all
//! children exist, the mutation draws of each non-elite in population order.

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::crossover::crossover;
use super::individual::Individual;
use super::mutation::mutate;
use super::population::Population;
use super::selection::tournament_select;
use super::EvolutionError;

/// The GA's hyper-parameters (reference `train_search.py`: `--pop_size 50`, `--tsize 10`,
/// `--num_elites 1`, `--mutate_rate 0.1`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GaParams {
    pub population: usize,
    pub tournament_size: usize,
    pub elites: usize,
    pub mutation_rate: f64,
}

impl Default for GaParams {
    fn default() -> Self {
        Self { population: 50, tournament_size: 10, elites: 1, mutation_rate: 0.1 }
    }
}

impl GaParams {
    /// Checks every constraint and reports all violations together.
    pub fn validate(&self) -> Result<(), EvolutionError> {
        let mut problems = Vec::new();
        if self.population == 0 {
            problems.push("population must be at least 1".to_string());
        }
        if self.elites >= self.population {
            problems.push(format!(
                "elites ({}) must be fewer than the population ({}) so that something evolves",
                self.elites, self.population
            ));
        }
        if self.tournament_size == 0 || self.tournament_size > self.population {
            problems.push(format!(
                "tournament_size ({}) must be in 1..={} (the population)",
                self.tournament_size, self.population
            ));
        }
        if !(0.0..=1.0).contains(&self.mutation_rate) {
            problems.push(format!("mutation_rate ({}) must be in [0, 1]", self.mutation_rate));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(EvolutionError::InvalidParams { problems })
        }
    }
}

/// Checks what both generation steps require of their input.
fn check_parents(sorted_parents: &Population, params: &GaParams) -> Result<(), EvolutionError> {
    params.validate()?;
    if sorted_parents.len() != params.population {
        return Err(EvolutionError::PopulationSize {
            expected: params.population,
            got: sorted_parents.len(),
        });
    }
    sorted_parents.check_sorted()
}

/// The first `elites` individuals, unchanged except that their fitness is cleared: the supernet
/// trains on between generations, so the old score no longer describes them and they are
/// re-evaluated with everyone else (the reference resets every meter before validation).
fn elites_of(sorted_parents: &Population, elites: usize) -> Population {
    let mut next = Population::empty(sorted_parents.next_id);
    next.individuals.extend(sorted_parents.individuals[..elites].iter().cloned().map(|mut elite| {
        elite.fitness = None;
        elite
    }));
    next
}

/// Builds generation `generation` from the evaluated, best-first population of the previous one:
/// elites carried over, the rest crossover children of two independent tournament winners (which
/// may be the same individual, as in the reference), then every non-elite mutated.
pub fn next_generation<R: Rng + ?Sized>(
    sorted_parents: &Population,
    params: &GaParams,
    generation: u32,
    rng: &mut R,
) -> Result<Population, EvolutionError> {
    check_parents(sorted_parents, params)?;
    let mut next = elites_of(sorted_parents, params.elites);
    while next.len() < params.population {
        let first = tournament_select(sorted_parents, params.tournament_size, rng)?;
        let second = tournament_select(sorted_parents, params.tournament_size, rng)?;
        let id = next.allocate_id();
        let child = crossover(
            &sorted_parents.individuals[first],
            &sorted_parents.individuals[second],
            id,
            generation,
            rng,
        )?;
        next.individuals.push(child);
    }
    for child in &mut next.individuals[params.elites..] {
        mutate(child, params.mutation_rate, rng);
    }
    Ok(next)
}

/// Random-search baseline: elites carried over as in [`next_generation`], every other slot a fresh
/// U[0, 1) individual. The reference's `Population.random_pop` redraws everyone; keeping the
/// elites here makes the baseline differ from EvNAS only in how new genomes are made (no
/// selection, crossover or mutation), so a comparison isolates the genetic operators. With
/// `elites = 0` it is exactly `random_pop`.
pub fn random_generation<R: Rng + ?Sized>(
    sorted_parents: &Population,
    params: &GaParams,
    generation: u32,
    rng: &mut R,
) -> Result<Population, EvolutionError> {
    check_parents(sorted_parents, params)?;
    let shapes = sorted_parents.individuals[0].shapes();
    let mut next = elites_of(sorted_parents, params.elites);
    while next.len() < params.population {
        let id = next.allocate_id();
        next.individuals.push(Individual::random(id, generation, &shapes, rng));
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evolution::individual::{CellShape, Fitness, DARTS_GENOME_SHAPE, NB201_GENOME_SHAPE};
    use proptest::prelude::{any, prop_assert, prop_assert_eq, proptest, Just, Strategy};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use std::collections::HashSet;

    /// A random population with random fitness, sorted.
    fn evaluated(size: usize, shapes: &[CellShape], rng: &mut ChaCha8Rng) -> Population {
        let mut pop = Population::random(size, shapes, 0, rng);
        for ind in &mut pop.individuals {
            // Coarse values so that ties occur.
            let top1 = f64::from(rng.random_range(0u8..20)) * 5.0;
            ind.fitness = Some(Fitness { top1, top5: top1, loss: 1.0 });
        }
        pop.sort_by_fitness().unwrap();
        pop
    }

    #[test]
    fn default_params_are_the_reference_defaults_and_valid() {
        let p = GaParams::default();
        assert_eq!((p.population, p.tournament_size, p.elites, p.mutation_rate), (50, 10, 1, 0.1));
        p.validate().unwrap();
    }

    #[test]
    fn validation_collects_every_problem() {
        let p = GaParams { population: 4, tournament_size: 5, elites: 4, mutation_rate: 1.5 };
        match p.validate() {
            Err(EvolutionError::InvalidParams { problems }) => assert_eq!(problems.len(), 3, "{problems:?}"),
            other => panic!("expected InvalidParams, got {other:?}"),
        }
    }

    #[test]
    fn unsorted_or_unevaluated_parents_are_refused() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let params = GaParams { population: 6, tournament_size: 3, elites: 1, mutation_rate: 0.1 };
        let mut pop = evaluated(6, &NB201_GENOME_SHAPE, &mut rng);
        pop.individuals[0].fitness = Some(Fitness { top1: -1.0, top5: 0.0, loss: 0.0 });
        assert!(matches!(
            next_generation(&pop, &params, 1, &mut rng),
            Err(EvolutionError::NotSorted { index: 1, .. })
        ));
        pop.sort_by_fitness().unwrap();
        pop.individuals[4].fitness = None;
        assert!(matches!(
            next_generation(&pop, &params, 1, &mut rng),
            Err(EvolutionError::MissingFitness { .. })
        ));
        let small = GaParams { population: 7, ..params };
        assert_eq!(
            random_generation(&pop, &small, 1, &mut rng),
            Err(EvolutionError::PopulationSize { expected: 7, got: 6 })
        );
    }

    #[test]
    fn same_seed_gives_identical_generations() {
        let params = GaParams { population: 12, tournament_size: 4, elites: 2, mutation_rate: 0.2 };
        let run = |seed: u64| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut pop = evaluated(12, &DARTS_GENOME_SHAPE, &mut rng);
            let mut history = Vec::new();
            for generation in 1..=4 {
                pop = next_generation(&pop, &params, generation, &mut rng).unwrap();
                history.push(pop.clone());
                for ind in &mut pop.individuals {
                    let top1 = f64::from(ind.genome[0].get(0, 0)) * 100.0;
                    ind.fitness = Some(Fitness { top1, top5: top1, loss: 0.0 });
                }
                pop.sort_by_fitness().unwrap();
            }
            (history, rng)
        };
        let (a, rng_a) = run(42);
        let (b, rng_b) = run(42);
        assert_eq!(a, b);
        assert_eq!(rng_a, rng_b);
        let (c, _) = run(43);
        assert_ne!(a, c);
    }

    #[test]
    fn rng_state_survives_a_json_checkpoint() {
        // Resuming from a serialised generator continues the identical stream.
        let params = GaParams { population: 8, tournament_size: 3, elites: 1, mutation_rate: 0.1 };
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let pop = evaluated(8, &NB201_GENOME_SHAPE, &mut rng);
        let saved = serde_json::to_string(&(&pop, &rng)).unwrap();
        let uninterrupted = next_generation(&pop, &params, 1, &mut rng).unwrap();
        let (pop2, mut rng2): (Population, ChaCha8Rng) = serde_json::from_str(&saved).unwrap();
        assert_eq!(next_generation(&pop2, &params, 1, &mut rng2).unwrap(), uninterrupted);
    }

    #[test]
    fn children_record_two_parents_from_the_previous_generation() {
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        let params = GaParams { population: 10, tournament_size: 3, elites: 2, mutation_rate: 0.1 };
        let parents = evaluated(10, &DARTS_GENOME_SHAPE, &mut rng);
        let next = next_generation(&parents, &params, 1, &mut rng).unwrap();
        let parent_ids: HashSet<u64> = parents.individuals.iter().map(|i| i.id).collect();
        for child in &next.individuals[2..] {
            assert_eq!(child.parents.len(), 2);
            assert!(child.parents.iter().all(|p| parent_ids.contains(p)));
            assert_eq!(child.born, 1);
            assert_eq!(child.fitness, None);
        }
    }

    #[test]
    fn full_tournament_without_mutation_clones_the_best() {
        // With tournament_size = population, both parents are the population best (position 0),
        // so without mutation every child is a copy of the best genome.
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let params = GaParams { population: 6, tournament_size: 6, elites: 1, mutation_rate: 0.0 };
        let parents = evaluated(6, &NB201_GENOME_SHAPE, &mut rng);
        let next = next_generation(&parents, &params, 1, &mut rng).unwrap();
        let best = &parents.individuals[0];
        for child in &next.individuals[1..] {
            assert_eq!(child.genome, best.genome);
            assert_eq!(child.parents, vec![best.id, best.id]);
        }
    }

    #[test]
    fn random_generation_keeps_elites_and_draws_the_rest_fresh() {
        let mut rng = ChaCha8Rng::seed_from_u64(10);
        let params = GaParams { population: 5, tournament_size: 2, elites: 1, mutation_rate: 0.1 };
        let parents = evaluated(5, &DARTS_GENOME_SHAPE, &mut rng);
        let next = random_generation(&parents, &params, 1, &mut rng).unwrap();
        assert_eq!(next.individuals[0].genome, parents.individuals[0].genome);
        assert_eq!(next.individuals[0].id, parents.individuals[0].id);
        for ind in &next.individuals[1..] {
            assert!(ind.parents.is_empty());
            assert_eq!(ind.born, 1);
            assert_eq!(ind.shapes(), DARTS_GENOME_SHAPE.to_vec());
            assert!(parents.individuals.iter().all(|p| p.genome != ind.genome));
        }
    }

    fn params_strategy() -> impl Strategy<Value = GaParams> {
        (2usize..16).prop_flat_map(|population| {
            (Just(population), 1..=population, 0..population, 0.0f64..=1.0).prop_map(
                |(population, tournament_size, elites, mutation_rate)| GaParams {
                    population,
                    tournament_size,
                    elites,
                    mutation_rate,
                },
            )
        })
    }

    proptest! {
        #[test]
        fn generation_keeps_size_elites_and_unique_ids(
            params in params_strategy(),
            seed in any::<u64>(),
            random_search in any::<bool>(),
        ) {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let parents = evaluated(params.population, &DARTS_GENOME_SHAPE, &mut rng);
            let next = if random_search {
                random_generation(&parents, &params, 1, &mut rng).unwrap()
            } else {
                next_generation(&parents, &params, 1, &mut rng).unwrap()
            };

            prop_assert_eq!(next.len(), params.population);
            for (elite, parent) in next.individuals.iter().zip(&parents.individuals).take(params.elites) {
                prop_assert_eq!(elite.id, parent.id);
                prop_assert_eq!(&elite.genome, &parent.genome);
                prop_assert_eq!(&elite.parents, &parent.parents);
                prop_assert_eq!(elite.fitness, None);
            }
            // Ids: unique within the generation and never reused from an earlier one.
            let ids: HashSet<u64> = next.individuals.iter().map(|i| i.id).collect();
            prop_assert_eq!(ids.len(), next.len());
            for ind in &next.individuals[params.elites..] {
                prop_assert!(ind.id >= parents.next_id && ind.id < next.next_id);
                prop_assert_eq!(ind.born, 1);
            }
        }
    }
}
