//! The search controller actor: owns the generation state machine, the population and the run
//! directory, and is the only writer of search state. Every other actor gets owned data in a
//! message and answers with owned data:
//!
//! ```text
//! TrainGeneration{plan} ─→ trainer ─Trained{snapshot}─→ controller
//! EvaluateGeneration{snapshot, queue} ─→ evaluators ─Measured{id}─→ controller   (record, write)
//! BreedGeneration{ranked} ─→ selection ─CrossParents─→ crossover ─MutateChild─→ mutation ─ChildBred─→ controller
//! CaptureCheckpoint{state} ─→ trainer ─Captured─→ controller ─WriteCheckpoint─→ writer ─CheckpointWritten─→ controller
//! ```
//!
//! The next generation trains while the checkpoint of its boundary is written; the boundary
//! after it waits until that checkpoint is durable, so at most one generation's work is at stake.
//! Supervision: every actor is linked to the controller; an actor that fails (an error it
//! reports, a panic, a libtorch exception) stops the pipeline: the stop flag is raised, the
//! checkpoint in flight is let finish, and the run's outcome is the failure, naming the actor.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::Sender;
use kameo::actor::Spawn;
use kameo::error::{ActorStopReason, Infallible};
use kameo::message::{Context, Message};
use kameo::prelude::{ActorId, ActorRef, WeakActorRef};
use kameo::Actor;

use crate::checkpoint::CheckpointStore;
use crate::evolution::{self, ChildSlot, GaParams, Individual, Population};
use crate::runtime::release_freed_memory_between_phases;
use crate::search::record::TrainSummary;
use crate::search::run_dir::RunDir;
use crate::search::{
    child_streams, CapturedCheckpoint, GenerationPlan, GenerationRecord, GenerationTimings, HotSettings,
    MeasuredFitness, Phase, SearchError, SearchParts, SearchResult, SearchSettings, SearchState,
    StoppedGeneration, TrainPrefetch, WeightsSnapshot,
};
use crate::stop::StopFlag;
use crate::train::supernet_epoch::EpochReport;

use super::checkpoint_writer::{self, CheckpointWriterActor, CheckpointWriterArgs, WriteCheckpoint};
use super::crossover::{self, CrossoverActor, CrossoverArgs};
use super::evaluator::{EvaluateGeneration, EvaluatorActor, EvaluatorArgs};
use super::events::{Events, PipelineEvent};
use super::mutation::{self, MutationActor};
use super::prefetch::{self, BatchOrder, PrefetchActor, StopAll};
use super::selection::{self, BreedGeneration, SelectionActor, SelectionArgs};
use super::trainer::{self, CaptureCheckpoint, TrainGeneration, TrainStart, TrainerActor, TrainerArgs};
use super::PipelineError;

/// How a search run by the pipeline ended.
pub type Outcome = Result<SearchResult, PipelineError>;

pub struct ControllerArgs {
    pub parts: SearchParts,
    pub events: Events,
    pub stop: StopFlag,
    /// Gets the outcome, once; dropped unsent only if the controller itself dies.
    pub done: Sender<Outcome>,
}

#[derive(Clone)]
struct Workers {
    prefetch: ActorRef<PrefetchActor>,
    trainer: ActorRef<TrainerActor>,
    evaluators: Vec<ActorRef<EvaluatorActor>>,
    selection: ActorRef<SelectionActor>,
    crossover: ActorRef<CrossoverActor>,
    mutation: ActorRef<MutationActor>,
    writer: ActorRef<CheckpointWriterActor>,
}

