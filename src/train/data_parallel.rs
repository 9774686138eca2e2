//! Data-parallel supernet training: several replicas of the supernet, each on its own device
//! and thread, train every batch together. The batch's images are split into one shard per
//! replica; each replica's gradient of its shard's mean loss, weighted by its share of the
//! images, is summed across replicas through a c10d all-reduce (NCCL between GPUs, else Gloo),
//! so that every replica holds the gradient of the whole batch's mean loss and takes the same
//! clipped SGD step. The replicas start from the leader's weights and momentum (broadcast) and
//! stay identical, as PyTorch's DistributedDataParallel keeps them. BatchNorm normalises each shard by its own statistics
//! (DDP without SyncBatchNorm); the running statistics anyone reads are the leader's, as DDP's
//! default `broadcast_buffers` makes them.
//!
//! The leader (replica 0) is the caller's supernet; the others are built here on threads of
//! their own, each running libtorch's ops on its share of the process's CPU threads.

use std::cell::Cell;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender};
use sha2::{Digest, Sha256};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use super::accuracy::{BatchTallies, DeviceTally, Tally};
use super::loss_check::{self, LossCheck};
use super::sgd::{Sgd, SgdConfig};
use super::supernet_epoch::{forward_loss, BatchTrainer, StepIndex};
use super::{Precision, TrainError};
use crate::data::Batch;
use crate::distributed::{
    Collectives, CollectivesSetting, DistributedError, GlooBind, Job, ProcessGroup, Reduced, Store,
    FORM_TIMEOUT,
};
use crate::model::{ArchWeights, OneShotModel};
use crate::train::remote_fitness::FitnessLink;

mod ranks;

pub use ranks::{serve_job, shutdown_job, BuildFromSpec};

/// How long a replica waits for the others in a collective before the step fails (a replica
/// that died or hangs): a generous bound on one training step.
pub const COLLECTIVE_TIMEOUT: Duration = Duration::from_secs(600);

/// Builds a replica's supernet in its own VarStore (its initial values are replaced by the
/// leader's).
pub type BuildReplica = Arc<dyn Fn(&VarStore) -> Result<Box<dyn OneShotModel>, String> + Send + Sync>;

/// The replicas of the job's other processes ([`crate::distributed::Job`]) also train with this
/// process's: `model_spec` tells them what supernet to build (the caller's model settings,
/// opaque here; each rank's [`BuildFromSpec`] reads it).
pub struct InJob {
    pub job: &'static Job,
    pub model_spec: serde_json::Value,
    /// The other ranks also measure fitness, BatchNorm on batch statistics or not; `None`:
    /// rank 0 measures it alone.
    pub fitness_batchnorm: Option<bool>,
}

/// How the replicas train together.
#[derive(Debug, Clone, Copy)]
pub struct ReplicaOptions {
    pub sgd: SgdConfig,
    /// The process's CPU threads, shared out equally among its replicas.
    pub threads: usize,
    /// The backend that sums gradients, chosen for this process's devices.
    pub collectives: CollectivesSetting,
    /// Arithmetic of the forward passes (bf16: under autocast), the same on every replica.
    pub precision: Precision,
}

/// Replicas 1.. of a data-parallel supernet; replica 0 is the caller's. In a job of several
/// processes, replicas 1.. of this process come first, then every other rank's.
pub struct ReplicaSet {
    group: ProcessGroup,
    workers: Workers,
    /// The other processes' replicas.
    remote: Option<ranks::RemoteRanks>,
    /// Rank 0's ends of the other ranks' fitness models, until the search's evaluators take them.
    fitness_links: Vec<FitnessLink>,
    /// Intra-op threads of each replica's thread.
    threads_per_replica: usize,
    /// How many steps' summed losses each check covers: the same on every replica, so that
    /// they refuse a step together.
    check_every: usize,
    /// Arithmetic of the forward passes.
    precision: Precision,
    /// The leader's time in the gradient all-reduce since it was last taken: with Gloo, the
    /// transfer and the wait for the slowest replica; with NCCL, the time to queue it (the GPU's
    /// time in it is part of the step's).
    communication: Cell<Duration>,
    /// Set by a replica of this process whose step failed before or in its all-reduce: the
    /// others give theirs up rather than wait out the collective timeout for it. Never cleared:
    /// the replicas' groups are unusable after (the search fails).
    give_up: Arc<AtomicBool>,
}

struct Worker {
    commands: Option<Sender<Command>>,
    replies: Receiver<Result<Reply, ReplicaFailure>>,
    handle: Option<JoinHandle<()>>,
}

