//! The selection actor: the first GA stage. For each child slot of the next generation it runs
//! the two tournaments over the ranked population and sends the winners to crossover. For the
//! random-search baseline there is nothing to select: each slot becomes a fresh genome, sent
//! straight back to the controller.

use std::sync::Arc;

use kameo::error::Infallible;
use kameo::message::{Context, Message};
use kameo::prelude::ActorRef;
use kameo::Actor;

use crate::evolution::Strategy;
use crate::evolution::{self, ChildStreams, GaParams, Population};
use crate::search::SearchError;

use super::controller::{ActorFailed, ChildBred, SearchController};
use super::crossover::{CrossParents, CrossoverActor};

pub const NAME: &str = "selection";

pub struct SelectionActor {
    crossover: ActorRef<CrossoverActor>,
    controller: ActorRef<SearchController>,
}

pub struct SelectionArgs {
    pub crossover: ActorRef<CrossoverActor>,
    pub controller: ActorRef<SearchController>,
}

impl Actor for SelectionActor {
    type Args = SelectionArgs;
    type Error = Infallible;

    async fn on_start(args: Self::Args, _: ActorRef<Self>) -> Result<Self, Self::Error> {
        Ok(Self { crossover: args.crossover, controller: args.controller })
    }
}

/// Breed generation `generation` (0-based) from `parents`, ranked best first.
pub struct BreedGeneration {
    pub generation: u32,
    pub parents: Arc<Population>,
    pub params: GaParams,
    pub strategy: Strategy,
    pub streams: ChildStreams,
}

impl SelectionActor {
    async fn breed(&self, msg: BreedGeneration) -> Result<(), SearchError> {
        let BreedGeneration { generation, parents, params, strategy, streams } = msg;
        let shapes = parents.individuals.first().ok_or(evolution::EvolutionError::EmptyPopulation)?.shapes();
        for slot in evolution::child_slots(&parents, &params, generation)? {
            crate::fault::point("ga.selection").map_err(crate::train::TrainError::from)?;
            match strategy {
                Strategy::Evolution => {
                    let (a, b) = evolution::select_parents(&parents, &params, slot, &streams)?;
                    let first = parents.individuals[a].clone();
                    let second = parents.individuals[b].clone();
                    let cross =
                        CrossParents { slot, first, second, mutation_rate: params.mutation_rate, streams };
                    if self.crossover.tell(cross).send().await.is_err() {
                        return Err(SearchError::ActorGone { actor: super::crossover::NAME.into() });
                    }
                }
                Strategy::Random => {
                    let child = evolution::fresh_child(&shapes, slot, &streams);
                    let _ = self.controller.tell(ChildBred { slot, child }).send().await;
                }
            }
        }
        Ok(())
    }
}

impl Message<BreedGeneration> for SelectionActor {
    type Reply = ();

    async fn handle(&mut self, msg: BreedGeneration, _: &mut Context<Self, Self::Reply>) {
        if let Err(error) = self.breed(msg).await {
            let _ = self.controller.tell(ActorFailed { actor: NAME.into(), error }).send().await;
        }
    }
}
