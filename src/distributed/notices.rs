//! What the ranks other than 0 leave for rank 0 in the job's store, beside the collectives:
//! a stop asked for by a signal to one of them (a launcher that stops one machine of the job: a
//! Kubernetes eviction, the agent of one node), and why one of them failed before it ended.
//! Rank 0 alone decides when the job stops, so a signal to another rank is passed on to it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::error::DistributedError;
use super::job::{attempt_prefix, Job};
use super::store::{Store, StoreRole};

/// How long a notice waits for the store's connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often rank 0 looks for a stop asked for.
const POLL_EVERY: Duration = Duration::from_millis(500);
/// Store failures in a row after which rank 0 stops looking.
const GIVE_UP_AFTER: u32 = 10;
const STOP_KEY: &str = "stop";

/// A rank other than 0 asked the job to stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopRequest {
    /// `None`: a request this build cannot read (another build of evnas wrote it).
    pub rank: Option<usize>,
    /// What it got: "SIGTERM", "SIGINT".
    pub signal: String,
}

impl std::fmt::Display for StopRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.rank {
            Some(rank) => write!(f, "rank {rank} got {}", self.signal),
            None => write!(f, "another rank got {}", self.signal),
        }
    }
}

/// Rank 0's watch for stop requests, ended by [`Job::stop_watching`].
pub(super) struct StopWatch {
    done: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Job {
    /// A rank other than 0, at its first SIGINT/SIGTERM: asks rank 0 to stop the job as it
    /// would at a signal of its own.
    pub fn ask_rank_0_to_stop(&self, signal: &str) -> Result<(), DistributedError> {
        let request = format!("{} {signal}", self.rank());
        self.notice_store()?.set(STOP_KEY, request.as_bytes())
    }

    /// Leaves why this rank fails, for rank 0 to name (best effort: the rank is ending).
    pub fn leave_failure(&self, reason: &str) {
        if let Ok(store) = self.notice_store() {
            let _ = store.set(&failure_key(self.rank()), reason.as_bytes());
        }
    }

    /// Rank 0: why other ranks failed, as they left it ([`leave_failure`](Self::leave_failure)),
    /// waiting up to `grace` for a first one (a rank may be writing its reason while rank 0
    /// learns of the failure through a collective). Empty where none did (a rank killed, or its
    /// machine lost).
    pub fn failures_left(&self, grace: Duration) -> Vec<(usize, String)> {
        let Ok(store) = self.notice_store() else { return Vec::new() };
        let deadline = Instant::now() + grace;
        loop {
            let failures: Vec<_> = (1..self.world_size())
                .filter_map(|rank| {
                    let value = store.get_if_set(&failure_key(rank)).ok()??;
                    Some((rank, String::from_utf8_lossy(&value).into_owned()))
                })
                .collect();
            if !failures.is_empty() || Instant::now() >= deadline {
                return failures;
            }
            std::thread::sleep(POLL_EVERY.min(grace));
        }
    }

    /// Rank 0: calls `on_request` once, on a thread of its own, when another rank asks the job
    /// to stop, until [`stop_watching`](Self::stop_watching).
    pub fn watch_stop_requests(&'static self, on_request: impl FnOnce(StopRequest) + Send + 'static) {
        let done = Arc::new(AtomicBool::new(false));
        let ended = done.clone();
        let thread = std::thread::Builder::new().name("stop-requests".into()).spawn(move || {
            // A client whose connection broke does not come back: another is opened.
            let mut client: Option<Store> = None;
            let mut failures = 0;
            while !ended.load(Ordering::Relaxed) {
                let store = match client.take() {
                    Some(store) => Ok(store),
                    None => self.notice_store(),
                };
                let looked = store.and_then(|store| store.get_if_set(STOP_KEY).map(|value| (store, value)));
                match looked {
                    Ok((_, Some(value))) => {
                        on_request(read_request(&value));
                        return;
                    }
                    Ok((store, None)) => {
                        client = Some(store);
                        failures = 0;
                    }
                    Err(e) => {
                        failures += 1;
                        // The store gone for good: so is the job, which rank 0 learns at its
                        // next collective.
                        if failures == GIVE_UP_AFTER {
                            crate::daemon::journal::eprint_at(
                                tracing::Level::WARN,
                                format_args!(
                                    "evnas: warning: signals to the job's other ranks will not stop it: {e}"
                                ),
                            );
                            return;
                        }
                    }
                }
                // Woken early by stop_watching.
                std::thread::park_timeout(POLL_EVERY);
            }
        });
        match thread {
            Ok(thread) => *self.stop_watch() = Some(StopWatch { done, thread }),
            Err(e) => crate::daemon::journal::eprint_at(
                tracing::Level::WARN,
                format_args!("evnas: warning: signals to the job's other ranks will not stop it: {e}"),
            ),
        }
    }

    /// Ends the watch of [`watch_stop_requests`](Self::watch_stop_requests), before the process
    /// ends: its thread must not be inside libtorch then.
    pub fn stop_watching(&self) {
        // Not under the lock: the watch's thread may be taking it.
        let watch = self.stop_watch().take();
        if let Some(watch) = watch {
            watch.done.store(true, Ordering::Relaxed);
            watch.thread.thread().unpark();
            let _ = watch.thread.join();
        }
    }

    /// A client of the job's store of its own: the job's may be waiting for a key.
    fn notice_store(&self) -> Result<Store, DistributedError> {
        let env = self.env();
        let client = Store::tcp(&env.master_addr, env.master_port, StoreRole::Client, CONNECT_TIMEOUT)?;
        client.prefixed(&format!("{}/notices", attempt_prefix(env)))
    }
}

fn failure_key(rank: usize) -> String {
    format!("failed_{rank}")
}

/// "RANK SIGNAL", as [`Job::ask_rank_0_to_stop`] writes it.
fn read_request(value: &[u8]) -> StopRequest {
    let text = String::from_utf8_lossy(value);
    let (rank, signal) = text.split_once(' ').unwrap_or((&text, "a signal"));
    StopRequest { rank: rank.parse().ok(), signal: signal.to_string() }
}
