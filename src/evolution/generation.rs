//! One generation step of EvNAS (Sinha & Chen 2021, Algorithm 1; reference
//! `GeneticAlgorithm.evolve` = `mutate(crossover(population))`), and the random-search baseline.
//!
//! Each child is made in three stages (selection, crossover, mutation), each a plain function of
//! the parents, the child's slot and the child's own random stream ([`ChildStreams`]), so the
//! stages can run anywhere (the daemon's GA actors) and still give the same generation as
//! [`next_generation`], which runs them in a row.

use serde::{Deserialize, Serialize};

use super::crossover::crossover;
use super::individual::{CellShape, Individual};
use super::mutation::mutate;
use super::population::Population;
use super::selection::tournament_select;
use super::streams::{ChildStreams, GaStage};
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

/// One place in the generation being bred: its position in the new population (after the
/// elites) and the id it will carry. Both follow from the parents alone, so a child can be made
/// by any stage, at any time, and still be the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildSlot {
    pub generation: u32,
    /// Position in the new population, `elites..population`.
    pub position: usize,
    pub id: u64,
}

/// The slots of generation `generation` bred from `sorted_parents` (checked first).
pub fn child_slots(
    sorted_parents: &Population,
    params: &GaParams,
    generation: u32,
) -> Result<Vec<ChildSlot>, EvolutionError> {
    check_parents(sorted_parents, params)?;
    Ok((params.elites..params.population)
        .map(|position| ChildSlot {
            generation,
            position,
            id: sorted_parents.next_id + (position - params.elites) as u64,
        })
        .collect())
}

/// Selection for one slot: the positions of its two parents, winners of two independent
/// tournaments (they may be the same individual, as in the reference).
pub fn select_parents(
    sorted_parents: &Population,
    params: &GaParams,
    slot: ChildSlot,
    streams: &ChildStreams,
) -> Result<(usize, usize), EvolutionError> {
    let rng = &mut streams.rng(slot.generation, slot.position, GaStage::Selection);
    let first = tournament_select(sorted_parents, params.tournament_size, rng)?;
    let second = tournament_select(sorted_parents, params.tournament_size, rng)?;
    Ok((first, second))
}

/// Crossover for one slot: the child of `first` and `second`.
pub fn cross_parents(
    first: &Individual,
    second: &Individual,
    slot: ChildSlot,
    streams: &ChildStreams,
) -> Result<Individual, EvolutionError> {
    let rng = &mut streams.rng(slot.generation, slot.position, GaStage::Crossover);
    crossover(first, second, slot.id, slot.generation, rng)
}

/// Mutation for one slot: replaces rows of `child` in place; returns how many.
pub fn mutate_child(child: &mut Individual, rate: f64, slot: ChildSlot, streams: &ChildStreams) -> usize {
    mutate(child, rate, &mut streams.rng(slot.generation, slot.position, GaStage::Mutation))
}

/// A fresh U[0, 1) individual for one slot.
pub fn fresh_child(shapes: &[CellShape], slot: ChildSlot, streams: &ChildStreams) -> Individual {
    let rng = &mut streams.rng(slot.generation, slot.position, GaStage::Fresh);
    Individual::random(slot.id, slot.generation, shapes, rng)
}

/// The new population: the elites of `sorted_parents`, then `children` in slot order (they may
/// arrive in any order; every slot must be filled exactly once).
pub fn assemble_generation(
    sorted_parents: &Population,
    params: &GaParams,
    generation: u32,
    mut children: Vec<(ChildSlot, Individual)>,
) -> Result<Population, EvolutionError> {
    let slots = child_slots(sorted_parents, params, generation)?;
    children.sort_by_key(|(slot, _)| slot.position);
    let got: Vec<ChildSlot> = children.iter().map(|(slot, _)| *slot).collect();
    if got != slots {
        return Err(EvolutionError::PopulationSize {
            expected: params.population,
            got: params.elites + children.len(),
        });
    }
    let mut next = elites_of(sorted_parents, params.elites);
    next.next_id = sorted_parents.next_id + slots.len() as u64;
    next.individuals.extend(children.into_iter().map(|(_, child)| child));
    Ok(next)
}

/// Grows `population`, just bred for generation `generation`, by `count` fresh U[0, 1)
/// individuals in the slots after its last (a population enlarged by a reload). Their streams
/// are those of their slots, so they never repeat a bred child's draws.
pub fn add_fresh(
    population: &mut Population,
    count: usize,
    generation: u32,
    streams: &ChildStreams,
) -> Result<(), EvolutionError> {
    let shapes = population.individuals.first().ok_or(EvolutionError::EmptyPopulation)?.shapes();
    for _ in 0..count {
        let slot = ChildSlot { generation, position: population.len(), id: population.next_id };
        population.individuals.push(fresh_child(&shapes, slot, streams));
        population.next_id += 1;
    }
    Ok(())
}

/// Builds generation `generation` from the evaluated, best-first population of the previous one:
/// elites carried over, every other slot a crossover child of two tournament winners, mutated.
/// Each slot draws from its own streams (see [`ChildStreams`]).
pub fn next_generation(
    sorted_parents: &Population,
    params: &GaParams,
    generation: u32,
    streams: &ChildStreams,
) -> Result<Population, EvolutionError> {
    let children = child_slots(sorted_parents, params, generation)?
        .into_iter()
        .map(|slot| {
            let (first, second) = select_parents(sorted_parents, params, slot, streams)?;
            let parents = &sorted_parents.individuals;
            let mut child = cross_parents(&parents[first], &parents[second], slot, streams)?;
            mutate_child(&mut child, params.mutation_rate, slot, streams);
            Ok((slot, child))
        })
        .collect::<Result<Vec<_>, EvolutionError>>()?;
    assemble_generation(sorted_parents, params, generation, children)
}

