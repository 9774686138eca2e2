//! The population: individuals in rank order plus the id counter of the run.
//!
//! Corresponds to the reference's `Population` (population.py): `Population(pop_size, ...)` draws
//! random chromosomes and `pop_sort` orders them by fitness, best first.

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::individual::{CellShape, Fitness, Individual};
use super::streams::{ChildStreams, GaStage};
use super::EvolutionError;

/// The individuals of one generation and the next unused individual id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Population {
    pub individuals: Vec<Individual>,
    /// Ids are handed out from here so that they stay unique over the whole run, across
    /// generations and checkpoints.
    pub next_id: u64,
}

/// Top-1 summary of an evaluated population (percent).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FitnessStats {
    pub best: f64,
    pub mean: f64,
    pub worst: f64,
}

impl Population {
    /// `size` random individuals (ids 0..size) born in `generation`.
    pub fn random<R: Rng + ?Sized>(size: usize, shapes: &[CellShape], generation: u32, rng: &mut R) -> Self {
        let mut population = Self { individuals: Vec::with_capacity(size), next_id: 0 };
        for _ in 0..size {
            let id = population.allocate_id();
            population.individuals.push(Individual::random(id, generation, shapes, rng));
        }
        population
    }

    /// `size` random individuals (ids 0..size) of generation 0, individual k drawn from its own
    /// stream (a search's initial population).
    pub fn fresh(size: usize, shapes: &[CellShape], streams: &ChildStreams) -> Self {
        let individuals = (0..size)
            .map(|k| {
                let rng = &mut streams.rng(0, k, GaStage::Fresh);
                Individual::random(k as u64, 0, shapes, rng)
            })
            .collect();
        Self { individuals, next_id: size as u64 }
    }

    /// An empty population whose ids continue after `next_id`.
    pub fn empty(next_id: u64) -> Self {
        Self { individuals: Vec::new(), next_id }
    }

    /// Reserves and returns a fresh id.
    pub fn allocate_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    pub fn len(&self) -> usize {
        self.individuals.len()
    }

    pub fn is_empty(&self) -> bool {
        self.individuals.is_empty()
    }

    pub fn get(&self, id: u64) -> Option<&Individual> {
        self.individuals.iter().find(|i| i.id == id)
    }

    pub fn get_mut(&mut self, id: u64) -> Option<&mut Individual> {
        self.individuals.iter_mut().find(|i| i.id == id)
    }

    /// Records the fitness of individual `id`: by id, never by position, so that results coming
    /// back in any order (from several evaluators) land on the right individual.
    pub fn set_fitness(&mut self, id: u64, fitness: Fitness) -> Result<(), EvolutionError> {
        let individual = self.get_mut(id).ok_or(EvolutionError::UnknownIndividual { id })?;
        individual.fitness = Some(fitness);
        Ok(())
    }

    /// Position and id of the first individual without a fitness, if any.
    pub fn first_unevaluated(&self) -> Option<(usize, u64)> {
        self.individuals.iter().enumerate().find(|(_, ind)| ind.fitness.is_none()).map(|(i, ind)| (i, ind.id))
    }

    fn require_evaluated(&self) -> Result<(), EvolutionError> {
        match self.first_unevaluated() {
            Some((index, id)) => Err(EvolutionError::MissingFitness { id, index }),
            None => Ok(()),
        }
    }

    /// Orders the individuals by top-1, best first. The sort is stable, so equally fit individuals
    /// keep their relative order, as Python's `list.sort(key=..., reverse=True)` does.
    pub fn sort_by_fitness(&mut self) -> Result<(), EvolutionError> {
        self.require_evaluated()?;
        // Every fitness is present (checked above); the `map_or` only satisfies the type.
        let key = |ind: &Individual| ind.fitness.map_or(f64::NEG_INFINITY, |f| f.rank_key());
        self.individuals.sort_by(|a, b| key(b).total_cmp(&key(a)));
        Ok(())
    }

    /// Checks that every individual is evaluated and the order is best first.
    pub fn check_sorted(&self) -> Result<(), EvolutionError> {
        self.require_evaluated()?;
        let keys: Vec<f64> =
            self.individuals.iter().map(|i| i.fitness.map_or(f64::NEG_INFINITY, |f| f.rank_key())).collect();
        for index in 1..keys.len() {
            if keys[index] > keys[index - 1] {
                return Err(EvolutionError::NotSorted {
                    index,
                    previous: keys[index - 1],
                    next: keys[index],
                });
            }
        }
        Ok(())
    }