/// Why a replica's thread failed a command: its collective with the other replicas (kept
/// typed, so that a process that only saw another fail can tell), or anything else, in words.
#[derive(Clone)]
enum ReplicaFailure {
    Collective(DistributedError),
    GaveUp,
    Other(String),
}

impl ReplicaFailure {
    fn into_error(self, replica: usize) -> TrainError {
        match self {
            Self::Collective(failure) => TrainError::ReplicaCollective { replica, failure },
            Self::GaveUp => TrainError::StepGivenUp,
            Self::Other(reason) => TrainError::Replica { replica, reason },
        }
    }
}

impl From<TrainError> for ReplicaFailure {
    fn from(e: TrainError) -> Self {
        match e {
            TrainError::Distributed(e) => Self::Collective(e),
            TrainError::StepGivenUp => Self::GaveUp,
            other => Self::Other(other.to_string()),
        }
    }
}

/// Replica threads, joined when dropped.
#[derive(Default)]
struct Workers(Vec<Worker>);

enum Command {
    Step(Shard),
    /// The pass's steps were all sent: check their losses and report their counts.
    Settle,
    Fingerprint,
}

enum Reply {
    /// The step is queued on the replica's device.
    Stepped,
    /// The tally of each step of the pass, in order.
    Settled(Vec<Tally>),
    Fingerprint(String),
}

/// One replica's part of a step.
struct Shard {
    images: Tensor,
    labels: Tensor,
    /// The shard's share of the batch's images.
    weight: f64,
    arch: ArchWeights,
    step: StepIndex,
    lr: f64,
    grad_clip: f64,
    /// The first step of a pass: what an earlier, unsettled pass left is forgotten.
    starts_pass: bool,
    /// How many steps' summed losses each check covers.
    check_every: usize,
}

/// What a replica keeps of the pass being trained until the pass settles: its summed losses
/// still to check and its shards' counts, on its device.
struct UnsettledPass {
    losses: LossCheck<StepIndex>,
    tallies: BatchTallies,
}

impl UnsettledPass {
    fn new(check_every: usize) -> Self {
        Self { losses: LossCheck::every(check_every), tallies: BatchTallies::default() }
    }

    /// Checks the losses not yet checked, then reads every step's counts (one wait for the
    /// device).
    fn settle(&mut self) -> Result<Vec<Tally>, TrainError> {
        let bad = self.losses.check();
        let tallies = self.tallies.take();
        bad.map_or(Ok(tallies), |step| Err(step.non_finite_loss()))
    }
}

impl ReplicaSet {
    /// Starts a replica on each of `devices[1..]` (`devices[0]` is the leader's, whose supernet
    /// and momentum are `leader_vs` and `leader_opt`) and makes them equal to the leader's.
    /// `in_job`: the other ranks' replicas join them (this process is rank 0, and they use its
    /// choice of collectives).
    pub fn start(
        leader_vs: &VarStore,
        leader_opt: &mut Sgd,
        devices: &[Device],
        options: ReplicaOptions,
        build: BuildReplica,
        in_job: Option<InJob>,
    ) -> Result<Self, TrainError> {
        let ReplicaOptions { sgd, threads, collectives, precision } = options;
        let local = devices.len();
        let threads_per_replica = (threads / local.max(1)).max(1);
        let bind = in_job.as_ref().map_or_else(loopback, |in_job| in_job.job.gloo_bind());
        let collectives = Collectives::choose(collectives, devices, bind.clone())?;
        let (remote, meeting) = match in_job {
            None => (None, Meeting::InProcess(Arc::new(Store::in_process()?))),
            Some(InJob { job, model_spec, fitness_batchnorm }) => {
                let spec = ranks::SessionSpec {
                    momentum: sgd.momentum,
                    weight_decay: sgd.weight_decay,
                    model: model_spec,
                    fitness_batchnorm,
                    nccl: collectives == Collectives::Nccl,
                    precision,
                    protocol: ranks::PROTOCOL,
                };
                let (remote, session) = ranks::RemoteRanks::open(job, &spec, local)?;
                (Some(remote), Meeting::Job { job, session })
            }
        };
        let size = remote.as_ref().map_or(local, ranks::RemoteRanks::total);
        let give_up = Arc::new(AtomicBool::new(false));
        let store = meeting.store()?;
        let mut workers = Workers::default();
        let mut ready = Vec::with_capacity(local.saturating_sub(1));
        let mut spawned = Ok(());
        for (rank, &device) in devices.iter().enumerate().skip(1) {
            let context = meeting.store().map(|store| WorkerContext {
                rank,
                size,
                device,
                sgd,
                threads: threads_per_replica,
                store,
                collectives: collectives.clone(),
                in_job: remote.is_some(),
                precision,
                build: build.clone(),
                give_up: give_up.clone(),
            });
            match context.map_err(TrainError::from).and_then(spawn_worker) {
                Ok((worker, ready_rx)) => {
                    workers.0.push(worker);
                    ready.push(ready_rx);
                }
                Err(e) => {
                    spawned = Err(e);
                    break;
                }
            }
        }
        // Every replica's supernet is built before any of them waits for the others; the other
        // ranks learn whether this one's were, even when they were not.
        let built = spawned.and_then(|()| wait_ready(&ready, 1));
        let confirmed = remote.as_ref().map_or(Ok(()), |remote| remote.confirm_ready(built.is_ok()));
        if let Err(e) = built.and(confirmed) {
            workers.abandon();
            return Err(e);
        }
        let joined = form_group(&store, 0, size, &collectives, remote.is_some())
            .and_then(|group| broadcast_state(leader_vs, leader_opt, &group).map(|()| group));
        let group = match joined {
            Ok(group) => group,
            Err(e) => {
                workers.abandon();
                return Err(e.into());
            }
        };
        let fitness_links = match &remote {
            Some(remote) => remote.fitness_links(&store, &bind)?,
            None => Vec::new(),
        };
        // A GPU's losses are checked in groups, as a single replica's are.
        let check_every = loss_check::interval_for(devices);
        Ok(Self {
            group,
            workers,
            remote,
            fitness_links,
            threads_per_replica,
            check_every,
            precision,
            communication: Cell::new(Duration::ZERO),
            give_up,
        })
    }

