//! `evnas train`: a genotype's evaluation network trained from scratch as the reference's
//! train.py does, with a progress bar per epoch, one line per epoch, checkpoints every epoch,
//! `--resume`, and the weights, records, plot and result in the run directory.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use evnas::config::Override;
use evnas::data::DatasetKind;
use evnas::final_training::epoch::Step;
use evnas::final_training::{EpochRecord, TrainingObserver, TrainingOutcome, TrainingRun};
use evnas::space::Genotype;
use evnas::space::NamedGenotype;
use evnas::stop::StopFlag;
use evnas::telemetry::{MetricsExporter, TrainingTelemetry};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Args)]
pub struct TrainArgs {
    /// Built-in genotype name (e.g. EvNAS-A, DARTS_V2) or genotype file (JSON or DARTS notation).
    #[arg(long, required_unless_present = "resume")]
    genotype: Option<String>,
    /// cifar10, cifar100, fashion-mnist or imagenet (overrides data.dataset; imagenet brings
    /// train_imagenet.py's defaults).
    #[arg(long, value_parser = super::arg_values::dataset)]
    dataset: Option<DatasetKind>,
    /// Directory of the dataset's files (overrides data.path); for imagenet, holding train/ and val/.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Config file (TOML) whose [final_training], [data] and [run] sections apply.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override a config value, e.g. --set final_training.drop_path_prob=0.3 (repeatable).
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    set: Vec<String>,
    /// Continue the training run in this directory from its newest intact checkpoint.
    #[arg(long, value_name = "RUN_DIR", conflicts_with_all = [
        "genotype", "config", "set", "run_dir", "dataset", "data", "epochs", "init_channels", "layers",
        "batch_size", "train_subset", "no_auxiliary"
    ])]
    resume: Option<PathBuf>,
    /// Epochs (final_training.epochs; default 600, ImageNet 250).
    #[arg(long)]
    epochs: Option<usize>,
    /// Channels of the first cells (final_training.init_channels; default 36, ImageNet 48).
    #[arg(long, value_parser = super::arg_values::init_channels)]
    init_channels: Option<i64>,
    /// Number of cells (final_training.layers; default 20, ImageNet 14).
    #[arg(long, value_parser = super::arg_values::layers)]
    layers: Option<usize>,
    /// Images per training batch (final_training.batch_size; default 96, ImageNet 256).
    #[arg(long)]
    batch_size: Option<usize>,
    /// Train on the first N training images only.
    #[arg(long)]
    train_subset: Option<usize>,
    /// Train without the auxiliary head (needed for 28x28 images).
    #[arg(long)]
    no_auxiliary: bool,
    /// Put the run in exactly this directory (default: a new one under run.dir).
    #[arg(long, value_name = "DIR")]
    run_dir: Option<PathBuf>,
    /// "cpu", "cuda", "cuda:N" or "auto"; overrides run.device.
    #[arg(long)]
    device: Option<String>,
    /// No progress bars (one line per epoch only).
    #[arg(long)]
    quiet: bool,
    /// Serve Prometheus metrics on this address while training, e.g. 127.0.0.1:9465.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<std::net::SocketAddr>,
}

impl TrainArgs {
    /// The flags as config overrides, after the user's own `--set`s so that flags win; messages
    /// name each by its flag.
    fn overrides(&self) -> Vec<Override> {
        let mut sets: Vec<Override> = self.set.iter().cloned().map(Override::Set).collect();
        let mut flag = |written: String, key: &'static str, value: config::Value| {
            sets.push(Override::Flag { written, key, value });
        };
        let count = |n: usize| config::Value::from(i64::try_from(n).unwrap_or(i64::MAX));
        if let Some(d) = self.dataset {
            flag(format!("--dataset {}", d.name()), "data.dataset", d.name().into());
        }
        if let Some(p) = &self.data {
            let path = p.display().to_string();
            flag(format!("--data {path}"), "data.path", path.into());
        }
        if let Some(n) = self.epochs {
            flag(format!("--epochs {n}"), "final_training.epochs", count(n));
        }
        if let Some(c) = self.init_channels {
            flag(format!("--init-channels {c}"), "final_training.init_channels", c.into());
        }
        if let Some(l) = self.layers {
            flag(format!("--layers {l}"), "final_training.layers", count(l));
        }
        if let Some(b) = self.batch_size {
            flag(format!("--batch-size {b}"), "final_training.batch_size", count(b));
        }
        if let Some(n) = self.train_subset {
            flag(format!("--train-subset {n}"), "final_training.train_subset", count(n));
        }
        if self.no_auxiliary {
            flag("--no-auxiliary".into(), "final_training.auxiliary", false.into());
        }
        if let Some(d) = &self.device {
            flag(format!("--device {d}"), "run.device", d.clone().into());
        }
        sets
    }
}

