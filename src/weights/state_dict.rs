//! From a PyTorch file to a flat list of named tensors: a plain state_dict, or the state_dict
//! inside a training checkpoint (`{'epoch': .., 'state_dict': .., ...}` as the reference's
//! `utils.save_checkpoint` writes), with DataParallel's `module.` prefix removed.

use std::path::Path;

use tch::Tensor;

use super::error::WeightsError;
use super::torch_file::read_torch_file;
use super::torch_object::{TorchDict, TorchObject};

/// Checkpoint entries that may hold the model's state_dict, in the order they are tried.
const STATE_DICT_ENTRIES: [&str; 3] = ["state_dict", "model", "net"];
/// What `nn.DataParallel` puts before every key.
const DATA_PARALLEL_PREFIX: &str = "module.";

/// Reads the model weights from a `.pt`/`.pth`/`.pth.tar` file: the file's dict if every value is
/// a tensor, otherwise its `state_dict`, `model` or `net` entry. Keys keep the file's order; a
/// `module.` prefix is stripped when every key has it.
pub fn read_state_dict(path: impl AsRef<Path>) -> Result<Vec<(String, Tensor)>, WeightsError> {
    let path = path.as_ref();
    let object = read_torch_file(path)?;
    let not_state_dict = |reason: String| WeightsError::NotAStateDict { path: path.into(), reason };
    let TorchObject::Dict(top) = object else {
        return Err(not_state_dict(format!("the file holds a {}, not a dict", object.type_name())));
    };
    let dict = if is_tensor_dict(&top) {
        top
    } else {
        let entry = STATE_DICT_ENTRIES.iter().find(|name| top.get(name).is_some()).ok_or_else(|| {
            not_state_dict(format!(
                "the dict is empty or has non-tensor values, and has none of the entries {STATE_DICT_ENTRIES:?}"
            ))
        })?;
        let Some((_, TorchObject::Dict(inner))) =
            top.entries.into_iter().find(|(k, _)| k.as_str() == Some(entry))
        else {
            return Err(not_state_dict(format!("entry {entry:?} is not a dict")));
        };
        if !is_tensor_dict(&inner) {
            return Err(not_state_dict(format!("entry {entry:?} has values that are not tensors")));
        }
        inner
    };
    let mut tensors = Vec::with_capacity(dict.entries.len());
    for (key, value) in dict.entries {
        if let (TorchObject::Str(name), TorchObject::Tensor(tensor)) = (key, value) {
            tensors.push((name, tensor));
        }
    }
    Ok(strip_data_parallel_prefix(tensors))
}

/// A state_dict: string keys and tensor values only (an empty dict is not one).
fn is_tensor_dict(dict: &TorchDict) -> bool {
    !dict.entries.is_empty()
        && dict.entries.iter().all(|(k, v)| matches!((k, v), (TorchObject::Str(_), TorchObject::Tensor(_))))
}

/// Removes `module.` from every key, but only when every key has it: a model whose own
/// submodule is called `module` keeps its names.
pub fn strip_data_parallel_prefix(tensors: Vec<(String, Tensor)>) -> Vec<(String, Tensor)> {
    if tensors.is_empty() || !tensors.iter().all(|(k, _)| k.starts_with(DATA_PARALLEL_PREFIX)) {
        return tensors;
    }
    tensors.into_iter().map(|(k, t)| (k[DATA_PARALLEL_PREFIX.len()..].to_string(), t)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(tensors: &[(String, Tensor)]) -> Vec<&str> {
        tensors.iter().map(|(k, _)| k.as_str()).collect()
    }

    #[test]
    fn prefix_is_stripped_only_when_every_key_has_it() {
        let all =
            vec![("module.a".to_string(), Tensor::from(1.0)), ("module.b".to_string(), Tensor::from(2.0))];
        assert_eq!(names(&strip_data_parallel_prefix(all)), ["a", "b"]);
        let some = vec![("module.a".to_string(), Tensor::from(1.0)), ("b".to_string(), Tensor::from(2.0))];
        assert_eq!(names(&strip_data_parallel_prefix(some)), ["module.a", "b"]);
    }
}
