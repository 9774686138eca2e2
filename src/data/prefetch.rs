//! The batch producer behind the prefetch actor, as plain library code: one std thread per epoch walks
//! the plan in order, builds each batch inside a dedicated rayon pool (never on tokio workers), and
//! pushes it into a bounded crossbeam channel. The consumer only waits when the producer cannot keep up,
//! and [`BatchStream`] measures that wait. A shared [`StopFlag`], a dropped stream, or the first error
//! (delivered as a message) ends production.

use crate::stop::StopFlag;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, SendTimeoutError, Sender, TryRecvError};
use serde::{Deserialize, Serialize};

use super::batch::{Batch, EpochPlan};
use super::error::DataError;
use super::metric_names::{PREFETCH_IMAGES_TOTAL, PREFETCH_QUEUE_DEPTH};
use super::source::{make_batch, BatchSource};

/// How often a producer blocked on a full queue looks at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(20);

/// Prefetch settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrefetchConfig {
    /// Ready batches held ahead of the consumer (channel capacity), at least 1.
    pub depth: usize,
    /// Threads of the rayon pool that builds each batch; 0 = one per core.
    pub threads: usize,
    /// Put batches in page-locked memory (only acts when CUDA is present).
    pub pin_memory: bool,
}

impl Default for PrefetchConfig {
    fn default() -> Self {
        PrefetchConfig { depth: 4, threads: 0, pin_memory: true }
    }
}

/// Builds epochs of batches from one source with one worker pool.
#[derive(Clone)]
pub struct Producer {
    source: Arc<dyn BatchSource>,
    pool: Arc<rayon::ThreadPool>,
    config: PrefetchConfig,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Producer {
    pub fn new(source: Arc<dyn BatchSource>, config: PrefetchConfig) -> Result<Self, DataError> {
        if config.depth == 0 {
            return Err(DataError::InvalidSetting { reason: "prefetch depth must be at least 1".into() });
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(config.threads)
            .thread_name(|i| format!("evnas-data-{i}"))
            // A worker prepares one batch at a time; an OpenMP team of its own would only add
            // threads that make every other team stop spinning (crate::threads::on_phase_thread).
            .start_handler(|_| {
                crate::threads::set_this_thread_threads(1);
            })
            .build()
            .map_err(|e| DataError::InvalidSetting { reason: format!("data worker pool: {e}") })?;
        Ok(Producer { source, pool: Arc::new(pool), config })
    }

    pub fn source(&self) -> &Arc<dyn BatchSource> {
        &self.source
    }

    pub fn config(&self) -> &PrefetchConfig {
        &self.config
    }

    /// Starts producing `plan`'s batches, in order, on a new thread; returns the consumer's end.
    pub fn start_epoch(&self, plan: EpochPlan, stop: StopFlag) -> Result<BatchStream, DataError> {
        let (sender, receiver) = crossbeam_channel::bounded(self.config.depth);
        let producer = self.clone();
        let thread_stop = stop.clone();
        let remaining = plan.delivered().len();
        let handle = std::thread::Builder::new()
            .name(format!("evnas-prefetch-e{}", plan.epoch()))
            .spawn(move || producer.run(&plan, &sender, &thread_stop))
            .map_err(DataError::Spawn)?;
        Ok(BatchStream {
            receiver: Some(receiver),
            stop,
            handle: Some(handle),
            wait: Duration::ZERO,
            remaining,
        })
    }

    fn run(&self, plan: &EpochPlan, sender: &Sender<Result<Batch, DataError>>, stop: &StopFlag) {
        for index in plan.delivered() {
            if stop.is_stopped() {
                return;
            }
            let batch =
                self.pool.install(|| make_batch(self.source.as_ref(), plan, index, self.config.pin_memory));
            let failed = batch.is_err();
            if let Ok(batch) = &batch {
                metrics::counter!(PREFETCH_IMAGES_TOTAL).increment(batch.len() as u64);
            }
            if !send_unless_stopped(sender, batch, stop) || failed {
                return;
            }
            metrics::gauge!(PREFETCH_QUEUE_DEPTH).set(sender.len() as f64);
        }
    }
}

/// Sends, waiting while the queue is full; gives up when stopped or when the receiver is gone.
fn send_unless_stopped(
    sender: &Sender<Result<Batch, DataError>>,
    mut item: Result<Batch, DataError>,
    stop: &StopFlag,
) -> bool {
    loop {
        match sender.send_timeout(item, STOP_POLL) {
            Ok(()) => return true,
            Err(SendTimeoutError::Disconnected(_)) => return false,
            Err(SendTimeoutError::Timeout(back)) => {
                if stop.is_stopped() {
                    return false;
                }
                item = back;
            }
        }
    }
}

/// The consumer's end of one epoch: yields `Ok(batch)` in plan order, or one `Err` after which the
/// epoch ends. Time spent blocked waiting for the producer is recorded. Dropping it stops production.
#[derive(Debug)]
pub struct BatchStream {
    receiver: Option<Receiver<Result<Batch, DataError>>>,
    stop: StopFlag,
    handle: Option<JoinHandle<()>>,
    wait: Duration,
    remaining: usize,
}

impl BatchStream {
    /// Total time `next` spent blocked on an empty queue.
    pub fn wait_time(&self) -> Duration {
        self.wait
    }

    /// Batches still to come if nothing stops production.
    pub fn remaining(&self) -> usize {
        self.remaining
    }

    /// The flag that stops this stream's producer (shared with whoever started it).
    pub fn stop_flag(&self) -> &StopFlag {
        &self.stop
    }

    /// Stops production and waits for the producer thread to finish.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.stop();
        // Dropping the receiver first wakes a producer blocked on a full queue at once.
        self.receiver = None;
        if let Some(handle) = self.handle.take() {
            // A panicking producer has already lost its batches; nothing more to report here.
            let _ = handle.join();
        }
    }
}

impl Iterator for BatchStream {
    type Item = Result<Batch, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        let receiver = self.receiver.as_ref()?;
        let item = match receiver.try_recv() {
            Ok(item) => Some(item),
            Err(TryRecvError::Disconnected) => None,
            Err(TryRecvError::Empty) => {
                let started = Instant::now();
                let item = receiver.recv().ok();
                let waited = started.elapsed();
                self.wait += waited;
                item
            }
        };
        metrics::gauge!(PREFETCH_QUEUE_DEPTH).set(receiver.len() as f64);
        match &item {
            Some(Ok(_)) => self.remaining = self.remaining.saturating_sub(1),
            Some(Err(_)) | None => self.remaining = 0,
        }
        item
    }
}

impl Drop for BatchStream {
    fn drop(&mut self) {
        self.shutdown();
    }
}
