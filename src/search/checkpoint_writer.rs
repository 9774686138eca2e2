//! Writes generation checkpoints on a thread of its own, so that hashing, fsync and rename happen
//! while the next generation trains: the trainer only captures host bytes
//! ([`checkpointing::capture`](super::checkpointing::capture)).
//!
//! At most one checkpoint is in flight: handing over the next one first waits for the previous
//! one, so checkpoints become durable in generation order (a newer one never overtakes an older
//! one) and a crash loses at most the generation whose checkpoint was being written.

use std::path::PathBuf;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};

use crate::checkpoint::CheckpointStore;

use super::checkpointing::CapturedCheckpoint;
use super::SearchError;

type Outcome = Result<PathBuf, SearchError>;

pub struct CheckpointWriter {
    /// The store the thread writes to (for naming where a checkpoint goes).
    store: CheckpointStore,
    to_writer: Option<Sender<CapturedCheckpoint>>,
    written: Receiver<Outcome>,
    in_flight: bool,
    thread: Option<JoinHandle<()>>,
}

impl CheckpointWriter {
    /// Starts the writer thread over `store`; every checkpoint carries `config_digest`.
    pub fn spawn(store: CheckpointStore, config_digest: String) -> Result<Self, SearchError> {
        let (to_writer, requests) = crossbeam_channel::bounded::<CapturedCheckpoint>(1);
        let (done, written) = crossbeam_channel::bounded::<Outcome>(1);
        let thread_store = store.clone();
        let thread = std::thread::Builder::new()
            .name("evnas-checkpoint-writer".into())
            .spawn(move || {
                for captured in requests {
                    let outcome = thread_store
                        .save(captured.generation, &config_digest, &captured.files)
                        .map(|saved| saved.dir)
                        .map_err(SearchError::from);
                    if done.send(outcome).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| SearchError::WriterStart { reason: e.to_string() })?;
        Ok(Self { store, to_writer: Some(to_writer), written, in_flight: false, thread: Some(thread) })
    }

    /// The directory the checkpoint of `generation` is written to.
    pub fn dir_of(&self, generation: u32) -> PathBuf {
        self.store.dir_of(generation)
    }

    /// Hands `captured` to the writer after the previous checkpoint is durable; returns that
    /// previous checkpoint's directory (or its error).
    pub fn submit(&mut self, captured: CapturedCheckpoint) -> Result<Option<PathBuf>, SearchError> {
        let previous = self.wait()?;
        let sender = self.to_writer.as_ref().ok_or(SearchError::WriterGone)?;
        sender.send(captured).map_err(|_| SearchError::WriterGone)?;
        self.in_flight = true;
        Ok(previous)
    }

    /// Waits until the checkpoint in flight, if any, is durable; returns its directory.
    pub fn wait(&mut self) -> Result<Option<PathBuf>, SearchError> {
        if !self.in_flight {
            return Ok(None);
        }
        self.in_flight = false;
        match self.written.recv() {
            Ok(outcome) => outcome.map(Some),
            Err(_) => Err(SearchError::WriterGone),
        }
    }
}

impl Drop for CheckpointWriter {
    /// Lets the writer finish what it was given (a checkpoint is never abandoned half-written by
    /// evnas itself), then joins it.
    fn drop(&mut self) {
        drop(self.to_writer.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::CheckpointFile;

    fn captured(generation: u32) -> CapturedCheckpoint {
        CapturedCheckpoint {
            generation,
            files: vec![CheckpointFile::new("state.json", format!("{generation}"))],
        }
    }

    #[test]
    fn checkpoints_become_durable_in_order_one_in_flight() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path(), 2).unwrap();
        let mut writer = CheckpointWriter::spawn(store.clone(), "digest".into()).unwrap();
        assert_eq!(writer.submit(captured(1)).unwrap(), None);
        // Handing over generation 2 returns once generation 1 is durable.
        assert_eq!(writer.submit(captured(2)).unwrap(), Some(store.dir_of(1)));
        assert!(store.dir_of(1).join("manifest.json").is_file());
        assert_eq!(writer.submit(captured(3)).unwrap(), Some(store.dir_of(2)));
        assert_eq!(writer.wait().unwrap(), Some(store.dir_of(3)));
        assert_eq!(writer.wait().unwrap(), None, "nothing left in flight");
        let kept: Vec<u32> = store.checkpoints().unwrap().into_iter().map(|(g, _)| g).collect();
        assert_eq!(kept, [2, 3], "keep-last-2 pruned the oldest, after the newer ones were durable");
        let loaded = store.load_latest("digest").unwrap().unwrap();
        assert_eq!(loaded.file("state.json"), Some(&b"3"[..]));
    }
}