    /// All replicas, the leader and other processes' included.
    pub fn replicas(&self) -> usize {
        self.group.size()
    }

    /// The backend that sums their gradients: "nccl" or "gloo".
    pub fn collectives(&self) -> &'static str {
        self.group.backend()
    }

    /// The other ranks' fitness models, for fitness evaluators of this process to measure on
    /// (empty after the first call, or when the ranks measure none).
    pub fn take_fitness_links(&mut self) -> Vec<FitnessLink> {
        std::mem::take(&mut self.fitness_links)
    }

    pub fn threads_per_replica(&self) -> usize {
        self.threads_per_replica
    }

    /// The leader's time in gradient all-reduces since the last call.
    pub fn take_communication(&self) -> Duration {
        self.communication.take()
    }

    /// Per replica of this process (the leader first): a digest of its weights and momentum.
    /// Equal digests: the replicas are bit-identical.
    pub fn fingerprints(&self, leader_vs: &VarStore, leader_opt: &Sgd) -> Result<Vec<String>, TrainError> {
        let mut out = vec![fingerprint(leader_vs, leader_opt)?];
        out.extend(self.workers.fingerprints(1)?);
        Ok(out)
    }

    /// Fails unless every replica, the other processes' included, is bit-identical to the
    /// leader.
    pub fn check_in_step(&self, leader_vs: &VarStore, leader_opt: &Sgd) -> Result<(), TrainError> {
        let prints = self.fingerprints(leader_vs, leader_opt)?;
        let differs = |replica| TrainError::Replica {
            replica,
            reason: "its weights or momentum differ from replica 0's".into(),
        };
        let local = prints.iter().position(|p| *p != prints[0]);
        if let Some(remote) = &self.remote {
            // Asked even when a local replica differs, so that every rank takes part.
            remote.check_in_step(&prints[0])?;
        }
        local.map_or(Ok(()), |replica| Err(differs(replica)))
    }
}

/// The leader's supernet stepping with its replicas through one pass. Nothing of a step is read
/// back to the host: each replica keeps its summed losses and counts on its device until the
/// pass settles, apart from the losses' grouped finiteness checks (every step on the CPU, every
/// [`CUDA_INTERVAL`](super::loss_check::CUDA_INTERVAL) steps where a replica is on a GPU).
pub struct DataParallel<'a> {
    model: &'a dyn OneShotModel,
    opt: &'a mut Sgd,
    replicas: &'a ReplicaSet,
    /// The leader's own counts and unchecked losses of the pass.
    pass: UnsettledPass,
    /// The pass's steps so far, in order: whose tally each adds to.
    steps: Vec<StepIndex>,
}

impl<'a> DataParallel<'a> {
    /// A pass of `replicas` led by `model` and `opt`.
    pub fn new(model: &'a dyn OneShotModel, opt: &'a mut Sgd, replicas: &'a ReplicaSet) -> Self {
        let check_every = replicas.check_every;
        Self::checking_every(model, opt, replicas, check_every)
    }

