//! The job's other processes (ranks 1..) as replicas of rank 0's data-parallel training. Over
//! the job's control group, rank 0 tells them what supernet to build (a session), then each
//! step's batch and architecture; each rank trains its share of the batch on its own replicas
//! (threads, as rank 0's), which sum their gradients with all the others' in the session's
//! group (Gloo, or NCCL where rank 0 chose it), and answers whether each replica queued its
//! step. When a pass ends, rank 0 asks them to settle it: they answer with every step's counts
//! (kept on their devices until then). The ranks keep no state of the search: rank 0
//! broadcasts its weights and momentum when a session opens (new or resumed runs alike).
//!
//! Every message is a fixed-size header of f64s from rank 0, then the tensors it announces; every
//! rank takes part in each exchange, even after a failure of its own, so that none waits for an
//! answer that never comes. A rank that fails exits; its sockets close and the others' next
//! collective fails at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use super::{
    first_cause, shard_of, shard_sizes, spawn_worker, wait_ready, BuildReplica, Command, Reply, StepPart,
    WorkerContext, Workers,
};
use crate::data::Batch;
use crate::distributed::{Collectives, GlooBind, Job, Store};
use crate::model::ArchWeights;
use crate::train::accuracy::Tally;
use crate::train::remote_fitness::{join_pair, serve_fitness, FitnessLink};
use crate::train::sgd::SgdConfig;
use crate::train::supernet_epoch::StepIndex;
use crate::train::{Precision, TrainError};

/// f64s in a header: room for a step's numbers, 2 cells' shapes and an image's dimensions.
const HEADER: usize = 32;
/// The version of the messages below: a session of another is refused (ranks started with other
/// builds of evnas).
pub(super) const PROTOCOL: u32 = 2;
/// f64s per replica and step in a pass's counts: images, top-1, top-5, loss sum.
const TALLY_ROW: usize = 4;

/// What a header asks for (its first number).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Word {
    /// A new group of replicas: [number, spec bytes], then the spec.
    Session = 1,
    /// [images, batch, individual, lr, grad clip, starts pass, check every, cells, (edges, ops)
    /// per cell, dims, dims…], then the architecture's weights, the images and the labels.
    Step = 2,
    /// Then rank 0's leader's fingerprint: every rank compares its replicas' with it.
    CheckInStep = 3,
    /// The session's replicas are dropped.
    EndSession = 4,
    /// [exit code]: the job is over.
    Shutdown = 5,
    /// [steps]: the pass's steps were all sent; every replica checks their remaining losses
    /// and sends their counts.
    Settle = 6,
}

impl Word {
    fn read(value: f64) -> Option<Self> {
        [Self::Session, Self::Step, Self::CheckInStep, Self::EndSession, Self::Shutdown, Self::Settle]
            .into_iter()
            .find(|w| *w as i64 as f64 == value)
    }
}

/// What the ranks need to build their replicas of a session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct SessionSpec {
    pub momentum: f64,
    pub weight_decay: f64,
    /// The supernet, in the terms of the caller's [`BuildFromSpec`].
    pub model: serde_json::Value,
    /// Each rank also serves fitness on a model of its own, BatchNorm on batch statistics or
    /// not (crate::train::remote_fitness); `None`: it does not.
    #[serde(default)]
    pub fitness_batchnorm: Option<bool>,
    /// Rank 0 chose NCCL for the replicas' group (else Gloo); every rank uses its choice.
    #[serde(default)]
    pub nccl: bool,
    /// Arithmetic of the training steps' forward passes.
    #[serde(default)]
    pub precision: Precision,
    /// [`PROTOCOL`] of rank 0 (absent: 1, before the version was sent).
    #[serde(default = "first_protocol")]
    pub protocol: u32,
}

fn first_protocol() -> u32 {
    1
}

/// Makes the replica builder of a session's model spec (the search's supernet settings).
pub type BuildFromSpec = dyn Fn(&serde_json::Value) -> Result<BuildReplica, String> + Sync;

