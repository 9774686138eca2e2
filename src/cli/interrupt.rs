//! SIGINT/SIGTERM for the commands that run in the foreground (`evnas serve` has its own):
//! a search or a training stops at its next batch, a command that writes a file ends without
//! leaving a partial one.

use tokio::signal::unix::{signal, Signal, SignalKind};

use super::failure::code::INTERRUPTED;

/// SIGINT/SIGTERM raise the stop flag once; a second signal exits at once.
pub(super) fn ctrlc_like_handler(on_stop: impl Fn() + Send + 'static) {
    on_signals("\nstopping after the current batch (signal again to quit now)".into(), on_stop);
}

/// The first SIGINT/SIGTERM prints `message` and calls `on_first`; a second exits at once,
/// taking away any temporary file being written.
pub(super) fn on_signals(message: String, on_first: impl Fn() + Send + 'static) {
    watch(move |mut signals| async move {
        signals.next().await;
        eprintln!("{message}");
        on_first();
        signals.next().await;
        exit_interrupted();
    });
}

/// A command that writes files (`export`, `compare`, `genotype --out`) ends at SIGINT/SIGTERM
/// at once (exit 130), removing the temporary file it was writing: the target stays as it was.
pub fn end_without_partial_files() {
    watch(|mut signals| async move {
        signals.next().await;
        exit_interrupted();
    });
}

fn exit_interrupted() -> ! {
    evnas::fs_atomic::remove_pending_files();
    evnas::daemon::exit_now(INTERRUPTED.into())
}

/// SIGINT and SIGTERM as one stream.
struct Signals {
    interrupt: Signal,
    terminate: Signal,
}

impl Signals {
    async fn next(&mut self) {
        tokio::select! { _ = self.interrupt.recv() => {}, _ = self.terminate.recv() => {} }
    }
}

/// Runs `handle` on a thread of its own; the handlers are in place when this returns (a signal
/// from then on is the handler's), or, where they cannot be installed, signals keep their
/// default action.
fn watch<F: std::future::Future<Output = ()>>(handle: impl FnOnce(Signals) -> F + Send + 'static) {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
    let signals = {
        let _in_runtime = rt.enter();
        match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
            (Ok(interrupt), Ok(terminate)) => Signals { interrupt, terminate },
            _ => return,
        }
    };
    std::thread::spawn(move || rt.block_on(handle(signals)));
}
