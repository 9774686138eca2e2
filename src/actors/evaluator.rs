//! A fitness evaluator actor: one per evaluation worker, each with a supernet copy of its own on
//! a thread of its own. Per generation it loads the trainer's weight snapshot, then takes
//! individuals from the generation's shared queue until it is empty, telling the controller
//! each fitness by id. Which evaluator measures whom depends on timing; no result does.

use std::sync::Arc;

use crossbeam_channel::Receiver;
use kameo::error::Infallible;
use kameo::message::{Context, Message};
use kameo::prelude::ActorRef;
use kameo::Actor;

use crate::search::{FitnessEvaluator, PlannedIndividual, SearchError, WeightsSnapshot};
use crate::stop::StopFlag;

use super::controller::{ActorFailed, Measured, SearchController};

pub struct EvaluatorActor {
    name: String,
    evaluator: FitnessEvaluator,
    controller: ActorRef<SearchController>,
    stop: StopFlag,
}

pub struct EvaluatorArgs {
    /// e.g. "fitness evaluator 2", as errors name it.
    pub name: String,
    pub evaluator: FitnessEvaluator,
    /// Intra-op threads of this evaluator's thread (0: the process's); one when several
    /// evaluators share the CPU, so that whole individuals run side by side.
    pub threads: usize,
    pub controller: ActorRef<SearchController>,
    pub stop: StopFlag,
}

impl Actor for EvaluatorActor {
    type Args = EvaluatorArgs;
    type Error = Infallible;

    /// Runs on the evaluator's own thread (it is spawned with `spawn_in_thread`).
    async fn on_start(args: Self::Args, _: ActorRef<Self>) -> Result<Self, Self::Error> {
        let EvaluatorArgs { name, evaluator, threads, controller, stop } = args;
        if threads > 0 && !crate::threads::set_this_thread_threads(threads) {
            tracing::warn!("{name}: libtorch's OpenMP runtime not found; using the process's threads");
        }
        Ok(Self { name, evaluator, controller, stop })
    }
}

/// Measure individuals of generation `generation` from `queue` with `snapshot`'s weights.
pub struct EvaluateGeneration {
    pub generation: usize,
    /// Validation images per fitness (0: all): the generation's fitness subset.
    pub subset: usize,
    pub snapshot: Arc<WeightsSnapshot>,
    pub queue: Receiver<PlannedIndividual>,
}

impl EvaluatorActor {
    async fn evaluate(&mut self, msg: EvaluateGeneration) -> Result<(), SearchError> {
        self.evaluator.set_subset(msg.subset)?;
        self.evaluator.load(&msg.snapshot)?;
        drop(msg.snapshot);
        while let Ok(individual) = msg.queue.try_recv() {
            let fitness = self.evaluator.measure(msg.generation, &individual, &self.stop)?;
            let measured = Measured { generation: msg.generation, fitness };
            if self.controller.tell(measured).send().await.is_err() {
                break;
            }
        }
        Ok(())
    }
}

impl Message<EvaluateGeneration> for EvaluatorActor {
    type Reply = ();

    async fn handle(&mut self, msg: EvaluateGeneration, _: &mut Context<Self, Self::Reply>) {
        if let Err(error) = self.evaluate(msg).await {
            let _ = self.controller.tell(ActorFailed { actor: self.name.clone(), error }).send().await;
        }
    }
}
