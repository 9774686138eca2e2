//! `evnas search`: one search in the foreground, through the same actor pipeline as `evnas
//! serve`, with a progress bar per phase, a summary line per
//! generation, and the found cells at the end. Ctrl-C stops at the next batch; the run resumes
//! from its last generation checkpoint with `--resume`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use evnas::pipeline::ToObserver;
use evnas::search::run_dir::RunDir;
use evnas::search::{GenerationRecord, Phase, SearchObserver};
use evnas::stop::StopFlag;
use evnas::telemetry::{self, MetricsExporter, Telemetry};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Args)]
pub struct SearchArgs {
    /// Config file (TOML); the built-in default (config/evnas.toml) when omitted.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override a config value, e.g. --set search.generations=5 (repeatable).
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    set: Vec<String>,
    /// Continue the run in this directory from its newest intact checkpoint.
    #[arg(long, value_name = "RUN_DIR", conflicts_with = "set")]
    resume: Option<PathBuf>,
    /// Put the new run in exactly this directory (default: a new one under run.dir).
    #[arg(long, value_name = "DIR", conflicts_with = "resume")]
    run_dir: Option<PathBuf>,
    /// Device for this invocation ("cpu", "cuda", "cuda:N", "auto"); overrides run.device and
    /// run.devices.
    #[arg(long)]
    device: Option<String>,
    /// No progress bars (log lines only).
    #[arg(long)]
    quiet: bool,
    /// Serve Prometheus metrics on this address while the search runs, e.g. 127.0.0.1:9464.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<std::net::SocketAddr>,
    /// Then train the best genotype from scratch ([final_training]) in RUN_DIR/final_training,
    /// as final_training.enabled = true does.
    #[arg(long)]
    then_train: bool,
}

impl SearchArgs {
    /// The config this invocation runs with on this machine (the resumed run's own, or the one
    /// given), `--device` applied.
    pub fn config_here(&self) -> anyhow::Result<evnas::config::Config> {
        let mut cfg = match (&self.resume, &self.config) {
            (Some(_), Some(path)) => evnas::config::load(Some(path), &[])?,
            // A rank of a job on a machine without the run directory: its devices are --device.
            (Some(dir), None) => match evnas::launch::search_config(dir) {
                Err(_) if self.device.is_some() => evnas::config::load(None, &[])?,
                read => read.with_context(|| format!("cannot read the config of {}", dir.display()))?,
            },
            (None, path) => evnas::config::load(path.as_deref(), &self.set)?,
        };
        if let Some(device) = &self.device {
            cfg.run.device = device.clone();
            cfg.run.devices.clear();
            // Checked as a device in the config is: its name, and with run.collectives.
            let problems = evnas::config::validate(&cfg);
            if !problems.is_empty() {
                let source_name = format!("the config with --device {device}");
                return Err(evnas::config::ConfigError::Invalid { source_name, problems }.into());
            }
        }
        // Its result must be trainable: said now, not once the search is over.
        if let Some(problem) = evnas::config::untrainable_result(&cfg).filter(|_| self.then_train) {
            let source_name = "the config".to_string();
            let problems = vec![format!("--then-train: {problem}")];
            return Err(evnas::config::ConfigError::Invalid { source_name, problems }.into());
        }
        Ok(cfg)
    }
}

/// Why the same command line, run again, continues the search `dir` holds: its launcher
/// restarted the job (a restart count above 0), or torchrun's job that started it started its
/// processes again without counting a restart (its elastic agent does so when a node joins);
/// `None` for a first launch. (Slurm counts its requeues; its job id is every command's of an
/// allocation, which may well start a search anew.)
fn relaunch(dir: &Path) -> Option<String> {
    if let Some((variable, count)) = evnas::distributed::launcher_restart() {
        return Some(format!("restarted by the launcher ({variable} = {count})"));
    }
    let job = evnas::distributed::elastic_run_id()?;
    (RunDir::launcher_job(dir)? == job)
        .then(|| format!("started again in job {job}, which started this search"))
}

