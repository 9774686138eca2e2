//! The datasets evnas knows, with the constants the reference uses for each: image shape, class count
//! and the per-channel normalisation (utils.py `_data_transforms_cifar10/100`, train_imagenet.py).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::error::DataError;

/// A dataset by name; the names are those of the config file and the CLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DatasetKind {
    #[serde(rename = "cifar10")]
    Cifar10,
    #[serde(rename = "cifar100")]
    Cifar100,
    #[serde(rename = "fashion-mnist")]
    FashionMnist,
    #[serde(rename = "imagenet")]
    ImageNet,
}

impl DatasetKind {
    pub const ALL: [DatasetKind; 4] =
        [DatasetKind::Cifar10, DatasetKind::Cifar100, DatasetKind::FashionMnist, DatasetKind::ImageNet];

    /// Every name, comma-separated: for messages that list what is accepted.
    pub fn names() -> String {
        Self::ALL.map(Self::name).join(", ")
    }

    /// The names of those a search can run on (those read into memory), comma-separated.
    pub fn searchable_names() -> String {
        let names: Vec<_> = Self::ALL.into_iter().filter(|k| k.is_in_memory()).map(Self::name).collect();
        names.join(", ")
    }

    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::Cifar10 => "cifar10",
            DatasetKind::Cifar100 => "cifar100",
            DatasetKind::FashionMnist => "fashion-mnist",
            DatasetKind::ImageNet => "imagenet",
        }
    }

    pub fn num_classes(self) -> usize {
        match self {
            DatasetKind::Cifar10 | DatasetKind::FashionMnist => 10,
            DatasetKind::Cifar100 => 100,
            DatasetKind::ImageNet => 1000,
        }
    }

    /// Network input shape `[C, H, W]` after preprocessing (ImageNet: the 224 crop).
    pub fn input_shape(self) -> [usize; 3] {
        match self {
            DatasetKind::Cifar10 | DatasetKind::Cifar100 => [3, 32, 32],
            DatasetKind::FashionMnist => [1, 28, 28],
            DatasetKind::ImageNet => [3, 224, 224],
        }
    }

    /// The per-channel mean and standard deviation used by `Normalize`.
    pub fn normalization(self) -> Normalization {
        match self {
            // utils.py `_data_transforms_cifar10`.
            DatasetKind::Cifar10 => Normalization::new(
                &[0.491_399_68, 0.482_158_27, 0.446_531_24],
                &[0.247_032_33, 0.243_485_05, 0.261_587_68],
            ),
            // utils.py `_data_transforms_cifar100`.
            DatasetKind::Cifar100 => Normalization::new(&[0.5071, 0.4867, 0.4408], &[0.2675, 0.2565, 0.2761]),
            // The reference has no Fashion-MNIST transform. These are the pixel mean and (population)
            // standard deviation of the 60,000 training images, computed with torch from
            // /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz: 0.28604, 0.35302.
            DatasetKind::FashionMnist => Normalization::new(&[0.2860], &[0.3530]),
            // train_imagenet.py / test_imagenet.py.
            DatasetKind::ImageNet => Normalization::new(&[0.485, 0.456, 0.406], &[0.229, 0.224, 0.225]),
        }
    }

    /// Whether the whole set is decoded into memory once (small sets) or per batch from a folder.
    pub fn is_in_memory(self) -> bool {
        !matches!(self, DatasetKind::ImageNet)
    }
}

impl fmt::Display for DatasetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DatasetKind {
    type Err = DataError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DatasetKind::ALL
            .into_iter()
            .find(|kind| kind.name() == s)
            .ok_or_else(|| DataError::UnknownDataset { name: s.to_string() })
    }
}

/// Per-channel `(x / 255 - mean) / std`, as torchvision's `ToTensor` followed by `Normalize`.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalization {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Normalization {
    pub fn new(mean: &[f32], std: &[f32]) -> Self {
        Normalization { mean: mean.to_vec(), std: std.to_vec() }
    }

    pub fn channels(&self) -> usize {
        self.mean.len()
    }

    /// One 256-entry table per channel mapping a u8 pixel to its normalised value, so the hot loop is
    /// a lookup instead of a divide. Computed as ToTensor then Normalize do: `(v / 255 - mean) / std`.
    pub fn lookup_tables(&self) -> Vec<[f32; 256]> {
        self.mean
            .iter()
            .zip(&self.std)
            .map(|(&mean, &std)| {
                let mut table = [0f32; 256];
                for (value, slot) in table.iter_mut().enumerate() {
                    *slot = (value as f32 / 255.0 - mean) / std;
                }
                table
            })
            .collect()
    }
}
