//! The daemon's edge: `evnas serve` start-up, signals, reloads, the search's life and shutdown,
//! systemd's notify protocol and journal, and logging.

pub mod journal;
pub mod logging;
pub mod notify;
mod search_check;
pub mod search_task;
pub mod serve;

pub use search_check::{check_data, check_not_in_use, check_search, check_search_dir};
pub use serve::{serve, ServeOptions};

/// Ends the process now with `code`, running no exit handler: for a second signal while a
/// search stops. libtorch's static destructors must not run while one of its threads still
/// computes (that crashes); nothing evnas keeps needs them, and every file is written atomically.
pub fn exit_now(code: i32) -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: _exit only ends the process.
    unsafe { libc::_exit(code) }
}
