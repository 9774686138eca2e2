//! Weights interchange between evnas (tch) and PyTorch.
//!
//! tch cannot read the files `torch.save(model.state_dict())` writes (an OrderedDict trips
//! `Tensor::loadz_multi`, and the pre-1.6 legacy format of the EvNAS authors' checkpoints is not
//! recognised at all), so this module reads them itself:
//! - [`read_torch_file`]: any `torch.save` file (zip or legacy) holding state_dicts / checkpoints;
//! - [`read_state_dict`]: the model's named tensors from such a file;
//! - [`load_into`]: copy named tensors into a `VarStore`, strictly, listing every problem;
//! - [`save_safetensors`] / [`read_safetensors`]: the format evnas writes for PyTorch to read;
//! - [`read_weights`]: either kind of file, chosen by extension.

mod error;
mod load;
mod pickle;
mod rebuild;
mod safetensors_file;
mod state_dict;
mod torch_file;
mod torch_object;

use std::path::Path;

pub use error::{LoadProblem, WeightsError};
pub use load::{load_into, LoadOptions, LoadReport};
pub use safetensors_file::{
    read_safetensors, safetensors_bytes, safetensors_from_bytes, safetensors_size, save_safetensors,
    save_tensors_safetensors,
};
pub use state_dict::{read_state_dict, strip_data_parallel_prefix};
pub use torch_file::read_torch_file;
pub use torch_object::{TorchDict, TorchObject};

/// Named tensors from a weights file chosen by extension: `.pt`, `.pth`, `.pth.tar` (PyTorch,
/// via [`read_state_dict`]) or `.safetensors`.
pub fn read_weights(path: impl AsRef<Path>) -> Result<Vec<(String, tch::Tensor)>, WeightsError> {
    let path = path.as_ref();
    let name = path.file_name().map(|n| n.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    if name.ends_with(".safetensors") {
        read_safetensors(path)
    } else if [".pt", ".pth", ".pth.tar"].iter().any(|ext| name.ends_with(ext)) {
        read_state_dict(path)
    } else {
        Err(WeightsError::UnknownExtension { path: path.into() })
    }
}
