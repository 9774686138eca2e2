//! One generation as plain transitions of the search state (Sinha & Chen 2021, Algorithm 1):
//! [`SearchState::plan`] → (supernet training, fitness: done by whoever owns the weights) →
//! [`SearchState::record`] → [`SearchState::breed`]. The state machine knows no tensor beyond
//! the host-side architectures it hands out and no thread: the engine calls these in order, and
//! so can a controller actor, with training and fitness measured elsewhere.

use serde::{Deserialize, Serialize};

use crate::evolution::Strategy;
use crate::evolution::{self, Fitness, GaParams, Population};
use crate::model::ArchWeights;
use crate::train::schedule::cosine_lr;
use crate::train::supernet_epoch::EpochReport;

use super::engine::SearchState;
use super::record::{GenerationRecord, IndividualRecord, TrainSummary};
use super::settings::{HotSettings, SearchSettings};
use super::SearchError;

/// The phases of one generation, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GenerationPhase {
    /// One pass over the training split, batch i through individual i mod P.
    Train,
    /// Validation accuracy of every individual through the shared weights.
    Evaluate,
    /// Rank by fitness, record the generation.
    Record,
    /// Elitism, tournament selection, crossover, mutation.
    Breed,
    /// The state at the generation boundary made durable.
    Checkpoint,
}

/// One individual as training and fitness need it: owned data, ready to travel to a thread.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedIndividual {
    pub id: u64,
    /// Position in the population: training batch i goes to position i mod P, and the augmented
    /// validation option draws per position.
    pub position: usize,
    /// Softmax weights of the decoded architecture α^d.
    pub architecture: ArchWeights,
}

/// What one generation will train and measure.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationPlan {
    /// 0-based.
    pub generation: usize,
    /// The budget in force: generations the search runs.
    pub generations: usize,
    /// Validation images each fitness is measured on (0: all).
    pub fitness_subset: usize,
    pub learning_rate: f64,
    pub individuals: Vec<PlannedIndividual>,
}

impl GenerationPlan {
    /// The architectures in population order (training batch i uses entry i mod P).
    pub fn architectures(&self) -> Vec<ArchWeights> {
        self.individuals.iter().map(|i| i.architecture.clone()).collect()
    }
}

/// How the next generation is bred.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Breeding {
    /// 0-based generation the children are born in.
    pub generation: u32,
    /// `params.population`: the parents bred from (and the bred population's size before
    /// `fresh` are added).
    pub params: GaParams,
    pub strategy: Strategy,
    /// Fresh random individuals added after the bred ones: a population grown by a reload.
    pub fresh: usize,
}

/// How far a generation got before the search was stopped in its middle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoppedGeneration {
    /// In training, after `report.batches` batches.
    Training { report: EpochReport },
    /// In fitness: training done, these individuals measured, in `seconds` of the fitness
    /// phase (0 in checkpoints from before it was recorded).
    Fitness {
        train: TrainSummary,
        measured: Vec<MeasuredFitness>,
        #[serde(default)]
        seconds: f64,
    },
}

impl StoppedGeneration {
    /// Where it stopped, for people: "after training batch 3", "in fitness, 2 individual(s)
    /// measured".
    pub fn describe(&self) -> String {
        match self {
            StoppedGeneration::Training { report } => format!("after training batch {}", report.batches),
            StoppedGeneration::Fitness { measured, .. } => {
                format!("in fitness, {} individual(s) measured", measured.len())
            }
        }
    }
}

/// One individual's measured fitness, by id.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MeasuredFitness {
    pub id: u64,
    pub fitness: Fitness,
    pub images: u64,
    /// Time the measurement took, and the part of it spent waiting for batches.
    pub seconds: f64,
    pub data_wait_seconds: f64,
}

