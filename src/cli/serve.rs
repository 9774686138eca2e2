//! `evnas serve --config FILE`: the search as a long-running service (see `evnas::daemon`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use evnas::daemon::serve::ServeExit;
use evnas::daemon::ServeOptions;

#[derive(Args)]
pub struct ServeArgs {
    /// Config file (TOML) of the search to serve.
    #[arg(long)]
    config: PathBuf,
}

impl ServeArgs {
    pub fn config_here(&self) -> anyhow::Result<evnas::config::Config> {
        Ok(evnas::config::load(Some(&self.config), &[])?)
    }
}

/// Serves `config`, read from the config file at start (by [`ServeArgs::config_here`]).
pub fn run(args: &ServeArgs, config: anyhow::Result<evnas::config::Config>) -> anyhow::Result<ExitCode> {
    let options = ServeOptions { config_path: args.config.clone(), config: config? };
    match evnas::daemon::serve(options)? {
        ServeExit::Stopped => Ok(ExitCode::SUCCESS),
        ServeExit::StoppedForJob => Ok(ExitCode::from(super::failure::code::INTERRUPTED)),
        ServeExit::Forced => evnas::daemon::exit_now(super::failure::code::INTERRUPTED.into()),
    }
}
