//! Telemetry events: each struct says what happened and `emit`s its log line (where the event
//! deserves one) and its metrics in one go.

use std::path::Path;
use std::time::Duration;

use metrics::{counter, gauge, histogram};

use crate::search::{GenerationRecord, GenerationTimings, HotSettings};
use crate::train::supernet_epoch::StepReport;

use super::names::*;

/// One supernet training step.
pub struct TrainStep<'a>(pub &'a StepReport);

impl TrainStep<'_> {
    pub fn emit(&self) {
        let s = self.0;
        counter!(TRAIN_IMAGES_TOTAL).increment(s.images as u64);
        counter!(TRAIN_BATCHES_TOTAL).increment(1);
        histogram!(TRAIN_STEP_DURATION_SECONDS).record(s.compute.as_secs_f64());
        histogram!(DATA_WAIT_SECONDS, "actor" => "trainer").record(s.data_wait.as_secs_f64());
        histogram!(ACTOR_BUSY_SECONDS, "actor" => "trainer").record(s.compute.as_secs_f64());
    }
}

/// One validation batch of a fitness measurement.
pub struct FitnessBatch {
    pub images: usize,
    pub compute: Duration,
    pub data_wait: Duration,
}

impl FitnessBatch {
    pub fn emit(&self) {
        counter!(FITNESS_IMAGES_TOTAL).increment(self.images as u64);
        histogram!(FITNESS_BATCH_DURATION_SECONDS).record(self.compute.as_secs_f64());
        histogram!(DATA_WAIT_SECONDS, "actor" => "fitness").record(self.data_wait.as_secs_f64());
        histogram!(ACTOR_BUSY_SECONDS, "actor" => "fitness").record(self.compute.as_secs_f64());
    }
}

/// An individual's fitness is measured.
pub struct IndividualMeasured;

impl IndividualMeasured {
    pub fn emit(&self) {
        counter!(INDIVIDUALS_EVALUATED_TOTAL).increment(1);
    }
}

/// The phase of the running generation (`train`, `evaluate`, `breed` or `idle`).
pub struct PhaseEntered(pub &'static str);

impl PhaseEntered {
    pub fn emit(&self) {
        for phase in PHASES {
            gauge!(PHASE, "phase" => phase).set(if phase == self.0 { 1.0 } else { 0.0 });
        }
    }
}

/// A generation starts: its number, learning rate and the settings it runs with.
pub struct GenerationStarted {
    pub generation: usize,
    pub learning_rate: f64,
    pub settings: HotSettings,
}

impl GenerationStarted {
    pub fn emit(&self) {
        gauge!(GENERATION).set(self.generation as f64);
        gauge!(LEARNING_RATE).set(self.learning_rate);
        SettingsInForce(self.settings).emit();
        PhaseEntered("train").emit();
    }
}

/// The hot settings in force.
pub struct SettingsInForce(pub HotSettings);

impl SettingsInForce {
    pub fn emit(&self) {
        let s = &self.0;
        gauge!(CONFIG_POPULATION).set(s.population as f64);
        gauge!(CONFIG_GENERATIONS).set(s.generations as f64);
        gauge!(CONFIG_TOURNAMENT_SIZE).set(s.tournament_size as f64);
        gauge!(CONFIG_ELITES).set(s.elites as f64);
        gauge!(CONFIG_MUTATION_RATE).set(s.mutation_rate);
        gauge!(CONFIG_FITNESS_SUBSET).set(s.fitness_subset as f64);
    }
}

/// A generation is recorded (its checkpoint on its way to `checkpoint`).
pub struct GenerationFinished<'a> {
    pub record: &'a GenerationRecord,
    pub timings: &'a GenerationTimings,
    pub checkpoint: &'a Path,
    /// Log it (the daemon); the foreground search prints its own line.
    pub log: bool,
}

impl GenerationFinished<'_> {
    pub fn emit(&self) {
        let r = self.record;
        if self.log {
            tracing::info!(
                "generation {}/{}: {}  checkpointing to {}",
                r.generation,
                r.settings.generations,
                r.summary(),
                self.checkpoint.display()
            );
        }
        counter!(GENERATIONS_TOTAL).increment(1);
        set_generation_gauges(r);
        let t = self.timings;
        // (None where this run trained nothing of it: it resumed in the fitness phase.)
        if t.train_seconds > 0.0 {
            histogram!(PHASE_DURATION_SECONDS, "phase" => "train").record(t.train_seconds);
        }
        histogram!(PHASE_DURATION_SECONDS, "phase" => "evaluate").record(t.fitness_seconds);
        histogram!(PHASE_DURATION_SECONDS, "phase" => "breed").record(t.ga_seconds);
        histogram!(ACTOR_BUSY_SECONDS, "actor" => "ga").record(t.ga_seconds);
        histogram!(GENERATION_DURATION_SECONDS).record(t.seconds);
        PhaseEntered("idle").emit();
    }
}