    /// As [`new`](Self::new), every replica checking its summed losses every `check_every` steps.
    pub(crate) fn checking_every(
        model: &'a dyn OneShotModel,
        opt: &'a mut Sgd,
        replicas: &'a ReplicaSet,
        check_every: usize,
    ) -> Self {
        Self { model, opt, replicas, pass: UnsettledPass::new(check_every), steps: Vec::new() }
    }
}

impl BatchTrainer for DataParallel<'_> {
    fn train_batch(
        &mut self,
        batch: &Batch,
        arch: &ArchWeights,
        step: StepIndex,
        lr: f64,
        grad_clip: f64,
        _tally: &mut DeviceTally,
    ) -> Result<(), TrainError> {
        let replicas = self.replicas.replicas();
        let images = batch.labels.size().first().copied().unwrap_or(0);
        let sizes = shard_sizes(images, replicas).ok_or(TrainError::EmptyBatch { batch: step.batch })?;
        let part = StepPart {
            arch,
            step,
            lr,
            grad_clip,
            starts_pass: self.steps.is_empty(),
            check_every: self.pass.losses.interval(),
        };
        // The other processes first: their replicas start while this one's are sent theirs.
        let remote = self.replicas.remote.as_ref();
        if let Some(remote) = remote {
            remote.send_step(batch, &part)?;
        }
        let workers = &self.replicas.workers;
        let (sent, unsent) =
            workers.send_all(1, |replica| Command::Step(shard_of(batch, &sizes, replica, &part)));
        if unsent.is_some() {
            // The replicas sent their shard would wait for the others' all-reduce in vain (and
            // the step ends below, as one given up).
            self.replicas.give_up.store(true, Ordering::Release);
        }
        let leader = match unsent {
            None => {
                let shard = shard_of(batch, &sizes, 0, &part);
                let replica = ReplicaParts {
                    model: self.model,
                    group: &self.replicas.group,
                    precision: self.replicas.precision,
                    give_up: &self.replicas.give_up,
                };
                replica_step(&replica, self.opt, &shard, &mut self.pass)
            }
            Some(_) => Ok(Duration::ZERO),
        };
        // Every reply is collected, even after a failure, so that no answer is left queued and
        // every rank takes part in the step's exchange.
        let local = workers.collect(1, sent, |reply| matches!(reply, Reply::Stepped).then_some(()));
        // A replica of this process failed before or in its all-reduce: the other processes'
        // replicas wait for this one's in vain, and learn of it as this process ends the job.
        if self.replicas.give_up.load(Ordering::Acquire) {
            if let Some(remote) = remote {
                remote.give_up();
            }
            let leader = leader.map(|_| ());
            let cause = first_cause(std::iter::once(leader).chain(local));
            return Err(unsent.or(cause).unwrap_or(TrainError::StepGivenUp));
        }
        let remote_steps = remote.map_or(Ok(Vec::new()), ranks::RemoteRanks::step_results);
        // The leader's own error comes first: a non-finite loss is seen by every replica.
        let communication = leader?;
        // The leader counted it, whatever the others did.
        self.steps.push(step);
        for result in local.into_iter().chain(remote_steps?) {
            result?;
        }
        self.replicas.communication.set(self.replicas.communication.get() + communication);
        Ok(())
    }

    /// Checks every replica's remaining losses, then adds each step's counts, summed over the
    /// replicas, to its individual's tally in step order (as adding them step by step would).
    fn settle(&mut self, tallies: &mut [DeviceTally]) -> Result<(), TrainError> {
        let steps = std::mem::take(&mut self.steps);
        if steps.is_empty() {
            return Ok(());
        }
        let workers = &self.replicas.workers;
        let remote = self.replicas.remote.as_ref();
        let (sent, unsent) = workers.send_all(1, |_| Command::Settle);
        // The other ranks settle theirs meanwhile.
        let asked = remote.map_or(Ok(()), |remote| remote.ask_to_settle(steps.len()));
        let own = self.pass.settle().and_then(|counts| counted_all(0, counts, steps.len()));
        let local = workers.collect_settled(1, sent, steps.len());
        let remote_counts = match (remote, asked) {
            (Some(remote), Ok(())) => remote.settled_counts(steps.len()),
            (_, Err(e)) => Err(e),
            (None, Ok(())) => Ok(Vec::new()),
        };
        if let Some(e) = unsent {
            return Err(e);
        }
        let own = own?;
        let mut others = Vec::with_capacity(local.len());
        for counts in local.into_iter().chain(remote_counts?) {
            others.push(counts?);
        }
        for (i, step) in steps.iter().enumerate() {
            let mut total = own[i];
            let mut rest = Tally::default();
            for counts in &others {
                rest.merge(&counts[i]);
            }
            total.merge(&rest);
            let tally = tallies.get_mut(step.individual).ok_or_else(|| TrainError::Replica {
                replica: 0,
                reason: format!("it trained individual {}, beyond the population", step.individual),
            })?;
            tally.add_tally(&total);
        }
        Ok(())
    }
}

