//! The data pipeline: dataset readers (CIFAR binary, IDX, image folders), the train/validation split,
//! augmentation, batches and the prefetching producer. Plain library code: the kameo actor in
//! `actors::prefetch` only wraps [`prefetch::Producer`].
//!
//! Small datasets are decoded once into one u8 buffer and augmented u8 -> f32 in one fused pass; every
//! random draw is seeded from `(seed, epoch, batch)` so a batch is the same whichever thread makes it.

pub mod augment;
pub mod batch;
pub mod cifar;
pub mod dataset;
pub mod decode;
pub mod device_split;
pub mod error;
pub mod idx;
pub mod image_folder;
pub mod imagenet_transform;
pub mod kind;
pub mod loader;
pub mod metric_names;
pub mod pil_resize;
pub mod prefetch;
pub mod rng;
pub mod source;
pub mod split;
pub mod test_split;

pub use crate::stop::StopFlag;
pub use augment::CifarAugment;
pub use batch::{Batch, EpochPlan};
pub use cifar::{read_cifar10, read_cifar100, Cifar100Labels, SplitName};
pub use dataset::InMemoryDataset;
pub use device_split::DeviceSplit;
pub use error::DataError;
pub use idx::{read_mnist_like, DEFAULT_FASHION_MNIST_DIR};
pub use image_folder::ImageFolder;
pub use imagenet_transform::ImageNetTransform;
pub use kind::{DatasetKind, Normalization};
pub use loader::{LoaderConfig, SplitLoaders};
pub use prefetch::{BatchStream, PrefetchConfig, Producer};
pub use source::{make_batch, BatchSource, ImageFolderSource, InMemorySource, PlanBatches};
pub use split::{train_count, SplitConfig, TrainValidSplit};
pub use test_split::{count_split, load_split, load_test_split, test_plan, test_source};
