//! A split held on the training device as normalised f32, uploaded once, so the fitness evaluation of
//! every individual (25,000 images x 50 individuals per generation in the paper's setting) reads GPU
//! memory instead of going through the host pipeline again. Used when the validation images are not
//! augmented (`augment_validation = false`).

use tch::{Device, Kind, Tensor};

use super::dataset::InMemoryDataset;
use super::error::DataError;
use super::kind::Normalization;

/// Images and labels of a split on one device.
///
/// # Shapes
/// `images`: `[N, C, H, W]` f32, `labels`: `[N]` i64.
#[derive(Debug)]
pub struct DeviceSplit {
    pub images: Tensor,
    pub labels: Tensor,
}

impl DeviceSplit {
    /// Gathers `indices` of `dataset` (in this order), uploads them as u8 (a quarter of the f32 bytes)
    /// and normalises on the device: `(x / 255 - mean) / std`, as ToTensor + Normalize.
    pub fn upload(
        dataset: &InMemoryDataset,
        indices: &[usize],
        norm: &Normalization,
        device: Device,
    ) -> Result<Self, DataError> {
        let [c, h, w] = dataset.shape();
        if norm.channels() != c {
            return Err(DataError::InvalidSetting {
                reason: format!("normalisation has {} channels, images have {c}", norm.channels()),
            });
        }
        let mut pixels = Vec::with_capacity(indices.len() * c * h * w);
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            if i >= dataset.len() {
                return Err(DataError::IndexOutOfRange { index: i, len: dataset.len() });
            }
            pixels.extend_from_slice(dataset.image(i));
            labels.push(dataset.label(i));
        }
        let shape = [indices.len() as i64, c as i64, h as i64, w as i64];
        let raw = Tensor::f_from_slice(&pixels)?.f_view(shape)?.f_to_device(device)?;
        let mean = Tensor::f_from_slice(&norm.mean)?.f_view([1, c as i64, 1, 1])?.f_to_device(device)?;
        let std = Tensor::f_from_slice(&norm.std)?.f_view([1, c as i64, 1, 1])?.f_to_device(device)?;
        let images = raw.f_to_kind(Kind::Float)?.f_div_scalar(255.0)?.f_sub(&mean)?.f_div(&std)?;
        let labels = Tensor::f_from_slice(&labels)?.f_to_device(device)?;
        Ok(DeviceSplit { images, labels })
    }

    pub fn len(&self) -> usize {
        self.labels.size().first().map_or(0, |&n| n as usize)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Consecutive `(images, labels)` views of at most `batch_size` items (no copies).
    pub fn batches(&self, batch_size: usize) -> impl Iterator<Item = (Tensor, Tensor)> + '_ {
        let len = self.len() as i64;
        let step = batch_size.max(1) as i64;
        (0..len).step_by(step as usize).map(move |start| {
            let n = step.min(len - start);
            (self.images.narrow(0, start, n), self.labels.narrow(0, start, n))
        })
    }
}
