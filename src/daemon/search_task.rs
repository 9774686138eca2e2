//! One search as `evnas serve` runs it: opened (resumed from its run directory, or created) and
//! driven through the actor pipeline on a blocking thread of its own, its events turned into
//! telemetry, until it finishes, is stopped or fails. The service talks to it through its stop
//! flag and, once the pipeline runs, its controller.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use kameo::prelude::ActorRef;
use tokio::task::JoinHandle;

use crate::actors::controller::{ApplySettings, SearchController};
use crate::config::Config;
use crate::final_training::TrainingOutcome;
use crate::search::{HotSettings, SearchEngine, SearchResult};
use crate::stop::StopFlag;
use crate::telemetry::{self, Telemetry};

use super::notify::{self, Heartbeat};

/// How a search task ended.
pub enum TaskEnd {
    Finished(SearchResult),
    /// Stopped by its stop flag (at a checkpoint it resumes from).
    Stopped,
    /// It could not be opened (resumed or created): nothing of it ran.
    NotOpened(anyhow::Error),
    Failed(anyhow::Error),
}

pub struct SearchTask {
    pub id: String,
    pub dir: PathBuf,
    stop: StopFlag,
    /// Stops the final training (the pipeline raises `stop` itself when the search ends).
    training_stop: StopFlag,
    /// The settings the service wants in force, numbered by reload; read by the task once its
    /// controller runs.
    settings: Arc<Mutex<(u64, HotSettings)>>,
    controller: Arc<Mutex<Option<ActorRef<SearchController>>>>,
    join: JoinHandle<TaskEnd>,
}

impl SearchTask {
    /// Starts the search of `cfg` in `cfg.run.dir`/`cfg.search_id()`. Call on a tokio runtime.
    pub fn start(cfg: Config, heartbeat: Heartbeat) -> Self {
        let id = cfg.search_id();
        let dir = cfg.run.dir.join(&id);
        let stop = StopFlag::new();
        let training_stop = StopFlag::new();
        let settings = Arc::new(Mutex::new((0, cfg.hot_settings())));
        let controller = Arc::new(Mutex::new(None));
        let runtime = tokio::runtime::Handle::current();
        let job = Job {
            cfg,
            id: id.clone(),
            dir: dir.clone(),
            stop: stop.clone(),
            training_stop: training_stop.clone(),
            settings: Arc::clone(&settings),
            controller: Arc::clone(&controller),
            heartbeat,
        };
        let join = tokio::task::spawn_blocking(move || job.run(&runtime));
        Self { id, dir, stop, training_stop, settings, controller, join }
    }

    /// Stops the search at its next batch (a stop checkpoint); [`Self::end`] then says
    /// [`TaskEnd::Stopped`].
    pub fn stop(&self) {
        self.stop.stop();
        self.training_stop.stop();
    }

    /// Whether [`Self::stop`] was asked for already (read from the final training's flag: the
    /// pipeline raises the search's own when the search ends).
    pub fn is_stopping(&self) -> bool {
        self.training_stop.is_stopped()
    }

    /// Puts `settings` in force at the search's next generation boundary.
    pub async fn apply(&self, settings: HotSettings) {
        // The wish first, then the controller: a task that publishes its controller meanwhile
        // reads the wish after publishing, so one of the two sends the new settings; the
        // revision lets the controller drop whichever of them is older.
        let revision = match self.settings.lock() {
            Ok(mut wanted) => {
                *wanted = (wanted.0 + 1, settings);
                wanted.0
            }
            Err(_) => return,
        };
        let controller = self.controller.lock().ok().and_then(|c| c.clone());
        if let Some(controller) = controller {
            let _ = controller.tell(ApplySettings { settings, revision }).send().await;
        }
    }

    /// Waits for the search to end.
    pub async fn end(&mut self) -> TaskEnd {
        match (&mut self.join).await {
            Ok(end) => end,
            Err(e) => TaskEnd::Failed(anyhow::anyhow!("the search's task failed: {e}")),
        }
    }
}

struct Job {
    cfg: Config,
    id: String,
    dir: PathBuf,
    stop: StopFlag,
    training_stop: StopFlag,
    settings: Arc<Mutex<(u64, HotSettings)>>,
    controller: Arc<Mutex<Option<ActorRef<SearchController>>>>,
    heartbeat: Heartbeat,
}

impl Job {
    /// Opens and runs the search; the watchdog expects progress all the while (opening, that is
    /// loading data and building models, too: a load that hangs is restarted like a trainer
    /// that hangs), and nothing once it has ended.
    fn run(self, runtime: &tokio::runtime::Handle) -> TaskEnd {
        let heartbeat = self.heartbeat.clone();
        heartbeat.set_idle(false);
        let end = self.open_and_run(runtime);
        heartbeat.set_idle(true);
        end
    }

