//! The loaders of a search run over one in-memory training set (train_search.py): the supernet's
//! training stream over the train part of the split (seeded reshuffle every epoch, augmented, batch 64 in
//! the paper) and the fitness stream over the validation part in fixed order (batch 1024 there). The
//! reference passes validation images through the *training* augmentation (its `valid_queue` wraps the
//! same `train_data`); `augment_validation = true` reproduces that, `false` evaluates clean images and
//! allows keeping the whole validation part on the GPU ([`DeviceSplit`]).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tch::Device;

use super::augment::CifarAugment;
use super::batch::EpochPlan;
use super::dataset::InMemoryDataset;
use super::device_split::DeviceSplit;
use super::error::DataError;
use super::kind::Normalization;
use super::prefetch::{BatchStream, PrefetchConfig, Producer};
use super::source::InMemorySource;
use super::split::TrainValidSplit;
use crate::stop::StopFlag;

/// Settings of the two loaders.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoaderConfig {
    pub batch_size: usize,
    pub valid_batch_size: usize,
    pub seed: u64,
    pub padding: usize,
    pub flip: bool,
    /// Cutout side length on training images (None: off, the search's default).
    pub cutout: Option<usize>,
    /// Apply the training augmentation to validation images, as the reference does.
    pub augment_validation: bool,
    pub prefetch: PrefetchConfig,
}

impl Default for LoaderConfig {
    fn default() -> Self {
        LoaderConfig {
            batch_size: 64,
            valid_batch_size: 1024,
            seed: 0,
            padding: 4,
            flip: true,
            cutout: None,
            augment_validation: true,
            prefetch: PrefetchConfig::default(),
        }
    }
}

/// Producers for the train and validation parts of one split.
#[derive(Debug, Clone)]
pub struct SplitLoaders {
    dataset: Arc<InMemoryDataset>,
    norm: Normalization,
    split: TrainValidSplit,
    config: LoaderConfig,
    train: Producer,
    valid: Producer,
}

impl SplitLoaders {
    pub fn new(
        dataset: Arc<InMemoryDataset>,
        norm: Normalization,
        split: TrainValidSplit,
        config: LoaderConfig,
    ) -> Result<Self, DataError> {
        let augment = CifarAugment { padding: config.padding, flip: config.flip, cutout: config.cutout };
        let train_source = InMemorySource::new(dataset.clone(), &norm, Some(augment.clone()))?;
        let valid_source =
            InMemorySource::new(dataset.clone(), &norm, config.augment_validation.then_some(augment))?;
        let train = Producer::new(Arc::new(train_source), config.prefetch.clone())?;
        let valid = Producer::new(Arc::new(valid_source), config.prefetch.clone())?;
        Ok(SplitLoaders { dataset, norm, split, config, train, valid })
    }

    pub fn split(&self) -> &TrainValidSplit {
        &self.split
    }

    pub fn config(&self) -> &LoaderConfig {
        &self.config
    }

    /// The producer of training batches (for a prefetch actor that hands out its epochs).
    pub fn train_producer(&self) -> &Producer {
        &self.train
    }

    /// The plan of training epoch `epoch` (a fresh permutation of the train part).
    pub fn train_plan(&self, epoch: usize) -> Result<EpochPlan, DataError> {
        EpochPlan::shuffled(&self.split.train, self.config.batch_size, self.config.seed, epoch)
    }

    /// The plan of the validation part in fixed order; `epoch` seeds its augmentation, if any.
    pub fn valid_plan(&self, epoch: usize) -> Result<EpochPlan, DataError> {
        EpochPlan::sequential(&self.split.valid, self.config.valid_batch_size, self.config.seed, epoch)
    }

    /// Starts prefetching training epoch `epoch` from batch `first_batch`.
    pub fn train_epoch(
        &self,
        epoch: usize,
        first_batch: usize,
        stop: StopFlag,
    ) -> Result<BatchStream, DataError> {
        self.train.start_epoch(self.train_plan(epoch)?.starting_at(first_batch), stop)
    }

    /// Starts prefetching the validation part for `epoch`.
    pub fn valid_epoch(&self, epoch: usize, stop: StopFlag) -> Result<BatchStream, DataError> {
        self.valid.start_epoch(self.valid_plan(epoch)?, stop)
    }

    /// The validation part uploaded once to `device`, normalised; `None` when validation images are
    /// augmented (they then differ per epoch and must come through [`Self::valid_epoch`]).
    pub fn valid_on_device(&self, device: Device) -> Result<Option<DeviceSplit>, DataError> {
        if self.config.augment_validation {
            return Ok(None);
        }
        DeviceSplit::upload(&self.dataset, &self.split.valid, &self.norm, device).map(Some)
    }
}
