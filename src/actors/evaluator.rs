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
    threads: usize,
    controller: ActorRef<SearchController>,
    stop: StopFlag,
}

pub struct EvaluatorArgs {
    /// e.g. "fitness evaluator 2", as errors name it.
    pub name: String,
    pub evaluator: FitnessEvaluator,
    /// Intra-op threads of this evaluator's measuring (0: the process's); one when several
    /// evaluators share the CPU, so that whole individuals run side by side.
    pub threads: usize,
    pub controller: ActorRef<SearchController>,
    pub stop: StopFlag,
}

impl Actor for EvaluatorActor {
    type Args = EvaluatorArgs;
    type Error = Infallible;

    async fn on_start(args: Self::Args, _: ActorRef<Self>) -> Result<Self, Self::Error> {
        let EvaluatorArgs { name, evaluator, threads, controller, stop } = args;
        Ok(Self { name, evaluator, threads, controller, stop })
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
    /// Measures on a thread that ends with the generation
    /// ([`crate::threads::on_phase_thread`]), telling the controller each fitness as it is known.
    fn evaluate(&mut self, msg: EvaluateGeneration) -> Result<(), SearchError> {
        let (evaluator, controller, stop, threads) =
            (&mut self.evaluator, &self.controller, &self.stop, self.threads);
        let measure = move || -> Result<(), SearchError> {
            if threads > 0 && !crate::threads::set_this_thread_threads(threads) {
                tracing::warn!("libtorch's OpenMP runtime not found; using the process's threads");
            }
            evaluator.set_subset(msg.subset)?;
            evaluator.load(&msg.snapshot)?;
            drop(msg.snapshot);
            while let Ok(individual) = msg.queue.try_recv() {
                let fitness = evaluator.measure(msg.generation, &individual, stop)?;
                let measured = Measured { generation: msg.generation, fitness };
                if controller.tell(measured).blocking_send().is_err() {
                    break;
                }
            }
            Ok(())
        };
        let thread = format!("evnas-fitness-{}", self.name.rsplit(' ').next().unwrap_or_default());
        crate::search::on_phase_thread(&thread, measure)?
    }
}

impl Message<EvaluateGeneration> for EvaluatorActor {
    type Reply = ();

    async fn handle(&mut self, msg: EvaluateGeneration, _: &mut Context<Self, Self::Reply>) {
        if let Err(error) = self.evaluate(msg) {
            let _ = self.controller.tell(ActorFailed { actor: self.name.clone(), error }).send().await;
        }
    }
}
