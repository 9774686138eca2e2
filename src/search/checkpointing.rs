//! Saving and restoring a search at a generation boundary through the checkpoint store:
//! `state.json` (population, GA random state, history), `supernet.safetensors` (weights and
//! BatchNorm buffers, under the reference's state-dict names) and `momentum.safetensors`.
//!
//! A checkpoint is first captured as host bytes ([`capture`]: tensors of any device and memory
//! layout copied out, state serialised), then written by the store (hash, fsync, rename): the
//! writing needs no tensor, so it can happen while the supernet trains on.

use std::path::PathBuf;

use tch::nn::VarStore;
use tch::Tensor;

use crate::checkpoint::{CheckpointFile, CheckpointStore, Upcoming};
use crate::train::sgd::Sgd;
use crate::weights;

use super::engine::SearchState;
use super::run_dir::RunDir;
use super::settings::SearchSettings;
use super::SearchError;

const STATE: &str = "state.json";
const WEIGHTS: &str = "supernet.safetensors";
const MOMENTUM: &str = "momentum.safetensors";

/// A generation boundary's checkpoint as host bytes, ready for the store.
pub struct CapturedCheckpoint {
    /// The generation to run next (the checkpoint's number).
    pub generation: u32,
    pub files: Vec<CheckpointFile>,
}

/// The generation-boundary checkpoints.
pub(super) fn store(run: &RunDir, settings: &SearchSettings) -> Result<CheckpointStore, SearchError> {
    Ok(CheckpointStore::open(run.checkpoints_dir(), settings.runtime.keep_checkpoints)?)
}

/// The checkpoint of a search stopped in the middle of a generation (the newest only). It is
/// kept apart from the boundary checkpoints so that writing it never displaces one of them.
pub fn stop_store(run: &RunDir) -> Result<CheckpointStore, SearchError> {
    Ok(CheckpointStore::open(run.stop_checkpoint_dir(), 1)?)
}

/// Refuses to go on unless the run directory has room for the `generations_left` checkpoints
/// still to come and a stop checkpoint, each as large as one captured now.
pub(super) fn ensure_room(
    store: &CheckpointStore,
    (vs, opt): (&VarStore, &Sgd),
    state: &SearchState,
    generations_left: usize,
) -> Result<(), SearchError> {
    let state_json = serde_json::to_vec(state)
        .map_err(|e| SearchError::CheckpointEncode { name: STATE.to_string(), reason: e.to_string() })?;
    Ok(store.ensure_room(&Upcoming {
        checkpoint_bytes: opt.checkpoint_bytes(vs) + state_json.len() as u64,
        saves: generations_left,
        others: (1, " and a stop checkpoint"),
        setting: "run.keep_checkpoints",
    })?)
}

/// Copies the supernet, the momentum and the search state into host bytes.
pub fn capture(vs: &VarStore, opt: &Sgd, state: &SearchState) -> Result<CapturedCheckpoint, SearchError> {
    let encode_err =
        |name: &str, reason: String| SearchError::CheckpointEncode { name: name.to_string(), reason };
    let state_json = serde_json::to_vec(state).map_err(|e| encode_err(STATE, e.to_string()))?;
    let mut variables: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    variables.sort_by(|a, b| a.0.cmp(&b.0));
    let supernet = weights::safetensors_bytes(&variables).map_err(|reason| encode_err(WEIGHTS, reason))?;
    let momentum =
        weights::safetensors_bytes(&opt.momentum_buffers()).map_err(|reason| encode_err(MOMENTUM, reason))?;
    Ok(CapturedCheckpoint {
        generation: state.next_generation as u32,
        files: vec![
            CheckpointFile::new(STATE, state_json),
            CheckpointFile::new(WEIGHTS, supernet),
            CheckpointFile::new(MOMENTUM, momentum),
        ],
    })
}

/// Restores the newest intact checkpoint into `vs` and `opt` (each tensor keeps the memory
/// layout of the variable it is copied into): a stop checkpoint when it is at least as new as
/// the newest boundary checkpoint, else that one. Returns its state and a line per newer
/// checkpoint that was skipped as corrupt. `None` when the run has no checkpoint yet.
pub fn load_latest(
    run: &RunDir,
    settings: &SearchSettings,
    vs: &mut VarStore,
    opt: &mut Sgd,
) -> Result<Option<(SearchState, Vec<String>)>, SearchError> {
    let digest = &settings.identity;
    let boundaries = store(run, settings)?;
    let stops = stop_store(run)?;
    let newest_boundary = boundaries.checkpoints()?.last().map(|(g, _)| *g);
    let newest_stop = stops.checkpoints()?.last().map(|(g, _)| *g);
    let mut notes = Vec::new();
    if newest_stop.is_some() && newest_stop >= newest_boundary {
        if let Some((state, skipped)) = load_from(&stops, digest, vs, opt)? {
            return Ok(Some((state, skipped)));
        }
        notes.push(format!(
            "the stop checkpoint in {} is unusable; using the generation checkpoints",
            stops.root().display()
        ));
    }
    Ok(load_from(&boundaries, digest, vs, opt)?.map(|(state, skipped)| {
        notes.extend(skipped);
        (state, notes)
    }))
}

fn load_from(
    store: &CheckpointStore,
    digest: &str,
    vs: &mut VarStore,
    opt: &mut Sgd,
) -> Result<Option<(SearchState, Vec<String>)>, SearchError> {
    let Some(loaded) = store.load_latest(digest)? else {
        return Ok(None);
    };
    let skipped = loaded
        .skipped
        .iter()
        .map(|s| {
            format!(
                "checkpoint {} is unusable ({}); using generation {}",
                s.dir.display(),
                s.reason,
                loaded.generation
            )
        })
        .collect();
    let payload = |name: &str| -> Result<(PathBuf, &[u8]), SearchError> {
        Ok((loaded.dir.join(name), loaded.require(name)?))
    };
    let (path, bytes) = payload(STATE)?;
    let state: SearchState = serde_json::from_slice(bytes)
        .map_err(|e| SearchError::CheckpointDecode { path: path.clone(), reason: e.to_string() })?;
    let (path, bytes) = payload(WEIGHTS)?;
    let tensors = weights::safetensors_from_bytes(&path, bytes)?;
    weights::load_into(vs, tensors, &weights::LoadOptions::default())
        .map_err(|e| SearchError::CheckpointDecode { path: path.clone(), reason: e.to_string() })?;
    let (path, bytes) = payload(MOMENTUM)?;
    let momentum = weights::safetensors_from_bytes(&path, bytes)?;
    opt.restore_momentum(momentum)
        .map_err(|e| SearchError::CheckpointDecode { path: path.clone(), reason: e.to_string() })?;
    Ok(Some((state, skipped)))
}
