//! `evnas serve`: the configured search as a long-running service. On start, the search's run
//! directory (`run.dir`/`search id`) is resumed from its newest checkpoint when it holds one,
//! else created. It is steered by editing its config (or SIGHUP): hot values apply at the next
//! generation boundary, `search.state` pauses, stops or resumes it, a new `search.id` switches
//! to another search; anything else is refused until a restart. SIGTERM or SIGINT stop it at
//! the next batch (a second signal exits at once). A finished search stays served until it is
//! stopped; raising its budget continues it. Rank 0 of a job stops the same way when another
//! rank is told to stop, and exits as interrupted, for the launcher to restart the job.

use std::path::{Path, PathBuf};

use anyhow::Context;
use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::config::{Config, ConfigError, SearchStateSetting};
use crate::distributed::StopRequest;
use crate::reload::{self, ConfigWatch, Trigger};
use crate::telemetry::{self, MetricsExporter};

use super::notify::{self, Heartbeat};
use super::search_task::{SearchTask, TaskEnd};

pub struct ServeOptions {
    /// The config file, watched for edits.
    pub config_path: PathBuf,
    /// What it held at start, read once by the caller (it also sets up the process).
    pub config: Config,
}

/// How `serve` ended (an error is returned instead when the search failed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServeExit {
    /// Stopped by a signal, at a checkpoint the next start resumes from.
    Stopped,
    /// A second signal arrived while stopping.
    Forced,
    /// Stopped, at a checkpoint, because another process of its job was told to stop (one
    /// machine of the job going away): the job is to be restarted, not done.
    StoppedForJob,
}

/// Runs the service until a signal stops it.
pub fn serve(options: ServeOptions) -> anyhow::Result<ServeExit> {
    let ServeOptions { config_path, config: cfg } = options;
    crate::fault::point("serve.start")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("evnas-serve")
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    let exit = runtime.block_on(run(cfg, &config_path));
    if matches!(exit, Ok(ServeExit::Forced)) {
        // The caller ends the process at once: shutting the runtime down would make the search's
        // task report its pipeline as failed (an error line, a failure counted) on the way out.
        std::mem::forget(runtime);
    } else {
        runtime.shutdown_background();
    }
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

/// Where the served search stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Running,
    Paused,
    Stopped,
    Finished,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Running => "running",
            Mode::Paused => "paused",
            Mode::Stopped => "stopped",
            Mode::Finished => "finished",
        }
    }
}

struct Service {
    path: PathBuf,
    /// The config last accepted.
    cfg: Config,
    task: Option<SearchTask>,
    mode: Mode,
    /// The budget the finished search ran to (a larger one continues it).
    finished_at: Option<usize>,
    /// The search task was started by a reload, not by the service's start: if it cannot be
    /// opened, the service stays up (a restart would read the same config and fail the same
    /// way) and tries again by itself a few times ([`Reopening`]), or at the next reload.
    started_by_reload: bool,
    reopening: Reopening,
    heartbeat: Heartbeat,
}

/// Whether this process runs in a job of several whose processes can no longer all be reached.
fn job_is_broken() -> bool {
    crate::distributed::joined().is_some_and(crate::distributed::Job::is_broken)
}

/// Tries again to open a search that a reload asked for and that could not be opened: a cause
/// that passes (a disk full until files are removed) needs no SIGHUP. After 10 s, then twice
/// as long each time: 6 tries in about 10 minutes; then only a reload tries again.
#[derive(Default)]
struct Reopening {
    /// Tries made since the last reload.
    tries: u32,
    at: Option<tokio::time::Instant>,
}

impl Reopening {
    const FIRST_DELAY: std::time::Duration = std::time::Duration::from_secs(10);
    const TRIES: u32 = 6;

    /// After a failed open: when to try again, if at all.
    fn schedule(&mut self) -> Option<std::time::Duration> {
        if self.tries >= Self::TRIES {
            self.at = None;
            return None;
        }
        let delay = Self::FIRST_DELAY * 2u32.pow(self.tries);
        self.tries += 1;
        self.at = Some(tokio::time::Instant::now() + delay);
        Some(delay)
    }

