//! The mutation actor: the last GA stage. Mutates each child per edge (its own stream) and
//! hands it to the controller.

use kameo::error::Infallible;
use kameo::message::{Context, Message};
use kameo::prelude::ActorRef;
use kameo::Actor;

use crate::evolution::{self, ChildSlot, ChildStreams, Individual};

use super::controller::{ActorFailed, ChildBred, SearchController};

pub const NAME: &str = "mutation";

pub struct MutationActor {
    controller: ActorRef<SearchController>,
}

impl Actor for MutationActor {
    type Args = ActorRef<SearchController>;
    type Error = Infallible;

    async fn on_start(controller: Self::Args, _: ActorRef<Self>) -> Result<Self, Self::Error> {
        Ok(Self { controller })
    }
}

/// Mutate the child of `slot` with per-edge probability `rate`.
pub struct MutateChild {
    pub slot: ChildSlot,
    pub child: Individual,
    pub rate: f64,
    pub streams: ChildStreams,
}

impl Message<MutateChild> for MutationActor {
    type Reply = ();

    async fn handle(&mut self, msg: MutateChild, _: &mut Context<Self, Self::Reply>) {
        let MutateChild { slot, mut child, rate, streams } = msg;
        if let Err(e) = crate::fault::point("ga.mutation") {
            let error = crate::train::TrainError::from(e).into();
            let _ = self.controller.tell(ActorFailed { actor: NAME.into(), error }).send().await;
            return;
        }
        evolution::mutate_child(&mut child, rate, slot, &streams);
        let _ = self.controller.tell(ChildBred { slot, child }).send().await;
    }
}