/// What every replica's shard of a step shares.
struct StepPart<'a> {
    arch: &'a ArchWeights,
    step: StepIndex,
    lr: f64,
    grad_clip: f64,
    starts_pass: bool,
    check_every: usize,
}

/// Replica `replica`'s shard of `batch`, `sizes` images per replica in order. A replica left
/// without images (a batch smaller than the replicas, e.g. an epoch's last) passes the batch's
/// first image with weight 0: its gradients are defined, zero.
fn shard_of(batch: &Batch, sizes: &[i64], replica: usize, part: &StepPart) -> Shard {
    let images: i64 = sizes.iter().sum();
    let (start, len) = (sizes[..replica].iter().sum::<i64>(), sizes[replica]);
    let (from, taken) = if len > 0 { (start, len) } else { (0, 1) };
    Shard {
        images: batch.images.narrow(0, from, taken),
        labels: batch.labels.narrow(0, from, taken),
        weight: len as f64 / images as f64,
        arch: part.arch.clone(),
        step: part.step,
        lr: part.lr,
        grad_clip: part.grad_clip,
        starts_pass: part.starts_pass,
        check_every: part.check_every,
    }
}

impl Workers {
    /// Sends each worker (worker `i` is replica `first + i`) the command `command` makes for its
    /// replica: how many were sent, and why not the rest.
    fn send_all(&self, first: usize, command: impl Fn(usize) -> Command) -> (usize, Option<TrainError>) {
        for (i, worker) in self.0.iter().enumerate() {
            if let Err(e) = worker.send(first + i, command(first + i)) {
                return (i, Some(e));
            }
        }
        (self.0.len(), None)
    }

    /// The answers of the first `sent` workers, in order, each read by `answer` (`None`: not an
    /// answer to the command sent).
    fn collect<T>(
        &self,
        first: usize,
        sent: usize,
        answer: impl Fn(Reply) -> Option<T>,
    ) -> Vec<Result<T, TrainError>> {
        (0..sent)
            .map(|i| {
                self.0[i].receive(first + i).map(|reply| {
                    answer(reply).unwrap_or_else(|| unreachable!("a replica answers the command it was sent"))
                })
            })
            .collect()
    }

    /// The first `sent` workers' counts of a pass of `steps` steps, each checked to hold them
    /// all.
    fn collect_settled(
        &self,
        first: usize,
        sent: usize,
        steps: usize,
    ) -> Vec<Result<Vec<Tally>, TrainError>> {
        let answers = self.collect(first, sent, |reply| match reply {
            Reply::Settled(counts) => Some(counts),
            _ => None,
        });
        let checked = answers.into_iter().enumerate();
        checked.map(|(i, counts)| counts.and_then(|counts| counted_all(first + i, counts, steps))).collect()
    }

    fn fingerprints(&self, first: usize) -> Result<Vec<String>, TrainError> {
        for (i, worker) in self.0.iter().enumerate() {
            worker.send(first + i, Command::Fingerprint)?;
        }
        let answers = self.collect(first, self.0.len(), |reply| match reply {
            Reply::Fingerprint(print) => Some(print),
            _ => None,
        });
        answers.into_iter().collect()
    }

    /// Leaves the threads to end with the process: after a failed start they may be waiting
    /// for peers that will never come, and joining them would hang.
    fn abandon(&mut self) {
        for mut worker in self.0.drain(..) {
            worker.commands = None;
            drop(worker.handle.take());
        }
    }
}

impl Worker {
    fn send(&self, replica: usize, command: Command) -> Result<(), TrainError> {
        let gone = || TrainError::Replica { replica, reason: "its thread ended".into() };
        self.commands.as_ref().ok_or_else(gone)?.send(command).map_err(|_| gone())
    }

    fn receive(&self, replica: usize) -> Result<Reply, TrainError> {
        match self.replies.recv() {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(failure)) => Err(failure.into_error(replica)),
            Err(_) => Err(TrainError::Replica { replica, reason: "its thread ended".into() }),
        }
    }
}

