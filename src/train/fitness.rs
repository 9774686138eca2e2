//! Fitness of each individual (reference: train_search.py `validation`): supernet accuracy
//! through its decoded architecture on the validation split, without gradients.

use std::borrow::Borrow;

use tch::nn::VarStore;
use tch::Tensor;

use super::accuracy::{DeviceTally, Tally};
use super::TrainError;
use crate::data::DataError;
use crate::model::{ArchWeights, OneShotModel};
use crate::stop::StopFlag;

/// Validation batches ready on the model's device (images normalised f32, labels i64).
pub struct EvalBatch {
    pub images: Tensor,
    pub labels: Tensor,
}

impl EvalBatch {
    /// Another handle on the same images and labels (no copy).
    pub fn shallow_clone(&self) -> Self {
        Self { images: self.images.shallow_clone(), labels: self.labels.shallow_clone() }
    }
}

/// Measures one individual over `batches`: held ones (`&EvalBatch`) or a stream of owned ones
/// as they are produced, each `Ok`, or an `Err` that ends the measurement.
///
/// `train_mode_bn` keeps BatchNorm on batch statistics, as the reference (which never calls
/// `model.eval()` during the search); running statistics otherwise.
pub fn evaluate_individual<B, E>(
    model: &dyn OneShotModel,
    architecture: &ArchWeights,
    batches: impl IntoIterator<Item = Result<B, E>>,
    train_mode_bn: bool,
    stop: &StopFlag,
) -> Result<Tally, TrainError>
where
    B: Borrow<EvalBatch>,
    E: std::fmt::Display,
{
    crate::fault::point("fitness.individual")?;
    // Summed on the device and read once per individual, not once per batch.
    let mut tally = DeviceTally::default();
    tch::no_grad(|| {
        for batch in batches {
            if stop.is_stopped() {
                return Err(TrainError::Interrupted);
            }
            let batch = batch.map_err(|e| TrainError::Data { reason: e.to_string() })?;
            let batch = batch.borrow();
            let logits = model.forward_arch(&batch.images, architecture, train_mode_bn)?;
            let loss = logits.cross_entropy_for_logits(&batch.labels);
            tally.add(&logits, &batch.labels, &loss);
        }
        Ok(())
    })?;
    Ok(tally.read())
}

/// Validation batches a worker thread owns: shared device-resident ones, or a stream of
/// freshly produced ones (never the whole split at once).
pub type OwnedBatches = Box<dyn Iterator<Item = Result<EvalBatch, DataError>> + Send>;

/// One individual's fitness measurement, handed to a worker thread.
pub struct FitnessJob {
    /// Id of the individual, given back with its result.
    pub id: u64,
    pub architecture: ArchWeights,
    pub batches: OwnedBatches,
}

/// A private copy of the supernet for one fitness worker thread.
pub struct Replica {
    pub vs: VarStore,
    pub model: Box<dyn OneShotModel>,
}

/// Measures the individuals of `jobs` on one thread per replica, each running libtorch on a
/// single intra-op thread; `on_done(id, tally)` runs on the calling thread as results arrive (its
/// error, like a worker's, stops the handing out of jobs and is returned).
///
/// Why: the supernet's tensors are small (8 to 64 channels), so libtorch's intra-op threads spend
/// much of a forward waiting at barriers, while whole individuals in parallel keep every core
/// busy. A result does not depend on which worker measured it (same weights, one thread each).
/// Each replica's BatchNorm running statistics absorb its batches; they are not copied back: a
/// fitness on batch statistics never reads them, and the weights it depends on are unchanged.
///
/// Jobs are pulled from `jobs` (on the calling thread) only as workers become free, so at most
/// one job per worker is held at a time. The first error stops the handing out of jobs.
///
/// # Panics
/// When `replicas` is empty.
pub fn evaluate_in_parallel<E>(
    replicas: &mut [Replica],
    jobs: impl IntoIterator<Item = Result<FitnessJob, E>>,
    train_mode_bn: bool,
    stop: &StopFlag,
    mut on_done: impl FnMut(u64, &Tally) -> Result<(), E>,
) -> Result<(), E>
where
    E: From<TrainError>,
{
    assert!(!replicas.is_empty(), "parallel fitness needs at least one replica");
    let workers = replicas.len();
    let (job_tx, job_rx) = crossbeam_channel::unbounded::<FitnessJob>();
    let (done_tx, done_rx) = crossbeam_channel::unbounded::<(u64, Result<Tally, TrainError>)>();
    let outcome = std::thread::scope(|scope| {
        for replica in replicas.iter_mut() {
            let (job_rx, done_tx) = (job_rx.clone(), done_tx.clone());
            scope.spawn(move || {
                crate::threads::set_this_thread_threads(1);
                for job in job_rx {
                    let result = evaluate_individual(
                        replica.model.as_ref(),
                        &job.architecture,
                        job.batches,
                        train_mode_bn,
                        stop,
                    );
                    let failed = result.is_err();
                    if done_tx.send((job.id, result)).is_err() || failed {
                        break;
                    }
                }
            });
        }
        drop((job_rx, done_tx));
        let mut first_error: Option<E> = None;
        let mut receive = |first_error: &mut Option<E>| match done_rx.recv() {
            Ok((id, Ok(tally))) => {
                if let Err(e) = on_done(id, &tally) {
                    first_error.get_or_insert(e);
                }
            }
            Ok((_, Err(e))) => {
                first_error.get_or_insert(E::from(e));
            }
            Err(_) => {
                first_error.get_or_insert(E::from(TrainError::WorkerLost));
            }
        };
        let mut in_flight = 0;
        for job in jobs {
            while in_flight >= workers && first_error.is_none() {
                receive(&mut first_error);
                in_flight -= 1;
            }
            if first_error.is_some() {
                break;
            }
            match job {
                Ok(job) => {
                    if job_tx.send(job).is_err() {
                        first_error.get_or_insert(E::from(TrainError::WorkerLost));
                        break;
                    }
                    in_flight += 1;
                }
                Err(e) => {
                    first_error = Some(e);
                    break;
                }
            }
        }
        drop(job_tx);
        for _ in 0..in_flight {
            receive(&mut first_error);
        }
        first_error.map_or(Ok(()), Err)
    });
    outcome
}
