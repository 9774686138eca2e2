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

/// SplitMix64 finaliser: a bijective mix, so distinct inputs give well-spread distinct outputs.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A 64-bit seed for `(seed, stream, epoch, batch)`.
pub fn derive_seed(seed: u64, stream: Stream, epoch: u64, batch: u64) -> u64 {
    let mut state = mix(seed ^ 0x9e37_79b9_7f4a_7c15);
    for word in [stream as u64, epoch, batch] {
        state = mix(state ^ word.wrapping_add(0x9e37_79b9_7f4a_7c15));
    }
    state
}

/// The generator for `(seed, stream, epoch, batch)`.
pub fn stream_rng(seed: u64, stream: Stream, epoch: u64, batch: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(derive_seed(seed, stream, epoch, batch))
}
