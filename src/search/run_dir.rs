//! The run directory of one search: resolved config, per-generation history, best-so-far
//! architecture with pictures, fitness plot, final genotype, and the checkpoints.
//!
//! ```text
//! RUN_DIR/config.json          resolved configuration (what --resume reads back)
//! RUN_DIR/generations.jsonl    one line per generation: every individual, stats, best
//! RUN_DIR/timings.jsonl        one line per generation: where its time went (appended)
//! RUN_DIR/fitness.svg          best / mean / worst top-1 per generation
//! RUN_DIR/best/                best-so-far: genotype.json, genotype.txt, alpha.json, cell pictures
//! RUN_DIR/genotype.json        the result, once the last generation is done
//! RUN_DIR/checkpoints/         generation checkpoints (last N kept)
//! RUN_DIR/stop-checkpoint/     the checkpoint of a search stopped mid-generation (newest only)
//! ```

use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::report::plot::{fitness_plot_svg, GenerationFitness, PlotSeries};
use crate::run_lock::{RunLock, RunLockError, LOCK_FILE};

use super::record::GenerationRecord;
use super::SearchError;

#[derive(Clone)]
pub struct RunDir {
    root: PathBuf,
    /// Made by [`RunDir::create`] (it did not exist before), so [`RunDir::discard`] may remove it.
    made: bool,
    /// Held by a writer ([`RunDir::create`], [`RunDir::open_exclusive`]), shared by its clones;
    /// none for a reader.
    lock: Option<Arc<RunLock>>,
}

/// Files a search writes in its directory besides config.json (not the directories it makes
/// before its config, which a start that failed may leave empty): an explicit `--run-dir` that
/// holds one of them without a config.json holds what another run left.
const RUN_FILES: [&str; 7] = [
    "generations.jsonl",
    "timings.jsonl",
    "fitness.svg",
    "genotype.json",
    "genotype.txt",
    "final_training",
    LAUNCHER_JOB_FILE,
];

/// Names the launcher's job whose rank 0 last opened the search ([`RunDir::record_launcher_job`]).
const LAUNCHER_JOB_FILE: &str = "launcher_job.json";