    /// An accepted reload decides afresh.
    fn reset(&mut self) {
        *self = Self::default();
    }

    async fn due(&self) {
        match self.at {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    }
}

async fn run(cfg: Config, path: &Path) -> anyhow::Result<ServeExit> {
    // Before anything slow (the search's check reads the data's headers, the metrics exporter
    // looks for CUDA), so that a signal at start is not the end of the process by its default
    // action: a SIGHUP is a reload, a SIGTERM a clean exit.
    let mut signals = Signals::install()?;
    let mut stop_requests = JobStopRequests::watch();
    let mut watch = ConfigWatch::new(path)?;
    // Data that is not where the config says, or a search directory this config cannot resume,
    // is a config problem (exit 2, which systemd does not restart), not a failure of the
    // running service. Off the async workers: it reads files, perhaps on a slow mount.
    let check = {
        let cfg = cfg.clone();
        tokio::task::spawn_blocking(move || super::check_search(&cfg))
    };
    tokio::select! {
        checked = check => {
            checked.context("the search's check did not finish")??;
        }
        name = signals.next() => {
            tracing::info!("{name} while starting: exiting");
            return Ok(ServeExit::Stopped);
        }
    }
    if !super::logging::set_by_environment() {
        if let Err(e) = super::logging::set_level(&cfg.run.log_level) {
            tracing::warn!("run.log_level = {:?}: {e}", cfg.run.log_level);
        }
    }
    if !cfg.metrics.listen.is_empty() {
        let addr = cfg.metrics.listen.parse().context("metrics.listen")?;
        let libtorch = crate::runtime::TorchRuntime::detect().libtorch_version;
        MetricsExporter::start(addr, &libtorch)?;
    }
    let heartbeat = Heartbeat::default();
    tokio::spawn(notify::watchdog(heartbeat.clone()));
    tracing::info!(search = %cfg.search_id(), dir = %cfg.run.dir.join(cfg.search_id()).display(), "evnas serve starting");
    let mut service = Service {
        path: path.to_path_buf(),
        cfg,
        task: None,
        mode: Mode::Paused,
        finished_at: None,
        started_by_reload: false,
        reopening: Reopening::default(),
        heartbeat,
    };
    service.enter_configured_state(false);
    notify::ready();
    // An edit saved after the caller read the file and before the watch began would go unseen
    // until the next one: compare once, and take a difference (or a broken file) as a reload.
    if crate::config::load(Some(path), &[]).map_or(true, |now| now != service.cfg) {
        service.reload(Trigger::FileChanged).await;
    }

    loop {
        tokio::select! {
            end = async { service.task.as_mut().expect("guarded").end().await }, if service.task.is_some() => {
                let ended = service.task.take().map(|t| t.id).unwrap_or_default();
                service.task_ended(&ended, end)?;
            }
            trigger = watch.next() => service.reload(trigger).await,
            () = service.reopening.due() => service.reopen(),
            name = signals.next() => return service.shut_down(name, true, &mut signals).await,
            request = stop_requests.next() => {
                let exit = service.shut_down(&request.to_string(), false, &mut signals).await;
                if matches!(exit, Ok(ServeExit::StoppedForJob)) {
                    tracing::info!("exiting 130, not 0, for the launcher to restart the job ({request})");
                }
                return exit;
            }
        }
    }
}

/// Stop requests of the job's other ranks (rank 0 of a job; none elsewhere).
struct JobStopRequests(Option<tokio::sync::oneshot::Receiver<StopRequest>>);

impl JobStopRequests {
    fn watch() -> Self {
        let Some(job) = crate::distributed::joined().filter(|job| job.rank() == 0) else { return Self(None) };
        let (send, receive) = tokio::sync::oneshot::channel();
        job.watch_stop_requests(move |request| {
            let _ = send.send(request);
        });
        Self(Some(receive))
    }

