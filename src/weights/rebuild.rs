//! From pickle values to [`TorchObject`]s: resolves storage persistent ids to the file's storage
//! bytes and calls the few torch functions state_dicts are pickled with (`torch/_utils.py`:
//! `_rebuild_tensor_v2`, `_rebuild_parameter`; `torch.Size`). Nothing else is ever called.

use std::collections::HashMap;
use std::io::Cursor;
use std::path::Path;

use tch::{Kind, Tensor};

use super::error::WeightsError;
use super::pickle::{self, kind_name, Value};
use super::torch_file::read_member;
use super::torch_object::{TorchDict, TorchObject};

/// Guards the recursive conversion against pathological nesting and self-referencing lists.
const MAX_DEPTH: usize = 200;
/// Largest element count accepted for a view that repeats storage elements (stride 0).
const MAX_EXPANDED_NUMEL: i64 = 1 << 27;

pub(super) fn allowed_global(module: &str, name: &str) -> bool {
    match module {
        "torch._utils" => {
            matches!(
                name,
                "_rebuild_tensor"
                    | "_rebuild_tensor_v2"
                    | "_rebuild_parameter"
                    | "_rebuild_parameter_with_state"
            )
        }
        "torch" => name == "Size" || storage_kind(name).is_some(),
        "torch.storage" => name == "UntypedStorage",
        _ => false,
    }
}

/// Element kind of a storage class (`torch.FloatStorage` ...); untyped storages hold bytes.
fn storage_kind(name: &str) -> Option<Kind> {
    Some(match name {
        "FloatStorage" => Kind::Float,
        "DoubleStorage" => Kind::Double,
        "HalfStorage" => Kind::Half,
        "BFloat16Storage" => Kind::BFloat16,
        "LongStorage" => Kind::Int64,
        "IntStorage" => Kind::Int,
        "ShortStorage" => Kind::Int16,
        "CharStorage" => Kind::Int8,
        "ByteStorage" | "UntypedStorage" => Kind::Uint8,
        "BoolStorage" => Kind::Bool,
        _ => return None,
    })
}

/// What a persistent id `('storage', storage_type, key, location, numel[, view_metadata])` names.
#[derive(Debug, Clone)]
pub(super) struct StorageRef {
    pub kind: Kind,
    pub key: String,
    numel: i64,
    /// Legacy storage views: (view key, offset, size) in elements of the root storage.
    view: Option<(String, i64, i64)>,
}

impl StorageRef {
    pub(super) fn parse(pid: &Value) -> Result<StorageRef, String> {
        let Value::Tuple(parts) = pid else {
            return Err(format!("persistent id is a {}, not a tuple", kind_name(pid)));
        };
        let text = |v: &Value| match v {
            Value::Str(s) => Some(s.clone()),
            Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        };
        match parts.as_slice() {
            [tag, storage_type, key, _location, numel, rest @ ..]
                if text(tag).as_deref() == Some("storage") =>
            {
                let kind = match storage_type {
                    Value::Global { name, .. } => storage_kind(name),
                    _ => None,
                }
                .ok_or_else(|| format!("unknown storage type {storage_type:?}"))?;
                let key = text(key).ok_or("storage key is not a string")?;
                let Value::Int(numel) = *numel else {
                    return Err("storage numel is not an int".into());
                };
                let view = match rest {
                    [] | [Value::None] => None,
                    [Value::Tuple(v)] => match v.as_slice() {
                        [view_key, Value::Int(offset), Value::Int(size)] => {
                            Some((text(view_key).ok_or("view key is not a string")?, *offset, *size))
                        }
                        _ => return Err("storage view metadata is not (key, offset, size)".into()),
                    },
                    _ => return Err("persistent id has extra fields".into()),
                };
                Ok(StorageRef { kind, key, numel, view })
            }
            _ => Err(format!("persistent id {pid:?} is not a ('storage', type, key, location, numel) tuple")),
        }
    }
}

pub(super) enum StorageSource<'a> {
    Zip { archive: zip::ZipArchive<Cursor<&'a [u8]>>, prefix: String },
    Legacy(HashMap<String, &'a [u8]>),
}

/// Turns pickle values into [`TorchObject`]s, loading each storage once.
pub(super) struct Rebuilder<'a> {
    path: &'a Path,
    member: String,
    storages: StorageSource<'a>,
    /// Root storages as 1-D tensors, by key: tensors sharing a storage share its memory.
    cache: HashMap<String, Tensor>,
    big_endian: bool,
}

impl<'a> Rebuilder<'a> {
    /// `member` names the pickle in errors; `big_endian` is the byte order of the storages.
    pub(super) fn new(path: &'a Path, member: &str, storages: StorageSource<'a>, big_endian: bool) -> Self {
        Rebuilder { path, member: member.into(), storages, cache: HashMap::new(), big_endian }
    }

