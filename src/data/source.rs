//! Where batches come from: a [`BatchSource`] fills the f32 images and labels of a list of dataset items,
//! given the batch's augmentation seed. The in-memory source (CIFAR, Fashion-MNIST) augments u8 -> f32
//! in one fused pass; the folder source (ImageNet) decodes and transforms each image of the batch. Both
//! parallelise over the images of a batch with rayon (inside whatever pool the caller installs).

use std::sync::Arc;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use tch::{Device, Kind, Tensor};

use super::augment::{normalize_batch, CifarAugment};
use super::batch::{Batch, EpochPlan};
use super::dataset::InMemoryDataset;
use super::error::DataError;
use super::image_folder::ImageFolder;
use super::imagenet_transform::ImageNetTransform;
use super::kind::Normalization;

/// Something that can produce the items of a batch.
pub trait BatchSource: Send + Sync {
    /// `[C, H, W]` of one output image.
    fn image_shape(&self) -> [usize; 3];
    /// Number of items the indices may address.
    fn len(&self) -> usize;
    /// Classes its labels name (those of the dataset; of an image folder, its subfolders).
    fn num_classes(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Writes the images (`items.len() x C x H x W`) and labels of `items`; all randomness comes from
    /// `augment_seed`.
    fn fill(
        &self,
        items: &[usize],
        augment_seed: u64,
        images: &mut [f32],
        labels: &mut [i64],
    ) -> Result<(), DataError>;
}

fn check_items(items: &[usize], len: usize) -> Result<(), DataError> {
    match items.iter().find(|&&i| i >= len) {
        Some(&index) => Err(DataError::IndexOutOfRange { index, len }),
        None => Ok(()),
    }
}

/// A decoded dataset with either the training augmentation or plain normalisation.
#[derive(Debug, Clone)]
pub struct InMemorySource {
    dataset: Arc<InMemoryDataset>,
    tables: Vec<[f32; 256]>,
    augment: Option<CifarAugment>,
}

impl InMemorySource {
    /// `augment = None` gives the evaluation transform (ToTensor + Normalize).
    pub fn new(
        dataset: Arc<InMemoryDataset>,
        norm: &Normalization,
        augment: Option<CifarAugment>,
    ) -> Result<Self, DataError> {
        if norm.channels() != dataset.shape()[0] {
            return Err(DataError::InvalidSetting {
                reason: format!(
                    "normalisation has {} channels, images have {}",
                    norm.channels(),
                    dataset.shape()[0]
                ),
            });
        }
        Ok(InMemorySource { dataset, tables: norm.lookup_tables(), augment })
    }

    pub fn dataset(&self) -> &Arc<InMemoryDataset> {
        &self.dataset
    }
}

impl BatchSource for InMemorySource {
    fn image_shape(&self) -> [usize; 3] {
        self.dataset.shape()
    }

    fn len(&self) -> usize {
        self.dataset.len()
    }

    fn num_classes(&self) -> usize {
        self.dataset.num_classes()
    }

    fn fill(
        &self,
        items: &[usize],
        augment_seed: u64,
        images: &mut [f32],
        labels: &mut [i64],
    ) -> Result<(), DataError> {
        check_items(items, self.dataset.len())?;
        let shape = self.dataset.shape();
        let sources: Vec<&[u8]> = items.iter().map(|&i| self.dataset.image(i)).collect();
        for (slot, &i) in labels.iter_mut().zip(items) {
            *slot = self.dataset.label(i);
        }
        match &self.augment {
            Some(augment) => {
                // All draws first, in item order, from the batch's generator: the parallel pass below
                // then gives the same pixels whatever the thread count.
                let mut rng = ChaCha8Rng::seed_from_u64(augment_seed);
                let draws: Vec<_> =
                    items.iter().map(|_| augment.draw(&mut rng, shape[1], shape[2])).collect();
                augment.apply_batch(&sources, shape, &self.tables, &draws, images);
            }
            None => normalize_batch(&sources, shape, &self.tables, images),
        }
        Ok(())
    }
}

/// An image folder decoded per batch, with the ImageNet training or evaluation transform.
#[derive(Debug, Clone)]
pub struct ImageFolderSource {
    folder: Arc<ImageFolder>,
    transform: ImageNetTransform,
    norm: Normalization,
    train: bool,
}

impl ImageFolderSource {
    pub fn new(
        folder: Arc<ImageFolder>,
        transform: ImageNetTransform,
        norm: Normalization,
        train: bool,
    ) -> Result<Self, DataError> {
        if norm.channels() != 3 {
            return Err(DataError::InvalidSetting {
                reason: "image folders are RGB: 3 normalisation channels".into(),
            });
        }
        if transform.crop == 0 || transform.crop > transform.resize {
            return Err(DataError::InvalidSetting {
                reason: format!("crop {} must be in 1..={} (the resize)", transform.crop, transform.resize),
            });
        }
        Ok(ImageFolderSource { folder, transform, norm, train })
    }