    /// The request, when one comes.
    async fn next(&mut self) -> StopRequest {
        match self.0.as_mut() {
            Some(receive) => match receive.await {
                Ok(request) => request,
                // The watch ended without one: none will come.
                Err(_) => {
                    self.0 = None;
                    std::future::pending().await
                }
            },
            None => std::future::pending().await,
        }
    }
}

impl Service {
    /// Starts the search, or stays idle, as `search.state` says.
    fn enter_configured_state(&mut self, by_reload: bool) {
        match self.cfg.search.state {
            SearchStateSetting::Running => self.start_search(by_reload),
            SearchStateSetting::Paused => self.set_mode(Mode::Paused),
            SearchStateSetting::Stopped => self.set_mode(Mode::Stopped),
        }
    }

    fn start_search(&mut self, by_reload: bool) {
        let task = SearchTask::start(self.cfg.clone(), self.heartbeat.clone());
        self.started_by_reload = by_reload;
        tracing::info!(search = %task.id, dir = %task.dir.display(), "opening the search");
        self.task = Some(task);
        self.set_mode(Mode::Running);
    }

    fn set_mode(&mut self, mode: Mode) {
        self.mode = mode;
        telemetry::SearchStateChanged(mode.name()).emit();
        let id = self.cfg.search_id();
        match mode {
            Mode::Running => notify::status(&format!("search {id} running")),
            Mode::Paused => {
                notify::status(&format!("search {id} paused (set search.state = \"running\" to continue)"))
            }
            Mode::Stopped => notify::status(&format!("search {id} stopped (best so far in its best/)")),
            Mode::Finished => notify::status(&format!("search {id} finished")),
        }
    }

    /// The search task of search `ended` ended: by finishing, by being stopped (for a pause, a
    /// stop or another search), or by failing (the service then exits non-zero, for systemd to
    /// restart it). Then the search the config asks for runs, if it is not this one as it ended:
    /// another search (a new search.id), or this one with a budget raised past its end.
    fn task_ended(&mut self, ended: &str, end: TaskEnd) -> anyhow::Result<()> {
        match end {
            TaskEnd::Finished(result) => {
                tracing::info!(
                    top1 = %format_args!("{:.2}%", result.fitness.top1),
                    genotype = %result.genotype_path.display(),
                    "search finished; serving until stopped"
                );
                self.finished_at = Some(result.generations);
                self.set_mode(Mode::Finished);
            }
            TaskEnd::Stopped => {
                let dir = self.cfg.run.dir.join(ended);
                match self.cfg.search.state {
                    // Stopped to switch searches, or asked to run again before it had stopped.
                    SearchStateSetting::Running => {}
                    SearchStateSetting::Paused => {
                        tracing::info!(dir = %dir.display(), "search paused; set search.state = \"running\" to continue");
                        self.set_mode(Mode::Paused);
                    }
                    SearchStateSetting::Stopped => {
                        tracing::info!(
                            dir = %dir.display(),
                            "search stopped; the best individual so far is in its best/ (search.state = \"running\" continues it)"
                        );
                        self.set_mode(Mode::Stopped);
                    }
                }
            }
            // Not if a process of its job is gone: no reload brings it back, the launcher's
            // restart of the whole job does (exit 1).
            TaskEnd::NotOpened(e) if self.started_by_reload && !job_is_broken() => {
                // Tried again only while the config still asks for it; else the one it asks
                // for (a switch made while this one opened) starts below.
                let wanted = ended == self.cfg.search_id();
                let next = match wanted.then(|| self.reopening.schedule()) {
                    Some(Some(delay)) => telemetry::AfterNotOpened::RetryIn(delay),
                    Some(None) => telemetry::AfterNotOpened::WaitForReload,
                    None => telemetry::AfterNotOpened::SwitchedAway,
                };
                telemetry::SearchNotOpened { id: ended, error: &format!("{e:#}"), next }.emit();
                self.set_mode(Mode::Stopped);
                if wanted {
                    return Ok(());
                }
            }
            TaskEnd::NotOpened(e) | TaskEnd::Failed(e) => return Err(e),
        }
        let another = ended != self.cfg.search_id();
        if self.cfg.search.state == SearchStateSetting::Running
            && (another || self.wants_more_generations(self.cfg.search.generations))
        {
            self.start_search(true);
        }
        Ok(())
    }