/// The gauges that show a search's progress, as generation `r` leaves them.
fn set_generation_gauges(r: &GenerationRecord) {
    gauge!(GENERATION).set(r.generation as f64);
    gauge!(FITNESS_TOP1_RATIO, "stat" => "best").set(r.fitness.best / 100.0);
    gauge!(FITNESS_TOP1_RATIO, "stat" => "mean").set(r.fitness.mean / 100.0);
    gauge!(FITNESS_TOP1_RATIO, "stat" => "worst").set(r.fitness.worst / 100.0);
    gauge!(TRAIN_LOSS).set(r.train.loss);
    gauge!(TRAIN_TOP1_RATIO).set(r.train.top1 / 100.0);
    gauge!(POPULATION_DIVERSITY_RATIO).set(r.diversity);
}

/// A search is opened from its run directory: its progress gauges show where its history
/// ends (after a restart, before its next generation ends; for a finished search, for good).
pub struct SearchOpened<'a> {
    pub history: &'a [GenerationRecord],
    pub settings: HotSettings,
    pub run_dir: &'a Path,
}

impl SearchOpened<'_> {
    pub fn emit(&self) {
        set_available_bytes(self.run_dir);
        SettingsInForce(with_budget_at_least(self.settings, self.history.len())).emit();
        // Nothing runs until the pipeline starts (and nothing of a search opened before stays).
        PhaseEntered("idle").emit();
        match self.history.last() {
            Some(last) => {
                set_generation_gauges(last);
                gauge!(LEARNING_RATE).set(last.learning_rate);
                // Its checkpoint is the one the search resumed from (or a stop checkpoint after it).
                gauge!(CHECKPOINT_GENERATION).set(last.generation as f64);
            }
            None => {
                gauge!(GENERATION).set(0.0);
                gauge!(CHECKPOINT_GENERATION).set(0.0);
            }
        }
    }
}

/// A checkpoint is durable.
pub struct CheckpointWritten<'a> {
    /// 0-based generation boundary (or the generation a stop checkpoint stopped in).
    pub generation: u32,
    pub dir: &'a Path,
    /// `boundary` or `stop`.
    pub kind: &'static str,
    pub seconds: f64,
    pub bytes: u64,
}

impl CheckpointWritten<'_> {
    pub fn emit(&self) {
        // (The controller logs stop checkpoints itself, for the foreground search too.)
        if self.kind == "boundary" {
            tracing::debug!(dir = %self.dir.display(), seconds = self.seconds, "checkpoint written");
            gauge!(CHECKPOINT_GENERATION).set(f64::from(self.generation));
        }
        counter!(CHECKPOINTS_TOTAL, "kind" => self.kind).increment(1);
        histogram!(CHECKPOINT_DURATION_SECONDS, "kind" => self.kind).record(self.seconds);
        histogram!(ACTOR_BUSY_SECONDS, "actor" => "checkpoint writer").record(self.seconds);
        gauge!(CHECKPOINT_BYTES).set(self.bytes as f64);
        set_available_bytes(self.dir);
    }
}

/// [`RUN_DIR_AVAILABLE_BYTES`] from the filesystem holding `dir` (left as it was when that
/// cannot be measured).
fn set_available_bytes(dir: &Path) {
    match crate::checkpoint::available_bytes(dir) {
        Ok(bytes) => gauge!(RUN_DIR_AVAILABLE_BYTES).set(bytes as f64),
        Err(e) => tracing::debug!(dir = %dir.display(), "cannot measure free space: {e}"),
    }
}

/// Settings a reload asked for are in force from `generation` (1-based) on.
pub struct SettingsApplied<'a> {
    pub generation: usize,
    pub settings: HotSettings,
    pub changes: &'a [(&'static str, String, String)],
}

impl SettingsApplied<'_> {
    pub fn emit(&self) {
        // `generation` is 1-based: the generations before it have run.
        let run = self.generation.saturating_sub(1);
        let ends_now = self.settings.generations <= run;
        for (key, old, new) in self.changes {
            if *key == "search.generations" && ends_now {
                tracing::info!(
                    "{key} = {new} (was {old}): {run} generation(s) have run, so the search ends now"
                );
            } else if ends_now {
                // Kept with the search: in force if its budget is raised again.
                tracing::info!(
                    "{key} = {new} (was {old}) in force from generation {} if the budget is raised again",
                    self.generation
                );
            } else {
                tracing::info!("{key} = {new} (was {old}) in force from generation {}", self.generation);
            }
        }
        SettingsInForce(with_budget_at_least(self.settings, run)).emit();
    }
}

