//! Progress of a running search, reported to whoever drives it (the CLI's progress bars today,
//! the daemon's metrics later).

use std::path::Path;

use super::record::GenerationRecord;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Supernet training; progress counts batches.
    Train,
    /// Fitness evaluation; progress counts individuals.
    Evaluate,
}

/// Callbacks of the search loop; every method has a no-op default.
pub trait SearchObserver {
    /// `generation` is 1-based; `total` is the phase's number of steps.
    fn phase_started(&mut self, _generation: usize, _phase: Phase, _total: u64) {}
    /// `done` steps of the current phase are complete.
    fn advanced(&mut self, _phase: Phase, _done: u64) {}
    /// A generation is recorded and its checkpoint is being written to `checkpoint` (durable
    /// before the next generation's checkpoint is handed over, and before the search returns).
    fn generation_finished(&mut self, _record: &GenerationRecord, _checkpoint: &Path) {}
}

/// Observes nothing.
pub struct Silent;

impl SearchObserver for Silent {}