impl RunDir {
    /// Creates a fresh run directory `parent/NAME` (NAME = UTC time and seed) or `explicit`.
    pub fn create(parent: &Path, seed: u64, explicit: Option<&Path>) -> Result<Self, SearchError> {
        let root = match explicit {
            Some(p) => p.to_path_buf(),
            None => {
                let stamp = utc_stamp();
                parent.join(format!("search-{stamp}-seed{seed}"))
            }
        };
        if root.join("config.json").exists() {
            return Err(SearchError::RunExists { path: root });
        }
        if let Some(file) = RUN_FILES.iter().find(|name| root.join(name).exists()) {
            return Err(SearchError::HoldsOtherFiles { path: root, file });
        }
        if let Some(up) = root.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(up).map_err(|e| io_err(up, e))?;
        }
        // Made here only if this very call creates it: of two searches racing for one name,
        // one at most may later remove it.
        let made = match fs::create_dir(&root) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
            Err(e) => return Err(io_err(&root, e)),
        };
        let lock = RunLock::acquire(&root).inspect_err(|e| {
            // Held: another search took it first, and it is theirs now.
            if made && !matches!(e, RunLockError::Held { .. }) {
                let _ = fs::remove_dir_all(&root);
            }
        })?;
        // Again under the lock: another search may have started here since the check above.
        if root.join("config.json").exists() {
            return Err(SearchError::RunExists { path: root });
        }
        fs::create_dir_all(root.join("best")).map_err(|e| io_err(&root, e))?;
        Ok(Self { root, made, lock: Some(Arc::new(lock)) })
    }

    /// Undoes [`RunDir::create`] for a search that could not start (best effort): a directory
    /// it made goes whole; in one that was there before (an explicit `--run-dir`), only the
    /// config and the subdirectories a search makes, while empty.
    pub fn discard(&self) {
        if self.made {
            let _ = fs::remove_dir_all(&self.root);
            return;
        }
        let _ = fs::remove_file(self.root.join("config.json"));
        // Still held: whoever locks the directory next finds it without a run, and the file
        // left would be this search's only trace.
        let _ = fs::remove_file(self.root.join(LOCK_FILE));
        for dir in [self.root.join("best"), self.checkpoints_dir(), self.stop_checkpoint_dir()] {
            let _ = fs::remove_dir(dir);
        }
    }

    /// An existing run directory, to read.
    pub fn open(root: &Path) -> Result<Self, SearchError> {
        if !root.join("config.json").is_file() {
            let why = if root.exists() { "it has no config.json" } else { "it does not exist" };
            return Err(SearchError::NotARun { path: root.to_path_buf(), why });
        }
        // `evnas train` writes a config.json too; its run has no best/, a search's always has.
        if root.join("epochs.jsonl").exists() || !root.join("best").is_dir() && root.join("weights").is_dir()
        {
            let why = "it holds a training run, which evnas train --resume continues";
            return Err(SearchError::NotARun { path: root.to_path_buf(), why });
        }
        Ok(Self { root: root.to_path_buf(), made: false, lock: None })
    }

    /// Hands over the writer's lock, for the controller to free once its workers have stopped
    /// and before it reports the outcome (the actor itself, holding this, may live a little
    /// longer).
    pub fn take_lock(&mut self) -> Option<Arc<RunLock>> {
        self.lock.take()
    }

    /// An existing run directory, to write (a resumed search): refused while another process
    /// writes it.
    pub fn open_exclusive(root: &Path) -> Result<Self, SearchError> {
        let run = Self::open(root)?;
        let lock = RunLock::acquire(root)?;
        Ok(Self { lock: Some(Arc::new(lock)), ..run })
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    pub fn checkpoints_dir(&self) -> PathBuf {
        self.root.join("checkpoints")
    }

    /// Where the checkpoint of a search stopped mid-generation goes.
    pub fn stop_checkpoint_dir(&self) -> PathBuf {
        self.root.join("stop-checkpoint")
    }

    /// Appends one generation's timings to `timings.jsonl`.
    pub fn append_timings(&self, timings: &super::timings::GenerationTimings) -> Result<(), SearchError> {
        use std::io::Write;
        let path = self.root.join("timings.jsonl");
        let mut line = serde_json::to_string(timings).map_err(|e| SearchError::Decode(e.to_string()))?;
        line.push('\n');
        fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(line.as_bytes()))
            .map_err(|e| io_err(&path, e))
    }

    /// Names torchrun's job (TORCHELASTIC_RUN_ID) whose rank 0 opened the search in `root`:
    /// the same job's processes started again without a restart counted (its elastic agent
    /// restarts them so when a node joins) continue it.
    pub fn record_launcher_job(root: &Path, job: &str) -> Result<(), SearchError> {
        let text = serde_json::json!({ "job_id": job }).to_string();
        write_atomic(&root.join(LAUNCHER_JOB_FILE), text.as_bytes())
    }

    /// The job [`RunDir::record_launcher_job`] named last in `root`, if any.
    pub fn launcher_job(root: &Path) -> Option<String> {
        let text = fs::read_to_string(root.join(LAUNCHER_JOB_FILE)).ok()?;
        let record: serde_json::Value = serde_json::from_str(&text).ok()?;
        record["job_id"].as_str().map(str::to_string)
    }

    /// Keeps the config the run was started with (the edge's own type: the core only stores it).
    pub fn write_config<C: Serialize>(&self, cfg: &C) -> Result<(), SearchError> {
        let text = serde_json::to_string_pretty(cfg).map_err(|e| SearchError::Decode(e.to_string()))?;
        write_atomic(&self.root.join("config.json"), text.as_bytes())
    }

    pub fn read_config<C: DeserializeOwned>(&self) -> Result<C, SearchError> {
        let path = self.root.join("config.json");
        let text = fs::read_to_string(&path).map_err(|e| io_err(&path, e))?;
        serde_json::from_str(&text).map_err(|e| SearchError::Io { path, reason: e.to_string() })
    }

    /// Rewrites `generations.jsonl` and the plot from the whole history (so a resumed run never
    /// duplicates or loses a line).
    pub fn write_history(
        &self,
        history: &[GenerationRecord],
        baseline: Option<&str>,
    ) -> Result<(), SearchError> {
        let mut text = String::new();
        for record in history {
            let line = serde_json::to_string(record).map_err(|e| SearchError::Decode(e.to_string()))?;
            text.push_str(&line);
            text.push('\n');
        }
        write_atomic(&self.root.join("generations.jsonl"), text.as_bytes())?;
        let points =
            history.iter().map(|r| GenerationFitness::from_stats(r.generation as u32, &r.fitness)).collect();
        let label = baseline.unwrap_or("EvNAS");
        let series = [PlotSeries { label: label.to_string(), points, dashed: baseline.is_some() }];
        let plot = fitness_plot_svg(&series, &format!("{label}: validation top-1 (%) per generation"));
        write_atomic(&self.root.join("fitness.svg"), plot.as_bytes())
    }

    /// Reads back `generations.jsonl`.
    pub fn read_history(&self) -> Result<Vec<GenerationRecord>, SearchError> {
        let path = self.root.join("generations.jsonl");
        let text = fs::read_to_string(&path).map_err(|e| io_err(&path, e))?;
        text.lines()
            .enumerate()
            .map(|(i, line)| {
                serde_json::from_str(line).map_err(|e| SearchError::Io {
                    path: path.clone(),
                    reason: format!("line {}: {e}", i + 1),
                })
            })
            .collect()
    }

    /// Writes the best-so-far architecture into `best/`.
    pub fn write_best(
        &self,
        text: &str,
        json: &serde_json::Value,
        alpha: &serde_json::Value,
    ) -> Result<(), SearchError> {
        let dir = self.root.join("best");
        fs::create_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
        write_atomic(&dir.join("genotype.txt"), format!("{text}\n").as_bytes())?;
        write_atomic(&dir.join("genotype.json"), pretty(json)?.as_bytes())?;
        write_atomic(&dir.join("alpha.json"), pretty(alpha)?.as_bytes())
    }

    pub fn best_dir(&self) -> PathBuf {
        self.root.join("best")
    }

    /// The search's result: `genotype.json` (and `genotype.txt`).
    pub fn write_result(&self, text: &str, json: &serde_json::Value) -> Result<PathBuf, SearchError> {
        let path = self.root.join("genotype.json");
        write_atomic(&path, pretty(json)?.as_bytes())?;
        write_atomic(&self.root.join("genotype.txt"), format!("{text}\n").as_bytes())?;
        Ok(path)
    }
}