impl Workers {
    /// Asks every actor to stop after the message it is handling, and waits until all have.
    async fn stop_all(&self) {
        let _ = self.trainer.stop_gracefully().await;
        let _ = self.prefetch.tell(StopAll).send().await;
        let _ = self.prefetch.stop_gracefully().await;
        let _ = self.writer.stop_gracefully().await;
        let _ = self.selection.stop_gracefully().await;
        let _ = self.crossover.stop_gracefully().await;
        let _ = self.mutation.stop_gracefully().await;
        for evaluator in &self.evaluators {
            let _ = evaluator.stop_gracefully().await;
        }
        self.trainer.wait_for_shutdown().await;
        self.prefetch.wait_for_shutdown().await;
        self.writer.wait_for_shutdown().await;
        self.selection.wait_for_shutdown().await;
        self.crossover.wait_for_shutdown().await;
        self.mutation.wait_for_shutdown().await;
        for evaluator in &self.evaluators {
            evaluator.wait_for_shutdown().await;
        }
    }
}

/// Where the current generation stands.
enum Step {
    /// Before [`Start`].
    Idle,
    /// `measured`: fitness measured before the search was stopped in this generation.
    Training {
        plan: GenerationPlan,
        measured: Vec<MeasuredFitness>,
    },
    Evaluating {
        plan: GenerationPlan,
        train: TrainSummary,
        measured: Vec<MeasuredFitness>,
    },
    /// `record`: of the generation just measured (none when a finished search is reopened);
    /// `fresh`: random individuals added after the bred ones.
    Breeding {
        record: Option<GenerationRecord>,
        parents: Arc<Population>,
        params: GaParams,
        fresh: usize,
        children: Vec<(ChildSlot, Individual)>,
    },
    /// The next boundary is reached; the previous checkpoint is not durable yet.
    AwaitingCheckpoint {
        record: Option<GenerationRecord>,
    },
    /// Every generation ran; the last checkpoint is being written.
    Finishing,
    /// An actor failed; the checkpoint in flight is being let finish.
    Failing,
    Done,
}

pub struct SearchController {
    me: WeakActorRef<Self>,
    settings: SearchSettings,
    state: SearchState,
    run: RunDir,
    store: CheckpointStore,
    workers: Workers,
    /// Training batches per generation (the progress bar's length).
    train_batches: u64,
    names: HashMap<ActorId, String>,
    events: Events,
    stop: StopFlag,
    step: Step,
    /// Checkpoints the trainer has been asked to capture and has not sent yet.
    capturing: usize,
    /// The boundary whose checkpoint the writer has and has not made durable yet.
    unwritten: usize,
    failure: Option<PipelineError>,
    done: Option<Sender<Outcome>>,
    /// The running generation's timings, and when each of its phases started.
    timings: GenerationTimings,
    clock: PhaseClock,
    /// The generation's time before the search was stopped in it (a resumed generation).
    before_stop: BeforeStop,
    /// The timings of the generation whose checkpoint is in flight, and when it started.
    closing: Option<(GenerationTimings, Instant)>,
    /// Settings a reload asked for, put in force at the next generation boundary.
    pending: Option<HotSettings>,
    /// The newest reload whose settings `pending` holds (older ones arriving late are dropped).
    revision: u64,
}

/// Time a generation spent before the search was stopped in it, in the run that stopped.
#[derive(Default)]
struct BeforeStop {
    /// Training's seconds and, of them, its wait for batches.
    train: (f64, f64),
    /// The fitness phase's seconds.
    fitness: f64,
}

/// When the running generation and its current phase started.
struct PhaseClock {
    generation: Instant,
    phase: Instant,
}

impl PhaseClock {
    fn now() -> Self {
        let now = Instant::now();
        Self { generation: now, phase: now }
    }

    /// Seconds since the phase started; the next phase starts now.
    fn lap(&mut self) -> f64 {
        let now = Instant::now();
        let seconds = (now - self.phase).as_secs_f64();
        self.phase = now;
        seconds
    }
}

impl Actor for SearchController {
    type Args = ControllerArgs;
    type Error = Infallible;

