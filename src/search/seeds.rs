//! Independent random streams derived from the one master seed of a run.
//!
//! Each consumer (weight init, GA, data order, augmentation, fitness subset) gets its own stream,
//! so adding draws to one never shifts another: runs stay comparable and resumable.

/// A seed for the stream called `stream`, derived from `master` (SplitMix64 over an FNV-1a hash).
pub fn derive_seed(master: u64, stream: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in stream.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    splitmix64(master ^ h)
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Stream names, in one place so no two consumers share one by accident.
pub mod streams {
    pub const WEIGHTS: &str = "supernet-weights";
    pub const GA: &str = "genetic-algorithm";
    pub const SPLIT: &str = "train-valid-split";
    pub const DATA: &str = "data-order-and-augmentation";
    pub const FITNESS_SUBSET: &str = "fitness-subset";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_differ_and_are_stable() {
        let a = derive_seed(18, streams::GA);
        assert_eq!(a, derive_seed(18, streams::GA));
        assert_ne!(a, derive_seed(18, streams::DATA));
        assert_ne!(a, derive_seed(19, streams::GA));
    }
}
