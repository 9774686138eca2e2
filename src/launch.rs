//! Opening searches and training runs from config files: the edge where `config::Config` is mapped onto the core's
//! [`SearchSettings`] and where a run directory's saved config decides how it resumes.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::config::Config;
use crate::data::{DatasetKind, PrefetchConfig};
use crate::final_training::{FinalTrainingError, FinalTrainingSettings, TrainingRun, TrainingRunDir};
use crate::model::EvalNetConfig;
use crate::run_lock::RunLock;
use crate::search::run_dir::{utc_stamp, RunDir};
use crate::search::{
    resolve_device, DataSettings, FitnessSettings, RuntimeSettings, SearchEngine, SearchError, SearchResult,
    SearchSettings, SupernetSettings, TrainingSettings,
};
use crate::space::{Genotype, NamedGenotype};
use crate::train::sgd::SgdConfig;

/// The devices `cfg` trains on (run.devices, else run.device), resolved.
pub fn devices(cfg: &Config) -> Result<Vec<tch::Device>, SearchError> {
    each_device(cfg).into_iter().collect()
}

/// Each device `cfg` names (run.devices, else run.device), resolved on its own: a device this
/// machine lacks says which key to change.
pub fn each_device(cfg: &Config) -> Vec<Result<tch::Device, SearchError>> {
    match cfg.run.devices.as_slice() {
        [] => vec![config_device(&cfg.run.device, "set run.device (or --device) to \"cpu\" or \"auto\"")],
        names => names
            .iter()
            .map(|name| {
                config_device(
                    name,
                    "list this machine's own devices in run.devices (in a job, each rank's own)",
                )
            })
            .collect(),
    }
}

fn config_device(name: &str, hint: &str) -> Result<tch::Device, SearchError> {
    resolve_device(name).map_err(|e| match e {
        SearchError::Device { name, reason } => {
            SearchError::Device { name, reason: format!("{reason}; {hint}") }
        }
        other => other,
    })
}

/// The core's settings of `cfg`, its device resolved.
pub fn settings(cfg: &Config) -> Result<SearchSettings, SearchError> {
    let devices = devices(cfg)?;
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
            precision: cfg.train.precision,
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
            devices,
            keep_checkpoints: cfg.run.keep_checkpoints,
            threads: cfg.run.threads,
            fitness_workers: cfg.run.fitness_workers,
            collectives: cfg.run.collectives,
        },
        identity: cfg.digest(),
    })
}

/// A new search of `cfg` in a fresh run directory (`run_dir`, or one under `run.dir`), its
/// config saved there.
pub fn create(cfg: &Config, run_dir: Option<&Path>) -> Result<SearchEngine, SearchError> {
    let settings = settings(cfg)?;
    on_setup_thread(move || {
        SearchEngine::create(settings, || {
            let run = RunDir::create(&cfg.run.dir, cfg.search.seed, run_dir)?;
            // Not yet the engine's to discard: a directory left without its config would hold
            // the next start up.
            run.write_config(cfg).inspect_err(|_| run.discard())?;
            Ok(run)
        })
    })
}

/// The engine's set-up (data, supernet, checkpoint) on a thread that ends with it: the calling
/// thread keeps no OpenMP team of it.
fn on_setup_thread<T: Send>(setup: impl FnOnce() -> Result<T, SearchError> + Send) -> Result<T, SearchError> {
    crate::search::on_phase_thread("evnas-setup", setup)?
}

/// A search resumed in `run_dir` ([`SearchEngine::resume`]). `cfg`, when given (the `--config`
/// of the resuming command, or the daemon's), must have the digest of the run's own config; its
/// hot values (a reload's) then apply from the next generation boundary on. Otherwise the run's
/// own config is used, with the settings in force when it stopped. `device` overrides the
/// config's device and devices. Also returns the lines the user should read.
pub fn resume(
    run_dir: &Path,
    cfg: Option<Config>,
    device: Option<&str>,
) -> Result<(SearchEngine, Vec<String>), SearchError> {
    let run = RunDir::open_exclusive(run_dir)?;
    // Nor while another process trains its result (a search continued with a larger budget
    // would change the result under it).
    RunLock::ensure_free(&final_training_dir(run_dir))?;
    let original: Config = run.read_config()?;
    // A run without a checkpoint starts again as it started: with its own settings (those of a
    // config given now apply from its first boundary, as a reload's would).
    let started_with = original.hot_settings();
    let given = cfg.is_some();
    let mut cfg = match cfg {
        Some(c) => {
            let differences = original.digest_differences(&c);
            if !differences.is_empty() {
                return Err(SearchError::ConfigChanged { run: run_dir.to_path_buf(), differences });
            }
            c
        }
        None => original,
    };
    if let Some(d) = device {
        cfg.run.device = d.to_string();
        cfg.run.devices.clear();
    }
    let settings = settings(&cfg)?;
    let wanted = given.then_some(settings.hot);
    on_setup_thread(move || SearchEngine::resume(settings, run, started_with, wanted))
}

