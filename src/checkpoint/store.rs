//! The checkpoint store of one run directory (STYLE.md §11; the reference only `torch.save`s the
//! supernet and pickles the population each generation, with no atomicity or verification).
//!
//! Layout: `<root>/gen-000012/` holds the payload files (flat, named by the caller, e.g.
//! `state.json`, `supernet.safetensors`) and `manifest.json` (generation, config digest, size and
//! sha256 of every payload file). A checkpoint is built in `<root>/.tmp-gen-000012-<pid>/`, every
//! file and the directory are fsynced, the directory is renamed into place and the root fsynced, so
//! a crash leaves either the complete checkpoint or none. Only then are old checkpoints removed.
//!
//! One writer per run directory is assumed: opening the store deletes leftover `.tmp-*` / `.old-*`
//! directories, which would break a second process writing concurrently.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Number of checkpoints kept when the caller has no preference.
pub const DEFAULT_KEEP_LAST: usize = 3;
/// Name of the manifest inside every checkpoint directory; reserved, not a payload name.
pub const MANIFEST_FILE: &str = "manifest.json";
const MANIFEST_FORMAT: u32 = 1;
const GEN_PREFIX: &str = "gen-";
const TMP_PREFIX: &str = ".tmp-";
const OLD_PREFIX: &str = ".old-";

/// One payload file of a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointFile {
    pub name: String,
    pub bytes: Vec<u8>,
}

impl CheckpointFile {
    pub fn new(name: impl Into<String>, bytes: impl Into<Vec<u8>>) -> Self {
        Self { name: name.into(), bytes: bytes.into() }
    }
}

/// Contents of `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: u32,
    pub generation: u32,
    pub config_digest: String,
    pub files: Vec<ManifestEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestEntry {
    pub name: String,
    pub size: u64,
    /// Lower-case hex.
    pub sha256: String,
}

/// A checkpoint that has just been made durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedCheckpoint {
    pub generation: u32,
    pub dir: PathBuf,
    pub manifest: Manifest,
    /// Checkpoint directories removed afterwards (beyond keep-last-N, or abandoned newer ones).
    pub pruned: Vec<PathBuf>,
}

/// A verified checkpoint, plus the newer ones that had to be passed over to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedCheckpoint {
    pub generation: u32,
    pub dir: PathBuf,
    pub manifest: Manifest,
    /// Payload by file name; every byte matched the manifest's sha256.
    pub files: BTreeMap<String, Vec<u8>>,
    /// Newer checkpoints that were corrupt or incomplete, newest first.
    pub skipped: Vec<SkippedCheckpoint>,
}

impl LoadedCheckpoint {
    pub fn file(&self, name: &str) -> Option<&[u8]> {
        self.files.get(name).map(Vec::as_slice)
    }

    /// The named payload file, or an error naming the checkpoint that lacks it.
    pub fn require(&self, name: &str) -> Result<&[u8], CheckpointError> {
        self.file(name)
            .ok_or_else(|| CheckpointError::PayloadMissing { dir: self.dir.clone(), name: name.to_string() })
    }
}

/// A checkpoint passed over by [`CheckpointStore::load_latest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedCheckpoint {
    pub generation: u32,
    pub dir: PathBuf,
    pub reason: SkipReason,
}

/// Why a checkpoint directory could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SkipReason {
    #[error("no {MANIFEST_FILE}")]
    ManifestMissing,
    #[error("{MANIFEST_FILE} unreadable: {reason}")]
    ManifestUnreadable { reason: String },
    #[error("{MANIFEST_FILE} invalid: {reason}")]
    ManifestInvalid { reason: String },
    #[error("{MANIFEST_FILE} says generation {manifest}, directory name says {directory}")]
    GenerationMismatch { manifest: u32, directory: u32 },
    #[error("file {name} is missing")]
    FileMissing { name: String },
    #[error("file {name} unreadable: {reason}")]
    FileUnreadable { name: String, reason: String },
    #[error("file {name} has {found} bytes, manifest says {expected}")]
    SizeMismatch { name: String, expected: u64, found: u64 },
    #[error("file {name} has sha256 {found}, manifest says {expected}")]
    HashMismatch { name: String, expected: String, found: String },
}