pub fn run(args: &TrainArgs) -> anyhow::Result<ExitCode> {
    // Each process of a job would train on its own, into the same run directory.
    let job = match evnas::distributed::LaunchEnv::from_env() {
        Ok(None) => None,
        Ok(Some(job)) => Some(format!("this is rank {} of a job of {}", job.rank, job.world_size)),
        Err(e) => Some(format!("the launcher's environment makes this a process of a job ({e})")),
    };
    if let Some(job) = job {
        return Err(anyhow::anyhow!(
            "evnas train runs as one process; {job} (RANK/WORLD_SIZE, as torchrun or srun set them): start it alone"
        )
        .context(super::failure::Usage("cannot start training")));
    }
    if let Some(addr) = args.metrics_listen {
        let libtorch = evnas::runtime::TorchRuntime::detect().libtorch_version;
        MetricsExporter::start(addr, &libtorch)?;
    }
    let stop = StopFlag::new();
    {
        let stop = stop.clone();
        super::interrupt::ctrlc_like_handler(move || stop.stop());
    }
    let training = match &args.resume {
        Some(dir) => {
            let run = evnas::launch::resume_training(dir, args.device.as_deref())
                .with_context(|| format!("cannot resume {}", dir.display()))?;
            eprintln!(
                "resuming {} after epoch {}/{}",
                dir.display(),
                run.epochs_done(),
                run.settings().epochs
            );
            run
        }
        None => {
            let cfg = evnas::config::load_with(args.config.as_deref(), &args.overrides())?;
            let name = args.genotype.clone().unwrap_or_default();
            let genotype = NamedGenotype { genotype: Genotype::load(&name)?, name };
            // Settings that cannot be trained are the command line's to mend (exit 2).
            evnas::launch::create_training(&cfg, &genotype, args.run_dir.as_deref()).map_err(|e| {
                let usage = e.is_settings_problem();
                // With the flag that mends it.
                let e = if matches!(e, evnas::final_training::FinalTrainingError::AuxiliaryNeeds32 { .. }) {
                    anyhow::anyhow!("{e} (--no-auxiliary)")
                } else {
                    anyhow::Error::new(e)
                };
                if usage {
                    e.context(super::failure::Usage("cannot start training"))
                } else {
                    e.context("cannot start training")
                }
            })?
        }
    };
    drive(training, args.quiet, &stop)
}

/// Trains the result of the search in `search_dir` from scratch (`evnas search --then-train`,
/// or `final_training.enabled`), in its `final_training/` directory.
pub(super) fn train_search_result(
    cfg: &evnas::config::Config,
    search_dir: &std::path::Path,
    result: &evnas::search::SearchResult,
    quiet: bool,
    stop: &StopFlag,
) -> anyhow::Result<ExitCode> {
    let training = evnas::launch::final_training_of(cfg, search_dir, result)
        .with_context(|| format!("cannot train the result of {} from scratch", search_dir.display()))?;
    if training.epochs_done() > 0 {
        eprintln!(
            "continuing the final training after epoch {}/{}",
            training.epochs_done(),
            training.settings().epochs
        );
    }
    drive(training, quiet, stop)
}

