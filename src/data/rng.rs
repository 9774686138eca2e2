//! Seeds for every random draw of the pipeline, derived from `(seed, stream, epoch, batch)` alone. The
//! augmentation of batch `b` of epoch `e` therefore does not depend on which thread builds it or when,
//! which is what makes a resumed run see exactly the batches an uninterrupted one would have seen.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Independent random streams drawn from one user seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum Stream {
    /// The train/validation split.
    Split = 1,
    /// The order of the items of one epoch.
    EpochOrder = 2,
    /// The augmentation of one batch.
    Augment = 3,
}

/// A 64-bit seed for `(seed, stream, epoch, batch)`.
pub fn batch_seed(seed: u64, stream: Stream, epoch: u64, batch: u64) -> u64 {
    crate::seeds::derive_seed(seed, &[stream as u64, epoch, batch])
}

/// The generator for `(seed, stream, epoch, batch)`.
pub fn stream_rng(seed: u64, stream: Stream, epoch: u64, batch: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(batch_seed(seed, stream, epoch, batch))
}