/// Errors of the checkpoint store.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot {op} {}", path.display())]
    Io { op: &'static str, path: PathBuf, source: io::Error },
    #[error("keep_last must be at least 1, got {keep_last}")]
    KeepLast { keep_last: usize },
    #[error("payload file name {name:?} is not allowed: {reason}")]
    InvalidFileName { name: String, reason: &'static str },
    #[error("payload file name {name:?} appears twice")]
    DuplicateFileName { name: String },
    #[error("payload writer failed in {}", dir.display())]
    Writer { dir: PathBuf, source: Box<dyn std::error::Error + Send + Sync> },
    #[error("{} is not a regular file; checkpoints hold flat files only", path.display())]
    NotAFile { path: PathBuf },
    #[error("cannot encode manifest for {}", dir.display())]
    ManifestEncode { dir: PathBuf, source: serde_json::Error },
    #[error(
        "checkpoint {} was written with config digest {found}, this run has {expected}; refusing to resume a different configuration",
        dir.display()
    )]
    ConfigMismatch { dir: PathBuf, expected: String, found: String },
    #[error("no usable checkpoint in {}: {}", root.display(), describe_skipped(skipped))]
    AllCorrupt { root: PathBuf, skipped: Vec<SkippedCheckpoint> },
    #[error(
        "the filesystem of {} has {} free, and about {} are needed for {what}; free some space, or keep fewer checkpoints ({setting})",
        dir.display(),
        super::human_bytes(*available),
        super::human_bytes(*needed)
    )]
    NoRoom { dir: PathBuf, available: u64, needed: u64, what: String, setting: &'static str },
    #[error("checkpoint {} has no payload file {name}", dir.display())]
    PayloadMissing { dir: PathBuf, name: String },
    #[error(transparent)]
    Fault(#[from] crate::fault::InjectedFault),
}

fn describe_skipped(skipped: &[SkippedCheckpoint]) -> String {
    skipped.iter().map(|s| format!("{}: {}", s.dir.display(), s.reason)).collect::<Vec<_>>().join("; ")
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> CheckpointError {
    let path = path.to_path_buf();
    move |source| CheckpointError::Io { op, path, source }
}

/// Lower-case hex sha256 of `bytes` (also handy for computing a config digest).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// About the size of a manifest: a name, size and sha256 per file.
const MANIFEST_BYTES: u64 = 4096;

/// What a run will still write into a checkpoint store, for [`CheckpointStore::ensure_room`].
#[derive(Debug, Clone, Copy)]
pub struct Upcoming {
    /// About the bytes of one checkpoint's files (the store adds its manifest).
    pub checkpoint_bytes: u64,
    /// Checkpoints the run will still save here (generations or epochs left).
    pub saves: usize,
    /// Checkpoints of the same size written elsewhere besides, and what they are (e.g.
    /// `(1, " and a stop checkpoint")`).
    pub others: (usize, &'static str),
    /// The config key of the store's `keep_last`, for the error.
    pub setting: &'static str,
}

/// Checkpoints of one run directory.
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    root: PathBuf,
    keep_last: usize,
}

impl CheckpointStore {
    /// Opens (creating if needed) the run directory and removes debris of interrupted writes.
    pub fn open(root: impl Into<PathBuf>, keep_last: usize) -> Result<Self, CheckpointError> {
        if keep_last == 0 {
            return Err(CheckpointError::KeepLast { keep_last });
        }
        let root = root.into();
        fs::create_dir_all(&root).map_err(io_err("create directory", &root))?;
        let store = Self { root, keep_last };
        store.remove_debris()?;
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn keep_last(&self) -> usize {
        self.keep_last
    }

    /// Refuses unless the filesystem has room for the checkpoints `upcoming` describes: one per
    /// save until `keep_last` are kept (at least one, written before the oldest is pruned), no
    /// more than the saves left, and the others it names.
    pub fn ensure_room(&self, upcoming: &Upcoming) -> Result<(), CheckpointError> {
        if upcoming.saves == 0 {
            return Ok(());
        }
        let existing = self.checkpoints()?.len();
        let to_come = self.keep_last.saturating_sub(existing).clamp(1, upcoming.saves);
        let (others, others_what) = upcoming.others;
        let bytes = upcoming.checkpoint_bytes.saturating_add(MANIFEST_BYTES);
        let what = format!(
            "{to_come} more checkpoint(s) ({existing} of {} kept so far){others_what}, of {} each",
            self.keep_last,
            super::human_bytes(bytes)
        );
        let count = to_come.saturating_add(others) as u64;
        super::room::ensure_room(&self.root, count, bytes, what, upcoming.setting)
    }

    /// Directory of the checkpoint of `generation` (whether or not it exists).
    pub fn dir_of(&self, generation: u32) -> PathBuf {
        self.root.join(format!("{GEN_PREFIX}{generation:06}"))
    }

    /// Existing checkpoint directories, oldest first. Includes corrupt ones.
    pub fn checkpoints(&self) -> Result<Vec<(u32, PathBuf)>, CheckpointError> {
        let mut found = Vec::new();
        for entry in fs::read_dir(&self.root).map_err(io_err("list directory", &self.root))? {
            let entry = entry.map_err(io_err("list directory", &self.root))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(generation) = parse_generation(name) {
                if entry.path().is_dir() {
                    found.push((generation, entry.path()));
                }
            }
        }
        found.sort();
        Ok(found)
    }

    /// Writes `files` as the checkpoint of `generation`; see [`Self::save_with`].
    pub fn save(
        &self,
        generation: u32,
        config_digest: &str,
        files: &[CheckpointFile],
    ) -> Result<SavedCheckpoint, CheckpointError> {
        let mut seen = HashSet::new();
        for file in files {
            check_file_name(&file.name)?;
            if !seen.insert(file.name.as_str()) {
                return Err(CheckpointError::DuplicateFileName { name: file.name.clone() });
            }
        }
        self.save_with(generation, config_digest, |dir| {
            for file in files {
                let path = dir.join(&file.name);
                let mut out = File::create(&path).map_err(io_err("create", &path))?;
                out.write_all(&file.bytes).map_err(io_err("write", &path))?;
            }
            Ok::<(), CheckpointError>(())
        })
    }

    /// Lets `write` fill a fresh temporary directory with flat payload files (for writers that
    /// want a path, like `VarStore::save`), then hashes and fsyncs them, adds the manifest, moves
    /// the directory into place as `gen-NNNNNN` (replacing a previous checkpoint of the same
    /// generation), and finally prunes: checkpoints of later generations (an abandoned timeline,
    /// e.g. the corrupt ones skipped on resume) and all but the newest `keep_last`.
    pub fn save_with<F, E>(
        &self,
        generation: u32,
        config_digest: &str,
        write: F,
    ) -> Result<SavedCheckpoint, CheckpointError>
    where
        F: FnOnce(&Path) -> Result<(), E>,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let name = format!("{GEN_PREFIX}{generation:06}");
        let tmp = self.root.join(format!("{TMP_PREFIX}{name}-{}", crate::fs_atomic::unique_suffix()));
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(io_err("remove stale directory", &tmp))?;
        }
        fs::create_dir(&tmp).map_err(io_err("create directory", &tmp))?;
        let built = self.fill_temp(&tmp, generation, config_digest, write);
        let manifest = match built {
            Ok(manifest) => manifest,
            Err(err) => {
                // Best effort: the next `open` removes it anyway.
                let _ = fs::remove_dir_all(&tmp);
                return Err(err);
            }
        };

        let dir = self.dir_of(generation);
        let displaced = if dir.exists() {
            let aside = self.root.join(format!("{OLD_PREFIX}{name}-{}", crate::fs_atomic::unique_suffix()));
            fs::rename(&dir, &aside).map_err(io_err("move aside", &dir))?;
            Some(aside)
        } else {
            None
        };
        fs::rename(&tmp, &dir).map_err(io_err("rename into place", &dir))?;
        sync_dir(&self.root)?;
        if let Some(aside) = displaced {
            fs::remove_dir_all(&aside).map_err(io_err("remove", &aside))?;
        }

        let pruned = self.prune(generation)?;
        Ok(SavedCheckpoint { generation, dir, manifest, pruned })
    }

    fn fill_temp<F, E>(
        &self,
        tmp: &Path,
        generation: u32,
        config_digest: &str,
        write: F,
    ) -> Result<Manifest, CheckpointError>
    where
        F: FnOnce(&Path) -> Result<(), E>,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        write(tmp).map_err(|e| CheckpointError::Writer { dir: tmp.to_path_buf(), source: e.into() })?;
        crate::fault::point("checkpoint.write")?;
        let mut entries = Vec::new();
        for entry in fs::read_dir(tmp).map_err(io_err("list directory", tmp))? {
            let entry = entry.map_err(io_err("list directory", tmp))?;
            let path = entry.path();
            let file_type = entry.file_type().map_err(io_err("stat", &path))?;
            if !file_type.is_file() {
                return Err(CheckpointError::NotAFile { path });
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            check_file_name(&name)?;
            let (size, sha256) = hash_and_sync(&path)?;
            entries.push(ManifestEntry { name, size, sha256 });
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        let manifest = Manifest {
            format: MANIFEST_FORMAT,
            generation,
            config_digest: config_digest.to_string(),
            files: entries,
        };
        let json = serde_json::to_vec_pretty(&manifest)
            .map_err(|source| CheckpointError::ManifestEncode { dir: tmp.to_path_buf(), source })?;
        let path = tmp.join(MANIFEST_FILE);
        let mut out = File::create(&path).map_err(io_err("create", &path))?;
        out.write_all(&json).map_err(io_err("write", &path))?;
        out.sync_all().map_err(io_err("fsync", &path))?;
        sync_dir(tmp)?;
        Ok(manifest)
    }

    /// Removes checkpoints after `saved` and all but the newest `keep_last` up to it. Each is first
    /// renamed out of the `gen-` namespace so a crash mid-delete never leaves a half-deleted
    /// checkpoint that looks like a real one.
    fn prune(&self, saved: u32) -> Result<Vec<PathBuf>, CheckpointError> {
        let all = self.checkpoints()?;
        let kept_from = all.iter().filter(|(g, _)| *g <= saved).count().saturating_sub(self.keep_last);
        let mut doomed: Vec<PathBuf> = Vec::new();
        let mut older = 0;
        for (generation, dir) in all {
            if generation > saved {
                doomed.push(dir);
            } else {
                if older < kept_from {
                    doomed.push(dir);
                }
                older += 1;
            }
        }
        for dir in &doomed {
            let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let aside = self.root.join(format!("{OLD_PREFIX}{name}-{}", crate::fs_atomic::unique_suffix()));
            fs::rename(dir, &aside).map_err(io_err("move aside", dir))?;
            fs::remove_dir_all(&aside).map_err(io_err("remove", &aside))?;
        }
        if !doomed.is_empty() {
            sync_dir(&self.root)?;
        }
        Ok(doomed)
    }

    fn remove_debris(&self) -> Result<(), CheckpointError> {
        for entry in fs::read_dir(&self.root).map_err(io_err("list directory", &self.root))? {
            let entry = entry.map_err(io_err("list directory", &self.root))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with(TMP_PREFIX) || name.starts_with(OLD_PREFIX) {
                let path = entry.path();
                if path.is_dir() {
                    fs::remove_dir_all(&path).map_err(io_err("remove", &path))?;
                } else {
                    fs::remove_file(&path).map_err(io_err("remove", &path))?;
                }
            }
        }
        Ok(())
    }

    /// The newest checkpoint that verifies, or `None` when the run directory has no checkpoint.
    ///
    /// Corrupt or incomplete checkpoints are passed over (newest first) and listed in
    /// [`LoadedCheckpoint::skipped`]. A checkpoint whose manifest names another config digest stops
    /// the search with [`CheckpointError::ConfigMismatch`]: resuming from an older checkpoint of a
    /// different configuration would be wrong. When every checkpoint is unusable the result is
    /// [`CheckpointError::AllCorrupt`] rather than `None`, so a run never restarts silently over
    /// damaged state.
    pub fn load_latest(&self, config_digest: &str) -> Result<Option<LoadedCheckpoint>, CheckpointError> {
        let all = self.checkpoints()?;
        if all.is_empty() {
            return Ok(None);
        }
        let mut skipped = Vec::new();
        for (generation, dir) in all.into_iter().rev() {
            match read_checkpoint(&dir, generation, config_digest)? {
                Ok((manifest, files)) => {
                    return Ok(Some(LoadedCheckpoint { generation, dir, manifest, files, skipped }));
                }
                Err(reason) => skipped.push(SkippedCheckpoint { generation, dir, reason }),
            }
        }
        Err(CheckpointError::AllCorrupt { root: self.root.clone(), skipped })
    }
}

type Payload = (Manifest, BTreeMap<String, Vec<u8>>);

/// Reads and verifies one checkpoint. The outer error stops loading (config mismatch); the inner
/// one says why this checkpoint is unusable and the caller moves on to an older one.
fn read_checkpoint(
    dir: &Path,
    generation: u32,
    config_digest: &str,
) -> Result<Result<Payload, SkipReason>, CheckpointError> {
    let manifest_path = dir.join(MANIFEST_FILE);
    let text = match fs::read(&manifest_path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Err(SkipReason::ManifestMissing)),
        Err(e) => return Ok(Err(SkipReason::ManifestUnreadable { reason: e.to_string() })),
    };
    let manifest: Manifest = match serde_json::from_slice(&text) {
        Ok(m) => m,
        Err(e) => return Ok(Err(SkipReason::ManifestInvalid { reason: e.to_string() })),
    };
    if manifest.format != MANIFEST_FORMAT {
        let reason = format!("format {} (this build reads {MANIFEST_FORMAT})", manifest.format);
        return Ok(Err(SkipReason::ManifestInvalid { reason }));
    }
    if manifest.generation != generation {
        return Ok(Err(SkipReason::GenerationMismatch {
            manifest: manifest.generation,
            directory: generation,
        }));
    }
    if manifest.config_digest != config_digest {
        return Err(CheckpointError::ConfigMismatch {
            dir: dir.to_path_buf(),
            expected: config_digest.to_string(),
            found: manifest.config_digest,
        });
    }
    let mut files = BTreeMap::new();
    for entry in &manifest.files {
        if let Err(e) = check_file_name(&entry.name) {
            return Ok(Err(SkipReason::ManifestInvalid { reason: e.to_string() }));
        }
        let bytes = match fs::read(dir.join(&entry.name)) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(Err(SkipReason::FileMissing { name: entry.name.clone() }));
            }
            Err(e) => {
                return Ok(Err(SkipReason::FileUnreadable {
                    name: entry.name.clone(),
                    reason: e.to_string(),
                }))
            }
        };
        if bytes.len() as u64 != entry.size {
            return Ok(Err(SkipReason::SizeMismatch {
                name: entry.name.clone(),
                expected: entry.size,
                found: bytes.len() as u64,
            }));
        }
        let found = sha256_hex(&bytes);
        if found != entry.sha256 {
            return Ok(Err(SkipReason::HashMismatch {
                name: entry.name.clone(),
                expected: entry.sha256.clone(),
                found,
            }));
        }
        files.insert(entry.name.clone(), bytes);
    }
    Ok(Ok((manifest, files)))
}