    fn open_and_run(self, runtime: &tokio::runtime::Handle) -> TaskEnd {
        let Job { cfg, id, dir, stop, training_stop, settings, controller, heartbeat } = self;
        let final_training = cfg.final_training.enabled.then(|| cfg.clone());
        let engine = match open_search(cfg, &dir) {
            Ok(engine) => engine,
            Err(e) => return TaskEnd::NotOpened(e),
        };
        if stop.is_stopped() {
            return TaskEnd::Stopped;
        }
        let state = engine.state();
        // The budget the config asks for (applied once the pipeline runs) is the one it runs to.
        let generations = settings.lock().map_or(state.settings.generations, |s| s.1.generations);
        if state.next_generation < generations || state.stopped.is_some() {
            tracing::info!(
                search = %id,
                next_generation = state.next_generation + 1,
                generations,
                fitness_evaluators = engine.evaluator_count(),
                devices = ?engine.devices(),
                "search running"
            );
        }
        telemetry::SearchOpened {
            history: &state.history,
            settings: state.settings,
            run_dir: engine.run_dir(),
        }
        .emit();
        telemetry::exporter::watch_cuda_devices(engine.devices());
        let running = runtime.block_on(crate::pipeline::start(engine, stop));
        if let Ok(mut published) = controller.lock() {
            *published = Some(running.controller.clone());
        }
        // Read after publishing the controller, as `apply` relies on.
        let wanted = settings.lock().map(|s| *s).ok();
        if let Some((revision, settings)) = wanted {
            let _ = runtime.block_on(running.controller.tell(ApplySettings { settings, revision }).send());
        }
        let beat = heartbeat.clone();
        let mut sink = Telemetry::new(true).on_progress(move || beat.beat()).on_generation(|r| {
            notify::status(&format!(
                "generation {}/{}: best {:.2}%, mean {:.2}%",
                r.generation, r.settings.generations, r.fitness.best, r.fitness.mean
            ))
        });
        let outcome = running.wait(&mut sink);
        if let Ok(mut published) = controller.lock() {
            *published = None;
        }
        match outcome {
            Ok(result) => match final_training {
                Some(cfg) => train_result(&cfg, &dir, result, &training_stop, &heartbeat),
                None => TaskEnd::Finished(result),
            },
            Err(e) if e.is_interrupted() => TaskEnd::Stopped,
            Err(e) => {
                let actor = e.actor().unwrap_or("pipeline").to_string();
                let e = anyhow::Error::new(e);
                // The causes under "the <actor> failed", which the event says itself.
                let causes: Vec<String> = e.chain().skip(1).map(ToString::to_string).collect();
                let error = if causes.is_empty() { e.to_string() } else { causes.join(": ") };
                telemetry::ActorFailed { actor: &actor, error: &error }.emit();
                TaskEnd::Failed(e.context(format!("search {id} stopped")))
            }
        }
    }
}

/// `final_training`: the search's result trained from scratch in its run directory (continued
/// where an earlier start left it). The search counts as finished once its network is trained.
fn train_result(
    cfg: &Config,
    dir: &Path,
    result: SearchResult,
    stop: &StopFlag,
    heartbeat: &Heartbeat,
) -> TaskEnd {
    let training = match crate::launch::final_training_of(cfg, dir, &result) {
        Ok(t) => t,
        Err(e) => {
            return TaskEnd::Failed(
                anyhow::Error::new(e)
                    .context(format!("cannot train the result of {} from scratch", dir.display())),
            )
        }
    };
    let s = training.settings();
    tracing::info!(
        dir = %training.run_dir().path().display(),
        epochs_done = training.epochs_done(),
        epochs = s.epochs,
        "search finished; training its result from scratch"
    );
    notify::status(&format!(
        "training the result from scratch ({}/{} epochs)",
        training.epochs_done(),
        s.epochs
    ));
    let beat = heartbeat.clone();
    let epochs = s.epochs;
    let mut observer =
        telemetry::TrainingTelemetry::new(epochs, true).on_progress(move || beat.beat()).on_epoch(move |r| {
            notify::status(&format!("training the result from scratch ({}/{epochs} epochs)", r.epoch))
        });
    let run_dir = training.run_dir().path().to_path_buf();
    match training.run(&mut observer, stop) {
        Ok(TrainingOutcome::Finished(trained)) => {
            tracing::info!(
                test_top1 = trained.test_top1,
                test_top5 = trained.test_top5,
                weights = %run_dir.join("weights").display(),
                "final training finished"
            );
            TaskEnd::Finished(result)
        }
        Ok(TrainingOutcome::Stopped { epochs_done }) => {
            tracing::info!(epochs_done, "final training stopped; it continues on the next start");
            TaskEnd::Stopped
        }
        Err(e) => {
            let e = anyhow::Error::new(e);
            telemetry::ActorFailed { actor: "final_training", error: &format!("{e:#}") }.emit();
            TaskEnd::Failed(e.context(format!("final training in {} failed", run_dir.display())))
        }
    }
}

/// The search of `dir`: resumed when it exists, created otherwise.
fn open_search(cfg: Config, dir: &Path) -> anyhow::Result<SearchEngine> {
    if dir.join("config.json").is_file() {
        let (engine, notes) = crate::launch::resume(dir, Some(cfg), None)
            .with_context(|| format!("cannot resume the search in {}", dir.display()))?;
        for note in notes {
            tracing::warn!("{note}");
        }
        let state = engine.state();
        let generation = state.next_generation + 1;
        match &state.stopped {
            Some(stopped) => {
                tracing::info!(dir = %dir.display(), generation, "resuming, stopped {}", stopped.describe())
            }
            None if state.is_finished() => {
                tracing::info!(dir = %dir.display(), generations = state.next_generation, "opening the finished search")
            }
            None => tracing::info!(dir = %dir.display(), generation, "resuming"),
        }
        Ok(engine)
    } else {
        crate::launch::create(&cfg, Some(dir))
            .with_context(|| format!("cannot start a search in {}", dir.display()))
    }
}
