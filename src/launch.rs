//! Opening searches from config files: the edge where `config::Config` is mapped onto the core's
//! [`SearchSettings`] and where a run directory's saved config decides how it resumes.

use std::path::Path;
use std::str::FromStr;

use crate::config::Config;
use crate::data::DatasetKind;
use crate::search::run_dir::RunDir;
use crate::search::{
    resolve_device, DataSettings, FitnessSettings, RuntimeSettings, SearchEngine, SearchError,
    SearchSettings, SupernetSettings, TrainingSettings,
};

/// The core's settings of `cfg`, its device resolved.
pub fn settings(cfg: &Config) -> Result<SearchSettings, SearchError> {
    Ok(SearchSettings {
        space: cfg.search.space,
        strategy: cfg.search.strategy,
        seed: cfg.search.seed,
        hot: cfg.hot_settings(),
        supernet: SupernetSettings {
            init_channels: cfg.supernet.init_channels,
            layers: cfg.supernet.layers,
            channels_last: cfg.supernet.channels_last,
        },
        training: TrainingSettings {
            batch_size: cfg.train.batch_size,
            learning_rate: cfg.train.learning_rate,
            learning_rate_min: cfg.train.learning_rate_min,
            momentum: cfg.train.momentum,
            weight_decay: cfg.train.weight_decay,
            grad_clip: cfg.train.grad_clip,
        },
        fitness: FitnessSettings {
            batch_size: cfg.fitness.batch_size,
            batchnorm: cfg.fitness.batchnorm,
            augment: cfg.fitness.augment,
            precision: cfg.fitness.precision,
        },
        data: DataSettings {
            dataset: DatasetKind::from_str(&cfg.data.dataset)?,
            path: cfg.data.path.clone(),
            train_portion: cfg.data.train_portion,
            train_subset: cfg.data.train_subset,
            cutout: cfg.data.cutout.then_some(cfg.data.cutout_length),
            prefetch_depth: cfg.data.prefetch_depth,
            workers: cfg.data.workers,
        },
        runtime: RuntimeSettings {
            device: resolve_device(&cfg.run.device)?,
            keep_checkpoints: cfg.run.keep_checkpoints,
            threads: cfg.run.threads,
            fitness_workers: cfg.run.fitness_workers,
        },
        identity: cfg.digest(),
    })
}

/// A new search of `cfg` in a fresh run directory (`run_dir`, or one under `run.dir`), its
/// config saved there.
pub fn create(cfg: &Config, run_dir: Option<&Path>) -> Result<SearchEngine, SearchError> {
    SearchEngine::create(settings(cfg)?, || {
        let run = RunDir::create(&cfg.run.dir, cfg.search.seed, run_dir)?;
        run.write_config(cfg)?;
        Ok(run)
    })
}

/// A search resumed in `run_dir` ([`SearchEngine::resume`]). `cfg`, when given (the `--config`
/// of the resuming command, or the daemon's), must have the digest of the run's own config; its
/// hot values (a reload's) then apply from the next generation boundary on. Otherwise the run's
/// own config is used, with the settings in force when it stopped. `device` overrides the
/// config's. Also returns the lines the user should read.
pub fn resume(
    run_dir: &Path,
    cfg: Option<Config>,
    device: Option<&str>,
) -> Result<(SearchEngine, Vec<String>), SearchError> {
    let run = RunDir::open(run_dir)?;
    let original: Config = run.read_config()?;
    // A run without a checkpoint starts again as it started: with its own settings (those of a
    // config given now apply from its first boundary, as a reload's would).
    let started_with = original.hot_settings();
    let given = cfg.is_some();
    let mut cfg = match cfg {
        Some(c) if c.digest() != original.digest() => {
            return Err(SearchError::ConfigChanged { run: run_dir.to_path_buf() })
        }
        Some(c) => c,
        None => original,
    };
    if let Some(d) = device {
        cfg.run.device = d.to_string();
    }
    let settings = settings(&cfg)?;
    let wanted = given.then_some(settings.hot);
    SearchEngine::resume(settings, run, started_with, wanted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;

    fn config_with(overrides: &[&str]) -> Config {
        let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
        config::load(None, &overrides).expect("the default config loads")
    }

    #[test]
    fn the_settings_carry_every_value_the_core_reads() {
        let cfg =
            config_with(&["run.device=cpu", "data.cutout=true", "data.cutout_length=12", "search.seed=7"]);
        let s = settings(&cfg).unwrap();
        assert_eq!(s.hot, cfg.hot_settings());
        assert_eq!(s.identity, cfg.digest());
        assert_eq!(s.seed, 7);
        assert_eq!(s.space, cfg.search.space);
        assert_eq!(s.runtime.device, tch::Device::Cpu);
        assert_eq!(s.data.dataset.name(), cfg.data.dataset);
        assert_eq!(s.data.cutout, Some(12));
        assert_eq!(s.training.learning_rate, cfg.train.learning_rate);
        assert_eq!(s.fitness.batch_size, cfg.fitness.batch_size);
        assert_eq!(s.supernet.layers, cfg.supernet.layers);

        let off = settings(&config_with(&["run.device=cpu", "data.cutout=false"])).unwrap();
        assert_eq!(off.data.cutout, None);
    }

    #[test]
    fn a_device_that_is_not_there_is_named() {
        let err = settings(&config_with(&["run.device=cuda:7"])).unwrap_err();
        assert!(err.to_string().contains("cuda:7"), "{err}");
    }
}