/// Runs the search; `config` is [`SearchArgs::config_here`]'s, read once by main (a new search's
/// config, or a resume's `--config`).
pub fn run(args: &SearchArgs, config: anyhow::Result<evnas::config::Config>) -> anyhow::Result<ExitCode> {
    if let Some(addr) = args.metrics_listen {
        let libtorch = evnas::runtime::TorchRuntime::detect().libtorch_version;
        MetricsExporter::start(addr, &libtorch)?;
    }
    // Settings changes and checkpoints as log lines, and metrics when they are served; the
    // progress bars print the generations.
    let mut telemetry = Telemetry::new(false);
    let stop = StopFlag::new();
    // Its own flag for --then-train: the pipeline raises the search's once the search is done.
    let training_stop = StopFlag::new();
    {
        let (stop, training_stop) = (stop.clone(), training_stop.clone());
        super::interrupt::ctrlc_like_handler(move || {
            stop.stop();
            training_stop.stop();
        });
    }
    if let Some(job) = evnas::distributed::joined() {
        let (stop, training_stop) = (stop.clone(), training_stop.clone());
        job.watch_stop_requests(move |request| {
            if !training_stop.is_stopped() {
                eprintln!(
                    "{}evnas: {request}: stopping the job after the current batch",
                    super::interrupt::line_break_on_terminal()
                );
            }
            stop.stop();
            training_stop.stop();
        });
    }

    // A launcher's restart runs the same command line again: a --run-dir that already holds
    // this search (its first launch's) is continued, as --resume would.
    let relaunched =
        args.run_dir.as_deref().filter(|dir| dir.join("config.json").is_file()).and_then(|dir| {
            eprintln!("{}: continuing the search in {}", relaunch(dir)?, dir.display());
            Some(dir)
        });
    // The engine, and the config whose [final_training] trains the result.
    let (engine, training_cfg) = match (&args.resume, relaunched) {
        (Some(dir), _) => {
            // Without --config, the run's own (read by launch::resume).
            let cfg = match &args.config {
                Some(_) => Some(config?),
                None => None,
            };
            resume(dir, cfg, args)?
        }
        (None, Some(dir)) => resume(dir, Some(config?), args)?,
        (None, None) => {
            let cfg = config?;
            let engine =
                evnas::launch::create(&cfg, args.run_dir.as_deref()).context("cannot start the search")?;
            (engine, cfg)
        }
    };
    // For a relaunch of this job that torchrun does not count as a restart (a job of one
    // process too: its elastic agent may grow it).
    if let Some(job) = evnas::distributed::elastic_run_id() {
        if let Err(e) = RunDir::record_launcher_job(engine.run_dir(), &job) {
            evnas::daemon::journal::eprint_at(tracing::Level::WARN, format_args!(
                "evnas: warning: {e}: a relaunch of job {job} that its launcher does not count as a restart would not continue this search"
            ));
        }
    }

    let devices = match engine.devices() {
        [one] => format!("{one:?}"),
        several => format!("{} replicas: {several:?}", several.len()),
    };
    eprintln!(
        "evnas search: {} individuals x {} generations on {} ({devices}), run directory {}",
        engine.settings().hot.population,
        engine.settings().hot.generations,
        engine.settings().data.dataset.name(),
        engine.run_dir().display()
    );
    let mut observer = ProgressObserver::new(args.quiet, engine.settings().hot.generations);
    let run_dir = engine.run_dir().to_path_buf();
    telemetry::SearchStateChanged("running").emit();
    let state = engine.state();
    telemetry::SearchOpened { history: &state.history, settings: state.settings, run_dir: &run_dir }.emit();
    telemetry::exporter::watch_cuda_devices(engine.devices());
    let mut sink = (ToObserver(&mut observer), &mut telemetry);
    let outcome = evnas::pipeline::run(engine, &mut sink, &stop);
    let result = match outcome {
        Ok(r) => r,
        Err(e) if e.is_interrupted() => {
            observer.clear();
            match evnas::distributed::launcher_job_id() {
                Some(job) => eprintln!(
                    "stopped; the launcher's restart of job {job} continues it, or by hand: evnas search --resume {}",
                    run_dir.display()
                ),
                None => eprintln!("stopped; resume with: evnas search --resume {}", run_dir.display()),
            }
            return Ok(ExitCode::from(super::failure::code::INTERRUPTED));
        }
        Err(e) => {
            observer.clear();
            return Err(e.into());
        }
    };
    observer.clear();
    println!(
        "best individual: top-1 {:.2}% (validation), top-5 {:.2}%",
        result.fitness.top1, result.fitness.top5
    );
    println!("found cells:\n{}", result.architecture);
    println!("genotype: {}", result.genotype_path.display());
    println!("run directory: {}", run_dir.display());
    print_pictures(&run_dir);
    if args.then_train || training_cfg.final_training.enabled {
        return super::train::train_search_result(
            &training_cfg,
            &run_dir,
            &result,
            args.quiet,
            &training_stop,
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The search in `dir` continued under `cfg` (`None`: its own config), and the config that
/// trains its result.
fn resume(
    dir: &Path,
    cfg: Option<evnas::config::Config>,
    args: &SearchArgs,
) -> anyhow::Result<(evnas::search::SearchEngine, evnas::config::Config)> {
    let training_cfg = match &cfg {
        Some(c) => c.clone(),
        None => {
            evnas::launch::search_config(dir).with_context(|| format!("cannot resume {}", dir.display()))?
        }
    };
    let (engine, notes) =
        evnas::launch::resume(dir, cfg, args.device.as_deref()).with_context(|| match &args.config {
            Some(config) => format!("cannot resume {} with --config {}", dir.display(), config.display()),
            None => format!("cannot resume {}", dir.display()),
        })?;
    for note in notes {
        evnas::daemon::journal::eprint_at(tracing::Level::WARN, format_args!("warning: {note}"));
    }
    let stopped = engine.state().stopped.as_ref().map(|s| format!(", stopped {}", s.describe()));
    eprintln!(
        "resuming {} at generation {}/{}{}",
        dir.display(),
        engine.state().next_generation + 1,
        // The budget it runs to: --config's, where that raised it.
        engine.settings().hot.generations,
        stopped.unwrap_or_default()
    );
    Ok((engine, training_cfg))
}

fn print_pictures(run: &Path) {
    let best = run.join("best");
    for name in ["normal.svg", "reduction.svg"] {
        let p = best.join(name);
        if p.exists() {
            println!("cell picture: {}", p.display());
        }
    }
}

struct ProgressObserver {
    quiet: bool,
    generations: usize,
    bar: Option<ProgressBar>,
}

impl ProgressObserver {
    fn new(quiet: bool, generations: usize) -> Self {
        Self { quiet, generations, bar: None }
    }

    fn clear(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl SearchObserver for ProgressObserver {
    fn phase_started(&mut self, generation: usize, phase: Phase, total: u64) {
        self.clear();
        if self.quiet {
            return;
        }
        let (what, unit) = match phase {
            Phase::Train => ("train", "batches"),
            Phase::Evaluate => ("fitness", "individuals"),
        };
        let bar = ProgressBar::new(total);
        let template = format!(
            "gen {generation:>3}/{} {what:<7} [{{bar:30}}] {{pos}}/{{len}} {unit} {{per_sec}} eta {{eta}}",
            self.generations
        );
        if let Ok(style) = ProgressStyle::with_template(&template) {
            bar.set_style(style.progress_chars("=> "));
        }
        self.bar = Some(bar);
    }

    fn advanced(&mut self, _phase: Phase, done: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(done);
        }
    }

    fn generation_finished(&mut self, r: &GenerationRecord, _checkpoint: &Path) {
        self.clear();
        // The budget in force, as each generation records it.
        self.generations = r.settings.generations;
        eprintln!("gen {:>3}/{}  {}", r.generation, self.generations, r.summary());
    }
}