/// `settings` with a budget of at least the `run` generations a search has run: a budget cut
/// below them ends the search where it is, which is then its budget (and the dashboard's
/// progress, generation over budget, stays at most 100%).
fn with_budget_at_least(settings: HotSettings, run: usize) -> HotSettings {
    HotSettings { generations: settings.generations.max(run), ..settings }
}

/// A reload was accepted: its hot changes apply at the next generation boundary.
pub struct ReloadAccepted<'a> {
    pub source: &'a str,
    pub changes: &'a [String],
}

impl ReloadAccepted<'_> {
    pub fn emit(&self) {
        if self.changes.is_empty() {
            tracing::info!("reload ({}): nothing changed", self.source);
        }
        for change in self.changes {
            tracing::info!("reload ({}): {change}", self.source);
        }
        counter!(RELOADS_TOTAL, "outcome" => "applied").increment(1);
    }
}

/// A reload changed settings that only a restart may change; nothing was applied.
pub struct ReloadRefused<'a> {
    pub source: &'a str,
    /// One line per field: which, and why it needs a restart.
    pub reasons: &'a [String],
}

impl ReloadRefused<'_> {
    pub fn emit(&self) {
        for reason in self.reasons {
            tracing::warn!("reload ({}) refused: {reason}", self.source);
        }
        tracing::warn!("reload ({}) refused: the running config is unchanged", self.source);
        counter!(RELOADS_TOTAL, "outcome" => "refused").increment(1);
    }
}

/// A reload's file could not be read or is not a valid config; nothing was applied.
pub struct ReloadInvalid<'a> {
    pub source: &'a str,
    /// On one line (a journal entry).
    pub problem: &'a str,
}

impl ReloadInvalid<'_> {
    pub fn emit(&self) {
        tracing::warn!("reload ({}) refused, invalid config: {}", self.source, self.problem);
        counter!(RELOADS_TOTAL, "outcome" => "invalid").increment(1);
    }
}

/// An actor of the pipeline failed and stopped the search.
pub struct ActorFailed<'a> {
    pub actor: &'a str,
    pub error: &'a str,
}

impl ActorFailed<'_> {
    pub fn emit(&self) {
        tracing::error!("{} failed: {}", self.actor, self.error);
        counter!(ACTOR_FAILURES_TOTAL, "actor" => self.actor.to_string()).increment(1);
    }
}

/// A search that a reload asked for (continued or switched to) could not be opened; the
/// service stays up, its search stopped.
pub struct SearchNotOpened<'a> {
    pub id: &'a str,
    pub error: &'a str,
    pub next: AfterNotOpened,
}

/// What the service does after a search could not be opened.
pub enum AfterNotOpened {
    /// Tries again after this long.
    RetryIn(std::time::Duration),
    /// Waits for a reload (its tries are spent).
    WaitForReload,
    /// Starts the search the config now asks for.
    SwitchedAway,
}

impl SearchNotOpened<'_> {
    pub fn emit(&self) {
        let next = match self.next {
            AfterNotOpened::RetryIn(delay) => {
                format!(
                    "the search stays stopped: trying again in {} s (a reload, SIGHUP, tries at once)",
                    delay.as_secs()
                )
            }
            AfterNotOpened::WaitForReload => {
                "the search stays stopped: mend the cause, then reload (SIGHUP) to try again".to_string()
            }
            AfterNotOpened::SwitchedAway => "the config asks for another search now".to_string(),
        };
        tracing::error!("cannot open search {}: {}; {next}", self.id, self.error);
        counter!(ACTOR_FAILURES_TOTAL, "actor" => "search opener").increment(1);
    }
}

/// The service tries again to open a search it could not open ([`SearchNotOpened`]).
pub struct SearchReopening<'a> {
    pub id: &'a str,
    /// 1 for the first try after the failure.
    pub attempt: u32,
}

impl SearchReopening<'_> {
    pub fn emit(&self) {
        // Counted as its failure was (evnas_actor_failures_total), if it fails again.
        tracing::info!(search = %self.id, attempt = self.attempt, "trying again to open the search");
    }
}

