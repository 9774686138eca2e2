//! The supernet trainer actor: owns the supernet, its momentum and the training data on a
//! thread of its own (libtorch never runs on tokio workers). Trains a generation when told,
//! hands the controller a weight snapshot for the evaluators, and captures checkpoints as host
//! bytes (the controller passes them to the writer). Its batches come from the prefetch actor,
//! asked for the next generation's as soon as this one is trained, so they load while fitness
//! runs.

use std::sync::Arc;

use kameo::error::Infallible;
use kameo::error::SendError;
use kameo::message::{Context, Message};
use kameo::prelude::ActorRef;
use kameo::Actor;

use crate::search::record::TrainSummary;
use crate::search::{
    on_phase_thread, GenerationPlan, Phase, SearchError, SearchState, SupernetTrainer, TrainBatches, Training,
};
use crate::stop::StopFlag;
use crate::telemetry;
use crate::train::supernet_epoch::EpochReport;
use tch::Device;

use super::controller::{ActorFailed, Captured, CheckpointKind, SearchController, Trained, TrainingStopped};
use super::events::{Events, PipelineEvent};
use super::prefetch::{PrefetchActor, StartEpoch, NAME as PREFETCH_NAME};

pub const NAME: &str = "trainer";

pub struct TrainerActor {
    trainer: SupernetTrainer,
    prefetch: ActorRef<PrefetchActor>,
    device: Device,
    controller: ActorRef<SearchController>,
    events: Events,
    stop: StopFlag,
    /// The batches of a generation started ahead of its training.
    ahead: Option<(usize, TrainBatches)>,
}

pub struct TrainerArgs {
    pub trainer: SupernetTrainer,
    /// Hands out the training epochs.
    pub prefetch: ActorRef<PrefetchActor>,
    /// Where batches go.
    pub device: Device,
    pub controller: ActorRef<SearchController>,
    pub events: Events,
    pub stop: StopFlag,
}

impl Actor for TrainerActor {
    type Args = TrainerArgs;
    type Error = Infallible;

    async fn on_start(args: Self::Args, _: ActorRef<Self>) -> Result<Self, Self::Error> {
        let TrainerArgs { trainer, prefetch, device, controller, events, stop } = args;
        Ok(Self { trainer, prefetch, device, controller, events, stop, ahead: None })
    }
}

impl TrainerActor {
    /// Generation `generation`'s batches from batch `first` on, from the prefetch actor.
    async fn batches(&mut self, generation: usize, first: usize) -> Result<TrainBatches, SearchError> {
        let (prefetch, device) = (self.prefetch.clone(), self.device);
        let stream = prefetch.ask(StartEpoch { epoch: generation, first_batch: first }).await.map_err(
            |e| match e {
                SendError::HandlerError(error) => SearchError::Data(error),
                _ => SearchError::ActorGone { actor: PREFETCH_NAME.into() },
            },
        )?;
        Ok(TrainBatches::new(stream, device))
    }

    async fn batches_of(&mut self, generation: usize) -> Result<TrainBatches, SearchError> {
        match self.ahead.take() {
            Some((g, batches)) if g == generation => Ok(batches),
            _ => self.batches(generation, 0).await,
        }
    }

    async fn train(&mut self, plan: &GenerationPlan, start: TrainStart) -> Result<(), SearchError> {
        let g = plan.generation;
        let summary = match start {
            TrainStart::Trained(summary) => summary,
            TrainStart::Fresh | TrainStart::Continue(_) => {
                let (batches, done) = match start {
                    TrainStart::Continue(done) => {
                        self.ahead = None;
                        (self.batches(g, done.batches).await?, Some(done))
                    }
                    _ => (self.batches_of(g).await?, None),
                };
                let (events, trainer, stop) = (self.events.clone(), &mut self.trainer, &self.stop);
                let training = on_phase_thread(PHASE_THREAD, || {
                    trainer.train(plan, batches, done, stop, |step| {
                        telemetry::TrainStep(step).emit();
                        events
                            .send(PipelineEvent::Advanced { phase: Phase::Train, done: step.step as u64 + 1 })
                    })
                })??;
                match training {
                    Training::Finished(summary) => summary,
                    Training::Stopped(report) => {
                        let _ = self.controller.tell(TrainingStopped { generation: g, report }).send().await;
                        return Ok(());
                    }
                }
            }
        };
        // The next generation's order is known now: its first batches load while fitness runs.
        // (A budget a reload shortens makes this the odd stream loaded for nothing.)
        if g + 1 < plan.generations {
            self.ahead = Some((g + 1, self.batches(g + 1, 0).await?));
        }
        // `&mut`: the trainer is not Sync, only Send.
        let trainer = &mut self.trainer;
        let snapshot = Arc::new(on_phase_thread(PHASE_THREAD, move || trainer.snapshot(g))?);
        let trained = Trained { generation: g, summary, snapshot };
        let _ = self.controller.tell(trained).send().await;
        Ok(())
    }
}

/// The trainer's libtorch work runs on a thread named so that ends with it.
const PHASE_THREAD: &str = "evnas-train";

/// Where a generation's training starts.
pub enum TrainStart {
    Fresh,
    /// Continue a pass stopped after `report.batches` batches.
    Continue(EpochReport),
    /// Already trained before the search was stopped in fitness: only hand out the weights.
    Trained(TrainSummary),
}

/// Train one generation; the controller gets [`Trained`], [`TrainingStopped`] (the stop flag
/// was raised) or [`ActorFailed`].
pub struct TrainGeneration {
    pub plan: GenerationPlan,
    pub start: TrainStart,
}

impl Message<TrainGeneration> for TrainerActor {
    type Reply = ();

    async fn handle(&mut self, msg: TrainGeneration, _: &mut Context<Self, Self::Reply>) {
        if let Err(error) = self.train(&msg.plan, msg.start).await {
            self.ahead = None;
            let _ = self.controller.tell(ActorFailed { actor: NAME.into(), error }).send().await;
        }
    }
}

/// Capture the checkpoint of `state` (a generation boundary); the controller gets [`Captured`]
/// or [`ActorFailed`]. Handled before the next [`TrainGeneration`], so it holds the weights of
/// the boundary.
pub struct CaptureCheckpoint {
    pub state: Box<SearchState>,
    pub kind: CheckpointKind,
}

impl Message<CaptureCheckpoint> for TrainerActor {
    type Reply = ();

    async fn handle(&mut self, msg: CaptureCheckpoint, _: &mut Context<Self, Self::Reply>) {
        let started = std::time::Instant::now();
        let trainer = &mut self.trainer;
        match on_phase_thread(PHASE_THREAD, move || trainer.capture(&msg.state)).and_then(|captured| captured)
        {
            Ok(captured) => {
                let seconds = started.elapsed().as_secs_f64();
                let _ = self.controller.tell(Captured { captured, seconds, kind: msg.kind }).send().await;
            }
            Err(error) => {
                let _ = self.controller.tell(ActorFailed { actor: NAME.into(), error }).send().await;
            }
        }
    }
}