/// Rank 0's view of the other ranks' replicas during a session.
pub(super) struct RemoteRanks {
    job: &'static Job,
    /// Replicas per rank.
    counts: Vec<usize>,
    /// The ranks serve fitness too.
    fitness: bool,
}

impl RemoteRanks {
    /// Opens a session: the ranks learn `spec`, rank 0 learns how many replicas each rank has
    /// (`local` of its own). Also returns the session's number.
    pub(super) fn open(
        job: &'static Job,
        spec: &SessionSpec,
        local: usize,
    ) -> Result<(Self, usize), TrainError> {
        let number = job.next_session();
        let bytes =
            serde_json::to_vec(spec).map_err(|e| rank_error(0, format!("cannot encode the session: {e}")))?;
        send_header(job, Word::Session, &[number as f64, bytes.len() as f64])?;
        let mut payload = Tensor::from_slice(&bytes);
        job.broadcast(&mut payload)?;
        let counts = exchange_counts(job, local)?;
        Ok((Self { job, counts, fitness: spec.fitness_batchnorm.is_some() }, number))
    }

    /// Tells the ranks whether this process's replicas were built (`built`) and learns whether
    /// theirs were.
    pub(super) fn confirm_ready(&self, built: bool) -> Result<(), TrainError> {
        match exchange_ready(self.job, built)? {
            None => Ok(()),
            Some(rank) => Err(rank_error(rank, "could not build its replicas".into())),
        }
    }

    /// Rank 0's end of each other rank's fitness model (after the session's replicas met):
    /// ranks that serve fitness join theirs meanwhile.
    pub(super) fn fitness_links(
        &self,
        store: &Store,
        bind: &GlooBind,
    ) -> Result<Vec<FitnessLink>, TrainError> {
        if !self.fitness {
            return Ok(Vec::new());
        }
        (1..self.counts.len())
            .map(|rank| {
                let group = join_pair(&fitness_store(store, rank)?, 0, bind)?;
                Ok(FitnessLink::new(group, rank))
            })
            .collect()
    }

    /// Replicas of all ranks.
    pub(super) fn total(&self) -> usize {
        self.counts.iter().sum()
    }

    /// Sends the ranks a step: `batch` (all of it; each takes its replicas' shards) and `part`.
    pub(super) fn send_step(&self, batch: &Batch, part: &StepPart) -> Result<(), TrainError> {
        let images = batch.images.to_device(Device::Cpu).to_kind(Kind::Float).contiguous();
        let labels = batch.labels.to_device(Device::Cpu).to_kind(Kind::Int64).contiguous();
        let size = images.size();
        let shapes = part.arch.shapes();
        let mut numbers = vec![
            size[0] as f64,
            part.step.batch as f64,
            part.step.individual as f64,
            part.lr,
            part.grad_clip,
            f64::from(u8::from(part.starts_pass)),
            part.check_every as f64,
            shapes.len() as f64,
        ];
        numbers.extend(shapes.iter().flat_map(|&(edges, ops)| [edges as f64, ops as f64]));
        numbers.push((size.len() - 1) as f64);
        numbers.extend(size[1..].iter().map(|&d| d as f64));
        send_header(self.job, Word::Step, &numbers)?;
        let mut arch = Tensor::from_slice(&part.arch.flat_values());
        self.job.broadcast(&mut arch)?;
        let (mut images, mut labels) = (images, labels);
        self.job.broadcast(&mut images)?;
        self.job.broadcast(&mut labels)?;
        Ok(())
    }

    /// Whether each of the other ranks' replicas queued the step just sent, in replica order.
    pub(super) fn step_results(&self) -> Result<Vec<Result<(), TrainError>>, TrainError> {
        let flags = exchange_flags(self.job, self.total(), &[])?;
        Ok(self.remote_replicas().map(|replica| self.failed(&flags, replica, "its step")).collect())
    }

    /// Asks the ranks to settle the pass of `steps` steps just sent.
    pub(super) fn ask_to_settle(&self, steps: usize) -> Result<(), TrainError> {
        send_header(self.job, Word::Settle, &[steps as f64])
    }