    /// Spawns and links the pipeline's actors: libtorch ones on threads of their own.
    async fn on_start(args: Self::Args, me: ActorRef<Self>) -> Result<Self, Self::Error> {
        let ControllerArgs { parts, events, stop, done } = args;
        let SearchParts { settings, trainer, evaluators, data, state, run, store, stop_store, cpu_threads } =
            parts;
        let device = settings.runtime.device();
        // The hot values asked for differ from those in force when a search resumes after a
        // reload (or with a changed config): they apply at its next boundary.
        let wanted = settings.hot;
        let mut names = HashMap::new();
        let train_batches = data.num_train_batches() as u64;

        let writer = CheckpointWriterActor::spawn_in_thread(CheckpointWriterArgs {
            store: store.clone(),
            stop_store,
            config_digest: settings.identity.clone(),
            controller: me.clone(),
        });
        names.insert(writer.id(), checkpoint_writer::NAME.to_string());
        let mutation = MutationActor::spawn(me.clone());
        names.insert(mutation.id(), mutation::NAME.to_string());
        let crossover =
            CrossoverActor::spawn(CrossoverArgs { mutation: mutation.clone(), controller: me.clone() });
        names.insert(crossover.id(), crossover::NAME.to_string());
        let selection =
            SelectionActor::spawn(SelectionArgs { crossover: crossover.clone(), controller: me.clone() });
        names.insert(selection.id(), selection::NAME.to_string());
        let TrainPrefetch { producer, indices, batch_size, seed, device: data_device } =
            data.train_prefetch();
        let prefetch = PrefetchActor::spawn(PrefetchActor::new(
            producer,
            indices,
            batch_size,
            seed,
            BatchOrder::Shuffled,
        ));
        names.insert(prefetch.id(), prefetch::NAME.to_string());
        let batch_device = trainer.batch_device(data_device);
        let trainer = TrainerActor::spawn_in_thread(TrainerArgs {
            trainer,
            prefetch: prefetch.clone(),
            device: batch_device,
            controller: me.clone(),
            events: events.clone(),
            stop: stop.clone(),
        });
        names.insert(trainer.id(), trainer::NAME.to_string());
        let count = evaluators.len();
        // Evaluators of this process share its CPU threads; another rank's use its own.
        let local = evaluators.iter().filter(|e| !e.is_remote()).count();
        let threads = match device {
            tch::Device::Cpu if local > 1 => 1,
            tch::Device::Cpu => cpu_threads,
            _ => 0,
        };
        let evaluators: Vec<_> = evaluators
            .into_iter()
            .enumerate()
            .map(|(i, evaluator)| {
                let name = if count > 1 {
                    format!("fitness evaluator {}", i + 1)
                } else {
                    "fitness evaluator".into()
                };
                let actor = EvaluatorActor::spawn_in_thread(EvaluatorArgs {
                    name: name.clone(),
                    evaluator,
                    threads,
                    controller: me.clone(),
                    stop: stop.clone(),
                });
                names.insert(actor.id(), name);
                actor
            })
            .collect();
        let workers = Workers { prefetch, trainer, evaluators, selection, crossover, mutation, writer };
        me.link(&workers.prefetch).await;
        me.link(&workers.trainer).await;
        me.link(&workers.writer).await;
        me.link(&workers.selection).await;
        me.link(&workers.crossover).await;
        me.link(&workers.mutation).await;
        for evaluator in &workers.evaluators {
            me.link(evaluator).await;
        }
        Ok(Self {
            me: me.downgrade(),
            settings,
            state,
            run,
            store,
            workers,
            train_batches,
            names,
            events,
            stop,
            step: Step::Idle,
            capturing: 0,
            unwritten: 0,
            failure: None,
            done: Some(done),
            timings: GenerationTimings::default(),
            clock: PhaseClock::now(),
            before_stop: BeforeStop::default(),
            closing: None,
            pending: None,
            revision: 0,
        }
        .with_pending(wanted))
    }

    async fn on_link_died(
        &mut self,
        _: WeakActorRef<Self>,
        id: ActorId,
        reason: ActorStopReason,
    ) -> Result<ControlFlow<ActorStopReason>, Self::Error> {
        if !matches!(reason, ActorStopReason::Normal | ActorStopReason::SupervisorRestart) {
            let actor = self.names.get(&id).cloned().unwrap_or_else(|| format!("actor {id}"));
            // What a dead actor had in hand will never arrive.
            if id == self.workers.writer.id() {
                self.unwritten = 0;
            }
            if id == self.workers.trainer.id() {
                self.capturing = 0;
            }
            self.fail(PipelineError::Died { actor, reason: reason.to_string() }).await;
        }
        Ok(ControlFlow::Continue(()))
    }
}

