//! Weights as safetensors files, the interchange format PyTorch reads with
//! `safetensors.torch.load_file` + `load_state_dict(strict=True)`. Every VarStore variable is
//! written under its name; the file is replaced atomically (temp file, fsync, rename).

use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use super::error::WeightsError;

/// Writes every variable of `vs` (trainable or not) under its VarStore name.
pub fn save_safetensors(vs: &VarStore, path: impl AsRef<Path>) -> Result<(), WeightsError> {
    let mut variables: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    variables.sort_by(|a, b| a.0.cmp(&b.0));
    save_tensors_safetensors(&variables, path)
}

/// Writes named tensors (any device, any layout) as a safetensors file, atomically.
pub fn save_tensors_safetensors(
    tensors: &[(String, Tensor)],
    path: impl AsRef<Path>,
) -> Result<(), WeightsError> {
    let path = path.as_ref();
    let safetensors_err = |reason: String| WeightsError::Safetensors { path: path.into(), reason };
    let mut buffers = Vec::with_capacity(tensors.len());
    for (name, tensor) in tensors {
        let torch_err = |e: tch::TchError| WeightsError::Torch { key: name.clone(), reason: e.to_string() };
        let dtype = kind_to_dtype(tensor.kind()).ok_or_else(|| {
            safetensors_err(format!("{name}: kind {:?} has no safetensors dtype", tensor.kind()))
        })?;
        let cpu = tensor.f_to_device(Device::Cpu).and_then(|t| t.f_contiguous()).map_err(torch_err)?;
        let numel = cpu.numel();
        let mut bytes = vec![0u8; numel * cpu.kind().elt_size_in_bytes()];
        cpu.f_copy_data_u8(&mut bytes, numel).map_err(torch_err)?;
        let shape: Vec<usize> = cpu.size().iter().map(|&d| d as usize).collect();
        buffers.push((name.as_str(), dtype, shape, bytes));
    }
    let views = buffers
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            TensorView::new(*dtype, shape.clone(), bytes)
                .map(|v| (*name, v))
                .map_err(|e| safetensors_err(format!("{name}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let serialized = safetensors::serialize(views, None).map_err(|e| safetensors_err(e.to_string()))?;
    write_atomically(path, &serialized)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), WeightsError> {
    crate::fs_atomic::write_atomic(path, bytes)
        .map_err(|source| WeightsError::Io { path: path.into(), source })
}

/// Reads a safetensors file into CPU tensors, sorted by name.
pub fn read_safetensors(path: impl AsRef<Path>) -> Result<Vec<(String, Tensor)>, WeightsError> {
    let path = path.as_ref();
    let safetensors_err = |reason: String| WeightsError::Safetensors { path: path.into(), reason };
    let data = std::fs::read(path).map_err(|source| WeightsError::Io { path: path.into(), source })?;
    let file = SafeTensors::deserialize(&data).map_err(|e| safetensors_err(e.to_string()))?;
    let mut tensors = Vec::new();
    for (name, view) in file.tensors() {
        let kind = dtype_to_kind(view.dtype())
            .ok_or_else(|| safetensors_err(format!("{name}: dtype {:?} is not supported", view.dtype())))?;
        let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        let tensor = Tensor::f_from_data_size(view.data(), &shape, kind)
            .map_err(|e| WeightsError::Torch { key: name.clone(), reason: e.to_string() })?;
        tensors.push((name, tensor));
    }
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(tensors)
}

fn kind_to_dtype(kind: Kind) -> Option<Dtype> {
    Some(match kind {
        Kind::Bool => Dtype::BOOL,
        Kind::Uint8 => Dtype::U8,
        Kind::Int8 => Dtype::I8,
        Kind::Int16 => Dtype::I16,
        Kind::Int => Dtype::I32,
        Kind::Int64 => Dtype::I64,
        Kind::BFloat16 => Dtype::BF16,
        Kind::Half => Dtype::F16,
        Kind::Float => Dtype::F32,
        Kind::Double => Dtype::F64,
        _ => return None,
    })
}

fn dtype_to_kind(dtype: Dtype) -> Option<Kind> {
    Some(match dtype {
        Dtype::BOOL => Kind::Bool,
        Dtype::U8 => Kind::Uint8,
        Dtype::I8 => Kind::Int8,
        Dtype::I16 => Kind::Int16,
        Dtype::I32 => Kind::Int,
        Dtype::I64 => Kind::Int64,
        Dtype::BF16 => Kind::BFloat16,
        Dtype::F16 => Kind::Half,
        Dtype::F32 => Kind::Float,
        Dtype::F64 => Kind::Double,
        _ => return None,
    })
}