    /// After [`ask_to_settle`](Self::ask_to_settle): each of the other ranks' replicas' counts
    /// of every step, in replica order.
    pub(super) fn settled_counts(
        &self,
        steps: usize,
    ) -> Result<Vec<Result<Vec<Tally>, TrainError>>, TrainError> {
        let (flags, rows) = exchange_counts_of_pass(self.job, self.total(), steps, 0, &[])?;
        Ok(self
            .remote_replicas()
            .map(|replica| {
                self.failed(&flags, replica, "the end of its pass")
                    .map(|()| read_tallies(&rows, replica, steps))
            })
            .collect())
    }

    /// An error naming `replica`'s rank when its flag says it failed `what`.
    fn failed(&self, flags: &[f64], replica: usize, what: &str) -> Result<(), TrainError> {
        if flags[replica] == 0.0 {
            return Ok(());
        }
        Err(rank_error(self.rank_of(replica), format!("replica {replica} failed {what}")))
    }

    /// Fails unless every other rank's replicas have the leader's fingerprint `leader`.
    pub(super) fn check_in_step(&self, leader: &str) -> Result<(), TrainError> {
        send_header(self.job, Word::CheckInStep, &[])?;
        let mut print = Tensor::from_slice(leader.as_bytes());
        self.job.broadcast(&mut print)?;
        let flags = exchange_flags(self.job, self.total(), &[])?;
        for replica in self.remote_replicas() {
            let rank = self.rank_of(replica);
            match flags[replica] as i64 {
                0 => {}
                1 => {
                    return Err(rank_error(
                        rank,
                        format!("replica {replica}'s weights or momentum differ from replica 0's"),
                    ))
                }
                _ => {
                    return Err(rank_error(
                        rank,
                        format!("replica {replica} could not compute its fingerprint"),
                    ))
                }
            }
        }
        Ok(())
    }

    /// Ends the session (best effort: a job that lost a process is ending anyway).
    pub(super) fn close(&self) {
        if !self.job.is_broken() {
            let _ = send_header(self.job, Word::EndSession, &[]);
        }
    }

    /// This process gave a step up: the other ranks' replicas wait for its replicas in vain,
    /// and cannot hear rank 0 until they stop waiting; they learn of the end as it exits.
    pub(super) fn give_up(&self) {
        self.job.mark_broken();
    }

    fn remote_replicas(&self) -> std::ops::Range<usize> {
        self.counts[0]..self.total()
    }

    fn rank_of(&self, replica: usize) -> usize {
        let mut end = 0;
        for (rank, &n) in self.counts.iter().enumerate() {
            end += n;
            if replica < end {
                return rank;
            }
        }
        self.counts.len() - 1
    }
}

/// Ends the job (rank 0, as its command ends): every other rank exits with `code`. Best effort:
/// after a lost process the others have ended already.
pub fn shutdown_job(job: &Job, code: u8) {
    if job.rank() == 0 && !job.is_broken() {
        let _ = send_header(job, Word::Shutdown, &[f64::from(code)]);
    }
}

/// A rank other than 0: trains on `devices` with `threads` CPU threads whatever sessions rank
/// 0 opens, their supernets built by `build_from_spec`, until rank 0 ends the job; returns the
/// exit code rank 0 gave.
pub fn serve_job(
    job: &'static Job,
    devices: &[Device],
    threads: usize,
    build_from_spec: &BuildFromSpec,
) -> Result<u8, TrainError> {
    let mut session: Option<LocalSession> = None;
    loop {
        match serve_message(job, &mut session, devices, threads, build_from_spec) {
            Ok(None) => {}
            Ok(Some(code)) => return Ok(code),
            Err(e) => {
                // Its replicas may be waiting in a collective that will not complete: the
                // process ends instead of joining them, which lets the other ranks see it gone.
                if let Some(mut failed) = session.take() {
                    failed.workers.abandon();
                }
                return Err(e);
            }
        }
    }
}

