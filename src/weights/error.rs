//! Errors of the weights interchange: every error about a file names the file; pickle errors
//! also name the byte offset and the opcode or global that stopped the reader.

use std::fmt;
use std::path::PathBuf;

/// One reason a set of tensors does not fit a model's variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadProblem {
    /// The model has this variable but the weights do not.
    Missing { key: String, shape: Vec<i64> },
    /// The weights have this tensor but the model has no variable of that name.
    Unexpected { key: String, shape: Vec<i64> },
    /// The weights name this tensor more than once.
    Duplicate { key: String },
    /// Both have it, with different shapes.
    ShapeMismatch { key: String, model: Vec<i64>, weights: Vec<i64> },
}

impl fmt::Display for LoadProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadProblem::Missing { key, shape } => write!(f, "missing {key} {shape:?}"),
            LoadProblem::Unexpected { key, shape } => write!(f, "unexpected {key} {shape:?}"),
            LoadProblem::Duplicate { key } => write!(f, "{key} given more than once"),
            LoadProblem::ShapeMismatch { key, model, weights } => {
                write!(f, "shape of {key}: model {model:?}, weights {weights:?}")
            }
        }
    }
}

/// Joins problems for the error message: all of them, not just the first.
/// Joins problems for the error message: the first few in full, then how many more of each
/// kind (weights for another network give hundreds, which no one reads on one line).
fn list_problems(problems: &[LoadProblem]) -> String {
    const SHOWN: usize = 8;
    let mut text = problems.iter().take(SHOWN).map(|p| p.to_string()).collect::<Vec<_>>().join("; ");
    if problems.len() > SHOWN {
        let rest = &problems[SHOWN..];
        let count = |f: fn(&LoadProblem) -> bool| rest.iter().filter(|p| f(p)).count();
        let kinds = [
            (count(|p| matches!(p, LoadProblem::Missing { .. })), "missing"),
            (count(|p| matches!(p, LoadProblem::Unexpected { .. })), "unexpected"),
            (count(|p| matches!(p, LoadProblem::ShapeMismatch { .. })), "with another shape"),
            (count(|p| matches!(p, LoadProblem::Duplicate { .. })), "given twice"),
        ];
        let kinds: Vec<String> =
            kinds.iter().filter(|(n, _)| *n > 0).map(|(n, what)| format!("{n} {what}")).collect();
        text.push_str(&format!("; and {} more ({})", rest.len(), kinds.join(", ")));
    }
    text
}

#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("cannot {op} {}", path.display())]
    Io { op: &'static str, path: PathBuf, source: std::io::Error },

    /// The pickle stream could not be decoded: unknown opcode or global, truncation, bad operands.
    #[error("{}: {member}, byte {offset}: {reason}", path.display())]
    Pickle { path: PathBuf, member: String, offset: u64, reason: String },

    /// The container around the pickle is wrong: magic number, zip layout, storage bytes.
    #[error("{}: {reason}", path.display())]
    Format { path: PathBuf, reason: String },

    /// A tensor in the file cannot be rebuilt (bad storage reference, out-of-bounds view).
    #[error("{}: tensor at {key}: {reason}", path.display())]
    Tensor { path: PathBuf, key: String, reason: String },

    /// The file was read but holds no state_dict (a dict of name -> tensor).
    #[error("{}: no state_dict: {reason}", path.display())]
    NotAStateDict { path: PathBuf, reason: String },

    /// The file's extension names no weights format this module reads.
    #[error("{}: unknown weights file extension (expected .pt, .pth, .pth.tar or .safetensors)", path.display())]
    UnknownExtension { path: PathBuf },

    #[error("{}: safetensors: {reason}", path.display())]
    Safetensors { path: PathBuf, reason: String },

    /// The tensors do not fit the model; lists every problem found.
    #[error("weights do not fit the model ({} problems): {}", problems.len(), list_problems(problems))]
    Mismatch { problems: Vec<LoadProblem> },

    /// libtorch refused an operation on a named tensor.
    #[error("tensor {key}: {reason}")]
    Torch { key: String, reason: String },
}