impl SearchController {
    fn with_pending(mut self, settings: HotSettings) -> Self {
        self.set_pending(settings);
        self
    }

    /// Settings to put in force at the next boundary (none when they are those in force).
    fn set_pending(&mut self, settings: HotSettings) {
        self.pending = (settings != self.state.settings).then_some(settings);
    }

    /// Puts the pending settings in force from generation `first` (1-based) on, telling whoever
    /// watches what changed.
    fn apply_pending(&mut self, first: usize) {
        let Some(settings) = self.pending.take() else { return };
        let changes = settings.changes_from(&self.state.settings);
        self.state.apply_settings(settings);
        self.events.send(PipelineEvent::SettingsApplied { generation: first, settings, changes });
    }

    /// Plans and starts the next generation, or finishes when every generation ran.
    async fn begin_generation(&mut self) {
        // A finished search is at its boundary: a budget raised meanwhile reopens it.
        if self.state.is_finished() && self.pending.is_some() {
            self.apply_pending(self.state.next_generation + 1);
            if self.state.reopen() {
                // (Boxed: breeding leads to the next boundary, which begins a generation.)
                return Box::pin(self.breed(None)).await;
            }
        }
        if self.state.is_finished() {
            self.step = Step::Finishing;
            if !self.checkpoint_in_flight() {
                self.finish().await;
            }
            return;
        }
        let plan = match self.state.plan(&self.settings) {
            Ok(plan) => plan,
            Err(error) => return self.fail_own(error).await,
        };
        self.clock = PhaseClock::now();
        self.timings = GenerationTimings { generation: plan.generation + 1, ..Default::default() };
        if let Some((previous, started)) = &mut self.closing {
            previous.seconds = (self.clock.generation - *started).as_secs_f64();
        }
        self.events.send(PipelineEvent::PhaseStarted {
            generation: plan.generation + 1,
            phase: Phase::Train,
            total: self.train_batches,
        });
        // A generation the search was stopped in continues where it stopped.
        self.before_stop = BeforeStop::default();
        let (start, measured) = match self.state.stopped.take() {
            None => (TrainStart::Fresh, Vec::new()),
            Some(StoppedGeneration::Training { report }) => {
                self.before_stop.train = (report.elapsed.as_secs_f64(), report.data_wait.as_secs_f64());
                (TrainStart::Continue(report), Vec::new())
            }
            Some(StoppedGeneration::Fitness { train, measured, seconds }) => {
                self.before_stop.train = (train.seconds, train.data_wait_seconds);
                self.before_stop.fitness = seconds;
                (TrainStart::Trained(train), measured)
            }
        };
        self.events.send(PipelineEvent::GenerationStarted {
            generation: plan.generation + 1,
            learning_rate: plan.learning_rate,
            settings: self.state.settings,
        });
        release_freed_memory_between_phases();
        let message = TrainGeneration { plan: plan.clone(), start };
        self.step = Step::Training { plan, measured };
        if self.workers.trainer.tell(message).send().await.is_err() {
            self.fail(PipelineError::Died {
                actor: trainer::NAME.into(),
                reason: "its mailbox is closed".into(),
            })
            .await;
        }
    }

    /// A capture asked of the trainer or a checkpoint handed to the writer is not durable yet.
    fn checkpoint_in_flight(&self) -> bool {
        self.unwritten > 0 || self.capturing > 0
    }