/// Runs `training` to its end with progress bars, and says how it ended.
fn drive(training: TrainingRun, quiet: bool, stop: &StopFlag) -> anyhow::Result<ExitCode> {
    let run_dir = training.run_dir().path().to_path_buf();
    describe(&training);
    let mut observer = Progress::new(quiet, training.settings().epochs);
    match training.run(&mut observer, stop) {
        Ok(TrainingOutcome::Finished(result)) => {
            observer.clear();
            println!(
                "{} on {}: test top-1 {:.2}%  top-5 {:.2}% after {} epochs (best top-1 {:.2}% at epoch {})",
                result.genotype,
                result.dataset,
                result.test_top1,
                result.test_top5,
                result.epochs,
                result.best_test_top1,
                result.best_epoch
            );
            println!("training run directory: {}", run_dir.display());
            Ok(ExitCode::SUCCESS)
        }
        Ok(TrainingOutcome::Stopped { epochs_done }) => {
            observer.clear();
            eprintln!(
                "stopped after epoch {epochs_done}; resume with: evnas train --resume {}",
                run_dir.display()
            );
            Ok(ExitCode::from(super::failure::code::INTERRUPTED))
        }
        Err(e) => {
            observer.clear();
            Err(anyhow::Error::new(e).context(format!("training in {} failed", run_dir.display())))
        }
    }
}

fn describe(run: &TrainingRun) {
    let s = run.settings();
    eprintln!(
        "evnas train: {} on {} ({} training images), C={} {} cells{}, {:.2} M parameters, {} epochs of batch {} on {:?}, run directory {}",
        s.genotype_name,
        s.dataset.name(),
        run.train_images(),
        s.network.init_channels,
        s.network.layers,
        if s.network.auxiliary { " + auxiliary head" } else { "" },
        run.parameters() as f64 / 1e6,
        s.epochs,
        s.batch_size,
        s.device,
        run.run_dir().path().display()
    );
}

/// Progress bars and the per-epoch line; metrics of every step and epoch.
pub(super) struct Progress {
    quiet: bool,
    epochs: usize,
    bar: Option<ProgressBar>,
    telemetry: TrainingTelemetry,
}

impl Progress {
    pub(super) fn new(quiet: bool, epochs: usize) -> Self {
        Self { quiet, epochs, bar: None, telemetry: TrainingTelemetry::new(epochs, false) }
    }

    pub(super) fn clear(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }

    fn start_bar(&mut self, total: usize, template: String) {
        self.clear();
        if self.quiet {
            return;
        }
        let bar = ProgressBar::new(total as u64);
        if let Ok(style) = ProgressStyle::with_template(&template) {
            bar.set_style(style.progress_chars("=> "));
        }
        self.bar = Some(bar);
    }
}

impl TrainingObserver for Progress {
    fn epoch_started(&mut self, epoch: usize, batches: usize, learning_rate: f64) {
        self.telemetry.epoch_started(epoch, batches, learning_rate);
        self.start_bar(
            batches,
            format!(
                "epoch {:>3}/{} train [{{bar:30}}] {{pos}}/{{len}} {{msg}} eta {{eta}}",
                epoch + 1,
                self.epochs
            ),
        );
    }

    fn step(&mut self, step: &Step<'_>) {
        self.telemetry.step(step);
        if let Some(bar) = &self.bar {
            let t = &step.totals.tally;
            let busy = (step.totals.compute + step.totals.data_wait).as_secs_f64().max(1e-9);
            bar.set_message(format!(
                "loss {:.3} top-1 {:.1}% {:.0} img/s",
                t.mean_loss(),
                t.top1(),
                t.images as f64 / busy
            ));
            bar.set_position(step.totals.batches as u64);
        }
    }

    fn testing_started(&mut self, batches: usize) {
        self.start_bar(batches, "            test  [{bar:30}] {pos}/{len} eta {eta}".into());
    }

    fn tested_batch(&mut self) {
        self.telemetry.tested_batch();
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
    }

    fn epoch_finished(&mut self, r: &EpochRecord) {
        self.clear();
        self.telemetry.epoch_finished(r);
        eprintln!("epoch {:>3}/{}  {}", r.epoch, self.epochs, r.summary());
    }
}
