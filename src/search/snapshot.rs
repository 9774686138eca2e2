//! The supernet's weights as one generation's trainer left them: a deep copy that fitness
//! evaluators load into their own models while the trainer goes on changing its own.

use std::collections::HashMap;
use std::sync::Mutex;

use tch::nn::VarStore;
use tch::Tensor;

use super::SearchError;

/// Weights and BatchNorm buffers by state-dict name, copied off the trainer's variables.
pub struct WeightsSnapshot {
    /// The generation (0-based) whose training produced these weights.
    pub generation: usize,
    /// Behind a mutex only because a tensor may be read by one thread at a time; each evaluator
    /// holds it for one copy into its own model.
    tensors: Mutex<HashMap<String, Tensor>>,
}

impl WeightsSnapshot {
    /// Deep copies of every variable of `vs`.
    pub fn capture(vs: &VarStore, generation: usize) -> Self {
        let tensors =
            tch::no_grad(|| vs.variables().into_iter().map(|(name, t)| (name, t.detach().copy())).collect());
        Self { generation, tensors: Mutex::new(tensors) }
    }

    /// Calls `f` with every tensor, sorted by name (handles on the snapshot's, read under its
    /// lock).
    pub fn with_sorted<R>(&self, f: impl FnOnce(&[(String, Tensor)]) -> R) -> Result<R, SearchError> {
        let tensors =
            self.tensors.lock().map_err(|_| SearchError::Model("weights snapshot poisoned".into()))?;
        let mut sorted: Vec<(String, Tensor)> =
            tensors.iter().map(|(name, t)| (name.clone(), t.shallow_clone())).collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(f(&sorted))
    }

    /// Copies the snapshot into `vs`, variable by variable (cast to its kind, kept in its
    /// layout); every variable of `vs` must be in the snapshot.
    pub fn load_into(&self, vs: &VarStore) -> Result<(), SearchError> {
        let tensors =
            self.tensors.lock().map_err(|_| SearchError::Model("weights snapshot poisoned".into()))?;
        let mut variables = vs.variables();
        tch::no_grad(|| {
            for (name, dst) in variables.iter_mut() {
                let src = tensors
                    .get(name)
                    .ok_or_else(|| SearchError::Model(format!("weights snapshot has no variable {name}")))?;
                dst.f_copy_(src).map_err(|e| SearchError::Model(format!("copying {name}: {e}")))?;
            }
            Ok(())
        })
    }
}
