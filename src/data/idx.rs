//! MNIST / Fashion-MNIST in IDX format (LeCun's `train-images-idx3-ubyte[.gz]` files): a big-endian
//! header (magic 0x00000803 for `[N, H, W]` u8 images, 0x00000801 for `[N]` u8 labels, then one u32 per
//! dimension) followed by the raw bytes. Gzipped files are recognised by their gzip signature.

use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};

use super::cifar::SplitName;
use super::dataset::InMemoryDataset;
use super::error::DataError;

pub const IDX_IMAGES_MAGIC: u32 = 0x0000_0803;
pub const IDX_LABELS_MAGIC: u32 = 0x0000_0801;
/// Where Fashion-MNIST is installed on this system.
pub const DEFAULT_FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// Reads the images and labels of `split` from `dir`, accepting either `name` or `name.gz` for each file
/// (`train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`).
pub fn read_mnist_like(
    dir: &Path,
    split: SplitName,
    num_classes: usize,
) -> Result<InMemoryDataset, DataError> {
    let (images_path, labels_path) = split_files(dir, split);
    let (pixels, [count, height, width]) = read_idx_images(&images_path)?;
    let labels = read_idx_labels(&labels_path)?;
    if labels.len() != count {
        return Err(DataError::CountMismatch {
            images_path,
            images: count,
            labels_path,
            labels: labels.len(),
        });
    }
    let mut wide = Vec::with_capacity(labels.len());
    for (record, &label) in labels.iter().enumerate() {
        if label as usize >= num_classes {
            return Err(DataError::LabelOutOfRange {
                path: labels_path,
                record,
                label: label as i64,
                num_classes,
            });
        }
        wide.push(label as i64);
    }
    InMemoryDataset::new(pixels, wide, [1, height, width], num_classes)
}

/// The images and labels in `dir` for `split`, without decoding or keeping an image: both files
/// there and readable, of the right kind, agreeing in a count above zero, and as long as their
/// headers say (a gzipped file inflated to the end, so that a stream cut short is found too).
pub fn count_mnist_like(dir: &Path, split: SplitName) -> Result<usize, DataError> {
    let (images_path, labels_path) = split_files(dir, split);
    let (dims, images_len) = read_header(&images_path, IDX_IMAGES_MAGIC, 3)?;
    let [images, height, width] = [dims[0], dims[1], dims[2]];
    if images == 0 {
        let reason = "0 images: nothing to read".to_string();
        return Err(DataError::BadDimensions { path: images_path, reason });
    }
    let body = image_body_len(&images_path, [images, height, width])?;
    check_body_len(&images_path, images_len, body, height * width)?;
    let (dims, labels_len) = read_header(&labels_path, IDX_LABELS_MAGIC, 1)?;
    let labels = dims[0];
    check_body_len(&labels_path, labels_len, labels, 1)?;
    if images != labels {
        return Err(DataError::CountMismatch { images_path, images, labels_path, labels });
    }
    Ok(images)
}

/// The image and label files of `split` in `dir`.
fn split_files(dir: &Path, split: SplitName) -> (PathBuf, PathBuf) {
    let prefix = match split {
        SplitName::Train => "train",
        SplitName::Test => "t10k",
    };
    (
        find_file(dir, &format!("{prefix}-images-idx3-ubyte")),
        find_file(dir, &format!("{prefix}-labels-idx1-ubyte")),
    )
}

/// Prefers the raw file and falls back to its `.gz`; the returned path is the one errors will name.
fn find_file(dir: &Path, name: &str) -> PathBuf {
    let raw = dir.join(name);
    if raw.exists() {
        return raw;
    }
    dir.join(format!("{name}.gz"))
}

/// Reads an IDX image file: returns the pixels and `[count, height, width]`.
pub fn read_idx_images(path: &Path) -> Result<(Vec<u8>, [usize; 3]), DataError> {
    let bytes = read_maybe_gzipped(path)?;
    let dims = parse_header(path, &bytes, IDX_IMAGES_MAGIC, 3)?;
    let [count, height, width] = [dims[0], dims[1], dims[2]];
    let body = &bytes[16..];
    let expected = image_body_len(path, [count, height, width])?;
    check_body_len(path, body.len(), expected, height * width)?;
    Ok((body.to_vec(), [count, height, width]))
}

