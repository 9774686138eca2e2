//! Errors of the data pipeline: every failure about a file names the file (and the record when one is
//! at fault), so a bad download is found without a debugger.

use std::path::PathBuf;

/// What can go wrong while reading, splitting, augmenting or batching a dataset.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot read {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: truncated: {reason}")]
    Truncated { path: PathBuf, reason: String },
    #[error("{path}: bad IDX magic 0x{found:08x}, expected 0x{expected:08x}")]
    BadMagic { path: PathBuf, found: u32, expected: u32 },
    #[error("{path}: bad dimensions: {reason}")]
    BadDimensions { path: PathBuf, reason: String },
    #[error("{path}: record {record}: label {label} out of range (dataset has {num_classes} classes)")]
    LabelOutOfRange { path: PathBuf, record: usize, label: i64, num_classes: usize },
    #[error("{images_path} holds {images} images but {labels_path} holds {labels} labels")]
    CountMismatch { images_path: PathBuf, images: usize, labels_path: PathBuf, labels: usize },
    #[error("{path}: cannot decode image: {reason}")]
    Decode { path: PathBuf, reason: String },
    #[error("{path}: image is {found_w}x{found_h}, expected {expected_w}x{expected_h}")]
    WrongImageSize { path: PathBuf, found_w: u32, found_h: u32, expected_w: u32, expected_h: u32 },
    #[error("{path}: no images found (expected one subfolder per class holding JPEG/PNG files)")]
    EmptyFolder { path: PathBuf },
    #[error("unknown dataset {name:?} (expected one of {})", super::DatasetKind::names())]
    UnknownDataset { name: String },
    #[error("dataset {dataset} has no in-memory reader (it is decoded per batch from a folder)")]
    NotInMemory { dataset: &'static str },
    #[error("invalid data setting: {reason}")]
    InvalidSetting { reason: String },
    #[error("index {index} out of range for a dataset of {len} items")]
    IndexOutOfRange { index: usize, len: usize },
    #[error("tensor operation failed")]
    Tensor(#[from] tch::TchError),
    #[error("could not start the batch producer thread")]
    Spawn(#[source] std::io::Error),
}

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io { path: path.into(), source }
    }
}
