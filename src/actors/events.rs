//! What the pipeline tells whoever runs it (progress bars, log lines, later metrics): events
//! sent on a channel that never blocks an actor.

use std::path::PathBuf;

use crossbeam_channel::Sender;

use crate::search::{GenerationRecord, GenerationTimings, HotSettings, Phase};

use super::controller::CheckpointKind;

#[derive(Debug, Clone)]
pub enum PipelineEvent {
    /// Generation `generation` (1-based) starts training with these settings.
    GenerationStarted { generation: usize, learning_rate: f64, settings: HotSettings },
    /// `generation` is 1-based; `total` counts the phase's steps (batches, individuals).
    PhaseStarted { generation: usize, phase: Phase, total: u64 },
    /// `done` steps of the running phase are complete.
    Advanced { phase: Phase, done: u64 },
    /// A generation is recorded and its checkpoint handed to the writer (to go to `checkpoint`).
    GenerationFinished { record: Box<GenerationRecord>, timings: Box<GenerationTimings>, checkpoint: PathBuf },
    /// A checkpoint is durable in `dir`: of the boundary before generation `generation`
    /// (0-based), or of a search stopped in that generation.
    CheckpointWritten { generation: u32, dir: PathBuf, kind: CheckpointKind, seconds: f64, bytes: u64 },
    /// A reload's settings are in force from generation `generation` (1-based) on.
    SettingsApplied { generation: usize, settings: HotSettings, changes: Vec<SettingChange> },
}

/// One changed setting: its config key, old and new value.
pub type SettingChange = (&'static str, String, String);

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
