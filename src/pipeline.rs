//! Runs a search through the actor pipeline: spawns the controller (which spawns the rest) on a
//! tokio runtime, then relays the pipeline's events to an observer until the outcome arrives.
//! `evnas search` and `evnas serve` both run searches this way.

use crossbeam_channel::{select, Receiver};
use kameo::actor::Spawn;
use kameo::prelude::ActorRef;

use crate::actors::controller::{ControllerArgs, Outcome, SearchController, Start};
use crate::actors::events::{Events, PipelineEvent};
use crate::actors::PipelineError;
use crate::search::{SearchEngine, SearchObserver};
use crate::stop::StopFlag;

/// A search the pipeline is running.
pub struct RunningSearch {
    pub events: Receiver<PipelineEvent>,
    pub done: Receiver<Outcome>,
    pub controller: ActorRef<SearchController>,
}

/// Starts `engine`'s search on the current tokio runtime (multi-threaded: the libtorch actors
/// run on threads of their own). Raising `stop` stops it within a batch.
pub async fn start(engine: SearchEngine, stop: StopFlag) -> RunningSearch {
    let (events_in, events) = crossbeam_channel::unbounded();
    let (done_in, done) = crossbeam_channel::bounded(1);
    let controller = SearchController::spawn(ControllerArgs {
        parts: engine.into_parts(),
        events: Events::new(events_in),
        stop,
        done: done_in,
    });
    // A controller that failed to start drops `done_in`: `wait` then reports it.
    let _ = controller.tell(Start).send().await;
    RunningSearch { events, done, controller }
}

/// Whoever hears a running search's events.
pub trait EventSink {
    fn event(&mut self, event: &PipelineEvent);
}

/// The events a [`SearchObserver`] (the foreground search's progress bars) follows.
pub struct ToObserver<'a>(pub &'a mut dyn SearchObserver);

impl EventSink for ToObserver<'_> {
    fn event(&mut self, event: &PipelineEvent) {
        match event {
            PipelineEvent::PhaseStarted { generation, phase, total } => {
                self.0.phase_started(*generation, *phase, *total)
            }
            PipelineEvent::Advanced { phase, done } => self.0.advanced(*phase, *done),
            PipelineEvent::GenerationFinished { record, checkpoint, .. } => {
                self.0.generation_finished(record, checkpoint)
            }
            PipelineEvent::GenerationStarted { .. }
            | PipelineEvent::CheckpointWritten { .. }
            | PipelineEvent::SettingsApplied { .. } => {}
        }
    }
}

/// Two sinks hearing the same events.
impl<A: EventSink, B: EventSink> EventSink for (A, B) {
    fn event(&mut self, event: &PipelineEvent) {
        self.0.event(event);
        self.1.event(event);
    }
}

impl<S: EventSink + ?Sized> EventSink for &mut S {
    fn event(&mut self, event: &PipelineEvent) {
        (**self).event(event);
    }
}

impl RunningSearch {
    /// Blocks until the search ends, passing every event to `sink` on this thread.
    pub fn wait(self, sink: &mut dyn EventSink) -> Outcome {
        loop {
            select! {
                recv(self.events) -> event => {
                    if let Ok(event) = event {
                        sink.event(&event);
                    }
                }
                recv(self.done) -> outcome => {
                    for event in self.events.try_iter() {
                        sink.event(&event);
                    }
                    return outcome.unwrap_or(Err(PipelineError::ControllerLost));
                }
            }
        }
    }
}

/// Runs `engine`'s search to its end on a runtime of its own (the foreground `evnas search`).
pub fn run(engine: SearchEngine, sink: &mut dyn EventSink, stop: &StopFlag) -> Outcome {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("evnas-pipeline")
        .enable_all()
        .build()
        .map_err(|e| PipelineError::Failed {
            actor: "pipeline".into(),
            error: crate::search::SearchError::Model(format!("cannot start the tokio runtime: {e}")),
        })?;
    let running = runtime.block_on(start(engine, stop.clone()));
    let outcome = running.wait(sink);
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    outcome
}