impl Drop for ReplicaSet {
    fn drop(&mut self) {
        if let Some(remote) = &self.remote {
            remote.close();
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for worker in &mut self.0 {
            worker.commands = None;
        }
        for worker in &mut self.0 {
            if let Some(handle) = worker.handle.take() {
                let _ = handle.join();
            }
        }
    }
}

/// Replica `rank` of `size` joins the replicas' group: its members wait [`FORM_TIMEOUT`] for
/// each other, then each collective waits [`COLLECTIVE_TIMEOUT`]. `in_job`: the replicas are
/// in several processes.
fn form_group(
    store: &Store,
    rank: usize,
    size: usize,
    collectives: &Collectives,
    in_job: bool,
) -> Result<ProcessGroup, DistributedError> {
    let group = collectives.form(store, rank, size, FORM_TIMEOUT)?;
    let group = if in_job { group.marked_spanning_processes() } else { group };
    group.set_timeout(COLLECTIVE_TIMEOUT)?;
    Ok(group)
}

/// Where a session's replicas meet to form their group.
enum Meeting {
    /// Threads of one process: one in-process store for all.
    InProcess(Arc<Store>),
    /// A job's session: a TCPStore client for each group formed ([`Job::session_store`] says
    /// why).
    Job { job: &'static Job, session: usize },
}

impl Meeting {
    /// The store one member forms the group through.
    fn store(&self) -> Result<Arc<Store>, DistributedError> {
        match self {
            Meeting::InProcess(store) => Ok(store.clone()),
            Meeting::Job { job, session } => Ok(Arc::new(job.session_store(*session)?)),
        }
    }
}

/// Starts a replica's thread; it builds its supernet, says so on the returned channel, then
/// joins the replicas' group.
fn spawn_worker(context: WorkerContext) -> Result<(Worker, Receiver<Result<(), String>>), TrainError> {
    let rank = context.rank;
    let (command_tx, command_rx) = bounded(1);
    let (reply_tx, reply_rx) = bounded(1);
    let (ready_tx, ready_rx) = bounded(1);
    let handle = std::thread::Builder::new()
        .name(format!("replica-{rank}"))
        .spawn(move || run_worker(context, ready_tx, command_rx, reply_tx))
        .map_err(|e| TrainError::Replica {
            replica: rank,
            reason: format!("cannot start its thread: {e}"),
        })?;
    Ok((Worker { commands: Some(command_tx), replies: reply_rx, handle: Some(handle) }, ready_rx))
}

/// Waits until every replica (`first`, `first + 1`, …) built its supernet.
fn wait_ready(ready: &[Receiver<Result<(), String>>], first: usize) -> Result<(), TrainError> {
    for (i, ready) in ready.iter().enumerate() {
        let replica = first + i;
        match ready.recv() {
            Ok(Ok(())) => {}
            Ok(Err(reason)) => return Err(TrainError::Replica { replica, reason }),
            Err(_) => return Err(TrainError::Replica { replica, reason: "its thread ended".into() }),
        }
    }
    Ok(())
}

struct WorkerContext {
    rank: usize,
    size: usize,
    device: Device,
    sgd: SgdConfig,
    threads: usize,
    store: Arc<Store>,
    collectives: Collectives,
    /// The replicas are in several processes (a job's session).
    in_job: bool,
    precision: Precision,
    build: BuildReplica,
    /// Shared by the process's replicas of the group ([`ReplicaSet`]).
    give_up: Arc<AtomicBool>,
}

fn run_worker(
    context: WorkerContext,
    ready: Sender<Result<(), String>>,
    commands: Receiver<Command>,
    replies: Sender<Result<Reply, ReplicaFailure>>,
) {
    crate::threads::set_this_thread_threads(context.threads);
    let vs = VarStore::new(context.device);
    let model = match (context.build)(&vs) {
        Ok(model) => model,
        Err(reason) => {
            let _ = ready.send(Err(reason));
            return;
        }
    };
    let mut opt = Sgd::new(&vs, context.sgd);
    let _ = ready.send(Ok(()));
    let joined = form_group(&context.store, context.rank, context.size, &context.collectives, context.in_job)
        .and_then(|group| broadcast_state(&vs, &mut opt, &group).map(|()| group));
    let group = match joined {
        Ok(group) => group,
        Err(e) => {
            // The leader learns of it at its first command.
            let failure = ReplicaFailure::Collective(e);
            for _ in commands.iter() {
                if replies.send(Err(failure.clone())).is_err() {
                    break;
                }
            }
            return;
        }
    };
    let mut pass = UnsettledPass::new(1);
    for command in commands.iter() {
        let reply = match command {
            Command::Step(shard) => {
                if shard.starts_pass {
                    pass = UnsettledPass::new(shard.check_every);
                }
                let replica = ReplicaParts {
                    model: model.as_ref(),
                    group: &group,
                    precision: context.precision,
                    give_up: &context.give_up,
                };
                replica_step(&replica, &mut opt, &shard, &mut pass).map(|_| Reply::Stepped)
            }
            Command::Settle => pass.settle().map(Reply::Settled),
            Command::Fingerprint => fingerprint(&vs, &opt).map(Reply::Fingerprint),
        };
        if replies.send(reply.map_err(ReplicaFailure::from)).is_err() {
            break;
        }
    }
}

/// Replicas of one process meet on loopback.
fn loopback() -> GlooBind {
    GlooBind::Host("127.0.0.1".into())
}

/// What one replica steps with, apart from its optimizer and its pass.
struct ReplicaParts<'a> {
    model: &'a dyn OneShotModel,
    group: &'a ProcessGroup,
    precision: Precision,
    /// This process's replicas' flag to give a step up ([`ReplicaSet`]).
    give_up: &'a AtomicBool,
}

/// The error that made a step fail: the first that is not a replica giving up for another's.
fn first_cause(results: impl IntoIterator<Item = Result<(), TrainError>>) -> Option<TrainError> {
    let errors: Vec<TrainError> = results.into_iter().filter_map(Result::err).collect();
    let cause = errors.iter().position(|e| !matches!(e, TrainError::StepGivenUp)).unwrap_or(0);
    errors.into_iter().nth(cause)
}

/// One replica's step: its shard (on the host, or on any device) copied to the replica's
/// device, its weighted gradient summed with the others', the summed loss recorded for its
/// check, then the same clipped SGD step as every other replica; its counts join `pass`.
/// Nothing is read back to the host unless the loss check falls due (or the collectives are
/// Gloo's and the replica is on a GPU). Returns the host's time in the all-reduce.
fn replica_step(
    replica: &ReplicaParts,
    opt: &mut Sgd,
    shard: &Shard,
    pass: &mut UnsettledPass,
) -> Result<Duration, TrainError> {
    let &ReplicaParts { model, group, precision, give_up } = replica;
    let device = opt.device();
    // Up to the all-reduce, a failure (a panic too: tch's, as libtorch runs out of memory) has
    // the process's other replicas give theirs up: they would wait out its timeout for this one.
    let before_reduce = std::panic::catch_unwind(AssertUnwindSafe(|| {
        // From pinned host memory the copies overlap the device's work, as a single replica's do.
        let non_blocking = device.is_cuda();
        let images = shard.images.to_device_(device, shard.images.kind(), non_blocking, false);
        let labels = shard.labels.to_device_(device, Kind::Int64, non_blocking, false);
        opt.zero_grad();
        let (logits, loss) = forward_loss(model, &images, &labels, &shard.arch, device, precision)?;
        let weighted = &loss * shard.weight;
        weighted.backward();
        let grads = opt.gradients();
        let mut parts: Vec<Tensor> = grads.iter().map(|g| g.reshape([-1]).to_kind(Kind::Float)).collect();
        let loss_part = if shard.weight > 0.0 { weighted.detach() } else { weighted.zeros_like() };
        parts.push(loss_part.reshape([1]).to_kind(Kind::Float));
        // Gloo reduces host memory: with it, a CUDA replica's buffer goes through the host. That
        // copy waits for the backward pass's kernels, so the timing starts after it: the wait is
        // training. NCCL's all-reduce only queues its kernels, so there this is the time to
        // queue them.
        let flat = Tensor::cat(&parts, 0).to_device(group.buffer_device(device));
        crate::fault::point("replica.reduce")?;
        Ok((labels, logits, loss, grads, flat))
    }))
    .unwrap_or_else(|panic| Err(TrainError::Replica { replica: group.rank(), reason: panic_text(&*panic) }));
    let (labels, logits, loss, grads, mut flat) =
        before_reduce.inspect_err(|_| give_up.store(true, Ordering::Release))?;
    let reducing = Instant::now();
    // A failed all-reduce too: a peer of this process may wait in it for this replica.
    let reduced = group
        .all_reduce_sum_unless(&mut flat, give_up)
        .inspect_err(|_| give_up.store(true, Ordering::Release));
    if reduced? == Reduced::GivenUp {
        return Err(TrainError::StepGivenUp);
    }
    let flat = flat.to_device(device);
    let communication = reducing.elapsed();
    // A copy, so that the check does not keep the whole buffer alive.
    let batch_loss = flat.narrow(0, flat.size()[0] - 1, 1).copy();
    // Checked before the step, and the same on every replica, so that all refuse it together.
    if let Some(bad) = pass.losses.record(shard.step, &batch_loss) {
        return Err(bad.non_finite_loss());
    }
    tch::no_grad(|| {
        let mut offset = 0;
        for g in &grads {
            let n = g.numel() as i64;
            let mut g = g.shallow_clone();
            g.copy_(&flat.narrow(0, offset, n).view(g.size().as_slice()));
            offset += n;
        }
    });
    opt.clip_grad_norm(shard.grad_clip);
    opt.step(shard.lr);
    if shard.weight > 0.0 {
        tch::no_grad(|| pass.tallies.add(&logits, &labels, &loss.detach()));
    } else {
        pass.tallies.add_nothing();
    }
    Ok(communication)
}

/// What a panic said, for its error.
fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    let said =
        panic.downcast_ref::<&str>().copied().or_else(|| panic.downcast_ref::<String>().map(String::as_str));
    format!("panicked: {}", said.unwrap_or("(no message)"))
}

