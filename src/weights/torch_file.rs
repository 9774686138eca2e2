//! Reads files written by `torch.save`: the zip format (default since PyTorch 1.6) and the legacy
//! stream format (`_use_new_zipfile_serialization=False`, the default of PyTorch <= 1.5 and the
//! format of the EvNAS authors' published checkpoints). Layouts follow `torch/serialization.py`
//! (`_save`, `_legacy_save`, `_load`, `_legacy_load`) and `torch/_utils.py` (`_rebuild_tensor_v2`,
//! `_rebuild_parameter`).
//!
//! Only the globals that state_dicts and training checkpoints contain are accepted; everything
//! else (a pickled `nn.Module`, a custom class) is refused with the file, byte and global named.

use std::collections::HashMap;
use std::io::{Cursor, Read};
use std::path::Path;

use super::error::WeightsError;
use super::pickle::{self, kind_name, PickleError, Value};
use super::rebuild::{allowed_global, Rebuilder, StorageRef, StorageSource};
use super::torch_object::TorchObject;

/// `torch.save`'s legacy magic number 0x1950a86a20f9469cfc6c as LONG1 writes it.
const LEGACY_MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
const LEGACY_PROTOCOL_VERSION: i64 = 1001;

/// Reads a file written by `torch.save` (zip or legacy format).
pub fn read_torch_file(path: impl AsRef<Path>) -> Result<TorchObject, WeightsError> {
    let path = path.as_ref();
    let data =
        std::fs::read(path).map_err(|source| WeightsError::Io { op: "read", path: path.into(), source })?;
    if data.is_empty() {
        return Err(WeightsError::Format { path: path.into(), reason: "the file is empty".into() });
    }
    if data.starts_with(b"PK\x03\x04") {
        read_zip(path, &data)
    } else {
        read_legacy(path, &data)
    }
}

fn read_zip(path: &Path, data: &[u8]) -> Result<TorchObject, WeightsError> {
    let format_err = |reason: String| WeightsError::Format { path: path.into(), reason };
    let mut archive = zip::ZipArchive::new(Cursor::new(data))
        .map_err(|e| format_err(format!("not a readable zip archive (truncated?): {e}")))?;
    // The archive's top folder is named after the file at save time, so search for it.
    let pickle_name = archive
        .file_names()
        .find(|n| n.strip_suffix("/data.pkl").is_some_and(|dir| !dir.is_empty() && !dir.contains('/')))
        .map(str::to_string)
        .ok_or_else(|| format_err("zip archive has no <dir>/data.pkl: not a torch.save file".into()))?;
    let prefix = pickle_name.trim_end_matches("data.pkl").to_string();
    let pickle_bytes = read_member(&mut archive, &pickle_name).map_err(format_err)?;
    let big_endian = match read_member(&mut archive, &format!("{prefix}byteorder")) {
        Ok(order) if order == b"big" => true,
        Ok(order) if order == b"little" => false,
        Ok(order) => {
            return Err(format_err(format!(
                "byteorder record {:?} is neither little nor big",
                String::from_utf8_lossy(&order)
            )))
        }
        // Older writers leave the record out; they ran on little-endian machines.
        Err(_) => false,
    };
    let unpickled =
        pickle::unpickle(&pickle_bytes, 0, &allowed_global).map_err(|e| pickle_err(path, &pickle_name, e))?;
    Rebuilder::new(path, &pickle_name, StorageSource::Zip { archive, prefix }, big_endian)
        .rebuild(&unpickled.value)
}

pub(super) fn read_member(
    archive: &mut zip::ZipArchive<Cursor<&[u8]>>,
    name: &str,
) -> Result<Vec<u8>, String> {
    let mut file = archive.by_name(name).map_err(|e| format!("zip member {name}: {e}"))?;
    // No capacity from the header: a damaged size field must not become a huge allocation.
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(|e| format!("zip member {name}: {e}"))?;
    Ok(bytes)
}

