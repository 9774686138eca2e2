//! What a run records per generation: one JSON line in `generations.jsonl`, also kept in the
//! checkpointed state so a resumed run rewrites exactly the same history.

use serde::{Deserialize, Serialize};

use crate::evolution::{Fitness, FitnessStats};

use super::settings::HotSettings;

/// One evaluated individual.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndividualRecord {
    pub id: u64,
    pub parents: Vec<u64>,
    pub born: u32,
    /// The decoded architecture: DARTS notation, or a NAS-Bench-201 architecture string.
    pub architecture: String,
    pub fitness: Fitness,
}

/// Supernet training of one generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSummary {
    pub batches: usize,
    pub images: u64,
    pub loss: f64,
    pub top1: f64,
    pub seconds: f64,
    pub data_wait_seconds: f64,
    /// Of `seconds`, the leader's time in gradient all-reduces (several devices only; 0 and
    /// absent from the history with one). With NCCL, the host's time to queue them; with Gloo
    /// on a GPU, from the gradients' arrival in host memory (the wait for them is training).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub communication_seconds: f64,
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

/// One generation, best individual first in `individuals`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationRecord {
    /// 1-based, as the reference logs generations.
    pub generation: usize,
    /// The settings it was bred and run with (changed by reloads); zeros in older histories.
    #[serde(default)]
    pub settings: HotSettings,
    pub learning_rate: f64,
    pub train: TrainSummary,
    pub evaluation_seconds: f64,
    pub evaluated_images: u64,
    pub fitness: FitnessStats,
    /// Mean pairwise Hamming distance of the decoded genotypes, 0..1 (0: all alike; also in
    /// older histories, which did not record it).
    #[serde(default)]
    pub diversity: f64,
    pub best: IndividualRecord,
    pub individuals: Vec<IndividualRecord>,
}

impl GenerationRecord {
    /// Its numbers in one line: learning rate; training loss, top-1 and speed; fitness best,
    /// mean, worst and speed.
    pub fn summary(&self) -> String {
        format!(
            "lr {:.4}  train loss {:.3} top-1 {:5.2}% ({:.0} img/s)  fitness best {:5.2}% mean {:5.2}% worst {:5.2}% ({:.0} img/s)",
            self.learning_rate,
            self.train.loss,
            self.train.top1,
            self.train.images as f64 / self.train.seconds.max(1e-9),
            self.fitness.best,
            self.fitness.mean,
            self.fitness.worst,
            self.evaluated_images as f64 / self.evaluation_seconds.max(1e-9),
        )
    }
}