/// Receives and carries out rank 0's next message: `Some(exit code)` when it ends the job.
fn serve_message(
    job: &'static Job,
    session: &mut Option<LocalSession>,
    devices: &[Device],
    threads: usize,
    build_from_spec: &BuildFromSpec,
) -> Result<Option<u8>, TrainError> {
    let header = receive_header(job)?;
    let word =
        Word::read(header[0]).ok_or_else(|| rank_error(0, format!("sent an unknown word {}", header[0])))?;
    match word {
        Word::Session => {
            drop(session.take());
            let (number, length) = (header[1] as usize, header[2] as i64);
            let mut payload = Tensor::zeros([length], (Kind::Uint8, Device::Cpu));
            job.broadcast(&mut payload)?;
            let spec = Vec::<u8>::try_from(&payload)
                .map_err(|e| e.to_string())
                .and_then(|bytes| serde_json::from_slice::<SessionSpec>(&bytes).map_err(|e| e.to_string()))
                .map_err(|e| rank_error(0, format!("sent a session this rank cannot read: {e}")))
                .and_then(|spec| match spec.protocol {
                    PROTOCOL => Ok(spec),
                    other => Err(rank_error(
                        0,
                        format!(
                            "speaks protocol {other}, this rank {PROTOCOL}: start every rank with the same \
                             evnas build"
                        ),
                    )),
                });
            *session = LocalSession::open(job, number, spec, devices, threads, build_from_spec)?;
        }
        Word::Step => session_of(session)?.step(job, &header)?,
        Word::Settle => session_of(session)?.settle(job, &header)?,
        Word::CheckInStep => session_of(session)?.check_in_step(job)?,
        Word::EndSession => *session = None,
        Word::Shutdown => return Ok(Some(header[1].clamp(0.0, 255.0) as u8)),
    }
    Ok(None)
}

fn session_of(session: &Option<LocalSession>) -> Result<&LocalSession, TrainError> {
    session.as_ref().ok_or_else(|| rank_error(0, "sent a step outside a session".into()))
}

/// This rank's replicas of a session.
struct LocalSession {
    workers: Workers,
    /// Its replicas' flag to give a step up ([`WorkerContext`]).
    give_up: Arc<AtomicBool>,
    /// Its first replica's index among all.
    first: usize,
    total: usize,
}

impl LocalSession {
    /// The session's replicas on `devices`; `None` when another rank could not build its own
    /// (rank 0 then ends the session).
    fn open(
        job: &'static Job,
        number: usize,
        spec: Result<SessionSpec, TrainError>,
        devices: &[Device],
        threads: usize,
        build_from_spec: &BuildFromSpec,
    ) -> Result<Option<Self>, TrainError> {
        let counts = exchange_counts(job, devices.len())?;
        let first: usize = counts[..job.rank()].iter().sum();
        let total: usize = counts.iter().sum();
        let mut workers = Workers::default();
        let give_up = Arc::new(AtomicBool::new(false));
        let built = spec.and_then(|spec| {
            let build = build_from_spec(&spec.model)
                .map_err(|reason| TrainError::Replica { replica: first, reason })?;
            let sgd = SgdConfig { momentum: spec.momentum, weight_decay: spec.weight_decay };
            let collectives = if spec.nccl { Collectives::Nccl } else { Collectives::Gloo(job.gloo_bind()) };
            collectives.usable_on(devices)?;
            let mut ready = Vec::with_capacity(devices.len());
            for (i, &device) in devices.iter().enumerate() {
                let context = WorkerContext {
                    rank: first + i,
                    size: total,
                    device,
                    sgd,
                    threads: (threads / devices.len().max(1)).max(1),
                    // A client each: the groups of this rank form side by side.
                    store: Arc::new(job.session_store(number)?),
                    collectives: collectives.clone(),
                    in_job: true,
                    precision: spec.precision,
                    build: build.clone(),
                    give_up: give_up.clone(),
                };
                let (worker, ready_rx) = spawn_worker(context)?;
                workers.0.push(worker);
                ready.push(ready_rx);
            }
            wait_ready(&ready, first).map(|()| (build, spec.fitness_batchnorm))
        });
        let failed = exchange_ready(job, built.is_ok())?;
        let (build, fitness_batchnorm) = match built {
            Ok(parts) => parts,
            Err(e) => {
                workers.abandon();
                return Err(e);
            }
        };
        if failed.is_some() {
            workers.abandon();
            return Ok(None);
        }
        if let Some(train_mode_bn) = fitness_batchnorm {
            let server = FitnessServer { rank: job.rank(), device: devices[0], threads, train_mode_bn };
            server.start(fitness_store(&job.session_store(number)?, job.rank())?, job.gloo_bind(), build)?;
        }
        Ok(Some(Self { workers, give_up, first, total }))
    }