    async fn trained(&mut self, msg: Trained) {
        let Step::Training { plan, measured } = std::mem::replace(&mut self.step, Step::Idle) else { return };
        if plan.generation != msg.generation {
            self.step = Step::Training { plan, measured };
            return;
        }
        self.events.send(PipelineEvent::PhaseStarted {
            generation: plan.generation + 1,
            phase: Phase::Evaluate,
            total: plan.individuals.len() as u64,
        });
        // Those measured before the search was stopped in this generation.
        self.events.send(PipelineEvent::Advanced { phase: Phase::Evaluate, done: measured.len() as u64 });
        // Only those not measured before a stop.
        let (queue_in, queue) = crossbeam_channel::unbounded();
        for individual in plan.individuals.iter().filter(|i| measured.iter().all(|m| m.id != i.id)) {
            let _ = queue_in.send(individual.clone());
        }
        drop(queue_in);
        let (generation, subset) = (plan.generation, plan.fitness_subset);
        self.clock.lap();
        // timings.jsonl: this run's own share (the generation's record has the whole).
        let (seconds, data_wait) = self.before_stop.train;
        self.timings.train_seconds = (msg.summary.seconds - seconds).max(0.0);
        self.timings.train_data_wait_seconds = (msg.summary.data_wait_seconds - data_wait).max(0.0);
        let all_measured = measured.len() == plan.individuals.len();
        self.step = Step::Evaluating { plan, train: msg.summary, measured };
        if all_measured {
            return self.fitness_done().await;
        }
        release_freed_memory_between_phases();
        for evaluator in &self.workers.evaluators {
            let message = EvaluateGeneration {
                generation,
                subset,
                snapshot: Arc::clone(&msg.snapshot),
                queue: queue.clone(),
            };
            let _ = evaluator.tell(message).send().await;
        }
    }

    async fn measured(&mut self, msg: Measured) {
        let Step::Evaluating { plan, measured, .. } = &mut self.step else { return };
        if plan.generation != msg.generation {
            return;
        }
        crate::telemetry::IndividualMeasured.emit();
        self.timings.fitness_busy_seconds += msg.fitness.seconds;
        self.timings.fitness_data_wait_seconds += msg.fitness.data_wait_seconds;
        measured.push(msg.fitness);
        let (done, total) = (measured.len(), plan.individuals.len());
        self.events.send(PipelineEvent::Advanced { phase: Phase::Evaluate, done: done as u64 });
        if done == total {
            self.fitness_done().await;
        }
    }

    /// Every individual is measured: record the generation, then breed the next one.
    async fn fitness_done(&mut self) {
        let Step::Evaluating { plan, train, measured } = std::mem::replace(&mut self.step, Step::Idle) else {
            return;
        };
        // The fitness phase's wall time: since the clock's lap when training ended (and before a
        // stop in it, where it was resumed: its images are all counted).
        let seconds = self.clock.lap();
        // This run's timings: those of the run before the stop were its own.
        self.timings.fitness_seconds = seconds;
        let recorded = self
            .state
            .record(&self.settings, &plan, train, &measured, seconds + self.before_stop.fitness)
            .and_then(|record| self.state.write_progress(&self.settings, &self.run).map(|()| record));
        let record = match recorded {
            Ok(record) => record,
            Err(error) => return self.fail_own(error).await,
        };
        self.apply_pending(plan.generation + 2);
        self.breed(Some(record)).await;
    }

    /// Breeds the next generation from the ranked population with the settings in force, or
    /// moves to the final boundary when the budget is spent.
    async fn breed(&mut self, record: Option<GenerationRecord>) {
        match self.state.prepare_breeding(self.settings.strategy) {
            Some(breeding) => {
                let parents = Arc::new(self.state.population.clone());
                let message = BreedGeneration {
                    generation: breeding.generation,
                    parents: Arc::clone(&parents),
                    params: breeding.params,
                    strategy: breeding.strategy,
                    streams: child_streams(self.settings.seed),
                };
                self.step = Step::Breeding {
                    record,
                    parents,
                    params: breeding.params,
                    fresh: breeding.fresh,
                    children: Vec::new(),
                };
                let _ = self.workers.selection.tell(message).send().await;
            }
            None => {
                self.state.advance(None);
                self.boundary(record).await;
            }
        }
    }

