//! Reload triggers: SIGHUP (systemd's ExecReload) and a change of the config file. The file's
//! directory is watched, not the file: editors save by writing a new file and renaming it over
//! the old one, which a watch on the old file's inode would miss. A config reached through
//! symbolic links (a Kubernetes ConfigMap volume swaps a `..data` link to a new directory; a
//! file in /etc linked to one kept elsewhere) is watched at every link on its way too, and the
//! watch follows the links again after each change. Bursts of events (an editor writes,
//! renames and touches) are debounced into one trigger.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::fs_links::{parent_dir, resolution_chain};
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
    file: PathBuf,
    events: mpsc::UnboundedSender<()>,
    files: mpsc::UnboundedReceiver<()>,
    /// A file event was taken and its reload not yet handed out (kept across a `next` that
    /// was cancelled while debouncing).
    dirty: bool,
    /// What the watch is on, kept alive for as long as the watch is.
    watched: WatchedPaths,
}

impl ConfigWatch {
    /// Watches SIGHUP and `file` (through its directory, and those of the links leading to
    /// it). Call on a tokio runtime.
    pub fn new(file: &Path) -> Result<Self, WatchError> {
        let hup = signal(SignalKind::hangup()).map_err(WatchError::Signal)?;
        let file = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
        let (events, files) = mpsc::unbounded_channel();
        let watched = WatchedPaths::new(&file, events.clone())?;
        Ok(Self { hup, file, events, files, dirty: false, watched })
    }

    /// The next trigger; file events are debounced. Cancel-safe: a file event taken by a
    /// call that is dropped while it debounces is handed out by the next call.
    pub async fn next(&mut self) -> Trigger {
        if !self.dirty {
            tokio::select! {
                _ = self.hup.recv() => {
                    self.watch_again();
                    return Trigger::Sighup;
                }
                Some(()) = self.files.recv() => self.dirty = true,
            }
        }
        // Until the directory has been quiet for DEBOUNCE.
        while let Ok(Some(())) = tokio::time::timeout(DEBOUNCE, self.files.recv()).await {}
        self.dirty = false;
        self.watch_again();
        Trigger::FileChanged
    }

    /// A change may have pointed a link elsewhere (a ConfigMap's new `..data`), or replaced a
    /// watched directory by another of the same name (whose old watch then sees nothing): the
    /// watch starts afresh where the links lead now. Where it cannot, the old one stays.
    fn watch_again(&mut self) {
        match WatchedPaths::new(&self.file, self.events.clone()) {
            Ok(watched) => self.watched = watched,
            Err(e) => {
                tracing::warn!("{e}: edits of {} may go unseen until the next SIGHUP", self.file.display())
            }
        }
    }
}

/// A watcher on the directories of a config's resolution chain, passing on the events of the
/// chain's paths.
struct WatchedPaths {
    _watcher: RecommendedWatcher,
}

impl WatchedPaths {
    fn new(file: &Path, events: mpsc::UnboundedSender<()>) -> Result<Self, WatchError> {
        let chain = resolution_chain(file);
        let ours = chain.clone();
        let first_dir = parent_dir(&chain[0]);
        let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            let relevant =
                matches!(event.kind, EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_));
            if relevant && event.paths.iter().any(|p| ours.contains(p)) {
                let _ = events.send(());
            }
        })
        .map_err(|source| WatchError::Watch { dir: first_dir, source })?;
        let mut dirs: Vec<PathBuf> = Vec::new();
        for dir in chain.iter().map(|p| parent_dir(p)) {
            if dirs.contains(&dir) {
                continue;
            }
            // The config's own directory must be watched; one further along the links may be
            // closed to listing (or past inotify's limit): its edits are then seen by SIGHUP only.
            match watcher.watch(&dir, RecursiveMode::NonRecursive) {
                Err(source) if dirs.is_empty() => return Err(WatchError::Watch { dir, source }),
                Err(source) => {
                    tracing::warn!(
                        "{}: edits there are seen by SIGHUP only",
                        WatchError::Watch { dir: dir.clone(), source }
                    )
                }
                Ok(()) => {}
            }
            dirs.push(dir);
        }
        Ok(Self { _watcher: watcher })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn a_plain_file_is_its_own_chain() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("evnas.toml");
        std::fs::write(&file, "").unwrap();
        assert_eq!(resolution_chain(&file), vec![file]);
    }

    #[test]
    fn a_configmap_volume_is_followed_through_its_data_link() {
        // The layout kubelet writes: evnas.toml -> ..data/evnas.toml, ..data -> ..v1.
        let tmp = tempfile::tempdir().unwrap();
        let cm = tmp.path();
        std::fs::create_dir(cm.join("..v1")).unwrap();
        std::fs::write(cm.join("..v1/evnas.toml"), "").unwrap();
        symlink("..v1", cm.join("..data")).unwrap();
        symlink("..data/evnas.toml", cm.join("evnas.toml")).unwrap();
        assert_eq!(
            resolution_chain(&cm.join("evnas.toml")),
            vec![cm.join("evnas.toml"), cm.join("..data"), cm.join("..v1/evnas.toml")]
        );
    }

    #[test]
    fn links_to_other_directories_and_loops_end() {
        let tmp = tempfile::tempdir().unwrap();
        let (etc, srv) = (tmp.path().join("etc"), tmp.path().join("srv"));
        std::fs::create_dir(&etc).unwrap();
        std::fs::create_dir(&srv).unwrap();
        std::fs::write(srv.join("evnas.toml"), "").unwrap();
        symlink("../srv/evnas.toml", etc.join("evnas.toml")).unwrap();
        let chain = resolution_chain(&etc.join("evnas.toml"));
        assert_eq!(chain, vec![etc.join("evnas.toml"), srv.join("evnas.toml")]);

        symlink("b", etc.join("a")).unwrap();
        symlink("a", etc.join("b")).unwrap();
        assert_eq!(resolution_chain(&etc.join("a")).len(), crate::fs_links::MAX_LINKS + 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn swapping_a_configmap_data_link_triggers_a_reload_and_moves_the_watch() {
        let tmp = tempfile::tempdir().unwrap();
        let cm = tmp.path();
        let version = |n: u32| {
            let dir = cm.join(format!("..v{n}"));
            std::fs::create_dir(&dir).unwrap();
            std::fs::write(dir.join("evnas.toml"), format!("# version {n}\n")).unwrap();
            symlink(format!("..v{n}"), cm.join("..data_tmp")).unwrap();
            // The atomic swap kubelet makes.
            std::fs::rename(cm.join("..data_tmp"), cm.join("..data")).unwrap();
        };
        version(1);
        symlink("..data/evnas.toml", cm.join("evnas.toml")).unwrap();
        let mut watch = ConfigWatch::new(&cm.join("evnas.toml")).unwrap();

        async fn next(watch: &mut ConfigWatch) -> Option<Trigger> {
            tokio::time::timeout(Duration::from_secs(10), watch.next()).await.ok()
        }
        version(2);
        assert_eq!(next(&mut watch).await, Some(Trigger::FileChanged), "the swap is seen");
        // An edit of the file the link leads to now (not a ConfigMap's way, a person's).
        std::fs::write(cm.join("..v2/evnas.toml"), "# edited\n").unwrap();
        assert_eq!(next(&mut watch).await, Some(Trigger::FileChanged), "the new target is watched");
    }
}