    /// Converts the whole pickled object.
    pub(super) fn rebuild(&mut self, value: &Value) -> Result<TorchObject, WeightsError> {
        self.convert(value, "<root>", 0)
    }

    fn tensor_err(&self, at: &str, reason: impl Into<String>) -> WeightsError {
        WeightsError::Tensor { path: self.path.into(), key: at.into(), reason: reason.into() }
    }

    fn convert(&mut self, value: &Value, at: &str, depth: usize) -> Result<TorchObject, WeightsError> {
        if depth > MAX_DEPTH {
            return Err(WeightsError::Format {
                path: self.path.into(),
                reason: format!("values nested deeper than {MAX_DEPTH} (or a cycle) at {at}"),
            });
        }
        let list = |this: &mut Self, items: &[Value]| -> Result<Vec<TorchObject>, WeightsError> {
            items.iter().enumerate().map(|(i, v)| this.convert(v, &format!("{at}[{i}]"), depth + 1)).collect()
        };
        Ok(match value {
            Value::None => TorchObject::None,
            Value::Bool(b) => TorchObject::Bool(*b),
            Value::Int(i) => TorchObject::Int(*i),
            Value::BigInt(b) => TorchObject::BigInt(b.clone()),
            Value::Float(f) => TorchObject::Float(*f),
            Value::Str(s) => TorchObject::Str(s.clone()),
            Value::Bytes(b) => TorchObject::Bytes(b.clone()),
            Value::Tuple(items) => TorchObject::Tuple(list(self, items)?),
            Value::List(items) => TorchObject::List(list(self, &items.borrow())?),
            Value::Dict(dict) => {
                let dict = dict.borrow();
                let mut out = TorchDict::default();
                for (k, v) in &dict.entries {
                    let key = self.convert(k, at, depth + 1)?;
                    let here = match &key {
                        TorchObject::Str(s) => format!("{at}[{s:?}]"),
                        TorchObject::Int(i) => format!("{at}[{i}]"),
                        _ => format!("{at}[..]"),
                    };
                    out.entries.push((key, self.convert(v, &here, depth + 1)?));
                }
                for (name, v) in &dict.attributes {
                    let value = self.convert(v, &format!("{at}.{name}"), depth + 1)?;
                    out.attributes.push((name.clone(), value));
                }
                TorchObject::Dict(out)
            }
            Value::Object(object) => {
                let object = object.borrow();
                self.call(&object, at, depth)?
            }
            Value::Global { module, name } => {
                return Err(
                    self.tensor_err(at, format!("bare global {module}.{name} where a value was expected"))
                )
            }
            Value::PersistentId(_) => {
                return Err(self.tensor_err(at, "a storage outside a tensor is not supported"))
            }
        })
    }