    fn step(&self, job: &Job, header: &[f64]) -> Result<(), TrainError> {
        crate::fault::point("replica.step")?;
        let malformed = || rank_error(0, "sent a malformed step".into());
        let number = |i: usize| header.get(i).copied().ok_or_else(malformed);
        let images = number(1)? as i64;
        let step = StepIndex { batch: number(2)? as usize, individual: number(3)? as usize };
        let (lr, grad_clip) = (number(4)?, number(5)?);
        let (starts_pass, check_every) = (number(6)? != 0.0, number(7)? as usize);
        let cells = number(8)? as usize;
        let mut shapes = Vec::with_capacity(cells);
        for c in 0..cells {
            shapes.push((number(9 + 2 * c)? as usize, number(10 + 2 * c)? as usize));
        }
        let dims_at = 9 + 2 * cells;
        let mut size = vec![images];
        for d in 0..number(dims_at)? as usize {
            size.push(number(dims_at + 1 + d)? as i64);
        }
        let values: usize = shapes.iter().map(|(e, o)| e * o).sum();
        let mut arch = Tensor::zeros([values as i64], (Kind::Float, Device::Cpu));
        job.broadcast(&mut arch)?;
        let mut batch = Batch {
            images: Tensor::zeros(size.as_slice(), (Kind::Float, Device::Cpu)),
            labels: Tensor::zeros([images], (Kind::Int64, Device::Cpu)),
            index: 0,
        };
        job.broadcast(&mut batch.images)?;
        job.broadcast(&mut batch.labels)?;
        let flat = Vec::<f32>::try_from(&arch).map_err(|_| malformed())?;
        let arch = ArchWeights::from_flat(&shapes, &flat)?;
        let sizes = shard_sizes(images, self.total).ok_or(TrainError::EmptyBatch { batch: step.batch })?;
        let part = StepPart { arch: &arch, step, lr, grad_clip, starts_pass, check_every };
        let (sent, unsent) = self
            .workers
            .send_all(self.first, |replica| Command::Step(shard_of(&batch, &sizes, replica, &part)));
        if unsent.is_some() {
            // The replicas sent their shard would wait for the others' all-reduce in vain.
            self.give_up.store(true, Ordering::Release);
        }
        let mut results =
            self.workers.collect(self.first, sent, |reply| matches!(reply, Reply::Stepped).then_some(()));
        results.extend(unsent.into_iter().map(Err));
        // A replica here failed before its all-reduce: rank 0's replicas wait for this one's
        // in vain (it is not in the exchange either), and learn of it as this process ends.
        if self.give_up.load(Ordering::Acquire) {
            return Err(first_cause(results).unwrap_or(TrainError::StepGivenUp));
        }
        exchange_flags(job, self.total, &self.own_flags(&results))?;
        results.into_iter().find_map(Result::err).map_or(Ok(()), Err)
    }

    fn settle(&self, job: &Job, header: &[f64]) -> Result<(), TrainError> {
        let steps =
            header.get(1).copied().ok_or_else(|| rank_error(0, "sent a malformed settle".into()))? as usize;
        let (sent, unsent) = self.workers.send_all(self.first, |_| Command::Settle);
        let mut results = self.workers.collect_settled(self.first, sent, steps);
        results.extend(unsent.into_iter().map(Err));
        exchange_counts_of_pass(job, self.total, steps, self.first, &results)?;
        results.into_iter().find_map(Result::err).map_or(Ok(()), Err)
    }

