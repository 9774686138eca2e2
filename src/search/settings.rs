//! The settings an operator may change while a search runs (a config reload): the GA's
//! hyper-parameters, the generation budget and the fitness subset. A generation runs with the
//! settings in force when it starts; its population was bred with them. They are kept in the
//! search state and in each generation's record, so a resumed search goes on with the values in
//! force, not with those it was started with.

use serde::{Deserialize, Serialize};

use crate::evolution::GaParams;

/// (`Default`, all zeros, stands for "not recorded": histories written before evnas recorded them.)
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct HotSettings {
    pub population: usize,
    /// The budget: the search ends after this many generations.
    pub generations: usize,
    pub tournament_size: usize,
    pub elites: usize,
    pub mutation_rate: f64,
    /// Validation images each fitness is measured on (a fixed random subset); 0: all of them.
    pub fitness_subset: usize,
}

impl HotSettings {
    /// The GA's parameters for breeding `parents` individuals into a population of
    /// `self.population`: selection and crossover see at most the parents there are.
    pub fn ga_params(&self) -> GaParams {
        GaParams {
            population: self.population,
            tournament_size: self.tournament_size,
            elites: self.elites,
            mutation_rate: self.mutation_rate,
        }
    }

    /// The names and values of the fields that differ from `other`, for log lines.
    pub fn changes_from(&self, other: &HotSettings) -> Vec<(&'static str, String, String)> {
        let mut changes = Vec::new();
        let mut field = |name, old: String, new: String| {
            if old != new {
                changes.push((name, old, new));
            }
        };
        field("search.population", other.population.to_string(), self.population.to_string());
        field("search.generations", other.generations.to_string(), self.generations.to_string());
        field("search.tournament_size", other.tournament_size.to_string(), self.tournament_size.to_string());
        field("search.elites", other.elites.to_string(), self.elites.to_string());
        field("search.mutation_rate", other.mutation_rate.to_string(), self.mutation_rate.to_string());
        field("fitness.subset", other.fitness_subset.to_string(), self.fitness_subset.to_string());
        changes
    }
}
