//! The values a PyTorch file holds, as evnas sees them: Python scalars, strings, containers and
//! tensors (rebuilt as contiguous CPU tch tensors).

use tch::Tensor;

/// A value from a PyTorch file, with tensors rebuilt as (contiguous, CPU) tch tensors.
#[derive(Debug)]
pub enum TorchObject {
    None,
    Bool(bool),
    Int(i64),
    /// An integer beyond i64, as little-endian two's complement bytes.
    BigInt(Vec<u8>),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<TorchObject>),
    List(Vec<TorchObject>),
    Dict(TorchDict),
    Tensor(Tensor),
}

/// A dict or OrderedDict in file order; `attributes` holds instance attributes such as the
/// `_metadata` that `Module.state_dict()` attaches.
#[derive(Debug, Default)]
pub struct TorchDict {
    pub entries: Vec<(TorchObject, TorchObject)>,
    pub attributes: Vec<(String, TorchObject)>,
}

impl TorchDict {
    /// The value under a string key.
    pub fn get(&self, key: &str) -> Option<&TorchObject> {
        self.entries.iter().find(|(k, _)| matches!(k, TorchObject::Str(s) if s == key)).map(|(_, v)| v)
    }

    /// The attribute set on the dict (e.g. `_metadata`).
    pub fn attribute(&self, name: &str) -> Option<&TorchObject> {
        self.attributes.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }
}

impl TorchObject {
    /// Python's name for the kind of value, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            TorchObject::None => "None",
            TorchObject::Bool(_) => "bool",
            TorchObject::Int(_) | TorchObject::BigInt(_) => "int",
            TorchObject::Float(_) => "float",
            TorchObject::Str(_) => "str",
            TorchObject::Bytes(_) => "bytes",
            TorchObject::Tuple(_) => "tuple",
            TorchObject::List(_) => "list",
            TorchObject::Dict(_) => "dict",
            TorchObject::Tensor(_) => "tensor",
        }
    }

    pub fn as_dict(&self) -> Option<&TorchDict> {
        match self {
            TorchObject::Dict(d) => Some(d),
            _ => None,
        }
    }

    pub fn as_tensor(&self) -> Option<&Tensor> {
        match self {
            TorchObject::Tensor(t) => Some(t),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            TorchObject::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// A float, or an int read as a float.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            TorchObject::Float(f) => Some(*f),
            TorchObject::Int(i) => Some(*i as f64),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            TorchObject::Str(s) => Some(s),
            _ => None,
        }
    }
}
