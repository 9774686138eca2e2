//! Signals for the commands that run in the foreground (`evnas serve` has its own): a search
//! or a training stops at its next batch, a command that writes a file ends without leaving a
//! partial one, a process waiting for the rest of its job ends at once, and a rank other than
//! 0 takes no reload.

use std::future::poll_fn;
use std::sync::{Mutex, PoisonError};
use std::task::Poll;

use tokio::signal::unix::{signal, Signal, SignalKind};

use super::failure::code::INTERRUPTED;

/// SIGINT/SIGTERM raise the stop flag once; a second signal exits at once.
pub(super) fn ctrlc_like_handler(on_stop: impl Fn() + Send + 'static) {
    on_signals("evnas: stopping after the current batch (signal again to quit now)".into(), move |_| {
        on_stop()
    });
}

/// What starts a line said in the middle of a run: on a terminal, a line break (the "^C" the
/// terminal echoed, or a progress bar, holds the line); in a log, nothing.
pub(super) fn line_break_on_terminal() -> &'static str {
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        "\n"
    } else {
        ""
    }
}

/// The first SIGINT/SIGTERM prints `message` and calls `on_first` with the signal's name; a
/// second exits at once, taking away any temporary file being written.
pub(super) fn on_signals(message: String, on_first: impl Fn(&'static str) + Send + 'static) {
    watch(&STOPS, move |mut signals| async move {
        let name = signals.next().await;
        eprintln!("{}{message}", line_break_on_terminal());
        on_first(name);
        signals.next().await;
        exit_interrupted(INTERRUPTED);
    });
}

/// A command that writes a file (`export`, `compare`) ends at SIGINT/SIGTERM at once, removing
/// the temporary file it was writing: exit 130, the target as it was; or, once the file is in
/// place ([`put_in_place`]), exit 0, the work done.
pub fn end_without_partial_files() {
    watch(&STOPS, |mut signals| async move {
        let name = signals.next().await;
        // Waits for a file being put in place: then it is there.
        if *IN_PLACE.lock().unwrap_or_else(PoisonError::into_inner) {
            evnas::daemon::exit_now(0);
        }
        eprintln!(
            "{}evnas: {name}: stopped before its file was written (any file there is as it was)",
            line_break_on_terminal()
        );
        exit_interrupted(INTERRUPTED);
    });
}

/// Whether the file of [`end_without_partial_files`]'s command is in place.
static IN_PLACE: Mutex<bool> = Mutex::new(false);

/// Runs `put` (the rename of a written file over its target, say), which a signal does not
/// interrupt: it ends the command after `put`, as done if `put` succeeded.
pub fn put_in_place<T, E>(put: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
    let mut in_place = IN_PLACE.lock().unwrap_or_else(PoisonError::into_inner);
    let put = put();
    *in_place = put.is_ok();
    put
}

/// Until the returned guard is dropped, SIGINT/SIGTERM end the process at once with `code`,
/// after `doing` and the signal's name, and `before_exit`: nothing of the command has started,
/// so there is nothing to stop cleanly. `before_exit` gets [`BEFORE_EXIT_LIMIT`] (a job's store
/// that does not answer would hold it up to its timeout), and a second signal a while after the
/// first ends the process without waiting for it; `cut_short` is said where either does.
pub(super) fn exit_while(
    doing: String,
    code: u8,
    before_exit: impl FnOnce() + Send + 'static,
    cut_short: String,
) -> ExitWhile {
    let (done, finished) = tokio::sync::oneshot::channel::<()>();
    watch(&STOPS, move |mut signals| async move {
        tokio::select! {
            name = signals.next() => {
                eprintln!("{}{doing}: {name}: exiting", line_break_on_terminal());
                let before = tokio::task::spawn_blocking(before_exit);
                // One Ctrl-C often comes twice: from the terminal, and forwarded by a launcher
                // (torchrun's agent) a moment later.
                let second_signal = async {
                    tokio::time::sleep(SAME_SIGNAL_WITHIN).await;
                    signals.next().await
                };
                let finished = tokio::select! {
                    done = tokio::time::timeout(BEFORE_EXIT_LIMIT, before) => done.is_ok(),
                    _ = second_signal => false,
                };
                if !finished {
                    eprintln!("{doing}: {cut_short}");
                }
                exit_interrupted(code);
            }
            _ = finished => {}
        }
    });
    ExitWhile { _done: done }
}

/// How long [`exit_while`] waits for what it does before the exit.
const BEFORE_EXIT_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);
/// A signal this soon after the first is taken for the same one, delivered twice.
const SAME_SIGNAL_WITHIN: std::time::Duration = std::time::Duration::from_secs(1);

/// Keeps [`exit_while`]'s handler in force while it lives.
pub(super) struct ExitWhile {
    _done: tokio::sync::oneshot::Sender<()>,
}

/// SIGHUP (a reload, for `evnas serve`) prints `message` and is otherwise ignored, where its
/// default action would end the process.
pub(super) fn ignore_hangups(message: String) {
    watch(&[(SignalKind::hangup(), "SIGHUP")], move |mut signals| async move {
        loop {
            signals.next().await;
            eprintln!("{message}");
        }
    });
}

const STOPS: [(SignalKind, &str); 2] =
    [(SignalKind::interrupt(), "SIGINT"), (SignalKind::terminate(), "SIGTERM")];

fn exit_interrupted(code: u8) -> ! {
    evnas::fs_atomic::remove_pending_files();
    evnas::daemon::exit_now(code.into())
}

/// Several kinds of signal as one stream.
struct Signals {
    streams: Vec<(Signal, &'static str)>,
}

impl Signals {
    /// The next signal's name.
    async fn next(&mut self) -> &'static str {
        poll_fn(|cx| {
            for (stream, name) in &mut self.streams {
                if stream.poll_recv(cx).is_ready() {
                    return Poll::Ready(*name);
                }
            }
            Poll::Pending
        })
        .await
    }
}

/// Runs `handle` on a thread of its own; the handlers of `kinds` are in place when this returns
/// (a signal from then on is the handler's), or, where they cannot be installed, signals keep
/// their default action.
fn watch<F: std::future::Future<Output = ()>>(
    kinds: &[(SignalKind, &'static str)],
    handle: impl FnOnce(Signals) -> F + Send + 'static,
) {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
    let streams = {
        let _in_runtime = rt.enter();
        kinds.iter().map(|&(kind, name)| signal(kind).map(|s| (s, name))).collect::<Result<Vec<_>, _>>()
    };
    let Ok(streams) = streams else { return };
    std::thread::spawn(move || rt.block_on(handle(Signals { streams })));
}