    async fn child_bred(&mut self, msg: ChildBred) {
        let Step::Breeding { params, children, .. } = &mut self.step else { return };
        children.push((msg.slot, msg.child));
        if params.elites + children.len() < params.population {
            return;
        }
        let Step::Breeding { record, parents, params, fresh, children } =
            std::mem::replace(&mut self.step, Step::Idle)
        else {
            return;
        };
        self.timings.ga_seconds = self.clock.lap();
        let generation = (self.state.next_generation + 1) as u32;
        let streams = child_streams(self.settings.seed);
        let bred =
            evolution::assemble_generation(&parents, &params, generation, children).and_then(|mut p| {
                evolution::add_fresh(&mut p, fresh, generation, &streams)?;
                Ok(p)
            });
        match bred {
            Ok(population) => {
                self.state.advance(Some(population));
                self.boundary(record).await;
            }
            Err(error) => self.fail_own(error.into()).await,
        }
    }

    /// At a generation boundary: the checkpoint captured (once the previous one is durable),
    /// and the next generation started while it is written.
    async fn boundary(&mut self, record: Option<GenerationRecord>) {
        if self.checkpoint_in_flight() {
            self.step = Step::AwaitingCheckpoint { record };
            return;
        }
        self.timings.checkpoint_wait_seconds = self.clock.lap();
        let timings = std::mem::take(&mut self.timings);
        self.capture(CheckpointKind::Boundary).await;
        // A reopened search's boundary ran no generation: no record, no timings line.
        if let Some(record) = record {
            // (Its `seconds` so far: the final figure, to the next generation's start, comes later.)
            let so_far = GenerationTimings {
                seconds: self.clock.generation.elapsed().as_secs_f64(),
                ..timings.clone()
            };
            self.closing = Some((timings, self.clock.generation));
            let checkpoint = self.store.dir_of(self.state.next_generation as u32);
            self.events.send(PipelineEvent::GenerationFinished {
                record: Box::new(record),
                timings: Box::new(so_far),
                checkpoint,
            });
        }
        self.begin_generation().await;
    }

    /// Asks the trainer to capture the current state as a checkpoint of `kind`.
    async fn capture(&mut self, kind: CheckpointKind) {
        let capture = CaptureCheckpoint { state: Box::new(self.state.clone()), kind };
        if self.workers.trainer.tell(capture).send().await.is_ok() {
            self.capturing += 1;
        }
    }

    async fn captured(&mut self, msg: Captured) {
        self.capturing = self.capturing.saturating_sub(1);
        if msg.kind == CheckpointKind::Boundary {
            if let Some((timings, _)) = &mut self.closing {
                timings.checkpoint_capture_seconds = msg.seconds;
            }
        }
        if matches!(self.step, Step::Done) {
            return;
        }
        let write = WriteCheckpoint { captured: msg.captured, kind: msg.kind };
        if self.workers.writer.tell(write).send().await.is_ok() {
            self.unwritten += 1;
        }
        // A capture that was the last thing in flight may end a stop.
        if matches!(self.step, Step::Failing) && !self.checkpoint_in_flight() {
            self.finish().await;
        }
    }

    /// Stopped on request in the middle of a generation: the checkpoint of where it got to
    /// (unless nothing happened since the boundary checkpoint), then the end of the run.
    async fn stopped_in_generation(&mut self, actor: String, stopped: Option<StoppedGeneration>) {
        if self.failure.is_none() && !matches!(self.step, Step::Done) {
            if let Some(stopped) = stopped {
                self.state.stopped = Some(stopped);
                self.capture(CheckpointKind::Stop).await;
                self.state.stopped = None;
            }
        }
        let error = SearchError::Train(crate::train::TrainError::Interrupted);
        self.fail(PipelineError::Failed { actor, error }).await;
    }