/// How `cfg` differs from the config the search in `dir` was started with, in the fields that
/// decide whether it can resume there ([`Config::digest`]): empty when it can, or when `dir`
/// holds no search.
pub fn differences_from_search(cfg: &Config, dir: &Path) -> Result<Vec<String>, SearchError> {
    if !dir.join("config.json").is_file() {
        return Ok(Vec::new());
    }
    let original: Config = RunDir::open(dir)?.read_config()?;
    Ok(original.digest_differences(cfg))
}

/// The core's settings of training `genotype` under `cfg` (`[final_training]`, the dataset of
/// `[data]`, the device and prefetching of `[run]`/`[data]`).
pub fn training_settings(
    cfg: &Config,
    genotype: &NamedGenotype,
) -> Result<FinalTrainingSettings, FinalTrainingError> {
    let f = &cfg.final_training;
    let dataset = DatasetKind::from_str(&cfg.data.dataset)?;
    let device = config_device(&cfg.run.device, "set run.device (or --device) to \"cpu\" or \"auto\"")
        .map_err(|e| FinalTrainingError::Device { reason: e.to_string() })?;
    Ok(FinalTrainingSettings {
        genotype: genotype.genotype.clone(),
        genotype_name: genotype.name.clone(),
        dataset,
        data_dir: cfg.data.path.clone(),
        network: EvalNetConfig {
            init_channels: f.init_channels,
            layers: f.layers,
            num_classes: dataset.num_classes() as i64,
            auxiliary: f.auxiliary,
            in_channels: dataset.input_shape()[0] as i64,
        },
        epochs: f.epochs,
        batch_size: f.batch_size,
        test_batch_size: f.test_batch_size,
        learning_rate: f.learning_rate,
        learning_rate_min: f.learning_rate_min,
        lr_schedule: f.lr_schedule,
        sgd: SgdConfig { momentum: f.momentum, weight_decay: f.weight_decay },
        grad_clip: f.grad_clip,
        auxiliary_weight: f.auxiliary_weight,
        drop_path_prob: f.drop_path_prob,
        label_smoothing: f.label_smoothing,
        cutout: f.cutout.then_some(f.cutout_length),
        train_subset: (f.train_subset > 0).then_some(f.train_subset),
        channels_last: f.channels_last,
        precision: f.precision,
        test_every: f.test_every,
        seed: f.seed,
        device,
        threads: cfg.run.threads,
        keep_checkpoints: f.keep_checkpoints,
        prefetch: PrefetchConfig {
            depth: cfg.data.prefetch_depth,
            threads: cfg.data.workers,
            pin_memory: device.is_cuda(),
        },
    })
}

/// A new training run of `genotype` under `cfg` in `run_dir`, or in a new directory under
/// `run.dir` named after the genotype; its config and genotype saved there.
pub fn create_training(
    cfg: &Config,
    genotype: &NamedGenotype,
    run_dir: Option<&Path>,
) -> Result<TrainingRun, FinalTrainingError> {
    let settings = training_settings(cfg, genotype)?;
    settings.check_supported()?;
    let dir = match run_dir {
        Some(dir) => dir.to_path_buf(),
        None => cfg.run.dir.join(format!("train-{}-{}", slug(&genotype.name), utc_stamp())),
    };
    let run = TrainingRunDir::create(&dir)?;
    let started = run
        .write_config(cfg)
        .and_then(|()| run.write_genotype(genotype))
        .and_then(|()| TrainingRun::create(settings, run.clone()));
    started.inspect_err(|_| run.discard())
}

/// The training run in `run_dir`, continued from its newest intact checkpoint with the config
/// and genotype it started with; `device` overrides the saved device.
pub fn resume_training(run_dir: &Path, device: Option<&str>) -> Result<TrainingRun, FinalTrainingError> {
    let run = TrainingRunDir::open(run_dir)?;
    let mut cfg: Config = run.read_config()?;
    let genotype: NamedGenotype = run.read_genotype()?;
    if let Some(d) = device {
        cfg.run.device = d.to_string();
    }
    let settings = training_settings(&cfg, &genotype)?;
    TrainingRun::resume(settings, run)
}

/// Where a search's result is trained from scratch: `<search run directory>/final_training`.
pub fn final_training_dir(search_dir: &Path) -> PathBuf {
    search_dir.join("final_training")
}

