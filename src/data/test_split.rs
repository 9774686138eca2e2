//! Test-set loading and preprocessing for `evnas eval` (test_cifar.py, test_cifar100.py,
//! test_imagenet.py): the test split read whole, normalised without augmentation (CIFAR/Fashion-MNIST:
//! ToTensor + Normalize; ImageNet: Resize 256 + CenterCrop 224 + Normalize), in file order.

use std::path::Path;
use std::sync::Arc;

use super::batch::EpochPlan;
use super::cifar::{count_cifar10, count_cifar100, read_cifar10, read_cifar100, Cifar100Labels, SplitName};
use super::dataset::InMemoryDataset;
use super::error::DataError;
use super::idx::{count_mnist_like, read_mnist_like};
use super::image_folder::ImageFolder;
use super::imagenet_transform::ImageNetTransform;
use super::kind::DatasetKind;
use super::source::{BatchSource, ImageFolderSource, InMemorySource};

/// Reads a split of an in-memory dataset (`dir` as its files lie: CIFAR binary or IDX files).
pub fn load_split(kind: DatasetKind, dir: &Path, split: SplitName) -> Result<InMemoryDataset, DataError> {
    match kind {
        DatasetKind::Cifar10 => read_cifar10(dir, split),
        DatasetKind::Cifar100 => read_cifar100(dir, split, Cifar100Labels::Fine),
        DatasetKind::FashionMnist => read_mnist_like(dir, split, kind.num_classes()),
        DatasetKind::ImageNet => Err(DataError::NotInMemory { dataset: kind.name() }),
    }
}

/// The images of a split of an in-memory dataset, from its files' headers and lengths (no image
/// decoded): the quick check that `dir` holds it, made before a search is started on it.
pub fn count_split(kind: DatasetKind, dir: &Path, split: SplitName) -> Result<usize, DataError> {
    match kind {
        DatasetKind::Cifar10 => count_cifar10(dir, split),
        DatasetKind::Cifar100 => count_cifar100(dir, split),
        DatasetKind::FashionMnist => count_mnist_like(dir, split),
        DatasetKind::ImageNet => Err(DataError::NotInMemory { dataset: kind.name() }),
    }
}

/// Reads the test split of an in-memory dataset.
pub fn load_test_split(kind: DatasetKind, dir: &Path) -> Result<InMemoryDataset, DataError> {
    load_split(kind, dir, SplitName::Test)
}

/// The test set of `kind` with its evaluation preprocessing, ready to batch: for ImageNet `dir` is the
/// validation folder (`.../imagenet/val`, one subfolder per class).
pub fn test_source(kind: DatasetKind, dir: &Path) -> Result<Arc<dyn BatchSource>, DataError> {
    let norm = kind.normalization();
    Ok(match kind {
        DatasetKind::ImageNet => Arc::new(ImageFolderSource::new(
            Arc::new(ImageFolder::open(dir)?),
            ImageNetTransform::default(),
            norm,
            false,
        )?),
        _ => Arc::new(InMemorySource::new(Arc::new(load_test_split(kind, dir)?), &norm, None)?),
    })
}

/// All items of `source` in file order, cut into `batch_size` batches (the test DataLoader's
/// `shuffle=False`).
pub fn test_plan(source: &dyn BatchSource, batch_size: usize) -> Result<EpochPlan, DataError> {
    let indices: Vec<usize> = (0..source.len()).collect();
    EpochPlan::sequential(&indices, batch_size, 0, 0)
}
