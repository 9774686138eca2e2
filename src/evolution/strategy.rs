//! How a search forms each generation.

use serde::{Deserialize, Serialize};

/// How each generation's population is formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// The paper's genetic algorithm: elitism, tournament selection, crossover, mutation.
    Evolution,
    /// Baseline (beyond the paper): fresh random individuals each generation, same budget.
    Random,
}