fn pretty(v: &serde_json::Value) -> Result<String, SearchError> {
    serde_json::to_string_pretty(v).map_err(|e| SearchError::Decode(e.to_string()))
}

fn io_err(path: &Path, e: std::io::Error) -> SearchError {
    SearchError::Io { path: path.to_path_buf(), reason: e.to_string() }
}

/// Replaces `path` atomically (see [`crate::fs_atomic::write_atomic`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), SearchError> {
    crate::fs_atomic::write_atomic(path, bytes).map_err(|e| io_err(path, e))
}

/// `YYYYmmdd-HHMMSS` in UTC, without a date crate.
pub(crate) fn utc_stamp() -> String {
    let secs =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!("{y:04}{m:02}{d:02}-{:02}{:02}{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Days since 1970-01-01 to (year, month, day) (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer holds its run: a second writer is refused while it lives, a reader is not.
    #[test]
    fn one_writer_per_run_directory() {
        let parent = tempfile::tempdir().unwrap();
        let root = parent.path().join("run");
        let run = RunDir::create(parent.path(), 1, Some(&root)).unwrap();
        run.write_config(&serde_json::json!({"seed": 1})).unwrap();
        let second = RunDir::open_exclusive(&root);
        assert!(matches!(second, Err(SearchError::Locked(_))), "{:?}", second.err());
        assert!(RunDir::open(&root).is_ok());
        let clone = run.clone();
        drop(run);
        assert!(RunDir::open_exclusive(&root).is_err(), "a clone of the writer still holds it");
        drop(clone);
        assert!(RunDir::open_exclusive(&root).is_ok());
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_785), (2026, 11, 28));
    }
}
