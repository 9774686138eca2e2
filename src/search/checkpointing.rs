//! Saving and restoring a search at a generation boundary through the checkpoint store:
//! `state.json` (population, GA random state, history), `supernet.safetensors` (weights and
//! BatchNorm buffers, under the reference's state-dict names) and `momentum.safetensors`.

use std::path::PathBuf;

use tch::nn::VarStore;
use tch::Tensor;

use crate::checkpoint::{CheckpointError, CheckpointStore};
use crate::config::Config;
use crate::train::sgd::Sgd;
use crate::weights;

use super::engine::SearchState;
use super::run_dir::RunDir;
use super::SearchError;

const STATE: &str = "state.json";
const WEIGHTS: &str = "supernet.safetensors";
const MOMENTUM: &str = "momentum.safetensors";

fn store(run: &RunDir, cfg: &Config) -> Result<CheckpointStore, SearchError> {
    CheckpointStore::open(run.checkpoints_dir(), cfg.run.keep_checkpoints).map_err(ckpt_err)
}

fn ckpt_err(e: CheckpointError) -> SearchError {
    SearchError::Checkpoint(e.to_string())
}

/// Writes the checkpoint of the boundary before generation `state.next_generation`.
pub fn save(
    run: &RunDir,
    cfg: &Config,
    vs: &VarStore,
    opt: &Sgd,
    state: &SearchState,
) -> Result<PathBuf, SearchError> {
    let store = store(run, cfg)?;
    let state_json = serde_json::to_vec(state).map_err(|e| SearchError::Checkpoint(e.to_string()))?;
    let saved = store
        .save_with(state.next_generation as u32, &cfg.digest(), |dir| -> Result<(), SearchError> {
            std::fs::write(dir.join(STATE), &state_json)
                .map_err(|e| SearchError::Io { path: dir.join(STATE), reason: e.to_string() })?;
            weights::save_safetensors(vs, dir.join(WEIGHTS))
                .map_err(|e| SearchError::Checkpoint(e.to_string()))?;
            let buffers = opt.momentum_buffers();
            let named: Vec<(&str, Tensor)> =
                buffers.iter().map(|(n, t)| (n.as_str(), t.to_device(tch::Device::Cpu))).collect();
            Tensor::write_safetensors(&named, dir.join(MOMENTUM))
                .map_err(|e| SearchError::Checkpoint(format!("{MOMENTUM}: {e}")))?;
            Ok(())
        })
        .map_err(ckpt_err)?;
    Ok(saved.dir)
}

/// Restores the newest intact checkpoint into `vs` and `opt`; returns its state and a line per
/// newer checkpoint that was skipped as corrupt. `None` when the run has no checkpoint yet.
pub fn load_latest(
    run: &RunDir,
    cfg: &Config,
    vs: &mut VarStore,
    opt: &mut Sgd,
) -> Result<Option<(SearchState, Vec<String>)>, SearchError> {
    let store = store(run, cfg)?;
    let Some(loaded) = store.load_latest(&cfg.digest()).map_err(ckpt_err)? else {
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
    let state: SearchState = serde_json::from_slice(loaded.require(STATE).map_err(ckpt_err)?)
        .map_err(|e| SearchError::Checkpoint(format!("{}: {e}", loaded.dir.join(STATE).display())))?;
    let tensors = weights::read_safetensors(loaded.dir.join(WEIGHTS))
        .map_err(|e| SearchError::Checkpoint(e.to_string()))?;
    weights::load_into(vs, tensors, &weights::LoadOptions::default())
        .map_err(|e| SearchError::Checkpoint(e.to_string()))?;
    let momentum = Tensor::read_safetensors(loaded.dir.join(MOMENTUM))
        .map_err(|e| SearchError::Checkpoint(format!("{}: {e}", loaded.dir.join(MOMENTUM).display())))?;
    opt.restore_momentum(momentum).map_err(|e| SearchError::Checkpoint(e.to_string()))?;
    Ok(Some((state, skipped)))
}
