//! systemd's notify protocol for `evnas serve` (Type=notify): READY once serving, STATUS with
//! the search's progress, RELOADING/READY around a reload, STOPPING on the way out, and
//! WATCHDOG only while the search makes progress, so that systemd's watchdog restarts a service
//! whose trainer or evaluator hangs. Without NOTIFY_SOCKET (not under systemd) all of it is a
//! no-op.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub fn ready() {
    send("READY=1");
}

pub fn status(line: &str) {
    // One line: a newline would start another assignment.
    send(&format!("STATUS={}", line.replace('\n', " ")));
}

pub fn stopping() {
    send("STOPPING=1");
}

/// A reload starts (systemd ≥ 253 wants the monotonic time with it); [`ready`] ends it.
pub fn reloading() {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes the time into `now`.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    let usec = now.tv_sec as i128 * 1_000_000 + now.tv_nsec as i128 / 1_000;
    send(&format!("RELOADING=1\nMONOTONIC_USEC={usec}"));
}

/// Sends one datagram to $NOTIFY_SOCKET, never blocking: a service manager that does not read
/// its socket must not stall the search (the message is then dropped).
fn send(message: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else { return };
    let sent = (|| {
        let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str());
        let addr = match bytes.strip_prefix(b"@") {
            Some(name) => SocketAddr::from_abstract_name(name)?,
            None => SocketAddr::from_pathname(&path)?,
        };
        let socket = UnixDatagram::unbound()?;
        socket.set_nonblocking(true)?;
        socket.send_to_addr(message.as_bytes(), &addr)
    })();
    if let Err(e) = sent {
        tracing::debug!("sd_notify {message:?}: {e}");
    }
}

/// The watchdog interval systemd asks for (WATCHDOG_USEC, for this process: WATCHDOG_PID).
fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    let for_us = std::env::var("WATCHDOG_PID").ok().is_none_or(|pid| pid.parse() == Ok(std::process::id()));
    (for_us && usec > 0).then(|| Duration::from_micros(usec))
}

/// When the search last made progress (a batch trained, an individual measured, a checkpoint
/// written), shared by whoever makes it and the watchdog.
#[derive(Clone)]
pub struct Heartbeat {
    start: Instant,
    last_ms: Arc<AtomicU64>,
    /// No pipeline is running (idle, or opening a search): nothing is expected to progress.
    idle: Arc<AtomicBool>,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Self {
            start: Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
            idle: Arc::new(AtomicBool::new(true)),
        }
    }
}

impl Heartbeat {
    pub fn beat(&self) {
        self.last_ms.store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    pub fn set_idle(&self, idle: bool) {
        self.beat();
        self.idle.store(idle, Ordering::Relaxed);
    }

    /// Time since the last progress, or zero while idle.
    pub fn stalled_for(&self) -> Duration {
        if self.idle.load(Ordering::Relaxed) {
            return Duration::ZERO;
        }
        let now = self.start.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// Pings systemd's watchdog every half interval while `heartbeat` shows progress within the
/// interval; stops pinging (and says so once) while it does not. Runs until the process ends.
pub async fn watchdog(heartbeat: Heartbeat) {
    let Some(interval) = watchdog_interval() else { return };
    let mut warned = false;
    loop {
        tokio::time::sleep(interval / 2).await;
        let stalled = heartbeat.stalled_for();
        if stalled < interval {
            send("WATCHDOG=1");
            warned = false;
        } else if !warned {
            tracing::error!(
                "no progress for {:.0} s (watchdog interval {:.0} s): not pinging the watchdog",
                stalled.as_secs_f64(),
                interval.as_secs_f64()
            );
            warned = true;
        }
    }
}
