//! Copies named tensors into a model's existing variables, as PyTorch's
//! `Module.load_state_dict(strict=True)` does: every name must match, every shape must match,
//! and nothing is changed unless everything fits.

use tch::nn::VarStore;
use tch::{Kind, Tensor};

use super::error::{LoadProblem, WeightsError};

/// PyTorch's BatchNorm counter buffer; tch's BatchNorm has no such variable.
const NUM_BATCHES_TRACKED: &str = "num_batches_tracked";

#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Skip a `*.num_batches_tracked` present on only one side instead of failing. The counter only
    /// matters for BatchNorm with `momentum=None`, which neither DARTS nor EvNAS uses.
    pub ignore_num_batches_tracked: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions { ignore_num_batches_tracked: true }
    }
}

impl LoadOptions {
    /// Every name on both sides must match, num_batches_tracked included.
    pub fn strict() -> Self {
        LoadOptions { ignore_num_batches_tracked: false }
    }
}

/// What `load_into` did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadReport {
    /// Variables overwritten, sorted by name.
    pub loaded: Vec<String>,
    /// Tensors whose kind was converted to the variable's: (name, from, to).
    pub converted: Vec<(String, Kind, Kind)>,
    /// num_batches_tracked names skipped by [`LoadOptions::ignore_num_batches_tracked`].
    pub skipped: Vec<String>,
}

/// Copies `tensors` into the variables of `vs` by name (under `no_grad`), converting each to the
/// variable's kind and device. Fails, changing nothing, with every missing, unexpected and
/// mis-shaped name listed.
pub fn load_into(
    vs: &mut VarStore,
    tensors: Vec<(String, Tensor)>,
    opts: &LoadOptions,
) -> Result<LoadReport, WeightsError> {
    let variables = vs.variables();
    let skippable =
        |name: &str| opts.ignore_num_batches_tracked && name.rsplit('.').next() == Some(NUM_BATCHES_TRACKED);
    let mut report = LoadReport::default();
    let mut problems = Vec::new();
    let mut pairs = Vec::with_capacity(tensors.len());
    let mut seen = std::collections::HashSet::new();
    for (name, tensor) in tensors {
        if !seen.insert(name.clone()) {
            // A duplicate name is as wrong as an unknown one: which copy was meant?
            problems.push(LoadProblem::Duplicate { key: name });
            continue;
        }
        match variables.get(&name) {
            None if skippable(&name) => report.skipped.push(name),
            None => problems.push(LoadProblem::Unexpected { key: name, shape: tensor.size() }),
            Some(var) if var.size() != tensor.size() => problems.push(LoadProblem::ShapeMismatch {
                key: name,
                model: var.size(),
                weights: tensor.size(),
            }),
            Some(var) => pairs.push((name, var.shallow_clone(), tensor)),
        }
    }
    for (name, var) in &variables {
        if seen.contains(name) {
            continue;
        }
        if skippable(name) {
            report.skipped.push(name.clone());
        } else {
            problems.push(LoadProblem::Missing { key: name.clone(), shape: var.size() });
        }
    }
    if !problems.is_empty() {
        problems.sort_by(|a, b| problem_key(a).cmp(problem_key(b)));
        return Err(WeightsError::Mismatch { problems });
    }
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    report.skipped.sort();
    tch::no_grad(|| -> Result<(), WeightsError> {
        for (name, mut var, tensor) in pairs {
            if tensor.kind() != var.kind() {
                report.converted.push((name.clone(), tensor.kind(), var.kind()));
            }
            let source = tensor
                .f_to_device(var.device())
                .and_then(|t| t.f_to_kind(var.kind()))
                .map_err(|e| WeightsError::Torch { key: name.clone(), reason: e.to_string() })?;
            var.f_copy_(&source)
                .map_err(|e| WeightsError::Torch { key: name.clone(), reason: e.to_string() })?;
            report.loaded.push(name);
        }
        Ok(())
    })?;
    Ok(report)
}

fn problem_key(problem: &LoadProblem) -> &str {
    match problem {
        LoadProblem::Missing { key, .. }
        | LoadProblem::Unexpected { key, .. }
        | LoadProblem::Duplicate { key }
        | LoadProblem::ShapeMismatch { key, .. } => key,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn a_name_given_twice_is_a_problem_and_nothing_is_copied() {
        let mut vs = VarStore::new(Device::Cpu);
        let w = vs.root().zeros("w", &[1]);
        let tensors = vec![
            ("w".to_string(), Tensor::from_slice(&[1.0f32])),
            ("w".to_string(), Tensor::from_slice(&[2.0f32])),
        ];
        match load_into(&mut vs, tensors, &LoadOptions::strict()) {
            Err(WeightsError::Mismatch { problems }) => {
                assert_eq!(problems, [LoadProblem::Duplicate { key: "w".into() }])
            }
            other => panic!("expected a mismatch, got {other:?}"),
        }
        assert_eq!(w.double_value(&[0]), 0.0);
    }
}
