//! `evnas serve`: runs the configured search through the actor pipeline as a long-running
//! service. On start, the search's run directory (`run.dir`/`search id`) is resumed from its
//! newest checkpoint when it holds one, else created. SIGTERM or SIGINT stop it at the next
//! batch (the last generation checkpoint is kept; a second signal exits at once). A finished
//! search writes its results and the service stays up until it is stopped.

use std::path::{Path, PathBuf};

use anyhow::Context;
use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::config::Config;
use crate::search::{GenerationRecord, SearchEngine, SearchObserver};
use crate::stop::StopFlag;

pub struct ServeOptions {
    pub config: PathBuf,
}

/// How `serve` ended (an error is returned instead when the search failed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServeExit {
    /// Stopped by a signal, after the search finished or at a checkpoint it resumes from.
    Stopped,
    /// A second signal arrived while stopping.
    Forced,
}

/// Runs the service until a signal stops it.
pub fn serve(options: &ServeOptions) -> anyhow::Result<ServeExit> {
    let cfg = crate::config::load(Some(&options.config), &[])?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("evnas-serve")
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    let exit = runtime.block_on(run(cfg));
    // A forced exit leaves the search's event task blocked; nothing else is left running.
    runtime.shutdown_background();
    exit
}

struct Signals {
    term: Signal,
    int: Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Self> {
        let term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
        let int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
        Ok(Self { term, int })
    }

    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

async fn run(cfg: Config) -> anyhow::Result<ServeExit> {
    let mut signals = Signals::install()?;
    let stop = StopFlag::new();
    let id = cfg.search_id();
    let dir = cfg.run.dir.join(&id);
    tracing::info!(search = %id, dir = %dir.display(), "evnas serve starting");

    // Building the search loads data and models: off the runtime's workers, while signals are
    // still heard.
    let open = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || open_search(cfg, &dir)
    });
    tokio::pin!(open);
    let engine = tokio::select! {
        opened = &mut open => opened.context("the start-up task failed")??,
        name = signals.next() => {
            tracing::info!("{name} during start-up; exiting");
            return Ok(ServeExit::Stopped);
        }
    };
    let generations = engine.config().search.generations;
    tracing::info!(
        search = %id,
        next_generation = engine.state().next_generation + 1,
        generations,
        fitness_evaluators = engine.evaluator_count(),
        device = ?engine.device(),
        "search running"
    );

    let running = crate::pipeline::start(engine, stop.clone()).await;
    let waiting = tokio::task::spawn_blocking(move || running.wait(&mut LogLines { generations }));
    tokio::pin!(waiting);
    let outcome = tokio::select! {
        outcome = &mut waiting => outcome.context("the search's event task failed")?,
        name = signals.next() => {
            tracing::info!("{name}: stopping after the current batch (signal again to exit now)");
            stop.stop();
            tokio::select! {
                outcome = &mut waiting => outcome.context("the search's event task failed")?,
                name = signals.next() => {
                    tracing::warn!("{name} again: exiting without waiting for the search");
                    return Ok(ServeExit::Forced);
                }
            }
        }
    };
    match outcome {
        Ok(result) => {
            tracing::info!(
                top1 = result.fitness.top1,
                genotype = %result.genotype_path.display(),
                "search finished; serving until stopped"
            );
            let name = signals.next().await;
            tracing::info!("{name}: exiting");
            Ok(ServeExit::Stopped)
        }
        Err(e) if e.is_interrupted() => {
            tracing::info!(dir = %dir.display(), "search stopped; the next start continues it");
            Ok(ServeExit::Stopped)
        }
        Err(e) => Err(anyhow::Error::new(e).context(format!("search {id} stopped"))),
    }
}

/// The search of `dir`: resumed when it exists, created otherwise.
fn open_search(cfg: Config, dir: &Path) -> anyhow::Result<SearchEngine> {
    if dir.join("config.json").is_file() {
        let (engine, notes) = SearchEngine::resume(dir, Some(cfg), None)
            .with_context(|| format!("cannot resume the search in {}", dir.display()))?;
        for note in notes {
            tracing::warn!("{note}");
        }
        let generation = engine.state().next_generation + 1;
        match &engine.state().stopped {
            Some(stopped) => {
                tracing::info!(dir = %dir.display(), generation, "resuming, stopped {}", stopped.describe())
            }
            None => tracing::info!(dir = %dir.display(), generation, "resuming"),
        }
        Ok(engine)
    } else {
        SearchEngine::create(cfg, Some(dir))
            .with_context(|| format!("cannot start a search in {}", dir.display()))
    }
}

/// One log line per generation.
struct LogLines {
    generations: usize,
}

impl SearchObserver for LogLines {
    fn generation_finished(&mut self, r: &GenerationRecord, checkpoint: &Path) {
        tracing::info!(
            "generation {}/{}: {}  checkpoint {}",
            r.generation,
            self.generations,
            r.summary(),
            checkpoint.display()
        );
    }
}
