//! The crossover actor: the second GA stage. Makes each child from its two parents (uniform
//! per-edge crossover, the child's own stream) and sends it on to mutation.

use kameo::error::Infallible;
use kameo::message::{Context, Message};
use kameo::prelude::ActorRef;
use kameo::Actor;

use crate::evolution::{self, ChildSlot, ChildStreams, Individual};
use crate::search::SearchError;

use super::controller::{ActorFailed, SearchController};
use super::mutation::{MutateChild, MutationActor};

pub const NAME: &str = "crossover";

pub struct CrossoverActor {
    mutation: ActorRef<MutationActor>,
    controller: ActorRef<SearchController>,
}

pub struct CrossoverArgs {
    pub mutation: ActorRef<MutationActor>,
    pub controller: ActorRef<SearchController>,
}

impl Actor for CrossoverActor {
    type Args = CrossoverArgs;
    type Error = Infallible;

    async fn on_start(args: Self::Args, _: ActorRef<Self>) -> Result<Self, Self::Error> {
        Ok(Self { mutation: args.mutation, controller: args.controller })
    }
}

/// Make the child of `slot` from `first` and `second`.
pub struct CrossParents {
    pub slot: ChildSlot,
    pub first: Individual,
    pub second: Individual,
    pub mutation_rate: f64,
    pub streams: ChildStreams,
}

impl CrossoverActor {
    async fn cross(&self, msg: CrossParents) -> Result<(), SearchError> {
        crate::fault::point("ga.crossover").map_err(crate::train::TrainError::from)?;
        let child = evolution::cross_parents(&msg.first, &msg.second, msg.slot, &msg.streams)?;
        let mutate = MutateChild { slot: msg.slot, child, rate: msg.mutation_rate, streams: msg.streams };
        if self.mutation.tell(mutate).send().await.is_err() {
            return Err(SearchError::ActorGone { actor: super::mutation::NAME.into() });
        }
        Ok(())
    }
}

impl Message<CrossParents> for CrossoverActor {
    type Reply = ();

    async fn handle(&mut self, msg: CrossParents, _: &mut Context<Self, Self::Reply>) {
        if let Err(error) = self.cross(msg).await {
            let _ = self.controller.tell(ActorFailed { actor: NAME.into(), error }).send().await;
        }
    }
}
