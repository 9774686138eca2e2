//! Reload triggers: SIGHUP (systemd's ExecReload) and a change of the config file. The file's
//! directory is watched, not the file: editors save by writing a new file and renaming it over
//! the old one, which a watch on the old file's inode would miss. Bursts of events (an editor
//! writes, renames and touches) are debounced into one trigger.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::mpsc;

/// Why a reload happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Sighup,
    FileChanged,
}

impl Trigger {
    pub fn name(self) -> &'static str {
        match self {
            Trigger::Sighup => "SIGHUP",
            Trigger::FileChanged => "config file changed",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("cannot handle SIGHUP")]
    Signal(#[source] std::io::Error),
    #[error("cannot watch {dir} for changes of the config file", dir = dir.display())]
    Watch { dir: PathBuf, source: notify::Error },
}

/// Quiet time after a file event before the reload: an editor's save is several events.
const DEBOUNCE: Duration = Duration::from_millis(300);

/// The reload triggers of one config file.
pub struct ConfigWatch {
    hup: Signal,
    files: mpsc::UnboundedReceiver<()>,
    /// A file event was taken and its reload not yet handed out (kept across a `next` that
    /// was cancelled while debouncing).
    dirty: bool,
    /// Kept alive for as long as the watch is.
    _watcher: RecommendedWatcher,
}

impl ConfigWatch {
    /// Watches SIGHUP and `file` (through its directory). Call on a tokio runtime.
    pub fn new(file: &Path) -> Result<Self, WatchError> {
        let hup = signal(SignalKind::hangup()).map_err(WatchError::Signal)?;
        let file = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
        let dir = file.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
        let name = file.file_name().map(|n| n.to_os_string());
        let (tx, files) = mpsc::unbounded_channel();
        let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            let relevant =
                matches!(event.kind, EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_));
            let ours = event.paths.iter().any(|p| p.file_name().map(|n| n.to_os_string()) == name);
            if relevant && ours {
                let _ = tx.send(());
            }
        })
        .map_err(|source| WatchError::Watch { dir: dir.clone(), source })?;
        watcher
            .watch(&dir, RecursiveMode::NonRecursive)
            .map_err(|source| WatchError::Watch { dir, source })?;
        Ok(Self { hup, files, dirty: false, _watcher: watcher })
    }

    /// The next trigger; file events are debounced. Cancel-safe: a file event taken by a
    /// call that is dropped while it debounces is handed out by the next call.
    pub async fn next(&mut self) -> Trigger {
        if !self.dirty {
            tokio::select! {
                _ = self.hup.recv() => return Trigger::Sighup,
                Some(()) = self.files.recv() => self.dirty = true,
            }
        }
        // Until the directory has been quiet for DEBOUNCE.
        while let Ok(Some(())) = tokio::time::timeout(DEBOUNCE, self.files.recv()).await {}
        self.dirty = false;
        Trigger::FileChanged
    }
}
