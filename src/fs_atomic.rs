//! Crash-safe file replacement, shared by every writer of durable files (weights, run directory).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::fs_links::{parent_dir, resolution_chain};

/// A name suffix no other writer uses: the process id and a per-process counter, so that two
/// threads (say, a checkpoint writer and a results writer) never share a temporary file.
pub fn unique_suffix() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The file that writing `path` should replace: `path` itself, or, where it is a symbolic
/// link, the file the link leads to (a rename over the link would replace the link, and leave
/// the file it names as it was). Refused with a clear error when that is not a regular file (a
/// directory, a device such as /dev/full, a pipe) or its directory does not exist, before
/// anything is computed or written.
pub fn output_target(path: &Path) -> std::io::Result<PathBuf> {
    use std::io::{Error, ErrorKind};
    let refuse = |kind: ErrorKind, why: &str| Error::new(kind, format!("{}: {why}", path.display()));
    if path.as_os_str().as_encoded_bytes().ends_with(b"/") {
        return Err(refuse(ErrorKind::InvalidInput, "names a directory, not a file"));
    }
    let target = match std::fs::symlink_metadata(path) {
        // Where the links lead, also to a file still to be written.
        Ok(meta) if meta.file_type().is_symlink() => {
            resolution_chain(&std::path::absolute(path)?).pop().unwrap_or_else(|| path.to_path_buf())
        }
        _ => path.to_path_buf(),
    };
    match std::fs::metadata(&target) {
        Ok(meta) if meta.is_file() => return Ok(target),
        Ok(meta) if meta.is_dir() => return Err(refuse(ErrorKind::InvalidInput, "is a directory")),
        Ok(_) => {
            return Err(refuse(ErrorKind::InvalidInput, "is not a regular file; only a file is replaced"))
        }
        Err(e) if e.kind() != ErrorKind::NotFound => return Err(e),
        Err(_) => {}
    }
    let dir = parent_dir(&target);
    if !dir.is_dir() {
        return Err(refuse(ErrorKind::NotFound, &format!("directory {} does not exist", dir.display())));
    }
    Ok(target)
}

/// Temporary files this process is writing, for [`remove_pending_files`].
static PENDING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// A temporary file beside the file it will replace, named `.NAME.tmp-PID-N`: removed when
/// dropped unless [`PendingFile::persist`] renamed it over its target, and listed meanwhile for
/// [`remove_pending_files`], so that a command ended by a signal leaves no partial file behind.
pub struct PendingFile {
    path: PathBuf,
    persisted: bool,
}

impl PendingFile {
    /// The temporary file for `target` (not created here: the writer creates it).
    pub fn beside(target: &Path) -> std::io::Result<Self> {
        let file_name = target
            .file_name()
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "path has no file name"))?;
        let path =
            parent_dir(target).join(format!(".{}.tmp-{}", file_name.to_string_lossy(), unique_suffix()));
        PENDING.lock().unwrap_or_else(PoisonError::into_inner).push(path.clone());
        Ok(Self { path, persisted: false })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes the written file durable, renames it over `target` and makes the rename durable.
    pub fn persist(mut self, target: &Path) -> std::io::Result<()> {
        std::fs::File::open(&self.path)?.sync_all()?;
        std::fs::rename(&self.path, target)?;
        self.persisted = true;
        // Persist the rename itself; some filesystems refuse fsync on directories, which is harmless.
        if let Ok(d) = std::fs::File::open(parent_dir(target)) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

impl Drop for PendingFile {
    fn drop(&mut self) {
        if !self.persisted {
            // Best effort: an error being returned is the one that matters.
            let _ = std::fs::remove_file(&self.path);
        }
        PENDING.lock().unwrap_or_else(PoisonError::into_inner).retain(|p| *p != self.path);
    }
}

/// Removes every temporary file being written, for a command about to end on a signal (its
/// targets stay as they were). A writer still at work then fails, which no longer matters.
pub fn remove_pending_files() {
    remove_pending_files_where(|_| true);
}

fn remove_pending_files_where(chosen: impl Fn(&Path) -> bool) {
    for path in PENDING.lock().unwrap_or_else(PoisonError::into_inner).iter().filter(|p| chosen(p)) {
        let _ = std::fs::remove_file(path);
    }
}

/// Temp file in the target's directory, fsync, rename over the target, fsync the directory: a
/// crash leaves either the old file or the new one, never a torn one. The target is
/// [`output_target`]'s: a link is written through, anything but a file refused.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let path = &output_target(path)?;
    let tmp = PendingFile::beside(path)?;
    std::fs::File::create(tmp.path())?.write_all(bytes)?;
    tmp.persist(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        write_atomic(&path, b"old").unwrap();
        write_atomic(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_link_is_written_through_and_anything_but_a_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.json");
        std::fs::write(&real, b"old").unwrap();
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink("real.json", &link).unwrap();
        write_atomic(&link, b"new").unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read(&real).unwrap(), b"new");

        let refused = |path: &Path| write_atomic(path, b"x").unwrap_err().to_string();
        assert!(refused(dir.path()).contains("is a directory"));
        assert!(refused(Path::new("/dev/null")).contains("not a regular file"));
        let slash = PathBuf::from(format!("{}/", real.display()));
        assert!(refused(&slash).contains("names a directory"));
        assert!(refused(&dir.path().join("no/such/dir/x.json")).contains("does not exist"));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2, "no temp file left");
    }

    #[test]
    fn pending_files_go_when_dropped_or_removed_and_stay_once_persisted() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("model.pt");
        let names = || {
            let mut n: Vec<String> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            n.sort();
            n
        };
        let dropped = PendingFile::beside(&target).unwrap();
        std::fs::write(dropped.path(), b"half").unwrap();
        assert!(names()[0].starts_with(".model.pt.tmp-"));
        drop(dropped);
        assert!(names().is_empty());

        // A signal's removal while a writer is at work; the writer's own drop then finds nothing.
        // (Only this test's files: other tests write files at the same time.)
        let remove_pending_files = || remove_pending_files_where(|p| p.starts_with(dir.path()));
        let interrupted = PendingFile::beside(&target).unwrap();
        std::fs::write(interrupted.path(), b"half").unwrap();
        remove_pending_files();
        assert!(names().is_empty());
        assert!(interrupted.persist(&target).is_err());

        let written = PendingFile::beside(&target).unwrap();
        std::fs::write(written.path(), b"whole").unwrap();
        written.persist(&target).unwrap();
        remove_pending_files();
        assert_eq!(names(), ["model.pt"]);
        assert_eq!(std::fs::read(&target).unwrap(), b"whole");
    }
}
