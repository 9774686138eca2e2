//! Subcommands of the `evnas` binary: each file parses its arguments and calls the library.

pub mod arg_values;
pub mod compare;
pub mod doctor;
pub mod eval;
pub mod export;
pub mod failure;
pub mod genotype;
pub mod info;
pub mod interrupt;
pub mod job;
pub mod network;
pub mod search;
pub mod serve;
pub mod train;
pub mod validate;
pub mod version;
