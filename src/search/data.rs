//! The data of a search: the training set read once, split into the supernet's training part and
//! the validation part that measures fitness, with batches prefetched ahead of the trainer and
//! of each fitness evaluator.

use std::sync::Arc;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::Device;

use crate::data::{
    load_split, Batch, BatchStream, DataError, InMemoryDataset, LoaderConfig, Normalization, PrefetchConfig,
    Producer, SplitConfig, SplitLoaders, SplitName, StopFlag, TrainValidSplit,
};
use crate::train::fitness::{EvalBatch, OwnedBatches};

use super::settings::SearchSettings;
use super::SearchError;
use crate::seeds::{derive_seed, streams};

/// Augmentation epochs of the validation part a generation may use (one per position); far
/// above any population.
const POSITIONS_PER_GENERATION: usize = 1 << 20;

pub struct SearchData {
    loaders: Arc<SplitLoaders>,
    device: Device,
    input_shape: [usize; 3],
    num_classes: usize,
    /// The validation part on the model's device, when its images are not augmented.
    fixed_valid: Option<Vec<EvalBatch>>,
    /// What a validation source of another subset size is made from.
    recipe: Arc<ValidRecipe>,
    /// The validation images of `loaders` and `fixed_valid` (0: all).
    subset: usize,
}

/// What the validation sources of every fitness subset size are made from: the training set,
/// the whole validation part, and the order subsets are drawn in (a subset of n images is the
/// first n of that order, sorted; so a larger subset contains a smaller one).
struct ValidRecipe {
    dataset: Arc<InMemoryDataset>,
    norm: Normalization,
    split: TrainValidSplit,
    subset_order: Vec<usize>,
    config: LoaderConfig,
}

impl ValidRecipe {
    /// The validation images of a subset of `subset` (0, or at least the whole part: all).
    fn indices(&self, subset: usize) -> Vec<usize> {
        if subset == 0 || subset >= self.split.valid.len() {
            return self.split.valid.clone();
        }
        let mut indices = self.subset_order[..subset].to_vec();
        indices.sort_unstable();
        indices
    }

    /// Loaders of the validation subset `subset`, and its batches on `device` when they are
    /// not augmented.
    fn build(
        &self,
        subset: usize,
        device: Device,
    ) -> Result<(Arc<SplitLoaders>, Option<Vec<EvalBatch>>), SearchError> {
        let split = TrainValidSplit { train: self.split.train.clone(), valid: self.indices(subset) };
        let loaders =
            SplitLoaders::new(Arc::clone(&self.dataset), self.norm.clone(), split, self.config.clone())?;
        let fixed = loaders.valid_on_device(device)?.map(|split| {
            split
                .batches(self.config.valid_batch_size)
                .map(|(images, labels)| EvalBatch { images, labels })
                .collect()
        });
        Ok((Arc::new(loaders), fixed))
    }
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
    recipe: Arc<ValidRecipe>,
    subset: usize,
}

impl ValidSource {
    /// Measures on a fitness subset of `subset` images (0: all) from now on: rebuilt (on the
    /// caller's thread, the evaluator's) only when the size changes.
    pub fn set_subset(&mut self, subset: usize) -> Result<(), SearchError> {
        let all = self.recipe.split.valid.len();
        let normal = |n: usize| if n == 0 || n >= all { 0 } else { n };
        if normal(subset) == normal(self.subset) {
            return Ok(());
        }
        let (loaders, fixed) = self.recipe.build(subset, self.device)?;
        (self.loaders, self.fixed, self.subset) = (loaders, fixed, subset);
        Ok(())
    }

    /// Validation batches for the individual at `position` of generation `generation`.
    pub fn batches(&self, generation: usize, position: usize) -> Result<OwnedBatches, SearchError> {
        if let Some(fixed) = &self.fixed {
            let batches: Vec<_> = fixed.iter().map(|b| Ok(b.shallow_clone())).collect();
            return Ok(Box::new(batches.into_iter()));
        }
        // A distinct augmentation draw per (generation, individual), as each reference
        // individual iterates the augmenting valid_queue anew; keyed on the position alone, so
        // that a population resized by a reload never shifts (or repeats) another's draws.
        let epoch = generation * POSITIONS_PER_GENERATION + position;
        let stream = self.loaders.valid_epoch(epoch, StopFlag::new())?;
        let device = self.device;
        Ok(Box::new(stream.map(move |b| {
            let b = b?.to_device(device)?;
            Ok(EvalBatch { images: b.images, labels: b.labels })
        })))
    }
}

impl SearchData {
    pub fn load(settings: &SearchSettings, device: Device) -> Result<Self, SearchError> {
        let data = &settings.data;
        let kind = data.dataset;
        if !kind.is_in_memory() {
            return Err(SearchError::Data(DataError::NotInMemory { dataset: kind.name() }));
        }
        let dataset = Arc::new(load_split(kind, &data.path, SplitName::Train)?);
        let seed = settings.seed;
        let split_cfg = SplitConfig {
            train_portion: data.train_portion,
            shuffle: true,
            seed: derive_seed(seed, &[streams::SPLIT]),
        };
        let mut split = split_cfg.split(dataset.len())?;
        if data.train_subset > 0 {
            split.train.truncate(data.train_subset);
        }
        let mut subset_order = split.valid.clone();
        subset_order.shuffle(&mut ChaCha8Rng::seed_from_u64(derive_seed(seed, &[streams::FITNESS_SUBSET])));
        let config = LoaderConfig {
            batch_size: settings.training.batch_size,
            valid_batch_size: settings.fitness.batch_size,
            seed: derive_seed(seed, &[streams::DATA]),
            padding: 4,
            flip: true,
            cutout: data.cutout,
            augment_validation: settings.fitness.augment,
            prefetch: PrefetchConfig {
                depth: data.prefetch_depth,
                threads: data.workers,
                pin_memory: device.is_cuda(),
            },
        };
        let input_shape = dataset.shape();
        let num_classes = dataset.num_classes();
        let recipe =
            Arc::new(ValidRecipe { dataset, norm: kind.normalization(), split, subset_order, config });
        let subset = settings.hot.fitness_subset;
        let (loaders, fixed_valid) = recipe.build(subset, device)?;
        Ok(Self { loaders, device, input_shape, num_classes, fixed_valid, recipe, subset })
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
            recipe: Arc::clone(&self.recipe),
            subset: self.subset,
        }
    }

    /// A validation source for a fitness evaluator on `device`: the resident batches are shared
    /// on the data's own device and copied once onto another.
    pub fn valid_source_on(&self, device: Device) -> ValidSource {
        if device == self.device {
            return self.valid_source();
        }
        let fixed = self.fixed_valid.as_ref().map(|batches| {
            batches
                .iter()
                .map(|b| EvalBatch { images: b.images.to_device(device), labels: b.labels.to_device(device) })
                .collect()
        });
        ValidSource { device, fixed, ..self.valid_source() }
    }
}