    /// The evaluated individual with the highest top-1 (the first of equals), whatever the order.
    pub fn best(&self) -> Option<&Individual> {
        let mut best: Option<(&Individual, f64)> = None;
        for ind in &self.individuals {
            if let Some(f) = ind.fitness {
                if best.is_none_or(|(_, key)| f.rank_key() > key) {
                    best = Some((ind, f.rank_key()));
                }
            }
        }
        best.map(|(ind, _)| ind)
    }

    /// Best, mean and worst top-1 of a fully evaluated, non-empty population.
    pub fn fitness_stats(&self) -> Result<FitnessStats, EvolutionError> {
        if self.is_empty() {
            return Err(EvolutionError::EmptyPopulation);
        }
        self.require_evaluated()?;
        let top1: Vec<f64> = self.individuals.iter().filter_map(|i| i.fitness.map(|f| f.top1)).collect();
        let best = top1.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let worst = top1.iter().copied().fold(f64::INFINITY, f64::min);
        let mean = top1.iter().sum::<f64>() / top1.len() as f64;
        Ok(FitnessStats { best, mean, worst })
    }

    /// Forgets every fitness: after the supernet is trained further, old scores are stale.
    pub fn clear_fitness(&mut self) {
        for ind in &mut self.individuals {
            ind.fitness = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evolution::individual::{Fitness, DARTS_GENOME_SHAPE};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn fit(top1: f64) -> Option<Fitness> {
        Some(Fitness { top1, top5: 0.0, loss: 0.0 })
    }

    fn population_with(top1: &[f64]) -> Population {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut pop = Population::random(top1.len(), &DARTS_GENOME_SHAPE, 0, &mut rng);
        for (ind, &t) in pop.individuals.iter_mut().zip(top1) {
            ind.fitness = fit(t);
        }
        pop
    }

    fn ids(pop: &Population) -> Vec<u64> {
        pop.individuals.iter().map(|i| i.id).collect()
    }

    #[test]
    fn random_population_has_sequential_ids() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let pop = Population::random(5, &DARTS_GENOME_SHAPE, 0, &mut rng);
        assert_eq!(ids(&pop), vec![0, 1, 2, 3, 4]);
        assert_eq!(pop.next_id, 5);
    }

    #[test]
    fn sort_is_descending_and_stable_for_ties() {
        let mut pop = population_with(&[10.0, 30.0, 20.0, 30.0, 10.0]);
        pop.sort_by_fitness().unwrap();
        // Ties keep their original order: 1 before 3, 0 before 4 (Python's reverse sort does too).
        assert_eq!(ids(&pop), vec![1, 3, 2, 0, 4]);
        pop.check_sorted().unwrap();
    }

    #[test]
    fn nan_sorts_last() {
        let mut pop = population_with(&[f64::NAN, 5.0, 1.0]);
        pop.sort_by_fitness().unwrap();
        assert_eq!(ids(&pop), vec![1, 2, 0]);
    }

    #[test]
    fn sort_refuses_unevaluated_individual() {
        let mut pop = population_with(&[1.0, 2.0, 3.0]);
        pop.individuals[1].fitness = None;
        assert_eq!(pop.sort_by_fitness(), Err(EvolutionError::MissingFitness { id: 1, index: 1 }));
    }

    #[test]
    fn check_sorted_reports_the_first_inversion() {
        let pop = population_with(&[3.0, 2.0, 2.5]);
        assert_eq!(pop.check_sorted(), Err(EvolutionError::NotSorted { index: 2, previous: 2.0, next: 2.5 }));
    }

    #[test]
    fn best_and_stats() {
        let pop = population_with(&[40.0, 70.0, 70.0, 10.0]);
        assert_eq!(pop.best().map(|i| i.id), Some(1));
        let stats = pop.fitness_stats().unwrap();
        assert_eq!(stats, FitnessStats { best: 70.0, mean: 47.5, worst: 10.0 });
    }

    #[test]
    fn stats_of_empty_population_is_an_error() {
        assert_eq!(Population::empty(0).fitness_stats(), Err(EvolutionError::EmptyPopulation));
    }
}
