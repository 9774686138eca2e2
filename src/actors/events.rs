//! What the pipeline tells whoever runs it (progress bars, log lines, later metrics): events
//! sent on a channel that never blocks an actor.

use std::path::PathBuf;

use crossbeam_channel::Sender;

use crate::search::{GenerationRecord, Phase};

#[derive(Debug, Clone)]
pub enum PipelineEvent {
    /// `generation` is 1-based; `total` counts the phase's steps (batches, individuals).
    PhaseStarted { generation: usize, phase: Phase, total: u64 },
    /// `done` steps of the running phase are complete.
    Advanced { phase: Phase, done: u64 },
    /// A generation is recorded and its checkpoint handed to the writer (to go to `checkpoint`).
    GenerationFinished { record: Box<GenerationRecord>, checkpoint: PathBuf },
    /// The checkpoint of the boundary before generation `generation` (0-based) is durable.
    CheckpointWritten { generation: u32, dir: PathBuf },
}

/// The sending side, shared by every actor; a closed receiver is not an actor's problem.
#[derive(Debug, Clone)]
pub struct Events(Sender<PipelineEvent>);

impl Events {
    pub fn new(sender: Sender<PipelineEvent>) -> Self {
        Self(sender)
    }

    pub fn send(&self, event: PipelineEvent) {
        let _ = self.0.send(event);
    }
}
