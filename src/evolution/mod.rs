//! The EvNAS genetic algorithm (Sinha & Chen 2021, §3.2–3.3): a population of architecture
//! parameters α evolved by tournament selection, uniform per-edge crossover and per-edge mutation,
//! with elitism. Mirrors the reference's `ga.py` (`GeneticAlgorithm`), `chromosomes.py`
//! (`chromosome`) and `population.py` (`Population`).
//!
//! The code is space-agnostic: a genome is a list of [`AlphaMatrix`](crate::space::AlphaMatrix), one
//! per cell type ([`DARTS_GENOME_SHAPE`]: normal + reduce, 14×8 each; [`NB201_GENOME_SHAPE`]: one 6×5
//! cell). The operators draw from a caller-supplied `Rng`; a search gives each child its own seeded
//! stream per stage ([`ChildStreams`]), so a run is reproducible and resumable without any
//! generator state to save.

pub mod crossover;
pub mod generation;
pub mod individual;
pub mod mutation;
pub mod population;
pub mod selection;
pub mod strategy;
pub mod streams;

pub use crossover::crossover;
pub use generation::{
    add_fresh, assemble_generation, child_slots, cross_parents, fresh_child, mutate_child, next_generation,
    random_generation, select_parents, ChildSlot, GaParams,
};
pub use individual::{CellShape, Fitness, Individual, DARTS_GENOME_SHAPE, NB201_GENOME_SHAPE};
pub use mutation::mutate;
pub use population::{FitnessStats, Population};
pub use selection::{tournament_sample, tournament_select, tournament_winner};
pub use strategy::Strategy;
pub use streams::{ChildStreams, GaStage};

/// What can go wrong when evolving a population.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvolutionError {
    #[error("invalid GA parameters: {}", problems.join("; "))]
    InvalidParams { problems: Vec<String> },
    #[error("tournament size {tournament_size} is not in 1..={population} (the population size)")]
    TournamentSize { tournament_size: usize, population: usize },
    #[error("tournament sample position {index} is outside the population of {population}")]
    SampleOutOfRange { index: usize, population: usize },
    #[error("individual {id} (position {index}) has no fitness; evaluate the population first")]
    MissingFitness { id: u64, index: usize },
    #[error("population is empty")]
    EmptyPopulation,
    #[error("population has {got} individuals but the GA parameters say {expected}")]
    PopulationSize { expected: usize, got: usize },
    #[error("population is not sorted by fitness: position {index} (top1 {next}) beats position {} (top1 {previous})", index - 1)]
    NotSorted { index: usize, previous: f64, next: f64 },
    #[error("no individual has id {id}")]
    UnknownIndividual { id: u64 },
    #[error("genomes of individuals {left} and {right} differ in shape: {reason}")]
    GenomeMismatch { left: u64, right: u64, reason: String },
}