/// The data bytes `[count, height, width]` images take: refused for a zero side, or a count
/// that overflows.
fn image_body_len(path: &Path, [count, height, width]: [usize; 3]) -> Result<usize, DataError> {
    let bad = |reason: String| DataError::BadDimensions { path: path.to_path_buf(), reason };
    if height == 0 || width == 0 {
        return Err(bad(format!("image size {height}x{width} has a zero side")));
    }
    count
        .checked_mul(height * width)
        .ok_or_else(|| bad(format!("{count} images of {height}x{width} overflow")))
}

/// Reads an IDX label file.
pub fn read_idx_labels(path: &Path) -> Result<Vec<u8>, DataError> {
    let bytes = read_maybe_gzipped(path)?;
    let dims = parse_header(path, &bytes, IDX_LABELS_MAGIC, 1)?;
    let body = &bytes[8..];
    check_body_len(path, body.len(), dims[0], 1)?;
    Ok(body.to_vec())
}

fn check_body_len(path: &Path, found: usize, expected: usize, record_len: usize) -> Result<(), DataError> {
    if found < expected {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            reason: format!(
                "header promises {expected} data bytes, file holds {found} (record {} is incomplete)",
                found / record_len
            ),
        });
    }
    if found > expected {
        return Err(DataError::BadDimensions {
            path: path.to_path_buf(),
            reason: format!("header promises {expected} data bytes, file holds {found} (trailing bytes)"),
        });
    }
    Ok(())
}

/// Checks the magic number and returns the `rank` dimensions that follow it.
fn parse_header(path: &Path, bytes: &[u8], magic: u32, rank: usize) -> Result<Vec<usize>, DataError> {
    let header_len = 4 + 4 * rank;
    if bytes.len() < header_len {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            reason: format!("{} bytes is shorter than the {header_len}-byte IDX header", bytes.len()),
        });
    }
    let word =
        |i: usize| u32::from_be_bytes([bytes[4 * i], bytes[4 * i + 1], bytes[4 * i + 2], bytes[4 * i + 3]]);
    let found = word(0);
    if found != magic {
        return Err(DataError::BadMagic { path: path.to_path_buf(), found, expected: magic });
    }
    Ok((1..=rank).map(|i| word(i) as usize).collect())
}

/// The `rank` dimensions in the header of the (maybe gzipped) IDX file at `path`, and the
/// length of its data after the header. A gzipped file is inflated to count its length (and to
/// find a stream cut short), keeping nothing but the header.
fn read_header(path: &Path, magic: u32, rank: usize) -> Result<(Vec<usize>, usize), DataError> {
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let len = file.metadata().map_err(|e| DataError::io(path, e))?.len() as usize;
    let mut reader = std::io::BufReader::new(file);
    let gzipped = reader.fill_buf().map_err(|e| DataError::io(path, e))?.starts_with(&[0x1f, 0x8b]);
    let header_len = 4 + 4 * rank;
    let mut header = Vec::new();
    let len = if gzipped {
        let gzip_error = |e: std::io::Error| DataError::Truncated {
            path: path.to_path_buf(),
            reason: format!("gzip stream: {e}"),
        };
        let mut inflated = flate2::bufread::GzDecoder::new(reader);
        (&mut inflated).take(header_len as u64).read_to_end(&mut header).map_err(gzip_error)?;
        header.len() + std::io::copy(&mut inflated, &mut std::io::sink()).map_err(gzip_error)? as usize
    } else {
        reader.take(header_len as u64).read_to_end(&mut header).map_err(|e| DataError::io(path, e))?;
        len
    };
    Ok((parse_header(path, &header, magic, rank)?, len.saturating_sub(header_len)))
}

fn read_maybe_gzipped(path: &Path) -> Result<Vec<u8>, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..]).read_to_end(&mut out).map_err(|e| DataError::Truncated {
            path: path.to_path_buf(),
            reason: format!("gzip stream: {e}"),
        })?;
        Ok(out)
    } else {
        Ok(bytes)
    }
}