    fn call(&mut self, object: &pickle::Object, at: &str, depth: usize) -> Result<TorchObject, WeightsError> {
        let (path, member) = (self.path.to_path_buf(), self.member.clone());
        let here = |reason: String| WeightsError::Pickle {
            path: path.clone(),
            member: member.clone(),
            offset: object.offset,
            reason: format!("{at}: {reason}"),
        };
        let callee = format!("{}.{}", object.module, object.name);
        if object.state.is_some() {
            return Err(here(format!("{callee} with BUILD state is not supported")));
        }
        match (object.module.as_str(), object.name.as_str()) {
            ("torch._utils", "_rebuild_tensor" | "_rebuild_tensor_v2") => {
                self.rebuild_tensor(&object.args, at).map_err(|e| match e {
                    RebuildError::Reason(reason) => here(format!("{callee}: {reason}")),
                    RebuildError::Weights(e) => e,
                })
            }
            ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") => {
                // (data, requires_grad, backward_hooks[, state]): the weights are in data.
                let Some(data) = object.args.first() else {
                    return Err(here(format!("{callee} without arguments")));
                };
                match self.convert(data, at, depth + 1)? {
                    tensor @ TorchObject::Tensor(_) => Ok(tensor),
                    other => Err(here(format!("{callee} of a {}, not a tensor", other.type_name()))),
                }
            }
            ("torch", "Size") => match object.args.as_slice() {
                [Value::Tuple(dims)] => Ok(TorchObject::Tuple(
                    dims.iter().map(|d| self.convert(d, at, depth + 1)).collect::<Result<_, _>>()?,
                )),
                _ => Err(here("torch.Size with arguments other than (tuple,)".into())),
            },
            _ => Err(here(format!("calling {callee} is not supported"))),
        }
    }

    /// `_rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks
    /// [, metadata])` or `_rebuild_tensor(storage, storage_offset, size, stride)`: a strided view
    /// of the storage, made contiguous.
    fn rebuild_tensor(&mut self, args: &[Value], at: &str) -> Result<TorchObject, RebuildError> {
        // `_rebuild_tensor` (PyTorch 0.3) stops after stride; requires_grad and hooks do not
        // change the values.
        let [Value::PersistentId(pid), Value::Int(offset), size, stride, ..] = args else {
            return Err(RebuildError::Reason(
                "arguments are not (storage, offset, size, stride, ...)".into(),
            ));
        };
        let storage = StorageRef::parse(pid).map_err(RebuildError::Reason)?;
        let size =
            int_tuple(size).ok_or_else(|| RebuildError::Reason("size is not a tuple of ints".into()))?;
        let stride =
            int_tuple(stride).ok_or_else(|| RebuildError::Reason("stride is not a tuple of ints".into()))?;
        if size.len() != stride.len() || size.iter().chain(&stride).any(|&d| d < 0) || *offset < 0 {
            return Err(RebuildError::Reason(format!(
                "bad view: size {size:?}, stride {stride:?}, offset {offset}"
            )));
        }
        let data = self.storage_tensor(&storage, at).map_err(RebuildError::Weights)?;
        let kind = storage.kind;
        if size.contains(&0) {
            let empty = Tensor::f_zeros(&size, (kind, tch::Device::Cpu))
                .map_err(|e| RebuildError::Weights(self.tensor_err(at, e.to_string())))?;
            return Ok(TorchObject::Tensor(empty));
        }
        // Stride-0 (expanded) views may hold more elements than their storage; making them
        // contiguous allocates all of them, so a damaged size must not ask for terabytes.
        let numel = size.iter().try_fold(1i64, |n, &d| n.checked_mul(d));
        if numel.is_none_or(|n| n > data.numel() as i64 && n > MAX_EXPANDED_NUMEL) {
            return Err(RebuildError::Weights(self.tensor_err(
                at,
                format!("view size {size:?} has more elements than storage {} can back", storage.key),
            )));
        }
        // The furthest element the view touches must lie inside the storage.
        let last = size
            .iter()
            .zip(&stride)
            .map(|(n, s)| (n - 1).saturating_mul(*s))
            .fold(*offset, i64::saturating_add);
        let available = data.size1().unwrap_or(0);
        if last >= available {
            return Err(RebuildError::Weights(self.tensor_err(
                at,
                format!("view size {size:?} stride {stride:?} offset {offset} reaches element {last}, storage {} has {available}", storage.key),
            )));
        }
        let tensor = data
            .f_as_strided(&size, &stride, Some(*offset))
            .and_then(|t| t.f_contiguous())
            .map_err(|e| RebuildError::Weights(self.tensor_err(at, e.to_string())))?;
        Ok(TorchObject::Tensor(tensor))
    }

    /// The storage (or legacy storage view) as a 1-D tensor of its element kind.
    fn storage_tensor(&mut self, storage: &StorageRef, at: &str) -> Result<Tensor, WeightsError> {
        if !self.cache.contains_key(&storage.key) {
            let bytes = match &mut self.storages {
                StorageSource::Zip { archive, prefix } => {
                    let name = format!("{prefix}data/{}", storage.key);
                    read_member(archive, &name).map_err(|reason| self.tensor_err(at, reason))?
                }
                StorageSource::Legacy(raw) => match raw.get(&storage.key) {
                    Some(bytes) => bytes.to_vec(),
                    None => {
                        return Err(self.tensor_err(at, format!("storage {} is not in the file", storage.key)))
                    }
                },
            };
            let tensor =
                bytes_to_tensor(bytes, storage.kind, self.big_endian).map_err(|r| self.tensor_err(at, r))?;
            self.cache.insert(storage.key.clone(), tensor);
        }
        let Some(root) = self.cache.get(&storage.key) else {
            return Err(self.tensor_err(at, format!("storage {} vanished from the cache", storage.key)));
        };
        let available = root.size1().unwrap_or(0);
        let (start, len) = match &storage.view {
            Some((_, offset, size)) => (*offset, *size),
            None => (0, storage.numel),
        };
        if start < 0 || len < 0 || start + len > available {
            return Err(self.tensor_err(
                at,
                format!(
                    "storage {} holds {available} elements, the file claims {}",
                    storage.key,
                    start + len
                ),
            ));
        }
        root.f_narrow(0, start, len).map_err(|e| self.tensor_err(at, e.to_string()))
    }
}

enum RebuildError {
    /// Bad arguments: reported at the REDUCE byte.
    Reason(String),
    Weights(WeightsError),
}

fn int_tuple(value: &Value) -> Option<Vec<i64>> {
    match value {
        Value::Tuple(items) => {
            items.iter().map(|v| if let Value::Int(i) = v { Some(*i) } else { None }).collect()
        }
        _ => None,
    }
}

