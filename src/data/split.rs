//! The train/validation split of the training set (train_search.py: `split = floor(train_portion *
//! num_train)`, the supernet trains on the first part, fitness is measured on the rest; the test set is
//! never touched by the search).
//!
//! The reference splits by index order, `indices[:split]` / `indices[split:]`, without shuffling. For
//! CIFAR that is a fair split because the binary files are already in random order, but for an image
//! folder (sorted by class) it would put whole classes on one side. evnas therefore shuffles by default
//! (`shuffle = true`, seeded, deterministic); `shuffle = false` reproduces the reference exactly.

use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use super::error::DataError;
use super::rng::{stream_rng, Stream};

/// How to split.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitConfig {
    /// Fraction of the training set used to train the supernet (paper: 0.5).
    pub train_portion: f64,
    /// Shuffle (seeded) before cutting; `false` is the reference's index-order split.
    pub shuffle: bool,
    pub seed: u64,
}

impl Default for SplitConfig {
    fn default() -> Self {
        SplitConfig { train_portion: 0.5, shuffle: true, seed: 0 }
    }
}

/// Disjoint index sets into the training set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrainValidSplit {
    /// Items the supernet is trained on.
    pub train: Vec<usize>,
    /// Items fitness is measured on.
    pub valid: Vec<usize>,
}

/// How many of `num_items` a split with `train_portion` gives to training (the reference's
/// `floor(train_portion * num_train)`).
pub fn train_count(train_portion: f64, num_items: usize) -> usize {
    (train_portion * num_items as f64).floor() as usize
}

impl SplitConfig {
    /// Splits `0..num_items`: `floor(train_portion * num_items)` items for training, the rest for
    /// validation.
    pub fn split(&self, num_items: usize) -> Result<TrainValidSplit, DataError> {
        if !(self.train_portion > 0.0 && self.train_portion < 1.0) {
            return Err(DataError::InvalidSetting {
                reason: format!(
                    "train_portion must lie strictly between 0 and 1, got {}",
                    self.train_portion
                ),
            });
        }
        let cut = train_count(self.train_portion, num_items);
        let mut indices: Vec<usize> = (0..num_items).collect();
        if self.shuffle {
            indices.shuffle(&mut stream_rng(self.seed, Stream::Split, 0, 0));
        }
        let valid = indices.split_off(cut);
        Ok(TrainValidSplit { train: indices, valid })
    }
}
