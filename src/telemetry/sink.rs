//! The pipeline's events as telemetry: what `evnas serve` (and `evnas search
//! --metrics-listen`) hears from a running search, turned into log lines and metrics.

use crate::actors::controller::CheckpointKind;
use crate::actors::events::PipelineEvent;
use crate::pipeline::EventSink;
use crate::search::Phase;

use super::events::{
    CheckpointWritten, GenerationFinished, GenerationStarted, PhaseEntered, SettingsApplied,
};

pub struct Telemetry {
    /// Log a line per generation (the daemon); the foreground search prints its own.
    log_generations: bool,
    /// Steps of the running phase.
    total: u64,
    /// Called with every generation that finishes (sd_notify STATUS, …).
    on_generation: Box<dyn FnMut(&crate::search::GenerationRecord) + Send>,
    /// Called on every step of progress (the watchdog's heartbeat).
    on_progress: Box<dyn FnMut() + Send>,
}

impl Telemetry {
    pub fn new(log_generations: bool) -> Self {
        Self { log_generations, total: 0, on_generation: Box::new(|_| {}), on_progress: Box::new(|| {}) }
    }

    pub fn on_generation(mut self, f: impl FnMut(&crate::search::GenerationRecord) + Send + 'static) -> Self {
        self.on_generation = Box::new(f);
        self
    }

    pub fn on_progress(mut self, f: impl FnMut() + Send + 'static) -> Self {
        self.on_progress = Box::new(f);
        self
    }
}

impl EventSink for Telemetry {
    fn event(&mut self, event: &PipelineEvent) {
        match event {
            PipelineEvent::GenerationStarted { generation, learning_rate, settings } => {
                GenerationStarted {
                    generation: *generation,
                    learning_rate: *learning_rate,
                    settings: *settings,
                }
                .emit();
                (self.on_progress)();
            }
            PipelineEvent::PhaseStarted { phase, total, .. } => {
                self.total = *total;
                PhaseEntered(match phase {
                    Phase::Train => "train",
                    Phase::Evaluate => "evaluate",
                })
                .emit();
                (self.on_progress)();
            }
            PipelineEvent::Advanced { phase, done } => {
                if *phase == Phase::Evaluate && *done == self.total {
                    PhaseEntered("breed").emit();
                }
                (self.on_progress)();
            }
            PipelineEvent::GenerationFinished { record, timings, checkpoint } => {
                GenerationFinished { record, timings, checkpoint, log: self.log_generations }.emit();
                (self.on_generation)(record);
                (self.on_progress)();
            }
            PipelineEvent::CheckpointWritten { generation, dir, kind, seconds, bytes } => {
                let kind = match kind {
                    CheckpointKind::Boundary => "boundary",
                    CheckpointKind::Stop => "stop",
                };
                CheckpointWritten { generation: *generation, dir, kind, seconds: *seconds, bytes: *bytes }
                    .emit();
                (self.on_progress)();
            }
            PipelineEvent::SettingsApplied { generation, settings, changes } => {
                SettingsApplied { generation: *generation, settings: *settings, changes }.emit();
            }
        }
    }
}