    /// Per replica of the job, 1 where this rank's failed (`results` are its replicas' from
    /// `first`), else 0.
    fn own_flags<T>(&self, results: &[Result<T, TrainError>]) -> Vec<f64> {
        let mut flags = vec![0.0; self.total];
        for (i, result) in results.iter().enumerate() {
            flags[self.first + i] = f64::from(u8::from(result.is_err()));
        }
        flags
    }

    fn check_in_step(&self, job: &Job) -> Result<(), TrainError> {
        let mut print = Tensor::zeros([64], (Kind::Uint8, Device::Cpu));
        job.broadcast(&mut print)?;
        let leader = Vec::<u8>::try_from(&print).unwrap_or_default();
        let prints = self.workers.fingerprints(self.first);
        let flags: Vec<f64> = match &prints {
            Ok(prints) => {
                prints.iter().map(|p| if p.as_bytes() == leader.as_slice() { 0.0 } else { 1.0 }).collect()
            }
            Err(_) => vec![2.0; self.workers.0.len()],
        };
        let mut own = vec![0.0; self.total];
        own[self.first..self.first + flags.len()].copy_from_slice(&flags);
        exchange_flags(job, self.total, &own)?;
        match prints {
            Err(e) => Err(e),
            Ok(_) if flags.iter().any(|&f| f != 0.0) => Err(TrainError::Replica {
                replica: self.first + flags.iter().position(|&f| f != 0.0).unwrap_or(0),
                reason: "its weights or momentum differ from replica 0's".into(),
            }),
            Ok(_) => Ok(()),
        }
    }
}

/// This rank's fitness model, measuring what rank 0 sends over their pair's group.
struct FitnessServer {
    rank: usize,
    device: Device,
    threads: usize,
    train_mode_bn: bool,
}

impl FitnessServer {
    /// On a thread of its own, which ends when rank 0 closes the link. A failure there ends the
    /// process: rank 0 then sees the job lose a process, as with any other failure of a rank.
    fn start(self, store: Store, bind: GlooBind, build: BuildReplica) -> Result<(), TrainError> {
        std::thread::Builder::new()
            .name("fitness-server".into())
            .spawn(move || {
                crate::threads::set_this_thread_threads(self.threads);
                let vs = VarStore::new(self.device);
                let served = build(&vs)
                    .map_err(|reason| TrainError::Rank { rank: self.rank, reason })
                    .and_then(|model| {
                        let group = join_pair(&store, 1, &bind)?;
                        serve_fitness(&group, &vs, model.as_ref(), self.train_mode_bn)
                    });
                if let Err(e) = served {
                    crate::daemon::journal::eprint_at(
                        tracing::Level::ERROR,
                        format_args!("error: rank {} stopped measuring fitness: {e}", self.rank),
                    );
                    // Unless it only saw another process fail (rank 0 knows that).
                    if let Some(job) = crate::distributed::joined().filter(|_| !e.is_collective()) {
                        job.leave_failure(&format!("stopped measuring fitness: {e}"));
                    }
                    // Without exit handlers: libtorch's static destructors crashed the process
                    // (SIGSEGV) while its main thread still trained.
                    crate::daemon::exit_now(1);
                }
            })
            .map_err(|e| TrainError::Rank {
                rank: self.rank,
                reason: format!("cannot start its fitness thread: {e}"),
            })?;
        Ok(())
    }
}

/// The keys where rank 0 and rank `rank` form their fitness pair.
fn fitness_store(session: &Store, rank: usize) -> Result<Store, TrainError> {
    Ok(session.prefixed(&format!("fitness_{rank}"))?)
}

fn rank_error(rank: usize, reason: String) -> TrainError {
    TrainError::Rank { rank, reason }
}

