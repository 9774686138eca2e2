//! Where a generation's time went, as the pipeline measured it: one line per generation in
//! `RUN_DIR/timings.jsonl` (performance, kept apart from the results in `generations.jsonl`).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GenerationTimings {
    /// 1-based.
    pub generation: usize,
    /// Wall time from the start of its training to the start of the next generation's (for the
    /// last: to its checkpoint being durable).
    pub seconds: f64,
    /// This run's training (a generation resumed after a stop: since the resume; the
    /// generation's record in `generations.jsonl` has the whole).
    pub train_seconds: f64,
    /// Of `train_seconds`, waiting for the next training batch.
    pub train_data_wait_seconds: f64,
    /// Wall time of the fitness phase (snapshot handed over → last fitness in), this run's as
    /// `train_seconds`.
    pub fitness_seconds: f64,
    /// Evaluators' busy time, summed over evaluators.
    pub fitness_busy_seconds: f64,
    /// Of `fitness_busy_seconds`, waiting for validation batches.
    pub fitness_data_wait_seconds: f64,
    /// Selection, crossover and mutation of the next generation (ranked population out →
    /// last child in).
    pub ga_seconds: f64,
    /// The trainer copying the boundary's checkpoint to host bytes (on the critical path).
    pub checkpoint_capture_seconds: f64,
    /// The writer hashing, fsyncing and renaming it (while the next generation trains).
    pub checkpoint_write_seconds: f64,
    /// The controller holding the next boundary until the previous checkpoint was durable.
    pub checkpoint_wait_seconds: f64,
}
