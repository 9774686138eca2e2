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
    let serialized = safetensors_bytes(tensors)
        .map_err(|reason| WeightsError::Safetensors { path: path.into(), reason })?;
    write_atomically(path, &serialized)
}

/// The safetensors encoding of named tensors of any device and memory layout (channels-last
/// and other strided tensors are copied to a contiguous host buffer first; the file format only
/// knows row-major data). The error is the reason, for the caller to attach to its file.
pub fn safetensors_bytes(tensors: &[(String, Tensor)]) -> Result<Vec<u8>, String> {
    let mut buffers = Vec::with_capacity(tensors.len());
    for (name, tensor) in tensors {
        let dtype = kind_to_dtype(tensor.kind())
            .ok_or_else(|| format!("{name}: kind {:?} has no safetensors dtype", tensor.kind()))?;
        let cpu = tensor
            .f_to_device(Device::Cpu)
            .and_then(|t| t.f_contiguous())
            .map_err(|e| format!("{name}: {e}"))?;
        let numel = cpu.numel();
        let mut bytes = vec![0u8; numel * cpu.kind().elt_size_in_bytes()];
        cpu.f_copy_data_u8(&mut bytes, numel).map_err(|e| format!("{name}: {e}"))?;
        let shape: Vec<usize> = cpu.size().iter().map(|&d| d as usize).collect();
        buffers.push((name.as_str(), dtype, shape, bytes));
    }
    let views = buffers
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            TensorView::new(*dtype, shape.clone(), bytes)
                .map(|v| (*name, v))
                .map_err(|e| format!("{name}: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    safetensors::serialize(views, None).map_err(|e| e.to_string())
}

/// About the bytes [`safetensors_bytes`] makes of `tensors`, without copying them: their data
/// and an entry of the JSON header each. For checking disk space before a checkpoint is written.
pub fn safetensors_size<'a>(tensors: impl IntoIterator<Item = (&'a str, &'a Tensor)>) -> u64 {
    // `"NAME":{"dtype":"F32","shape":[...],"data_offsets":[...,...]},` beside the name.
    const HEADER_ENTRY: u64 = 64;
    let entry = |(name, t): (&str, &Tensor)| {
        t.numel() as u64 * t.kind().elt_size_in_bytes() as u64 + name.len() as u64 + HEADER_ENTRY
    };
    tensors.into_iter().map(entry).sum()
}

/// Reads safetensors bytes (named `path` in errors) into CPU tensors, sorted by name.
pub fn safetensors_from_bytes(path: &Path, data: &[u8]) -> Result<Vec<(String, Tensor)>, WeightsError> {
    let safetensors_err = |reason: String| WeightsError::Safetensors { path: path.into(), reason };
    let file = SafeTensors::deserialize(data).map_err(|e| safetensors_err(e.to_string()))?;
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

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), WeightsError> {
    crate::fs_atomic::write_atomic(path, bytes).map_err(|source| WeightsError::Io {
        op: "write",
        path: path.into(),
        source,
    })
}

/// Reads a safetensors file into CPU tensors, sorted by name.
pub fn read_safetensors(path: impl AsRef<Path>) -> Result<Vec<(String, Tensor)>, WeightsError> {
    let path = path.as_ref();
    let data =
        std::fs::read(path).map_err(|source| WeightsError::Io { op: "read", path: path.into(), source })?;
    safetensors_from_bytes(path, &data)
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