fn send_header(job: &Job, word: Word, numbers: &[f64]) -> Result<(), TrainError> {
    let mut header = vec![0.0; HEADER];
    header[0] = word as i64 as f64;
    if numbers.len() >= HEADER {
        return Err(rank_error(0, format!("a message of {} numbers does not fit a header", numbers.len())));
    }
    header[1..=numbers.len()].copy_from_slice(numbers);
    let mut tensor = Tensor::from_slice(&header);
    job.broadcast(&mut tensor)?;
    Ok(())
}

fn receive_header(job: &Job) -> Result<Vec<f64>, TrainError> {
    let mut tensor = Tensor::zeros([HEADER as i64], (Kind::Double, Device::Cpu));
    job.broadcast(&mut tensor)?;
    Vec::<f64>::try_from(&tensor).map_err(|e| rank_error(0, format!("sent an unreadable header: {e}")))
}

/// Every rank's replica count (`own` for this one).
fn exchange_counts(job: &Job, own: usize) -> Result<Vec<usize>, TrainError> {
    let mut slots = vec![0.0; job.world_size()];
    slots[job.rank()] = own as f64;
    let summed = all_reduce(job, slots)?;
    Ok(summed.into_iter().map(|n| n as usize).collect())
}

/// Whether every rank built its replicas (`built` for this one): the first that did not.
fn exchange_ready(job: &Job, built: bool) -> Result<Option<usize>, TrainError> {
    let mut slots = vec![0.0; job.world_size()];
    slots[job.rank()] = if built { 1.0 } else { 0.0 };
    let summed = all_reduce(job, slots)?;
    Ok(summed.iter().position(|&ok| ok == 0.0))
}

/// Per replica, a number its rank set (`own`: this rank's, zeros elsewhere; empty: none).
fn exchange_flags(job: &Job, total: usize, own: &[f64]) -> Result<Vec<f64>, TrainError> {
    let mut slots = vec![0.0; total];
    slots[..own.len()].copy_from_slice(own);
    all_reduce(job, slots)
}

/// A pass's exchange of counts: per replica of the job, whether it failed, then per replica and
/// step its counts. This rank fills in those of `results` (its replicas from `first`).
fn exchange_counts_of_pass(
    job: &Job,
    total: usize,
    steps: usize,
    first: usize,
    results: &[Result<Vec<Tally>, TrainError>],
) -> Result<(Vec<f64>, Vec<f64>), TrainError> {
    let mut values = vec![0.0; total + total * steps * TALLY_ROW];
    let (flags, rows) = values.split_at_mut(total);
    for (i, result) in results.iter().enumerate() {
        let replica = first + i;
        match result {
            Ok(counts) => {
                let block = &mut rows[replica * steps * TALLY_ROW..(replica + 1) * steps * TALLY_ROW];
                for (row, t) in block.chunks_exact_mut(TALLY_ROW).zip(counts) {
                    row.copy_from_slice(&[
                        t.images as f64,
                        t.correct_top1 as f64,
                        t.correct_top5 as f64,
                        t.loss_sum,
                    ]);
                }
            }
            Err(_) => flags[replica] = 1.0,
        }
    }
    let mut summed = all_reduce(job, values)?;
    let rows = summed.split_off(total);
    Ok((summed, rows))
}

/// Replica `replica`'s counts of each of `steps` steps, from a pass's exchange.
fn read_tallies(rows: &[f64], replica: usize, steps: usize) -> Vec<Tally> {
    rows[replica * steps * TALLY_ROW..(replica + 1) * steps * TALLY_ROW]
        .chunks_exact(TALLY_ROW)
        .map(|row| Tally {
            images: row[0] as u64,
            correct_top1: row[1] as u64,
            correct_top5: row[2] as u64,
            loss_sum: row[3],
        })
        .collect()
}

fn all_reduce(job: &Job, values: Vec<f64>) -> Result<Vec<f64>, TrainError> {
    let mut tensor = Tensor::from_slice(&values);
    job.all_reduce_sum(&mut tensor)?;
    Vec::<f64>::try_from(&tensor).map_err(|e| rank_error(job.rank(), format!("cannot read an exchange: {e}")))
}