/// `counts`, replica `replica`'s of a pass, unless it did not count each of the pass's `steps`.
fn counted_all(replica: usize, counts: Vec<Tally>, steps: usize) -> Result<Vec<Tally>, TrainError> {
    if counts.len() == steps {
        Ok(counts)
    } else {
        Err(TrainError::Replica {
            replica,
            reason: format!("it counted {} steps of a pass of {steps}", counts.len()),
        })
    }
}

/// Makes every replica's weights, buffers and momentum the leader's (rank 0's), in place.
fn broadcast_state(vs: &VarStore, opt: &mut Sgd, group: &ProcessGroup) -> Result<(), DistributedError> {
    let mut variables: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    variables.sort_by(|a, b| a.0.cmp(&b.0));
    broadcast_into(variables.iter().map(|(_, t)| t.shallow_clone()).collect(), group)?;
    // Which parameters have momentum (none before the first step), then the buffers.
    let mask = opt.momentum_mask();
    let mut mask_tensor = Tensor::from_slice(&mask.iter().map(|&m| u8::from(m)).collect::<Vec<_>>())
        .to_device(group.buffer_device(vs.device()));
    group.broadcast(&mut mask_tensor, 0)?;
    let leader_mask: Vec<bool> = Vec::<u8>::try_from(&mask_tensor)
        .map_err(|e| DistributedError::Collective {
            operation: "broadcast",
            rank: group.rank(),
            size: group.size(),
            reason: e.to_string(),
        })?
        .into_iter()
        .map(|m| m != 0)
        .collect();
    broadcast_into(opt.momentum_for(&leader_mask), group)
}