/// The search's state: `running`, `paused`, `stopped` or `finished`.
pub struct SearchStateChanged(pub &'static str);

impl SearchStateChanged {
    pub fn emit(&self) {
        for state in SEARCH_STATES {
            gauge!(SEARCH_STATE, "state" => state).set(if state == self.0 { 1.0 } else { 0.0 });
        }
        // Only a running search is in a phase or has batches waiting.
        if self.0 != "running" {
            PhaseEntered("idle").emit();
            gauge!(PREFETCH_QUEUE_DEPTH).set(0.0);
        }
    }
}

/// The process started: versions, and every counter with labels at zero (so `increase()` and
/// the dashboard's panels have series before anything happened).
pub struct Started<'a> {
    pub libtorch: &'a str,
}

impl Started<'_> {
    pub fn emit(&self) {
        gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION"), "libtorch" => self.libtorch.to_string())
            .set(1.0);
        // A failure ends the process within seconds, so its failure counter rarely reaches a
        // scrape; a new start time does, and `changes()` of it counts the restarts.
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        gauge!(PROCESS_START_TIME_SECONDS).set(now.as_secs_f64());
        for outcome in RELOAD_OUTCOMES {
            counter!(RELOADS_TOTAL, "outcome" => outcome).absolute(0);
        }
        for actor in [
            "trainer",
            "prefetch",
            "selection",
            "crossover",
            "mutation",
            "checkpoint writer",
            "search controller",
            "search opener",
        ] {
            counter!(ACTOR_FAILURES_TOTAL, "actor" => actor).absolute(0);
        }
        for kind in ["boundary", "stop"] {
            counter!(CHECKPOINTS_TOTAL, "kind" => kind).absolute(0);
        }
        for name in [
            TRAIN_IMAGES_TOTAL,
            TRAIN_BATCHES_TOTAL,
            FITNESS_IMAGES_TOTAL,
            INDIVIDUALS_EVALUATED_TOTAL,
            GENERATIONS_TOTAL,
        ] {
            counter!(name).absolute(0);
        }
        PhaseEntered("idle").emit();
    }
}

/// One training step of a network trained from scratch.
pub struct FinalTrainingStep {
    pub images: usize,
    pub seconds: f64,
}

impl FinalTrainingStep {
    pub fn emit(&self) {
        counter!(FINAL_TRAINING_IMAGES_TOTAL).increment(self.images as u64);
        histogram!(FINAL_TRAINING_STEP_DURATION_SECONDS).record(self.seconds);
    }
}

/// An epoch of a network trained from scratch begins.
pub struct FinalTrainingEpochStarted {
    /// 0-based.
    pub epoch: usize,
    pub epochs: usize,
    pub learning_rate: f64,
}

impl FinalTrainingEpochStarted {
    pub fn emit(&self) {
        gauge!(FINAL_TRAINING_RUNNING).set(1.0);
        gauge!(FINAL_TRAINING_EPOCH).set(self.epoch as f64);
        gauge!(FINAL_TRAINING_EPOCHS).set(self.epochs as f64);
        gauge!(FINAL_TRAINING_LEARNING_RATE).set(self.learning_rate);
    }
}

/// An epoch of a network trained from scratch is recorded and checkpointed.
pub struct FinalTrainingEpochFinished<'a>(pub &'a crate::final_training::EpochRecord);

impl FinalTrainingEpochFinished<'_> {
    pub fn emit(&self) {
        let r = self.0;
        gauge!(FINAL_TRAINING_EPOCH).set(r.epoch as f64);
        gauge!(FINAL_TRAINING_LOSS).set(r.train_loss);
        gauge!(FINAL_TRAINING_TOP1_RATIO, "split" => "train").set(r.train_top1 / 100.0);
        gauge!(FINAL_TRAINING_TOP5_RATIO, "split" => "train").set(r.train_top5 / 100.0);
        if let (Some(top1), Some(top5)) = (r.test_top1, r.test_top5) {
            gauge!(FINAL_TRAINING_TOP1_RATIO, "split" => "test").set(top1 / 100.0);
            gauge!(FINAL_TRAINING_TOP5_RATIO, "split" => "test").set(top5 / 100.0);
        }
        gauge!(FINAL_TRAINING_IMAGES_PER_SECOND).set(r.images_per_second);
    }
}

/// The training of a network from scratch ended (finished, stopped or failed): its epoch
/// gauges stay as they were, and [`FINAL_TRAINING_RUNNING`] says that nothing trains.
pub struct FinalTrainingEnded;

impl FinalTrainingEnded {
    pub fn emit(&self) {
        tracing::debug!("final training ended");
        gauge!(FINAL_TRAINING_RUNNING).set(0.0);
    }
}
