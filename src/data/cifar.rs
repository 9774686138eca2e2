//! CIFAR-10 and CIFAR-100 in their "binary version" (what torchvision's `dset.CIFAR10/100` wrap in
//! train_search.py and test_cifar*.py): fixed-size records of label byte(s) then 3,072 pixel bytes in
//! CHW order (1,024 red, 1,024 green, 1,024 blue), which is already our `[C, H, W]` layout.

use std::path::{Path, PathBuf};

use super::dataset::InMemoryDataset;
use super::error::DataError;

const PIXELS: usize = 3 * 32 * 32;

/// Which part of a dataset to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitName {
    Train,
    Test,
}

/// CIFAR-100 carries two labels per image; the reference trains on the 100 fine ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Cifar100Labels {
    #[default]
    Fine,
    Coarse,
}

/// Reads CIFAR-10 from `dir`: `data_batch_1.bin` .. `data_batch_5.bin` for training, `test_batch.bin`
/// for test. Only the files of the requested split need to exist.
pub fn read_cifar10(dir: &Path, split: SplitName) -> Result<InMemoryDataset, DataError> {
    let mut dataset: Option<InMemoryDataset> = None;
    for file in cifar10_files(dir, split) {
        let part = read_cifar_file(&file, 0, 1, 10)?;
        match dataset.as_mut() {
            Some(all) => all.extend(part),
            None => dataset = Some(part),
        }
    }
    // `files` is never empty, so `dataset` is set; the fallback only keeps this free of unwrap.
    dataset.ok_or_else(|| DataError::EmptyFolder { path: dir.to_path_buf() })
}

/// Reads CIFAR-100 from `dir`: `train.bin` or `test.bin`, fine labels unless `labels` says coarse.
pub fn read_cifar100(
    dir: &Path,
    split: SplitName,
    labels: Cifar100Labels,
) -> Result<InMemoryDataset, DataError> {
    let file = cifar100_file(dir, split);
    match labels {
        Cifar100Labels::Coarse => read_cifar_file(&file, 0, 2, 20),
        Cifar100Labels::Fine => read_cifar_file(&file, 1, 2, 100),
    }
}

/// The images of CIFAR-10's `split` in `dir`, from the files' sizes alone (each must be there,
/// readable, and a whole number of records).
pub fn count_cifar10(dir: &Path, split: SplitName) -> Result<usize, DataError> {
    cifar10_files(dir, split).iter().map(|file| count_records(file, 1)).sum()
}

/// The images of CIFAR-100's `split` in `dir`, from the file's size alone.
pub fn count_cifar100(dir: &Path, split: SplitName) -> Result<usize, DataError> {
    count_records(&cifar100_file(dir, split), 2)
}

fn cifar10_files(dir: &Path, split: SplitName) -> Vec<PathBuf> {
    match split {
        SplitName::Train => (1..=5).map(|i| dir.join(format!("data_batch_{i}.bin"))).collect(),
        SplitName::Test => vec![dir.join("test_batch.bin")],
    }
}

fn cifar100_file(dir: &Path, split: SplitName) -> PathBuf {
    dir.join(match split {
        SplitName::Train => "train.bin",
        SplitName::Test => "test.bin",
    })
}

/// The records of `[header_len label bytes][3,072 pixels]` in the file at `path`, opened to
/// prove it readable but not read.
fn count_records(path: &Path, header_len: usize) -> Result<usize, DataError> {
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let len = file.metadata().map_err(|e| DataError::io(path, e))?.len();
    whole_records(path, len as usize, header_len + PIXELS)
}

/// `len` bytes as a number of `record_len`-byte records: at least one, and no part of one.
fn whole_records(path: &Path, len: usize, record_len: usize) -> Result<usize, DataError> {
    if len == 0 || !len.is_multiple_of(record_len) {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            reason: format!(
                "{len} bytes is not a whole number of {record_len}-byte records (record {} is incomplete)",
                len / record_len
            ),
        });
    }
    Ok(len / record_len)
}

/// Reads one file of records `[header_len label bytes][3,072 pixels]`, taking the label at
/// `label_offset` within the header.
fn read_cifar_file(
    path: &Path,
    label_offset: usize,
    header_len: usize,
    num_classes: usize,
) -> Result<InMemoryDataset, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let record_len = header_len + PIXELS;
    let count = whole_records(path, bytes.len(), record_len)?;
    let mut pixels = Vec::with_capacity(count * PIXELS);
    let mut labels = Vec::with_capacity(count);
    for (record, chunk) in bytes.chunks_exact(record_len).enumerate() {
        let label = chunk[label_offset] as usize;
        if label >= num_classes {
            return Err(DataError::LabelOutOfRange {
                path: path.to_path_buf(),
                record,
                label: label as i64,
                num_classes,
            });
        }
        labels.push(label as i64);
        pixels.extend_from_slice(&chunk[header_len..]);
    }
    InMemoryDataset::new(pixels, labels, [3, 32, 32], num_classes)
}
