//! Batches and epoch plans. An epoch plan is the reference's `SubsetRandomSampler` over a split: a new
//! seeded permutation of the split's indices every epoch, cut into `batch_size` pieces with the last
//! partial batch kept (DataLoader's `drop_last=False`); evaluation uses the split in fixed order.

use rand::seq::SliceRandom;
use tch::{Device, Kind, Tensor};

use super::error::DataError;
use super::rng::{batch_seed, stream_rng, Stream};

/// One ready batch.
///
/// # Shapes
/// `images`: `[B, C, H, W]` f32 (normalised), `labels`: `[B]` i64.
#[derive(Debug)]
pub struct Batch {
    pub images: Tensor,
    pub labels: Tensor,
    /// Position of this batch in its epoch plan.
    pub index: usize,
}

impl Batch {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.size().first().map_or(0, |&n| n as usize)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The batch on `device`. From pinned host memory to CUDA the copy is `non_blocking`, so it overlaps
    /// with compute on the current stream; on the CPU this is a cheap shallow copy.
    pub fn to_device(&self, device: Device) -> Result<Batch, DataError> {
        let non_blocking = device.is_cuda();
        Ok(Batch {
            images: self.images.f_to_device_(device, Kind::Float, non_blocking, false)?,
            labels: self.labels.f_to_device_(device, Kind::Int64, non_blocking, false)?,
            index: self.index,
        })
    }
}

/// The batches of one epoch over one split, in the order they are delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochPlan {
    epoch: usize,
    seed: u64,
    batches: Vec<Vec<usize>>,
    first_batch: usize,
}

impl EpochPlan {
    /// A fresh seeded permutation of `indices` for `epoch` (training order).
    pub fn shuffled(
        indices: &[usize],
        batch_size: usize,
        seed: u64,
        epoch: usize,
    ) -> Result<Self, DataError> {
        let mut order = indices.to_vec();
        order.shuffle(&mut stream_rng(seed, Stream::EpochOrder, epoch as u64, 0));
        Self::from_order(order, batch_size, seed, epoch)
    }

    /// `indices` in the given order (evaluation order). `seed` and `epoch` still seed the augmentation
    /// when the evaluation applies one.
    pub fn sequential(
        indices: &[usize],
        batch_size: usize,
        seed: u64,
        epoch: usize,
    ) -> Result<Self, DataError> {
        Self::from_order(indices.to_vec(), batch_size, seed, epoch)
    }

    fn from_order(order: Vec<usize>, batch_size: usize, seed: u64, epoch: usize) -> Result<Self, DataError> {
        if batch_size == 0 {
            return Err(DataError::InvalidSetting { reason: "batch_size must be at least 1".into() });
        }
        let batches = order.chunks(batch_size).map(<[usize]>::to_vec).collect();
        Ok(EpochPlan { epoch, seed, batches, first_batch: 0 })
    }

    /// The same plan, delivering only batches `first_batch..` (resuming inside an epoch); batch indices
    /// and augmentations stay those of the full plan.
    pub fn starting_at(mut self, first_batch: usize) -> Self {
        self.first_batch = first_batch.min(self.batches.len());
        self
    }

    pub fn epoch(&self) -> usize {
        self.epoch
    }

    /// Number of batches in the whole epoch (including skipped ones).
    pub fn num_batches(&self) -> usize {
        self.batches.len()
    }

    pub fn first_batch(&self) -> usize {
        self.first_batch
    }

    /// The dataset indices of batch `index`.
    pub fn batch(&self, index: usize) -> &[usize] {
        &self.batches[index]
    }

    /// Indices of the batches this plan delivers.
    pub fn delivered(&self) -> std::ops::Range<usize> {
        self.first_batch..self.batches.len()
    }

    /// The seed of batch `index`'s augmentation: a function of `(seed, epoch, index)` only.
    pub fn augment_seed(&self, index: usize) -> u64 {
        batch_seed(self.seed, Stream::Augment, self.epoch as u64, index as u64)
    }
}
