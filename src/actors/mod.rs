//! The actor layer: thin kameo wrappers over the search core, one file per actor (state,
//! messages, handlers). How a generation flows between them: see [`controller`].

pub mod checkpoint_writer;
pub mod controller;
pub mod crossover;
pub mod evaluator;
pub mod events;
pub mod mutation;
pub mod prefetch;
pub mod selection;
pub mod trainer;

use crate::search::SearchError;

/// Why a search run by the pipeline did not end with a result.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("the {actor} failed")]
    Failed {
        actor: String,
        #[source]
        error: SearchError,
    },
    #[error("the {actor} died: {reason}")]
    Died { actor: String, reason: String },
    #[error("the search controller stopped without a result")]
    ControllerLost,
}

impl PipelineError {
    /// The search was stopped on request (the stop flag), not by a fault.
    pub fn is_interrupted(&self) -> bool {
        matches!(
            self,
            PipelineError::Failed { error: SearchError::Train(crate::train::TrainError::Interrupted), .. }
        )
    }

    /// The actor that failed, when one did.
    pub fn actor(&self) -> Option<&str> {
        match self {
            PipelineError::Failed { actor, .. } | PipelineError::Died { actor, .. } => Some(actor),
            PipelineError::ControllerLost => None,
        }
    }
}