    async fn checkpoint_written(&mut self, msg: CheckpointWritten) {
        self.unwritten = self.unwritten.saturating_sub(1);
        if msg.kind == CheckpointKind::Stop {
            tracing::info!(dir = %msg.dir.display(), "stop checkpoint written");
        } else if let Some((mut timings, started)) = self.closing.take() {
            timings.checkpoint_write_seconds = msg.seconds;
            if timings.seconds == 0.0 {
                timings.seconds = started.elapsed().as_secs_f64();
            }
            if let Err(e) = self.run.append_timings(&timings) {
                tracing::warn!("cannot record generation {}'s timings: {e}", timings.generation);
            }
        }
        self.events.send(PipelineEvent::CheckpointWritten {
            generation: msg.generation,
            dir: msg.dir,
            kind: msg.kind,
            seconds: msg.seconds,
            bytes: msg.bytes,
        });
        match std::mem::replace(&mut self.step, Step::Idle) {
            Step::AwaitingCheckpoint { record } => self.boundary(record).await,
            Step::Finishing | Step::Failing if !self.checkpoint_in_flight() => self.finish().await,
            other => self.step = other,
        }
    }

    async fn fail_own(&mut self, error: SearchError) {
        self.fail(PipelineError::Failed { actor: "search controller".into(), error }).await;
    }

    /// Stops the pipeline for `failure`, after the checkpoint in flight (if its writer lives).
    async fn fail(&mut self, failure: PipelineError) {
        if matches!(self.step, Step::Done) {
            return;
        }
        self.stop.stop();
        // The first failure is the cause of the others, except that a fault outranks a
        // requested stop: a stop checkpoint that cannot be written must not end the run as a
        // clean stop that the next start would continue from.
        let replaces = match &self.failure {
            None => true,
            Some(first) => first.is_interrupted() && !failure.is_interrupted(),
        };
        if replaces {
            self.failure = Some(failure);
        }
        if self.checkpoint_in_flight() {
            self.step = Step::Failing;
        } else {
            self.finish().await;
        }
    }

    /// Stops every actor and, once they all have stopped (a libtorch thread still busy must
    /// never outlive the process's exit), sends the outcome and stops the controller.
    async fn finish(&mut self) {
        self.step = Step::Done;
        let outcome = match self.failure.take() {
            Some(failure) => Err(failure),
            None => self.result(),
        };
        self.stop.stop();
        let workers = self.workers.clone();
        let done = self.done.take();
        let me = self.me.clone();
        let lock = self.run.take_lock();
        // On a task of its own: the workers may still be sending to this controller's mailbox.
        tokio::spawn(async move {
            workers.stop_all().await;
            // Nothing writes the run any more: free it before the outcome goes out, so that a
            // search this process starts next (a resume after a pause) finds it free.
            drop(lock);
            if let Some(done) = done {
                let _ = done.send(outcome);
            }
            if let Some(me) = me.upgrade() {
                let _ = me.stop_gracefully().await;
            }
        });
    }

    fn result(&self) -> Outcome {
        let own = |error| PipelineError::Failed { actor: "search controller".into(), error };
        crate::fault::point("search.finished").map_err(|e| own(crate::train::TrainError::from(e).into()))?;
        self.state.result(&self.settings, &self.run).map_err(own)
    }
}

/// Run the search: from the first unrun generation to the last.
pub struct Start;

impl Message<Start> for SearchController {
    type Reply = ();

    async fn handle(&mut self, _: Start, _: &mut Context<Self, Self::Reply>) {
        if matches!(self.step, Step::Idle) {
            self.begin_generation().await;
        }
    }
}

/// From a reload: put `settings` in force at the next generation boundary (replacing any
/// earlier request not yet in force).
pub struct ApplySettings {
    pub settings: HotSettings,
    /// Numbers the reloads: a request older than one already taken is dropped.
    pub revision: u64,
}

impl Message<ApplySettings> for SearchController {
    type Reply = ();

    async fn handle(&mut self, msg: ApplySettings, _: &mut Context<Self, Self::Reply>) {
        if msg.revision >= self.revision {
            self.revision = msg.revision;
            self.set_pending(msg.settings);
        }
    }
}

/// From the trainer: generation `generation` is trained; `snapshot` holds its weights.
pub struct Trained {
    pub generation: usize,
    pub summary: TrainSummary,
    pub snapshot: Arc<WeightsSnapshot>,
}

