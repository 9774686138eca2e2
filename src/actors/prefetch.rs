//! The prefetch actor: owns a [`Producer`] over one split and, on [`StartEpoch`], starts that epoch's
//! producer thread and replies with the consumer's [`BatchStream`]. Batches are built on the producer's
//! own threads (std thread + rayon pool), never on tokio workers; the actor only hands out streams and
//! stop flags.

use kameo::error::Infallible;
use kameo::message::{Context, Message};
use kameo::prelude::ActorRef;
use kameo::Actor;

use crate::data::{BatchStream, DataError, EpochPlan, Producer, StopFlag};

pub const NAME: &str = "prefetch";

/// In what order an epoch visits its split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchOrder {
    /// A new seeded permutation every epoch (training).
    Shuffled,
    /// The split's order (evaluation).
    Sequential,
}

/// State: the producer, the split it draws from and the flags of the streams it started.
#[derive(Debug)]
pub struct PrefetchActor {
    producer: Producer,
    indices: Vec<usize>,
    batch_size: usize,
    seed: u64,
    order: BatchOrder,
    live: Vec<StopFlag>,
}

impl PrefetchActor {
    pub fn new(
        producer: Producer,
        indices: Vec<usize>,
        batch_size: usize,
        seed: u64,
        order: BatchOrder,
    ) -> Self {
        PrefetchActor { producer, indices, batch_size, seed, order, live: Vec::new() }
    }
}

impl Actor for PrefetchActor {
    type Args = Self;
    type Error = Infallible;

    async fn on_start(state: Self::Args, _actor_ref: ActorRef<Self>) -> Result<Self, Self::Error> {
        Ok(state)
    }
}

/// Start producing epoch `epoch` from batch `first_batch` (0 unless resuming mid-epoch).
#[derive(Debug, Clone, Copy)]
pub struct StartEpoch {
    pub epoch: usize,
    pub first_batch: usize,
}

impl Message<StartEpoch> for PrefetchActor {
    type Reply = Result<BatchStream, DataError>;

    async fn handle(&mut self, msg: StartEpoch, _ctx: &mut Context<Self, Self::Reply>) -> Self::Reply {
        let plan = match self.order {
            BatchOrder::Shuffled => {
                EpochPlan::shuffled(&self.indices, self.batch_size, self.seed, msg.epoch)?
            }
            BatchOrder::Sequential => {
                EpochPlan::sequential(&self.indices, self.batch_size, self.seed, msg.epoch)?
            }
        };
        let stop = StopFlag::new();
        self.live.retain(|flag| !flag.is_stopped());
        self.live.push(stop.clone());
        self.producer.start_epoch(plan.starting_at(msg.first_batch), stop)
    }
}

/// Stop every stream this actor started (their consumers see the end of their epoch).
#[derive(Debug, Clone, Copy)]
pub struct StopAll;

impl Message<StopAll> for PrefetchActor {
    type Reply = ();

    async fn handle(&mut self, _msg: StopAll, _ctx: &mut Context<Self, Self::Reply>) -> Self::Reply {
        for flag in self.live.drain(..) {
            flag.stop();
        }
    }
}