/// Overwrites `tensors` (any layouts, on one device) with rank 0's, through one flat buffer
/// where the group's collectives take it.
fn broadcast_into(tensors: Vec<Tensor>, group: &ProcessGroup) -> Result<(), DistributedError> {
    let Some(first) = tensors.first() else {
        return Ok(());
    };
    let buffer = group.buffer_device(first.device());
    tch::no_grad(|| {
        let parts: Vec<Tensor> =
            tensors.iter().map(|t| t.reshape([-1]).to_kind(Kind::Float).to_device(buffer)).collect();
        let mut flat = Tensor::cat(&parts, 0);
        group.broadcast(&mut flat, 0)?;
        let mut offset = 0;
        for t in &tensors {
            let n = t.numel() as i64;
            let mut target = t.shallow_clone();
            let part = flat.narrow(0, offset, n).view(t.size().as_slice());
            target.copy_(&part.to_kind(t.kind()).to_device(t.device()));
            offset += n;
        }
        Ok(())
    })
}

/// SHA-256 over every trainable variable (by name) and momentum buffer, their bytes on the host.
/// (BatchNorm's running statistics are left out: each replica's follow its own shards.)
fn fingerprint(vs: &VarStore, opt: &Sgd) -> Result<String, TrainError> {
    let mut tensors = super::sgd::trainable_by_name(vs);
    tensors.extend(opt.momentum_buffers().into_iter().map(|(name, t)| (format!("momentum.{name}"), t)));
    let mut hasher = Sha256::new();
    for (name, t) in &tensors {
        let host = t.detach().to_device(Device::Cpu).contiguous();
        let mut bytes = vec![0u8; host.numel() * host.kind().elt_size_in_bytes()];
        host.f_copy_data_u8(&mut bytes, host.numel()).map_err(|e| TrainError::Replica {
            replica: 0,
            reason: format!("cannot read {name} for its fingerprint: {e}"),
        })?;
        hasher.update(name.as_bytes());
        hasher.update(&bytes);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Images per replica: as equal as possible, the first ones one more (so the leader always has
/// some); None for an empty batch.
fn shard_sizes(images: i64, replicas: usize) -> Option<Vec<i64>> {
    let n = replicas as i64;
    if n == 0 || images < 1 {
        return None;
    }
    Some((0..n).map(|r| images / n + i64::from(r < images % n)).collect())
}

#[cfg(test)]
mod tests;
