//! The actor layer: thin kameo wrappers, one file per actor, each handler one call into the core.

pub mod prefetch;
