//! An exclusive lock on a run directory, held by the one process that writes it (a search,
//! the daemon's search, a training run), so that a second writer is refused instead of
//! interleaving its checkpoints and history with the first's: a `--resume` typed while the
//! service runs that search, a second service instance with the same search id.
//!
//! flock(2) on `RUN_DIR/evnas.lock`: the kernel releases it when the process ends, however it
//! ends, so a killed run never leaves a stale lock behind. Readers (`evnas validate`,
//! `compare`, `eval`) do not take it. On NFS, Linux emulates flock with POSIX locks, which
//! belong to the process: they keep other processes and machines out, but not a second take
//! within the process, so evnas never takes the lock of a directory it already holds.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// The lock's file in a run directory; it names its holder.
pub const LOCK_FILE: &str = "evnas.lock";

#[derive(Debug, thiserror::Error)]
pub enum RunLockError {
    #[error("{dir} is in use by another evnas process ({holder}); let it end or stop it first", dir = dir.display())]
    Held { dir: PathBuf, holder: String },
    #[error("cannot lock {path}: {source}", path = path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The lock, held until dropped (or the process ends).
#[derive(Debug)]
pub struct RunLock {
    /// `None` where the filesystem has no locks (say, NFS without its lock service).
    _file: Option<File>,
}

impl RunLock {
    /// Takes the lock of the run directory `dir` (which must exist), or says who holds it.
    pub fn acquire(dir: &Path) -> Result<Self, RunLockError> {
        let path = dir.join(LOCK_FILE);
        let io = |source| RunLockError::Io { path: path.clone(), source };
        let mut file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(io)?;
        // SAFETY: flock on a descriptor this function owns; no memory is passed.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let error = std::io::Error::last_os_error();
            return match error.raw_os_error() {
                Some(libc::EWOULDBLOCK) => {
                    let mut holder = String::new();
                    let _ = file.read_to_string(&mut holder);
                    let holder = match holder.trim() {
                        "" => "it has not said which yet".to_string(),
                        named => named.to_string(),
                    };
                    Err(RunLockError::Held { dir: dir.to_path_buf(), holder })
                }
                Some(libc::ENOLCK | libc::EOPNOTSUPP) => {
                    tracing::warn!(
                        "cannot lock {} ({error}): nothing keeps another evnas process from writing this run at the same time",
                        path.display()
                    );
                    Ok(Self { _file: None })
                }
                _ => Err(io(error)),
            };
        }
        file.set_len(0).map_err(io)?;
        writeln!(file, "pid {} on {}", std::process::id(), hostname()).map_err(io)?;
        Ok(Self { _file: Some(file) })
    }

    /// Refused while another process holds the lock of `dir` (taken and released at once); a
    /// directory that does not exist is free.
    pub fn ensure_free(dir: &Path) -> Result<(), RunLockError> {
        if dir.is_dir() {
            Self::acquire(dir)?;
        }
        Ok(())
    }
}

fn hostname() -> String {
    let mut name = [0u8; 256];
    // SAFETY: the buffer is writable for its whole length, which is what is passed.
    if unsafe { libc::gethostname(name.as_mut_ptr().cast(), name.len()) } != 0 {
        return "this host".to_string();
    }
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    String::from_utf8_lossy(&name[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A second taker (another open file, as another process would have) is refused, naming
    /// the holder; once the holder drops it, the lock can be taken again.
    #[test]
    fn one_holder_at_a_time_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let first = RunLock::acquire(dir.path()).unwrap();
        match RunLock::acquire(dir.path()) {
            Err(RunLockError::Held { dir: held, holder }) => {
                assert_eq!(held, dir.path());
                assert!(holder.starts_with(&format!("pid {} on ", std::process::id())), "{holder}");
            }
            other => panic!("expected the lock to be held, got {other:?}"),
        }
        drop(first);
        let again = RunLock::acquire(dir.path());
        assert!(again.is_ok(), "{again:?}");
    }

    #[test]
    fn a_missing_directory_is_an_io_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        match RunLock::acquire(&dir.path().join("absent")) {
            Err(RunLockError::Io { path, .. }) => assert!(path.ends_with("absent/evnas.lock"), "{path:?}"),
            other => panic!("expected an I/O error, got {other:?}"),
        }
    }
}
