//! The data of a search: the training set read once, split into the supernet's training part and
//! the validation part that measures fitness, with batches prefetched ahead of the trainer and
//! of each fitness evaluator.

use std::str::FromStr;
use std::sync::Arc;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::Device;

use crate::config::Config;
use crate::data::{
    load_split, Batch, BatchStream, DataError, DatasetKind, LoaderConfig, PrefetchConfig, Producer,
    SplitConfig, SplitLoaders, SplitName, StopFlag,
};
use crate::train::fitness::{EvalBatch, OwnedBatches};

use super::SearchError;
use crate::seeds::{derive_seed, streams};

pub struct SearchData {
    loaders: Arc<SplitLoaders>,
    device: Device,
    input_shape: [usize; 3],
    num_classes: usize,
    /// The validation part on the model's device, when its images are not augmented.
    fixed_valid: Option<Vec<EvalBatch>>,
    population: usize,
}

/// One generation's training batches, prefetched on the loader's threads and moved to the
/// device as they are taken; owned, so a trainer can start the next generation's early.
pub struct TrainBatches {
    stream: BatchStream,
    device: Device,
}

impl TrainBatches {
    /// `stream` moved to `device` batch by batch.
    pub fn new(stream: BatchStream, device: Device) -> Self {
        Self { stream, device }
    }
}

/// What a prefetch actor needs to hand out the training epochs: the producer, the training
/// part's indices and how they are batched and shuffled.
pub struct TrainPrefetch {
    pub producer: Producer,
    pub indices: Vec<usize>,
    pub batch_size: usize,
    pub seed: u64,
    pub device: Device,
}

impl Iterator for TrainBatches {
    type Item = Result<Batch, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.stream.next().map(|b| b.and_then(|b| b.to_device(self.device)))
    }
}

/// Where a fitness evaluator takes each individual's validation batches from; each evaluator
/// owns one (the fixed batches are shared storage, not copies).
pub struct ValidSource {
    loaders: Arc<SplitLoaders>,
    device: Device,
    fixed: Option<Vec<EvalBatch>>,
    population: usize,
}

impl ValidSource {
    /// Validation batches for the individual at `position` of generation `generation`.
    pub fn batches(&self, generation: usize, position: usize) -> Result<OwnedBatches, SearchError> {
        if let Some(fixed) = &self.fixed {
            let batches: Vec<_> = fixed.iter().map(|b| Ok(b.shallow_clone())).collect();
            return Ok(Box::new(batches.into_iter()));
        }
        // A distinct augmentation draw per (generation, individual), as each reference
        // individual iterates the augmenting valid_queue anew.
        let epoch = generation * self.population + position;
        let stream = self.loaders.valid_epoch(epoch, StopFlag::new())?;
        let device = self.device;
        Ok(Box::new(stream.map(move |b| {
            let b = b?.to_device(device)?;
            Ok(EvalBatch { images: b.images, labels: b.labels })
        })))
    }
}

impl SearchData {
    pub fn load(cfg: &Config, device: Device) -> Result<Self, SearchError> {
        let kind = DatasetKind::from_str(&cfg.data.dataset)?;
        if !kind.is_in_memory() {
            return Err(SearchError::Data(DataError::NotInMemory { dataset: kind.name() }));
        }
        let dataset = Arc::new(load_split(kind, &cfg.data.path, SplitName::Train)?);
        let seed = cfg.search.seed;
        let split_cfg = SplitConfig {
            train_portion: cfg.data.train_portion,
            shuffle: true,
            seed: derive_seed(seed, &[streams::SPLIT]),
        };
        let mut split = split_cfg.split(dataset.len())?;
        if cfg.data.train_subset > 0 {
            split.train.truncate(cfg.data.train_subset);
        }
        if cfg.fitness.subset > 0 && cfg.fitness.subset < split.valid.len() {
            let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(seed, &[streams::FITNESS_SUBSET]));
            split.valid.shuffle(&mut rng);
            split.valid.truncate(cfg.fitness.subset);
            split.valid.sort_unstable();
        }
        let loader_cfg = LoaderConfig {
            batch_size: cfg.train.batch_size,
            valid_batch_size: cfg.fitness.batch_size,
            seed: derive_seed(seed, &[streams::DATA]),
            padding: 4,
            flip: true,
            cutout: cfg.data.cutout.then_some(cfg.data.cutout_length),
            augment_validation: cfg.fitness.augment,
            prefetch: PrefetchConfig {
                depth: cfg.data.prefetch_depth,
                threads: cfg.data.workers,
                pin_memory: device.is_cuda(),
            },
        };
        let input_shape = dataset.shape();
        let num_classes = dataset.num_classes();
        let loaders = Arc::new(SplitLoaders::new(dataset, kind.normalization(), split, loader_cfg)?);
        let fixed_valid = loaders.valid_on_device(device)?.map(|split| {
            split
                .batches(cfg.fitness.batch_size)
                .map(|(images, labels)| EvalBatch { images, labels })
                .collect()
        });
        Ok(Self { loaders, device, input_shape, num_classes, fixed_valid, population: cfg.search.population })
    }

    pub fn input_shape(&self) -> [usize; 3] {
        self.input_shape
    }

    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    pub fn num_train_batches(&self) -> usize {
        self.loaders.split().train.len().div_ceil(self.loaders.config().batch_size)
    }

    pub fn num_valid_images(&self) -> usize {
        self.loaders.split().valid.len()
    }

    /// The training epochs' producer and plan, for the prefetch actor that hands them out.
    pub fn train_prefetch(&self) -> TrainPrefetch {
        TrainPrefetch {
            producer: self.loaders.train_producer().clone(),
            indices: self.loaders.split().train.clone(),
            batch_size: self.loaders.config().batch_size,
            seed: self.loaders.config().seed,
            device: self.device,
        }
    }

    /// A validation source for one fitness evaluator.
    pub fn valid_source(&self) -> ValidSource {
        ValidSource {
            loaders: Arc::clone(&self.loaders),
            device: self.device,
            fixed: self.fixed_valid.as_ref().map(|f| f.iter().map(EvalBatch::shallow_clone).collect()),
            population: self.population,
        }
    }
}