    /// The search a reload asked for could not be opened: try again, if the config still asks
    /// for it to run and nothing has started it since.
    fn reopen(&mut self) {
        self.reopening.at = None;
        if self.task.is_none()
            && self.mode == Mode::Stopped
            && self.cfg.search.state == SearchStateSetting::Running
        {
            telemetry::SearchReopening { id: &self.cfg.search_id(), attempt: self.reopening.tries }.emit();
            self.start_search(true);
        }
    }

    /// Whether the search should run on to a budget of `generations`: it is not finished, or
    /// the budget is past the one it finished with.
    fn wants_more_generations(&self, generations: usize) -> bool {
        self.mode != Mode::Finished || self.finished_at.is_some_and(|done| generations > done)
    }

    /// Load → validate → diff → apply or refuse, as one step.
    async fn reload(&mut self, trigger: Trigger) {
        notify::reloading();
        self.reload_config(trigger.name()).await;
        notify::ready();
    }

    async fn reload_config(&mut self, source: &str) {
        // Every key has a default, so an empty file is a valid config: of another search. Seen
        // on reload it is a save caught half-way (truncated, not yet written), not a wish.
        // The text looked at is the one loaded, whatever the file holds by now.
        let text = match crate::config::read_file(&self.path) {
            Ok(text) => text,
            Err(e) => return telemetry::ReloadInvalid { source, problem: &e.one_line() }.emit(),
        };
        if text.trim().is_empty() {
            let problem = format!("{} is empty (a save not yet written?)", self.path.display());
            return telemetry::ReloadInvalid { source, problem: &problem }.emit();
        }
        let new = match crate::config::load_text(&self.path, &text) {
            Ok(new) => new,
            Err(e) => {
                let problem = e.one_line();
                return telemetry::ReloadInvalid { source, problem: &problem }.emit();
            }
        };
        let diff = reload::diff(&self.cfg, &new);
        if !diff.restart_only.is_empty() {
            return telemetry::ReloadRefused { source, reasons: &diff.restart_only }.emit();
        }
        // Checked before the running search stops: a search that cannot be opened (another
        // process writing it included) must not replace it. So is a search this reload would
        // continue (paused, stopped or finished): another process may have taken it up since.
        // Off the async workers: it reads files, perhaps on a slow mount.
        let continues = !diff.new_search
            && self.task.is_none()
            && new.search.state == SearchStateSetting::Running
            && self.wants_more_generations(new.search.generations);
        if diff.new_search || continues {
            let candidate = new.clone();
            let id = new.search_id();
            let doing = if diff.new_search { "switching to" } else { "continuing" };
            // Back to the search this service is still stopping: its lock is this process's.
            let ours = self.task.as_ref().is_some_and(|task| task.id == id);
            let check = move || {
                super::check_search(&candidate)?;
                if !ours {
                    super::check_not_in_use(&candidate)?;
                }
                anyhow::Ok(())
            };
            let problem = match tokio::task::spawn_blocking(check).await {
                Ok(Ok(_)) => None,
                // One line for the journal, also when it lists several problems.
                Ok(Err(e)) => {
                    Some(match e.chain().next().and_then(|outer| outer.downcast_ref::<ConfigError>()) {
                        Some(config) => format!("{doing} search {id}: {}", config.one_line()),
                        None => format!("{doing} search {id}: {e:#}"),
                    })
                }
                Err(e) => Some(format!("{doing} search {id}: its check did not finish: {e}")),
            };
            if let Some(reason) = problem {
                return telemetry::ReloadRefused { source, reasons: &[reason] }.emit();
            }
        }
        telemetry::ReloadAccepted { source, changes: &diff.changes }.emit();
        // What it asks for is done now (a search it continues is opened at once): tries of
        // opening the old config's search start afresh.
        self.reopening.reset();
        let old = std::mem::replace(&mut self.cfg, new);
        if old.run.log_level != self.cfg.run.log_level {
            if let Err(e) = super::logging::set_level(&self.cfg.run.log_level) {
                tracing::warn!("run.log_level = {:?}: {e}", self.cfg.run.log_level);
            }
        }
        if diff.new_search {
            tracing::info!(from = %old.search_id(), to = %self.cfg.search_id(), "switching searches");
            match &self.task {
                // Its end starts the new one (or idles, as the new config's state says).
                Some(task) => task.stop(),
                None => self.enter_configured_state(true),
            }
            return;
        }
        if let Some(task) = &self.task {
            task.apply(self.cfg.hot_settings()).await;
        }
        match (self.cfg.search.state, &self.task) {
            (SearchStateSetting::Running, None) if continues => self.start_search(true),
            // Said once: a reload while it stops changes nothing.
            (SearchStateSetting::Paused | SearchStateSetting::Stopped, Some(task)) if !task.is_stopping() => {
                tracing::info!("{}: checkpointing after the current batch", self.cfg.search.state.name());
                task.stop();
            }
            (SearchStateSetting::Paused, None) if self.mode == Mode::Stopped => self.set_mode(Mode::Paused),
            (SearchStateSetting::Stopped, None) if self.mode == Mode::Paused => self.set_mode(Mode::Stopped),
            _ => {}
        }
    }

