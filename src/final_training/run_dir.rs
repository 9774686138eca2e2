//! The directory of one training run:
//!
//! ```text
//! config.json            the settings it was started with (for --resume)
//! genotype.json          the genotype trained (so a changed genotype file cannot change it)
//! checkpoints/gen-NNNNNN after epoch NNNNNN: network, momentum, state (checkpoint store)
//! epochs.jsonl           one EpochRecord per finished epoch
//! learning_curve.svg     train and test top-1 per epoch
//! weights/last.safetensors, weights/best.safetensors   reference state-dict names
//! result.json            when every epoch is done
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::record::{EpochRecord, TrainingResult};
use super::FinalTrainingError;
use crate::checkpoint::CheckpointStore;
use crate::fs_atomic::write_atomic;
use crate::run_lock::{RunLock, LOCK_FILE};

const CONFIG: &str = "config.json";
const GENOTYPE: &str = "genotype.json";

/// Files a training run writes besides config.json and genotype.json: a `--run-dir` that holds
/// one of them without a config.json holds what another run left.
const RUN_FILES: [&str; 5] = [
    "epochs.jsonl",
    "learning_curve.svg",
    "result.json",
    "weights/last.safetensors",
    "weights/best.safetensors",
];

/// Held by one process at a time (its [`RunLock`], shared by the clones).
#[derive(Debug, Clone)]
pub struct TrainingRunDir {
    root: PathBuf,
    /// Made by [`TrainingRunDir::create`] (it did not exist before), so
    /// [`TrainingRunDir::discard`] may remove it.
    made: bool,
    _lock: Arc<RunLock>,
}

impl TrainingRunDir {
    /// A new run in `root` (made if missing); refused where a run already lives.
    pub fn create(root: &Path) -> Result<Self, FinalTrainingError> {
        if root.join(CONFIG).exists() {
            return Err(FinalTrainingError::RunExists { dir: root.to_path_buf() });
        }
        if let Some(file) = RUN_FILES.iter().find(|name| root.join(name).exists()) {
            return Err(FinalTrainingError::HoldsOtherFiles { dir: root.to_path_buf(), file });
        }
        let made = !root.exists();
        Self::with_weights_dir(root, made)
    }

    /// An existing run.
    pub fn open(root: &Path) -> Result<Self, FinalTrainingError> {
        if !root.join(CONFIG).is_file() {
            return Err(FinalTrainingError::NotARunDir { dir: root.to_path_buf(), file: CONFIG });
        }
        // A search's directory has a config.json too (and, once finished, a genotype.json).
        if root.join("generations.jsonl").exists() || root.join("best").is_dir() {
            return Err(FinalTrainingError::SearchRunDir { dir: root.to_path_buf() });
        }
        Self::with_weights_dir(root, false)
    }

    fn with_weights_dir(root: &Path, made: bool) -> Result<Self, FinalTrainingError> {
        let weights = root.join("weights");
        std::fs::create_dir_all(&weights).map_err(io("create", &weights))?;
        let lock = RunLock::acquire(root)?;
        Ok(Self { root: root.to_path_buf(), made, _lock: Arc::new(lock) })
    }

    /// Undoes [`TrainingRunDir::create`] for a run that could not start (its data missing, say),
    /// so that the same command, mended, starts it (best effort): a directory it made goes
    /// whole; in one that was there before (`--run-dir`), only what it wrote, while empty.
    pub fn discard(&self) {
        if self.made {
            let _ = std::fs::remove_dir_all(&self.root);
            return;
        }
        for file in [CONFIG, GENOTYPE, LOCK_FILE] {
            let _ = std::fs::remove_file(self.root.join(file));
        }
        for dir in ["weights", "checkpoints"] {
            let _ = std::fs::remove_dir(self.root.join(dir));
        }
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    pub fn checkpoints(&self, keep_last: usize) -> Result<CheckpointStore, FinalTrainingError> {
        Ok(CheckpointStore::open(self.root.join("checkpoints"), keep_last)?)
    }

    pub fn write_config<C: Serialize>(&self, config: &C) -> Result<(), FinalTrainingError> {
        self.write_json(CONFIG, config)
    }

    pub fn read_config<C: DeserializeOwned>(&self) -> Result<C, FinalTrainingError> {
        self.read_json(CONFIG)
    }

    pub fn write_genotype<G: Serialize>(&self, genotype: &G) -> Result<(), FinalTrainingError> {
        self.write_json(GENOTYPE, genotype)
    }

    pub fn read_genotype<G: DeserializeOwned>(&self) -> Result<G, FinalTrainingError> {
        self.read_json(GENOTYPE)
    }

    /// Rewrites `epochs.jsonl` with `records` (after a resume it holds exactly the epochs of the
    /// checkpoint continued from).
    pub fn write_epochs(&self, records: &[EpochRecord]) -> Result<(), FinalTrainingError> {
        let mut text = String::new();
        for r in records {
            let line = serde_json::to_string(r).map_err(encode("epochs.jsonl"))?;
            text.push_str(&line);
            text.push('\n');
        }
        self.write_file("epochs.jsonl", text.as_bytes())
    }

    pub fn write_learning_curve(&self, svg: &str) -> Result<(), FinalTrainingError> {
        self.write_file("learning_curve.svg", svg.as_bytes())
    }

    /// `weights/<name>.safetensors`.
    pub fn write_weights(&self, name: &str, bytes: &[u8]) -> Result<PathBuf, FinalTrainingError> {
        let path = self.root.join("weights").join(format!("{name}.safetensors"));
        write_atomic(&path, bytes).map_err(io("write", &path))?;
        Ok(path)
    }

    pub fn write_result(&self, result: &TrainingResult) -> Result<PathBuf, FinalTrainingError> {
        self.write_json("result.json", result)?;
        Ok(self.root.join("result.json"))
    }

    fn write_json<T: Serialize>(&self, name: &str, value: &T) -> Result<(), FinalTrainingError> {
        let mut text = serde_json::to_string_pretty(value).map_err(encode(name))?;
        text.push('\n');
        self.write_file(name, text.as_bytes())
    }

    fn read_json<T: DeserializeOwned>(&self, name: &str) -> Result<T, FinalTrainingError> {
        let path = self.root.join(name);
        let text = std::fs::read_to_string(&path).map_err(io("read", &path))?;
        serde_json::from_str(&text).map_err(|e| FinalTrainingError::Corrupt { path, reason: e.to_string() })
    }

    fn write_file(&self, name: &str, bytes: &[u8]) -> Result<(), FinalTrainingError> {
        let path = self.root.join(name);
        write_atomic(&path, bytes).map_err(io("write", &path))
    }
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> FinalTrainingError {
    let path = path.to_path_buf();
    move |source| FinalTrainingError::Io { op, path, source }
}

fn encode(name: &str) -> impl FnOnce(serde_json::Error) -> FinalTrainingError {
    let name = name.to_string();
    move |e| FinalTrainingError::Encode { name, reason: e.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_process_trains_a_run_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let run = TrainingRunDir::create(dir.path()).unwrap();
        run.write_config(&serde_json::json!({"epochs": 1})).unwrap();
        let second = TrainingRunDir::open(dir.path());
        assert!(matches!(second, Err(FinalTrainingError::Locked(_))), "{second:?}");
        drop(run);
        assert!(TrainingRunDir::open(dir.path()).is_ok());
    }
}
