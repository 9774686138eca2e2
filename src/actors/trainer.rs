//! The supernet trainer actor: owns the supernet, its momentum and the training data on a
//! thread of its own (libtorch never runs on tokio workers). Trains a generation when told,
//! hands the controller a weight snapshot for the evaluators, and captures checkpoints as host
//! bytes (the controller passes them to the writer). Starts the next generation's training
//! batches while fitness runs.

use std::sync::Arc;

use kameo::error::Infallible;
use kameo::message::{Context, Message};
use kameo::prelude::ActorRef;
use kameo::Actor;

use crate::search::Phase;
use crate::search::{GenerationPlan, SearchData, SearchError, SearchState, SupernetTrainer, TrainBatches};
use crate::stop::StopFlag;

use super::controller::{ActorFailed, Captured, SearchController, Trained};
use super::events::{Events, PipelineEvent};

pub const NAME: &str = "trainer";

pub struct TrainerActor {
    trainer: SupernetTrainer,
    data: SearchData,
    generations: usize,
    controller: ActorRef<SearchController>,
    events: Events,
    stop: StopFlag,
    /// The batches of a generation started ahead of its training.
    ahead: Option<(usize, TrainBatches)>,
}

pub struct TrainerArgs {
    pub trainer: SupernetTrainer,
    pub data: SearchData,
    pub generations: usize,
    pub controller: ActorRef<SearchController>,
    pub events: Events,
    pub stop: StopFlag,
}

impl Actor for TrainerActor {
    type Args = TrainerArgs;
    type Error = Infallible;

    async fn on_start(args: Self::Args, _: ActorRef<Self>) -> Result<Self, Self::Error> {
        let TrainerArgs { trainer, data, generations, controller, events, stop } = args;
        Ok(Self { trainer, data, generations, controller, events, stop, ahead: None })
    }
}

impl TrainerActor {
    fn batches_of(&mut self, generation: usize) -> Result<TrainBatches, SearchError> {
        match self.ahead.take() {
            Some((g, batches)) if g == generation => Ok(batches),
            _ => self.data.train_batches(generation),
        }
    }

    fn train(&mut self, plan: &GenerationPlan) -> Result<Trained, SearchError> {
        let g = plan.generation;
        let batches = self.batches_of(g)?;
        let events = self.events.clone();
        let summary = self.trainer.train(plan, batches, &self.stop, |i| {
            events.send(PipelineEvent::Advanced { phase: Phase::Train, done: i as u64 + 1 })
        })?;
        // The next generation's order is known now: its first batches load while fitness runs.
        if g + 1 < self.generations {
            self.ahead = Some((g + 1, self.data.train_batches(g + 1)?));
        }
        Ok(Trained { generation: g, summary, snapshot: Arc::new(self.trainer.snapshot(g)) })
    }
}

/// Train one generation; the controller gets [`Trained`] or [`ActorFailed`].
pub struct TrainGeneration {
    pub plan: GenerationPlan,
}

impl Message<TrainGeneration> for TrainerActor {
    type Reply = ();

    async fn handle(&mut self, msg: TrainGeneration, _: &mut Context<Self, Self::Reply>) {
        let outcome = self.train(&msg.plan);
        match outcome {
            Ok(trained) => {
                let _ = self.controller.tell(trained).send().await;
            }
            Err(error) => {
                self.ahead = None;
                let _ = self.controller.tell(ActorFailed { actor: NAME.into(), error }).send().await;
            }
        }
    }
}

/// Capture the checkpoint of `state` (a generation boundary); the controller gets [`Captured`]
/// or [`ActorFailed`]. Handled before the next [`TrainGeneration`], so it holds the weights of
/// the boundary.
pub struct CaptureCheckpoint {
    pub state: Box<SearchState>,
}

impl Message<CaptureCheckpoint> for TrainerActor {
    type Reply = ();

    async fn handle(&mut self, msg: CaptureCheckpoint, _: &mut Context<Self, Self::Reply>) {
        let started = std::time::Instant::now();
        match self.trainer.capture(&msg.state) {
            Ok(captured) => {
                let seconds = started.elapsed().as_secs_f64();
                let _ = self.controller.tell(Captured { captured, seconds }).send().await;
            }
            Err(error) => {
                let _ = self.controller.tell(ActorFailed { actor: NAME.into(), error }).send().await;
            }
        }
    }
}
