//! The checkpoint writer actor: hashes, fsyncs and renames captured checkpoints into the run's
//! store on a thread of its own, while the next generation trains. Its mailbox is handled in
//! order, so a newer checkpoint never overtakes an older one; the controller hands over the next
//! one only after this one is durable, so at most one generation's work is ever at stake.

use kameo::error::Infallible;
use kameo::message::{Context, Message};
use kameo::prelude::ActorRef;
use kameo::Actor;

use crate::checkpoint::CheckpointStore;
use crate::search::{CapturedCheckpoint, SearchError};

use super::controller::{ActorFailed, CheckpointKind, CheckpointWritten, SearchController};

pub const NAME: &str = "checkpoint writer";

pub struct CheckpointWriterActor {
    store: CheckpointStore,
    stop_store: CheckpointStore,
    config_digest: String,
    controller: ActorRef<SearchController>,
}

pub struct CheckpointWriterArgs {
    /// Generation-boundary checkpoints.
    pub store: CheckpointStore,
    /// The checkpoint of a search stopped mid-generation.
    pub stop_store: CheckpointStore,
    pub config_digest: String,
    pub controller: ActorRef<SearchController>,
}

impl Actor for CheckpointWriterActor {
    type Args = CheckpointWriterArgs;
    type Error = Infallible;

    async fn on_start(args: Self::Args, _: ActorRef<Self>) -> Result<Self, Self::Error> {
        let CheckpointWriterArgs { store, stop_store, config_digest, controller } = args;
        Ok(Self { store, stop_store, config_digest, controller })
    }
}

/// Make `captured` durable; the controller gets [`CheckpointWritten`] or [`ActorFailed`].
pub struct WriteCheckpoint {
    pub captured: CapturedCheckpoint,
    pub kind: CheckpointKind,
}

impl Message<WriteCheckpoint> for CheckpointWriterActor {
    type Reply = ();

    async fn handle(&mut self, msg: WriteCheckpoint, _: &mut Context<Self, Self::Reply>) {
        let generation = msg.captured.generation;
        let started = std::time::Instant::now();
        let store = match msg.kind {
            CheckpointKind::Boundary => &self.store,
            CheckpointKind::Stop => &self.stop_store,
        };
        match store.save(generation, &self.config_digest, &msg.captured.files) {
            Ok(saved) => {
                let seconds = started.elapsed().as_secs_f64();
                let bytes = msg.captured.files.iter().map(|f| f.bytes.len() as u64).sum();
                let written =
                    CheckpointWritten { generation, dir: saved.dir, seconds, bytes, kind: msg.kind };
                let _ = self.controller.tell(written).send().await;
            }
            Err(e) => {
                let error = SearchError::from(e);
                let _ = self.controller.tell(ActorFailed { actor: NAME.into(), error }).send().await;
            }
        }
    }
}
