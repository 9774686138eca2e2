//! `evnas validate --config FILE`: checks a config as `evnas serve` would load it (layers,
//! types, unknown keys, values, that its dataset is at `data.path`, and that an existing search
//! of its id was started with it), for systemd's ExecReload (serve makes the same checks at
//! start). Exit 0 with one line naming the search (and a warning for devices this machine
//! lacks), or 2 with the problems.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

#[derive(Args)]
pub struct ValidateArgs {
    /// Config file (TOML) to check.
    #[arg(long)]
    config: PathBuf,
}

pub fn run(args: &ValidateArgs) -> anyhow::Result<ExitCode> {
    let cfg = evnas::config::load(Some(&args.config), &[])?;
    let images = evnas::daemon::check_search(&cfg)?;
    // A config may be checked on another machine than the one it is for (exit 0), but systemd's
    // ExecReload runs this where the search runs: devices missing here are named.
    for e in evnas::launch::each_device(&cfg).into_iter().filter_map(Result::err) {
        evnas::daemon::journal::eprint_at(
            tracing::Level::WARN,
            format_args!("warning: a search on this machine would not start: {e}"),
        );
    }
    // What the search uses of them: its split, cut to data.train_subset and fitness.subset.
    let split = evnas::data::train_count(cfg.data.train_portion, images);
    let train = match cfg.data.train_subset {
        0 => split,
        n => n.min(split),
    };
    let valid = images - split;
    let fitness = match cfg.fitness.subset {
        0 => valid,
        n => n.min(valid),
    };
    println!(
        "{}: valid; search {} in {} ({} individuals x {} generations on {}: {train} of its {images} training images to train the supernet, {fitness} to measure fitness; search.state = {:?} for evnas serve)",
        args.config.display(),
        cfg.search_id(),
        cfg.run.dir.join(cfg.search_id()).display(),
        cfg.search.population,
        cfg.search.generations,
        cfg.data.dataset,
        cfg.search.state.name(),
    );
    Ok(ExitCode::SUCCESS)
}