/// Raw storage bytes in the file's byte order -> a 1-D tensor (native order).
pub(crate) fn bytes_to_tensor(mut bytes: Vec<u8>, kind: Kind, big_endian: bool) -> Result<Tensor, String> {
    let elem = kind.elt_size_in_bytes();
    if !bytes.len().is_multiple_of(elem) {
        return Err(format!("{} storage bytes are not a multiple of the {elem}-byte element", bytes.len()));
    }
    if big_endian != cfg!(target_endian = "big") {
        for chunk in bytes.chunks_exact_mut(elem) {
            chunk.reverse();
        }
    }
    let numel = (bytes.len() / elem) as i64;
    Tensor::f_from_data_size(&bytes, &[numel], kind).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_endian_storage_bytes_are_swapped() {
        let bytes: Vec<u8> = [1.5f32, -2.0].iter().flat_map(|v| v.to_be_bytes()).collect();
        let t = bytes_to_tensor(bytes, Kind::Float, true).expect("valid storage");
        assert_eq!(Vec::<f32>::try_from(&t).expect("f32 tensor"), vec![1.5, -2.0]);
    }

    #[test]
    fn ragged_storage_bytes_are_an_error() {
        assert!(bytes_to_tensor(vec![0; 7], Kind::Float, false).is_err());
    }

    fn rebuild(size: &[i64], stride: &[i64], offset: i64) -> Result<TorchObject, RebuildError> {
        let bytes: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut rebuilder = Rebuilder {
            path: Path::new("mem.pt"),
            member: "legacy stream".into(),
            storages: StorageSource::Legacy(HashMap::from([("k".to_string(), &bytes[..])])),
            cache: HashMap::new(),
            big_endian: false,
        };
        let pid = Value::Tuple(vec![
            Value::Str("storage".into()),
            Value::Global { module: "torch".into(), name: "FloatStorage".into() },
            Value::Str("k".into()),
            Value::Str("cpu".into()),
            Value::Int(4),
        ]);
        let ints = |v: &[i64]| Value::Tuple(v.iter().map(|&i| Value::Int(i)).collect());
        let args = [
            Value::PersistentId(Box::new(pid)),
            Value::Int(offset),
            ints(size),
            ints(stride),
            Value::Bool(false),
            Value::Dict(Default::default()),
        ];
        rebuilder.rebuild_tensor(&args, "t")
    }

    fn values(result: Result<TorchObject, RebuildError>) -> Vec<f32> {
        match result {
            Ok(TorchObject::Tensor(t)) => Vec::<f32>::try_from(&t.flatten(0, -1)).expect("f32"),
            Ok(other) => panic!("not a tensor: {other:?}"),
            Err(RebuildError::Reason(r)) => panic!("{r}"),
            Err(RebuildError::Weights(e)) => panic!("{e}"),
        }
    }

    #[test]
    fn views_inside_the_storage_are_rebuilt() {
        assert_eq!(values(rebuild(&[2, 2], &[1, 2], 0)), [1.0, 3.0, 2.0, 4.0]);
        assert_eq!(values(rebuild(&[2], &[1], 2)), [3.0, 4.0]);
        assert_eq!(values(rebuild(&[3], &[0], 1)), [2.0, 2.0, 2.0]);
        assert_eq!(values(rebuild(&[0, 5], &[5, 1], 0)), Vec::<f32>::new());
    }

    #[test]
    fn views_outside_the_storage_are_errors() {
        for (size, stride, offset) in [
            (&[3][..], &[2][..], 0),
            (&[2], &[1], 3),
            (&[1 << 20, 1 << 20], &[0, 0], 0),
            (&[2, 2], &[1], 0),
            (&[-1], &[1], 0),
        ] {
            assert!(rebuild(size, stride, offset).is_err(), "{size:?} {stride:?} {offset}");
        }
    }

    #[test]
    fn storage_persistent_id_parses_zip_and_legacy_forms() {
        let global = Value::Global { module: "torch".into(), name: "HalfStorage".into() };
        let zip_pid = Value::Tuple(vec![
            Value::Str("storage".into()),
            global.clone(),
            Value::Str("3".into()),
            Value::Str("cuda:0".into()),
            Value::Int(12),
        ]);
        let r = StorageRef::parse(&zip_pid).expect("zip form");
        assert_eq!((r.kind, r.key.as_str(), r.numel, r.view.is_none()), (Kind::Half, "3", 12, true));
        let legacy_pid = Value::Tuple(vec![
            Value::Str("storage".into()),
            global,
            Value::Str("140".into()),
            Value::Str("cpu".into()),
            Value::Int(12),
            Value::Tuple(vec![Value::Str("141".into()), Value::Int(4), Value::Int(8)]),
        ]);
        let r = StorageRef::parse(&legacy_pid).expect("legacy form with a view");
        assert_eq!(r.view, Some(("141".to_string(), 4, 8)));
        assert!(StorageRef::parse(&Value::Str("module".into())).is_err());
    }
}