    pub fn folder(&self) -> &Arc<ImageFolder> {
        &self.folder
    }
}

impl BatchSource for ImageFolderSource {
    fn image_shape(&self) -> [usize; 3] {
        [3, self.transform.crop as usize, self.transform.crop as usize]
    }

    fn len(&self) -> usize {
        self.folder.len()
    }

    fn num_classes(&self) -> usize {
        self.folder.classes().len()
    }

    fn fill(
        &self,
        items: &[usize],
        augment_seed: u64,
        images: &mut [f32],
        labels: &mut [i64],
    ) -> Result<(), DataError> {
        check_items(items, self.folder.len())?;
        for (slot, &i) in labels.iter_mut().zip(items) {
            *slot = self.folder.label(i);
        }
        // One seed per image, drawn in item order, so each image's transform is independent of threads.
        let mut rng = ChaCha8Rng::seed_from_u64(augment_seed);
        let seeds: Vec<u64> = items.iter().map(|_| rng.random()).collect();
        let image_len: usize = self.image_shape().iter().product();
        images.par_chunks_mut(image_len).zip(items.par_iter().zip(seeds.par_iter())).try_for_each(
            |(out, (&item, &seed))| {
                let image = self.folder.decode(item)?;
                if self.train {
                    self.transform.train_into(&image, &mut ChaCha8Rng::seed_from_u64(seed), &self.norm, out);
                } else {
                    self.transform.eval_into(&image, &self.norm, out);
                }
                Ok(())
            },
        )
    }
}

/// Builds batch `index` of `plan` from `source` (on the calling thread, parallel inside via rayon).
/// With `pin_memory` and CUDA present, the images are placed in page-locked memory so the copy to the
/// GPU can be asynchronous.
pub fn make_batch(
    source: &dyn BatchSource,
    plan: &EpochPlan,
    index: usize,
    pin_memory: bool,
) -> Result<Batch, DataError> {
    let items = plan.batch(index);
    let [c, h, w] = source.image_shape();
    let numel = items.len() * c * h * w;
    let shape = [items.len() as i64, c as i64, h as i64, w as i64];
    // The source writes straight into the tensor's storage: no libtorch copy, whose OpenMP threads would
    // otherwise fight the rayon workers for the cores (measured: 40x slower on a loaded 2-core machine).
    let mut images = Tensor::f_empty(shape, (Kind::Float, Device::Cpu))?;
    let mut labels = vec![0i64; items.len()];
    {
        let ptr = images.data_ptr() as *mut f32;
        // SAFETY: `images` is a freshly allocated, contiguous CPU f32 tensor of exactly `numel` elements,
        // owned here and not shared with anything else while the slice lives. It is zeroed through the raw
        // pointer first so the slice never covers uninitialised memory.
        let pixels = unsafe {
            std::ptr::write_bytes(ptr, 0, numel);
            std::slice::from_raw_parts_mut(ptr, numel)
        };
        source.fill(items, plan.augment_seed(index), pixels, &mut labels)?;
    }
    let mut labels = Tensor::f_from_slice(&labels)?;
    if pin_memory && tch::Cuda::is_available() {
        // `_pin_memory`, not `pin_memory`: tch passes the latter a device, an argument libtorch
        // 2.11 deprecates with a warning on every call (two per tensor). The tensors are fresh,
        // so the "already pinned?" test that `pin_memory` adds is not needed.
        images = images.f_internal_pin_memory(Device::Cuda(0))?;
        labels = labels.f_internal_pin_memory(Device::Cuda(0))?;
    }
    Ok(Batch { images, labels, index })
}

/// Batches of a plan made synchronously on the calling thread, in order (no prefetching): for small
/// evaluations and tests. The prefetcher is the fast path.
pub struct PlanBatches<'a> {
    source: &'a dyn BatchSource,
    plan: &'a EpochPlan,
    next: usize,
}

impl<'a> PlanBatches<'a> {
    pub fn new(source: &'a dyn BatchSource, plan: &'a EpochPlan) -> Self {
        PlanBatches { source, plan, next: plan.first_batch() }
    }
}

impl Iterator for PlanBatches<'_> {
    type Item = Result<Batch, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.plan.num_batches() {
            return None;
        }
        let batch = make_batch(self.source, self.plan, self.next, false);
        self.next += 1;
        Some(batch)
    }
}