    /// SIGTERM/SIGINT (`by_signal`), or another rank of the job told to stop: the search
    /// checkpoints after its current batch and the service exits; a second signal exits at
    /// once. A stop for the job alone exits as [`ServeExit::StoppedForJob`]; once this process
    /// is signalled too, as for its own signal.
    async fn shut_down(
        &mut self,
        why: &str,
        mut by_signal: bool,
        signals: &mut Signals,
    ) -> anyhow::Result<ServeExit> {
        notify::stopping();
        let stopped = |by_signal: bool| if by_signal { ServeExit::Stopped } else { ServeExit::StoppedForJob };
        let Some(mut task) = self.task.take() else {
            tracing::info!("{why}: exiting");
            return Ok(stopped(by_signal));
        };
        let again = if by_signal { " (signal again to exit now)" } else { "" };
        tracing::info!("{why}: stopping after the current batch{again}");
        task.stop();
        let dir = task.dir.clone();
        loop {
            tokio::select! {
                end = task.end() => return match end {
                    // Nothing of it ran, so nothing is lost: the stop asked for is done.
                    TaskEnd::NotOpened(e) => {
                        tracing::error!("the search could not be opened: {e:#}");
                        Ok(stopped(by_signal))
                    }
                    TaskEnd::Failed(e) => Err(e),
                    TaskEnd::Finished(_) | TaskEnd::Stopped => {
                        tracing::info!(dir = %dir.display(), "search stopped; the next start continues it");
                        Ok(stopped(by_signal))
                    }
                },
                name = signals.next() => {
                    if by_signal {
                        tracing::warn!("{name} again: exiting without waiting for the search");
                        return Ok(ServeExit::Forced);
                    }
                    tracing::info!("{name}: already stopping (signal again to exit now)");
                    by_signal = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reopening_waits_twice_as_long_each_time_then_leaves_it_to_a_reload() {
        let mut reopening = Reopening::default();
        let delays: Vec<u64> = std::iter::from_fn(|| reopening.schedule()).map(|d| d.as_secs()).collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 320]);
        assert!(reopening.at.is_none(), "no try after the last");
        reopening.reset();
        assert_eq!(reopening.schedule(), Some(Reopening::FIRST_DELAY));
        assert!(reopening.at.is_some());
    }
}
