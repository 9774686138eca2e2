//! Whether a filesystem has room for the checkpoints a search will write. A search started
//! without it fails at a generation boundary, perhaps hours later; restarted by its service
//! manager, it would compute that generation again only to fail again. Checked when a search
//! opens, it fails at once, saying how much it needs.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::CheckpointError;

/// Bytes an unprivileged process may still write on the filesystem holding `dir`.
pub fn available_bytes(dir: &Path) -> io::Result<u64> {
    let path = CString::new(dir.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is NUL-terminated and outlives the call; statvfs fills `stat` when it
    // returns 0, and `stat` is read only then.
    let stat = unsafe {
        if libc::statvfs(path.as_ptr(), stat.as_mut_ptr()) != 0 {
            return Err(io::Error::last_os_error());
        }
        stat.assume_init()
    };
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// Checkpoints of `checkpoint_bytes` each: `count` of them must fit in `dir` (`what` says
/// which, and `setting` the config key that keeps them, for the error).
pub fn ensure_room(
    dir: &Path,
    count: u64,
    checkpoint_bytes: u64,
    what: String,
    setting: &'static str,
) -> Result<(), CheckpointError> {
    let needed = count.saturating_mul(checkpoint_bytes);
    let available = available_bytes(dir).map_err(|source| CheckpointError::Io {
        op: "measure the free space of",
        path: dir.to_path_buf(),
        source,
    })?;
    if available < needed {
        return Err(CheckpointError::NoRoom { dir: dir.to_path_buf(), available, needed, what, setting });
    }
    Ok(())
}

/// `bytes` for a person: MiB with one decimal (GiB from 10 GiB on).
pub fn human_bytes(bytes: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    let mib = bytes as f64 / MIB;
    if mib >= 10.0 * 1024.0 {
        format!("{:.1} GiB", mib / 1024.0)
    } else {
        format!("{mib:.1} MiB")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_space_is_measured_and_a_shortfall_names_both_sizes() {
        let tmp = tempfile::tempdir().unwrap();
        let available = available_bytes(tmp.path()).unwrap();
        assert!(available > 0);
        ensure_room(tmp.path(), 2, 1024, "two small checkpoints".into(), "keep").unwrap();
        let err =
            ensure_room(tmp.path(), 3, u64::MAX / 2, "three huge checkpoints".into(), "keep").unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, CheckpointError::NoRoom { needed: u64::MAX, .. }), "{text}");
        assert!(text.contains("three huge checkpoints") && text.contains(&human_bytes(available)), "{text}");
        let missing = tmp.path().join("absent");
        let err = ensure_room(&missing, 1, 1, String::new(), "keep");
        assert!(matches!(err, Err(CheckpointError::Io { .. })), "{err:?}");
    }

    #[test]
    fn sizes_read_in_mebibytes_then_gibibytes() {
        assert_eq!(human_bytes(1_363_148), "1.3 MiB");
        assert_eq!(human_bytes(20 * 1024 * 1024 * 1024), "20.0 GiB");
    }
}