fn pickle_err(path: &Path, member: &str, e: PickleError) -> WeightsError {
    WeightsError::Pickle { path: path.into(), member: member.into(), offset: e.offset, reason: e.reason }
}

fn read_legacy(path: &Path, data: &[u8]) -> Result<TorchObject, WeightsError> {
    let format_err = |reason: String| WeightsError::Format { path: path.into(), reason };
    let member = "legacy stream";
    let no_globals = |_: &str, _: &str| false;
    let not_torch =
        || format_err("not a PyTorch file: neither a zip archive nor the legacy magic number".to_string());
    let magic = pickle::unpickle(data, 0, &no_globals).map_err(|_| not_torch())?;
    if !matches!(&magic.value, Value::BigInt(b) if b[..] == LEGACY_MAGIC) {
        return Err(not_torch());
    }
    let version = pickle::unpickle(data, magic.end, &no_globals).map_err(|e| pickle_err(path, member, e))?;
    if !matches!(version.value, Value::Int(LEGACY_PROTOCOL_VERSION)) {
        return Err(format_err(format!("legacy protocol version {:?} is not 1001", version.value)));
    }
    let sys_info =
        pickle::unpickle(data, version.end, &no_globals).map_err(|e| pickle_err(path, member, e))?;
    let big_endian = legacy_big_endian(&sys_info.value).map_err(format_err)?;
    let object =
        pickle::unpickle(data, sys_info.end, &allowed_global).map_err(|e| pickle_err(path, member, e))?;
    let keys = pickle::unpickle(data, object.end, &no_globals).map_err(|e| pickle_err(path, member, e))?;

    // Storage bytes follow in key order, each as an 8-byte element count and the raw elements;
    // the element size comes from the storage type the object pickle gave that key.
    let mut kinds = HashMap::new();
    for pid in &object.persistent_ids {
        let storage = StorageRef::parse(pid).map_err(|reason| WeightsError::Tensor {
            path: path.into(),
            key: "<persistent id>".into(),
            reason,
        })?;
        kinds.insert(storage.key.clone(), storage.kind);
    }
    let Value::List(key_list) = &keys.value else {
        return Err(format_err(format!("storage key list is a {}, not a list", kind_name(&keys.value))));
    };
    let mut raw = HashMap::new();
    let mut pos = keys.end;
    for key in key_list.borrow().iter() {
        let Value::Str(key) = key else {
            return Err(format_err("storage key is not a string".into()));
        };
        let Some(kind) = kinds.get(key) else {
            return Err(format_err(format!("storage {key} is listed but no tensor refers to it")));
        };
        let count =
            data.get(pos..pos + 8).map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default())).ok_or_else(
                || format_err(format!("truncated: file ends at byte {} before storage {key}", data.len())),
            )?;
        let elem = kind.elt_size_in_bytes() as u64;
        let nbytes = count.checked_mul(elem).and_then(|n| usize::try_from(n).ok());
        let start = pos + 8;
        let end =
            nbytes.and_then(|n| start.checked_add(n)).filter(|&end| end <= data.len()).ok_or_else(|| {
                format_err(format!(
                "truncated: storage {key} needs {count} x {elem} bytes from byte {start}, the file has {}",
                data.len()
            ))
            })?;
        raw.insert(key.clone(), &data[start..end]);
        pos = end;
    }
    Rebuilder::new(path, member, StorageSource::Legacy(raw), big_endian).rebuild(&object.value)
}

fn legacy_big_endian(sys_info: &Value) -> Result<bool, String> {
    let Value::Dict(dict) = sys_info else {
        return Err(format!("legacy sys_info is a {}, not a dict", kind_name(sys_info)));
    };
    let dict = dict.borrow();
    let little = dict.entries.iter().find_map(|(k, v)| match (k, v) {
        (Value::Str(k), Value::Bool(b)) if k == "little_endian" => Some(*b),
        _ => None,
    });
    Ok(!little.unwrap_or(true))
}
