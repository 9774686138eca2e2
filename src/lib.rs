//! evnas: EvNAS (Sinha & Chen, "Evolving Neural Architecture Using One Shot Model", GECCO 2021).
//!
//! The crate is three rings: a plain domain core (search spaces, evolution, models, data,
//! training), a thin actor layer, and the edge (CLI, config, daemon, telemetry).

pub mod actors;
pub mod checkpoint;
pub mod config;
pub mod cudnn;
pub mod daemon;
pub mod data;
pub mod distributed;
pub mod evolution;
pub mod fault;
pub mod final_training;
pub mod fs_atomic;
pub mod fs_links;
pub mod launch;
pub mod model;
pub mod pipeline;
pub mod reload;
pub mod report;
pub mod run_lock;
pub mod runtime;
pub mod search;
pub mod seeds;
pub mod space;
pub mod stop;
pub mod telemetry;
pub mod threads;
pub mod train;
pub mod weights;
