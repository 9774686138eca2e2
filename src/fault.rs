//! Test-only fault points: named places where a test can make evnas fail as a real fault would,
//! deterministically (at the N-th time a point is reached, not after a sleep).
//!
//! Compiled only with the `fault-injection` feature (the test suite's builds; never the binary
//! users run), on tikv's `fail` crate: a test sets `FAILPOINTS="NAME=ACTIONS"`, e.g.
//! `FAILPOINTS="train.batch=13*off->return(kill)"` kills the process with SIGKILL at the 14th
//! training batch, `return(sigterm)` sends the process SIGTERM (as `systemctl stop` would) and
//! goes on, `return(sighup)` SIGHUP likewise, `return(error)` makes the point fail with [`InjectedFault`], `panic` panics.
//!
//! Points: `train.batch` (before each training step), `train.loss` (`return(nan)`: the batch's
//! loss reads as NaN), `fitness.individual` (before each individual's fitness),
//! `checkpoint.write` (payload written, not yet renamed into place), `search.finished` (after
//! the last checkpoint, before the result is written), `ga.selection`, `ga.crossover`,
//! `ga.mutation` (each child in each GA stage; e.g. `50%sleep(20)` delays it at random),
//! `replica.step` (each training step of a rank other than 0 in a job of several processes),
//! `replica.reduce` (each replica's gradients computed, before their all-reduce), `job.present`
//! (a process of a job once all answered the roll call, before the job's group forms),
//! `serve.start` (`evnas serve` once its config is read, before its signal handlers and file
//! watch); for `evnas train`: `final_training.batch`, `final_training.loss`,
//! `final_training.checkpoint` (before an epoch's checkpoint is written); `export.saved` (the
//! TorchScript file written, not yet renamed over its target).

/// A failure made on purpose by a fault point.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("fault injected at {point}")]
pub struct InjectedFault {
    pub point: &'static str,
}

/// Passes, or acts as `FAILPOINTS` says for `name`. Without `fault-injection`: always passes.
#[inline]
pub fn point(name: &'static str) -> Result<(), InjectedFault> {
    #[cfg(feature = "fault-injection")]
    fail::fail_point!(name, |arg: Option<String>| act(name, arg.as_deref()));
    let _ = name;
    Ok(())
}

#[cfg(feature = "fault-injection")]
fn act(point: &'static str, arg: Option<&str>) -> Result<(), InjectedFault> {
    match arg {
        Some("kill") => {
            // SIGKILL, as `kill -9` would: no destructor, no flush, no signal handler runs.
            // SAFETY: getpid and kill have no preconditions.
            unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
            unreachable!("SIGKILL did not end the process")
        }
        Some("sigterm") => {
            // SAFETY: getpid and kill have no preconditions.
            unsafe { libc::kill(libc::getpid(), libc::SIGTERM) };
            Ok(())
        }
        Some("sighup") => {
            // SAFETY: getpid and kill have no preconditions.
            unsafe { libc::kill(libc::getpid(), libc::SIGHUP) };
            Ok(())
        }
        _ => Err(InjectedFault { point }),
    }
}

/// Whether the point `name` asks for a corrupted value this time (action `return(nan)`).
/// Without `fault-injection`: never.
#[inline]
pub fn corrupts(name: &'static str) -> bool {
    #[cfg(feature = "fault-injection")]
    fail::fail_point!(name, |arg: Option<String>| arg.as_deref() == Some("nan"));
    let _ = name;
    false
}

/// Reads `FAILPOINTS` (a no-op without `fault-injection`); keep the guard for the process's life.
pub fn setup() -> impl Drop {
    #[cfg(feature = "fault-injection")]
    return fail::FailScenario::setup();
    #[cfg(not(feature = "fault-injection"))]
    return NoFaults;
}

#[cfg(not(feature = "fault-injection"))]
struct NoFaults;

#[cfg(not(feature = "fault-injection"))]
impl Drop for NoFaults {
    fn drop(&mut self) {}
}