impl SearchState {
    /// The plan of generation `next_generation`: its learning rate (cosine over the configured
    /// generations, as the reference's scheduler steps once per generation) and each individual's
    /// decoded architecture.
    ///
    /// The cosine runs over the budget in force (`settings.generations`): a budget changed by a
    /// reload reshapes the rest of the schedule so that it still ends at `learning_rate_min` in
    /// the last generation (from the generation it applies to; earlier ones keep their rates).
    pub fn plan(&self, settings: &SearchSettings) -> Result<GenerationPlan, SearchError> {
        let g = self.next_generation;
        let budget = self.settings.generations;
        let learning_rate =
            cosine_lr(settings.training.learning_rate, settings.training.learning_rate_min, g, budget);
        let individuals = self
            .population
            .individuals
            .iter()
            .enumerate()
            .map(|(position, ind)| {
                let decoded = settings.space.decode(&ind.genome)?;
                let architecture =
                    ArchWeights::from_matrices(&decoded).map_err(|e| SearchError::Model(e.to_string()))?;
                Ok(PlannedIndividual { id: ind.id, position, architecture })
            })
            .collect::<Result<Vec<_>, SearchError>>()?;
        Ok(GenerationPlan {
            generation: g,
            generations: budget,
            fitness_subset: self.settings.fitness_subset,
            learning_rate,
            individuals,
        })
    }

    /// Records the measured generation: fitness by id (in any order), the population ranked best
    /// first, the generation appended to the history.
    pub fn record(
        &mut self,
        settings: &SearchSettings,
        plan: &GenerationPlan,
        train: TrainSummary,
        fitness: &[MeasuredFitness],
        evaluation_seconds: f64,
    ) -> Result<GenerationRecord, SearchError> {
        for measured in fitness {
            self.population.set_fitness(measured.id, measured.fitness)?;
        }
        self.population.sort_by_fitness()?;
        let space = settings.space;
        let individuals = self
            .population
            .individuals
            .iter()
            .enumerate()
            .map(|(index, ind)| {
                let fitness =
                    ind.fitness.ok_or(evolution::EvolutionError::MissingFitness { id: ind.id, index })?;
                Ok(IndividualRecord {
                    id: ind.id,
                    parents: ind.parents.clone(),
                    born: ind.born,
                    architecture: space.describe(&ind.genome)?.text,
                    fitness,
                })
            })
            .collect::<Result<Vec<_>, SearchError>>()?;
        let genomes: Vec<_> = self.population.individuals.iter().map(|i| i.genome.as_slice()).collect();
        let diversity = space.diversity(&genomes)?;
        let record = GenerationRecord {
            generation: plan.generation + 1,
            settings: self.settings,
            learning_rate: plan.learning_rate,
            train,
            evaluation_seconds,
            evaluated_images: fitness.iter().map(|m| m.images).sum(),
            fitness: self.population.fitness_stats()?,
            diversity,
            best: individuals[0].clone(),
            individuals,
        };
        self.history.push(record.clone());
        Ok(record)
    }

    /// Puts `settings` in force from the next generation on (a reload): its population is
    /// bred with them and it runs with them. Call between [`Self::record`] and
    /// [`Self::prepare_breeding`].
    pub fn apply_settings(&mut self, settings: HotSettings) {
        self.settings = settings;
    }

    /// What breeding the next generation takes, with the settings in force; `None` after the
    /// last generation (its population stays as the search's result). A population shrunk by a
    /// reload keeps its fittest as the parents; a grown one breeds as many children as before
    /// and adds fresh random individuals.
    pub fn prepare_breeding(&mut self, strategy: Strategy) -> Option<Breeding> {
        let next = self.next_generation + 1;
        if next >= self.settings.generations {
            return None;
        }
        let wanted = self.settings.population;
        let parents = wanted.min(self.population.len());
        self.population.individuals.truncate(parents);
        let mut params = self.settings.ga_params();
        params.population = parents;
        // Selection and elitism can only draw on the parents there are.
        params.tournament_size = params.tournament_size.min(parents);
        params.elites = params.elites.min(parents.saturating_sub(1));
        Some(Breeding { generation: next as u32, params, strategy, fresh: wanted - parents })
    }

    /// A finished search whose budget a reload raised: steps back to the boundary of its last
    /// generation, so that [`Self::prepare_breeding`] breeds its final (ranked) population into
    /// the next one, as it would have been bred had the budget been larger from the start.
    /// False (and nothing changed) when the search is not such a one.
    pub fn reopen(&mut self) -> bool {
        let at_final = self.next_generation > 0 && self.history.len() == self.next_generation;
        if !at_final || self.is_finished() || self.population.check_sorted().is_err() {
            return false;
        }
        self.next_generation -= 1;
        true
    }

    /// Moves to the next generation boundary with the bred population (`None` after the last).
    pub fn advance(&mut self, bred: Option<Population>) {
        if let Some(population) = bred {
            self.population = population;
        }
        self.next_generation += 1;
    }
}