fn parse_generation(name: &str) -> Option<u32> {
    let digits = name.strip_prefix(GEN_PREFIX)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Payload names are single path components that cannot collide with the store's own names.
fn check_file_name(name: &str) -> Result<(), CheckpointError> {
    let reason = if name.is_empty() {
        Some("empty")
    } else if name == MANIFEST_FILE {
        Some("reserved for the manifest")
    } else if name.starts_with('.') {
        Some("starts with '.'")
    } else if name.contains(['/', '\\', '\0']) {
        Some("contains a path separator or NUL")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(CheckpointError::InvalidFileName { name: name.to_string(), reason }),
        None => Ok(()),
    }
}

/// Size and sha256 of a file, after making its contents durable.
fn hash_and_sync(path: &Path) -> Result<(u64, String), CheckpointError> {
    let mut file = File::options().read(true).write(true).open(path).map_err(io_err("open", path))?;
    file.sync_all().map_err(io_err("fsync", path))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buffer).map_err(io_err("read", path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        size += n as u64;
    }
    Ok((size, hex(&hasher.finalize())))
}

/// fsync a directory so that entries created or renamed in it survive a crash.
fn sync_dir(dir: &Path) -> Result<(), CheckpointError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err("fsync directory", dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(tag: &str) -> Vec<CheckpointFile> {
        vec![
            CheckpointFile::new("state.json", format!("{{\"tag\":\"{tag}\"}}")),
            CheckpointFile::new("supernet.safetensors", vec![7u8; 5000]),
        ]
    }

    fn generations(store: &CheckpointStore) -> Vec<u32> {
        store.checkpoints().unwrap().into_iter().map(|(g, _)| g).collect()
    }

    #[test]
    fn saved_checkpoint_loads_back_verbatim() {
        let tmp = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(tmp.path(), DEFAULT_KEEP_LAST).unwrap();
        assert!(store.load_latest("cfg").unwrap().is_none());
        let saved = store.save(4, "cfg", &payload("four")).unwrap();
        assert_eq!(saved.dir, tmp.path().join("gen-000004"));
        assert_eq!(saved.manifest.files.len(), 2);
        let loaded = store.load_latest("cfg").unwrap().unwrap();
        assert_eq!(loaded.generation, 4);
        assert!(loaded.skipped.is_empty());
        assert_eq!(loaded.require("state.json").unwrap(), b"{\"tag\":\"four\"}");
        assert_eq!(loaded.file("supernet.safetensors"), Some(&[7u8; 5000][..]));
        assert!(matches!(loaded.require("nope"), Err(CheckpointError::PayloadMissing { .. })));
        assert_eq!(
            loaded.manifest.files.iter().find(|f| f.name == "state.json").map(|f| f.sha256.clone()),
            Some(sha256_hex(b"{\"tag\":\"four\"}"))
        );
    }

    #[test]
    fn sha256_matches_a_known_vector() {
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn only_the_newest_n_are_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(tmp.path(), 3).unwrap();
        for g in 1..=5 {
            let saved = store.save(g, "cfg", &payload(&g.to_string())).unwrap();
            let expected_pruned = if g > 3 { vec![store.dir_of(g - 3)] } else { vec![] };
            assert_eq!(saved.pruned, expected_pruned);
        }
        assert_eq!(generations(&store), vec![3, 4, 5]);
        assert_eq!(store.load_latest("cfg").unwrap().unwrap().generation, 5);
    }

    #[test]
    fn saving_a_generation_again_replaces_it_and_drops_later_ones() {
        let tmp = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(tmp.path(), 5).unwrap();
        for g in 1..=4 {
            store.save(g, "cfg", &payload("first")).unwrap();
        }
        let saved = store.save(2, "cfg", &payload("second")).unwrap();
        assert_eq!(saved.pruned, vec![store.dir_of(3), store.dir_of(4)]);
        assert_eq!(generations(&store), vec![1, 2]);
        let loaded = store.load_latest("cfg").unwrap().unwrap();
        assert_eq!(loaded.require("state.json").unwrap(), b"{\"tag\":\"second\"}");
    }

    #[test]
    fn leftover_temporary_directories_are_ignored_and_cleaned() {
        let tmp = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(tmp.path(), 3).unwrap();
        store.save(1, "cfg", &payload("one")).unwrap();
        // A crash mid-write of generation 2 leaves a partial temp dir.
        let debris = tmp.path().join(".tmp-gen-000002-999");
        fs::create_dir(&debris).unwrap();
        fs::write(debris.join("state.json"), b"partial").unwrap();
        assert_eq!(store.load_latest("cfg").unwrap().unwrap().generation, 1);
        let reopened = CheckpointStore::open(tmp.path(), 3).unwrap();
        assert!(!debris.exists());
        assert_eq!(reopened.load_latest("cfg").unwrap().unwrap().generation, 1);
    }

    #[test]
    fn save_with_hashes_what_the_writer_put_there() {
        let tmp = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(tmp.path(), 3).unwrap();
        let saved = store
            .save_with(7, "cfg", |dir| fs::write(dir.join("optimizer.safetensors"), b"momentum"))
            .unwrap();
        assert_eq!(saved.manifest.files.len(), 1);
        assert_eq!(saved.manifest.files[0].size, 8);
        let loaded = store.load_latest("cfg").unwrap().unwrap();
        assert_eq!(loaded.file("optimizer.safetensors"), Some(&b"momentum"[..]));
    }

    #[test]
    fn failed_writer_leaves_no_checkpoint() {
        let tmp = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(tmp.path(), 3).unwrap();
        let err = store
            .save_with(1, "cfg", |dir| {
                fs::write(dir.join("a.bin"), b"x")?;
                Err::<(), _>(io::Error::other("disk full"))
            })
            .unwrap_err();
        assert!(matches!(err, CheckpointError::Writer { .. }), "{err}");
        assert!(generations(&store).is_empty());
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 0);
    }

    #[test]
    fn bad_payload_names_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(tmp.path(), 3).unwrap();
        for name in ["", "manifest.json", ".hidden", "a/b"] {
            let err = store.save(1, "cfg", &[CheckpointFile::new(name, b"x".to_vec())]).unwrap_err();
            assert!(matches!(err, CheckpointError::InvalidFileName { .. }), "{name}: {err}");
        }
        let twice = [CheckpointFile::new("a", b"1".to_vec()), CheckpointFile::new("a", b"2".to_vec())];
        assert!(matches!(store.save(1, "cfg", &twice), Err(CheckpointError::DuplicateFileName { .. })));
        assert!(matches!(
            CheckpointStore::open(tmp.path(), 0),
            Err(CheckpointError::KeepLast { keep_last: 0 })
        ));
    }
}