/// Random-search baseline: elites carried over as in [`next_generation`], every other slot a fresh
/// U[0, 1) individual. The reference's `Population.random_pop` redraws everyone; keeping the
/// elites here makes the baseline differ from EvNAS only in how new genomes are made (no
/// selection, crossover or mutation), so a comparison isolates the genetic operators. With
/// `elites = 0` it is exactly `random_pop`.
pub fn random_generation(
    sorted_parents: &Population,
    params: &GaParams,
    generation: u32,
    streams: &ChildStreams,
) -> Result<Population, EvolutionError> {
    let shapes = sorted_parents.individuals.first().ok_or(EvolutionError::EmptyPopulation)?.shapes();
    let children = child_slots(sorted_parents, params, generation)?
        .into_iter()
        .map(|slot| (slot, fresh_child(&shapes, slot, streams)))
        .collect();
    assemble_generation(sorted_parents, params, generation, children)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evolution::individual::{CellShape, Fitness, DARTS_GENOME_SHAPE, NB201_GENOME_SHAPE};
    use proptest::prelude::{any, prop_assert, prop_assert_eq, proptest, Just, Strategy};
    use rand::Rng;
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
            next_generation(&pop, &params, 1, &ChildStreams::new(7)),
            Err(EvolutionError::NotSorted { index: 1, .. })
        ));
        pop.sort_by_fitness().unwrap();
        pop.individuals[4].fitness = None;
        assert!(matches!(
            next_generation(&pop, &params, 1, &ChildStreams::new(7)),
            Err(EvolutionError::MissingFitness { .. })
        ));
        let small = GaParams { population: 7, ..params };
        assert_eq!(
            random_generation(&pop, &small, 1, &ChildStreams::new(7)),
            Err(EvolutionError::PopulationSize { expected: 7, got: 6 })
        );
    }

    #[test]
    fn same_seed_gives_identical_generations() {
        let params = GaParams { population: 12, tournament_size: 4, elites: 2, mutation_rate: 0.2 };
        let run = |seed: u64| {
            let mut rng = ChaCha8Rng::seed_from_u64(1);
            let mut pop = evaluated(12, &DARTS_GENOME_SHAPE, &mut rng);
            let streams = ChildStreams::new(seed);
            let mut history = Vec::new();
            for generation in 1..=4 {
                pop = next_generation(&pop, &params, generation, &streams).unwrap();
                history.push(pop.clone());
                for ind in &mut pop.individuals {
                    let top1 = f64::from(ind.genome[0].get(0, 0)) * 100.0;
                    ind.fitness = Some(Fitness { top1, top5: top1, loss: 0.0 });
                }
                pop.sort_by_fitness().unwrap();
            }
            history
        };
        assert_eq!(run(42), run(42));
        assert_ne!(run(42), run(43));
    }

    #[test]
    fn stages_run_slot_by_slot_in_any_order_give_the_same_generation() {
        // What the GA actors do: each slot through selection, crossover and mutation on its own,
        // slots in any order; the result is the one `next_generation` makes in a row.
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let params = GaParams { population: 9, tournament_size: 3, elites: 2, mutation_rate: 0.3 };
        let parents = evaluated(9, &DARTS_GENOME_SHAPE, &mut rng);
        let streams = ChildStreams::new(11);
        let in_a_row = next_generation(&parents, &params, 4, &streams).unwrap();
        let mut slots = child_slots(&parents, &params, 4).unwrap();
        slots.reverse();
        slots.swap(0, 3);
        let children = slots
            .into_iter()
            .map(|slot| {
                let (a, b) = select_parents(&parents, &params, slot, &streams).unwrap();
                let mut child =
                    cross_parents(&parents.individuals[a], &parents.individuals[b], slot, &streams).unwrap();
                mutate_child(&mut child, params.mutation_rate, slot, &streams);
                (slot, child)
            })
            .collect();
        assert_eq!(assemble_generation(&parents, &params, 4, children).unwrap(), in_a_row);
    }

    #[test]
    fn a_generation_missing_a_child_is_refused() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let params = GaParams { population: 5, tournament_size: 2, elites: 1, mutation_rate: 0.1 };
        let parents = evaluated(5, &NB201_GENOME_SHAPE, &mut rng);
        let streams = ChildStreams::new(1);
        let shapes = parents.individuals[0].shapes();
        let mut children: Vec<_> = child_slots(&parents, &params, 1)
            .unwrap()
            .into_iter()
            .map(|slot| (slot, fresh_child(&shapes, slot, &streams)))
            .collect();
        children.pop();
        assert_eq!(
            assemble_generation(&parents, &params, 1, children),
            Err(EvolutionError::PopulationSize { expected: 5, got: 4 })
        );
    }

    #[test]
    fn children_record_two_parents_from_the_previous_generation() {
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        let params = GaParams { population: 10, tournament_size: 3, elites: 2, mutation_rate: 0.1 };
        let parents = evaluated(10, &DARTS_GENOME_SHAPE, &mut rng);
        let next = next_generation(&parents, &params, 1, &ChildStreams::new(7)).unwrap();
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
        let next = next_generation(&parents, &params, 1, &ChildStreams::new(7)).unwrap();
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
        let next = random_generation(&parents, &params, 1, &ChildStreams::new(7)).unwrap();
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
                random_generation(&parents, &params, 1, &ChildStreams::new(7)).unwrap()
            } else {
                next_generation(&parents, &params, 1, &ChildStreams::new(7)).unwrap()
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