impl Message<Trained> for SearchController {
    type Reply = ();

    async fn handle(&mut self, msg: Trained, _: &mut Context<Self, Self::Reply>) {
        self.trained(msg).await;
    }
}

/// From an evaluator: one individual's fitness.
pub struct Measured {
    pub generation: usize,
    pub fitness: MeasuredFitness,
}

impl Message<Measured> for SearchController {
    type Reply = ();

    async fn handle(&mut self, msg: Measured, _: &mut Context<Self, Self::Reply>) {
        self.measured(msg).await;
    }
}

/// From mutation (or selection, for random search): the child of `slot`.
pub struct ChildBred {
    pub slot: ChildSlot,
    pub child: Individual,
}

impl Message<ChildBred> for SearchController {
    type Reply = ();

    async fn handle(&mut self, msg: ChildBred, _: &mut Context<Self, Self::Reply>) {
        self.child_bred(msg).await;
    }
}

/// From the trainer: a boundary's checkpoint as host bytes.
pub struct Captured {
    pub captured: CapturedCheckpoint,
    /// Time the capture took.
    pub seconds: f64,
    pub kind: CheckpointKind,
}

impl Message<Captured> for SearchController {
    type Reply = ();

    async fn handle(&mut self, msg: Captured, _: &mut Context<Self, Self::Reply>) {
        self.captured(msg).await;
    }
}

/// What a checkpoint is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointKind {
    /// A generation boundary (`checkpoints/`).
    Boundary,
    /// A search stopped in the middle of a generation (`stop-checkpoint/`).
    Stop,
}

/// From the trainer: stopped by the stop flag after `report.batches` batches of `generation`.
pub struct TrainingStopped {
    pub generation: usize,
    pub report: EpochReport,
}

impl Message<TrainingStopped> for SearchController {
    type Reply = ();

    async fn handle(&mut self, msg: TrainingStopped, _: &mut Context<Self, Self::Reply>) {
        let progressed = msg.report.batches > 0 && msg.generation == self.state.next_generation;
        let stopped = progressed.then_some(StoppedGeneration::Training { report: msg.report });
        self.stopped_in_generation(trainer::NAME.into(), stopped).await;
    }
}

/// From the writer: the checkpoint of `generation` is durable in `dir`.
pub struct CheckpointWritten {
    pub generation: u32,
    pub dir: PathBuf,
    /// Time the write took, and the checkpoint's size.
    pub seconds: f64,
    pub bytes: u64,
    pub kind: CheckpointKind,
}

impl Message<CheckpointWritten> for SearchController {
    type Reply = ();

    async fn handle(&mut self, msg: CheckpointWritten, _: &mut Context<Self, Self::Reply>) {
        self.checkpoint_written(msg).await;
    }
}

/// From any actor: it could not do what it was told.
pub struct ActorFailed {
    pub actor: String,
    pub error: SearchError,
}

impl Message<ActorFailed> for SearchController {
    type Reply = ();

    async fn handle(&mut self, msg: ActorFailed, _: &mut Context<Self, Self::Reply>) {
        // A failure report comes after anything the actor sent before it: a trainer that fails
        // has no capture left to send, a writer no checkpoint left to write.
        match msg.actor.as_str() {
            checkpoint_writer::NAME => self.unwritten = 0,
            trainer::NAME => self.capturing = 0,
            _ => {}
        }
        let interrupted = matches!(msg.error, SearchError::Train(crate::train::TrainError::Interrupted));
        if interrupted {
            // An evaluator stopped by the stop flag: keep the fitness measured so far.
            let stopped = match &self.step {
                Step::Evaluating { train, measured, .. } => Some(StoppedGeneration::Fitness {
                    train: train.clone(),
                    measured: measured.clone(),
                    seconds: self.before_stop.fitness + self.clock.lap(),
                }),
                _ => None,
            };
            return self.stopped_in_generation(msg.actor, stopped).await;
        }
        self.fail(PipelineError::Failed { actor: msg.actor, error: msg.error }).await;
    }
}
