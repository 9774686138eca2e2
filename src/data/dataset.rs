//! A dataset decoded once into memory: one contiguous `u8` buffer `[N, C, H, W]` plus labels. CIFAR and
//! Fashion-MNIST fit (50,000 x 3,072 bytes = 150 MiB), so every epoch and every individual's fitness
//! evaluation reads RAM instead of re-decoding files as the reference's DataLoader does.

use super::error::DataError;

/// Images as raw pixels (`[N, C, H, W]`, row-major, u8) and one label per image.
#[derive(Debug, Clone, PartialEq)]
pub struct InMemoryDataset {
    pixels: Vec<u8>,
    labels: Vec<i64>,
    shape: [usize; 3],
    num_classes: usize,
}

impl InMemoryDataset {
    /// Builds a dataset, checking that the buffer holds exactly `labels.len()` images of `shape` and
    /// that every label is below `num_classes`.
    pub fn new(
        pixels: Vec<u8>,
        labels: Vec<i64>,
        shape: [usize; 3],
        num_classes: usize,
    ) -> Result<Self, DataError> {
        let image_len: usize = shape.iter().product();
        if image_len == 0 || pixels.len() != labels.len() * image_len {
            return Err(DataError::InvalidSetting {
                reason: format!(
                    "pixel buffer of {} bytes does not hold {} images of shape {:?}",
                    pixels.len(),
                    labels.len(),
                    shape
                ),
            });
        }
        if let Some((index, &label)) =
            labels.iter().enumerate().find(|(_, &l)| l < 0 || l as usize >= num_classes)
        {
            return Err(DataError::InvalidSetting {
                reason: format!("label {label} of image {index} is not below {num_classes}"),
            });
        }
        Ok(InMemoryDataset { pixels, labels, shape, num_classes })
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// `[C, H, W]` of one image.
    pub fn shape(&self) -> [usize; 3] {
        self.shape
    }

    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    pub fn image_len(&self) -> usize {
        self.shape.iter().product()
    }

    /// The raw pixels of image `index` (`[C, H, W]`); panics only on an index the caller did not check
    /// against `len()` (indices come from splits and plans built over this dataset).
    pub fn image(&self, index: usize) -> &[u8] {
        let len = self.image_len();
        &self.pixels[index * len..(index + 1) * len]
    }

    pub fn label(&self, index: usize) -> i64 {
        self.labels[index]
    }

    pub fn labels(&self) -> &[i64] {
        &self.labels
    }

    /// The whole `[N, C, H, W]` pixel buffer.
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// Appends another dataset of the same shape and class count (the five CIFAR-10 training files).
    pub(crate) fn extend(&mut self, other: InMemoryDataset) {
        self.pixels.extend_from_slice(&other.pixels);
        self.labels.extend_from_slice(&other.labels);
    }
}