/// Training the result of the search in `search_dir` from scratch under `cfg`, in
/// [`final_training_dir`]: continued from its checkpoint when it was started before (with the
/// settings it started with), else started.
pub fn final_training_of(
    cfg: &Config,
    search_dir: &Path,
    result: &SearchResult,
) -> Result<TrainingRun, FinalTrainingError> {
    let dir = final_training_dir(search_dir);
    if dir.join("config.json").is_file() {
        return resume_training(&dir, None);
    }
    let genotype: Genotype = serde_json::from_value(result.genotype_json.clone())
        .map_err(|_| FinalTrainingError::NotADartsGenotype { search: search_dir.to_path_buf() })?;
    let name = search_dir.file_name().map_or_else(|| "search".into(), |n| n.to_string_lossy().into_owned());
    create_training(cfg, &NamedGenotype { name, genotype }, Some(&dir))
}

/// The config a search run directory was started with.
pub fn search_config(run_dir: &Path) -> Result<Config, SearchError> {
    RunDir::open(run_dir)?.read_config()
}

/// A genotype's name as part of a directory name: a file's stem, letters, digits, '-' and '_'.
fn slug(name: &str) -> String {
    let stem = Path::new(name).file_stem().and_then(|s| s.to_str()).unwrap_or(name);
    let text: String = stem
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
        .collect();
    if text.is_empty() {
        "genotype".into()
    } else {
        text
    }
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
        assert_eq!(s.runtime.device(), tch::Device::Cpu);
        assert_eq!(s.data.dataset.name(), cfg.data.dataset);
        assert_eq!(s.data.cutout, Some(12));
        assert_eq!(s.training.learning_rate, cfg.train.learning_rate);
        assert_eq!(s.fitness.batch_size, cfg.fitness.batch_size);
        assert_eq!(s.supernet.layers, cfg.supernet.layers);

        let off = settings(&config_with(&["run.device=cpu", "data.cutout=false"])).unwrap();
        assert_eq!(off.data.cutout, None);
    }

    #[test]
    fn bf16_training_is_part_of_a_runs_identity() {
        let genotype = NamedGenotype { genotype: Genotype::load("EvNAS-A").unwrap(), name: "EvNAS-A".into() };
        let identity = |sets: &[&str]| training_settings(&config_with(sets), &genotype).unwrap().identity();
        let fp32 = identity(&["run.device=cpu"]);
        assert_eq!(fp32, identity(&["run.device=cpu", "final_training.precision=fp32"]));
        assert_ne!(fp32, identity(&["run.device=cpu", "final_training.precision=bf16"]));
    }

    #[test]
    fn evaluators_side_by_side_on_the_cpu_are_counted_before_any_thread_starts() {
        let count = |sets: &[&str]| config_with(sets).cpu_fitness_evaluators();
        let narrow = ["run.device=cpu", "run.threads=2", "supernet.init_channels=8"];
        assert_eq!(count(&narrow), 2, "a narrow supernet measures one individual per thread");
        assert_eq!(count(&[&narrow[..], &["run.fitness_workers=3"]].concat()), 3);
        let many = ["run.fitness_workers=5", "search.population=3"];
        assert_eq!(count(&[&narrow[..], &many].concat()), 3, "never more than the population");
        assert_eq!(count(&[&narrow[..], &["fitness.precision=bf16"]].concat()), 1);
        assert_eq!(count(&["run.device=cuda:0", "run.threads=2", "supernet.init_channels=8"]), 1);
        assert_eq!(count(&["run.device=cpu", "run.threads=2", "supernet.init_channels=16"]), 1);
    }

    #[test]
    fn a_device_list_names_the_replicas_and_leaves_the_identity_alone() {
        let one = config_with(&["run.device=cpu"]);
        let two = config_with(&["run.device=cuda:3", "run.devices=[cpu, cpu]"]);
        assert_eq!(two.run.devices, ["cpu", "cpu"]);
        let s = settings(&two).unwrap();
        assert_eq!(s.runtime.devices, [tch::Device::Cpu, tch::Device::Cpu]);
        assert_eq!(s.runtime.device(), tch::Device::Cpu, "the list wins over run.device");
        assert_eq!(settings(&one).unwrap().runtime.devices, [tch::Device::Cpu]);
        assert_eq!((one.replicas(), two.replicas()), (1, 2), "a heap arena per replica");
        assert_eq!(config_with(&["run.devices=[cuda:0, cuda:1]"]).replicas(), 2);
        // Where a search computes is not what it computes: a run resumes on other devices.
        assert_eq!(one.digest(), two.digest());
        // An empty list is the shipped default, and not written into a run's config.json.
        let json = serde_json::to_value(&one).unwrap();
        assert!(json["run"].get("devices").is_none(), "{}", json["run"]);
        assert_eq!(config_with(&["run.devices=[]"]).run.devices, Vec::<String>::new());
    }

    #[test]
    fn a_device_that_is_not_there_is_named() {
        let err = settings(&config_with(&["run.device=cuda:7"])).unwrap_err();
        assert!(err.to_string().contains("cuda:7"), "{err}");
    }
}
