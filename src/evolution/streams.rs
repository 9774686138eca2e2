//! Where the GA's random draws come from: one stream per (generation, child, stage), all keyed
//! by the run's GA seed. A child is then the same whoever makes it and in whatever order the
//! children are made, so the pipeline's stages can run at their own pace without changing a
//! result (one shared generator would hand out draws to whoever asks first).

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// The stage a stream serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GaStage {
    /// The two tournaments that pick a child's parents.
    Selection,
    /// The per-edge donor draws.
    Crossover,
    /// The per-edge mutation draws.
    Mutation,
    /// A fresh random genome (initial population, random-search baseline).
    Fresh,
}

impl GaStage {
    fn number(self) -> u64 {
        match self {
            GaStage::Selection => 0,
            GaStage::Crossover => 1,
            GaStage::Mutation => 2,
            GaStage::Fresh => 3,
        }
    }
}

/// The family of child streams of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildStreams {
    seed: u64,
}

impl ChildStreams {
    pub fn new(seed: u64) -> Self {
        Self { seed }
    }

    /// The stream of `stage` for the child at position `child` of generation `generation`.
    ///
    /// ChaCha's 64-bit stream number names the triple (30 bits of generation, 32 of child, 2 of
    /// stage); the key is the seed, so the streams are independent and never overlap.
    pub fn rng(&self, generation: u32, child: usize, stage: GaStage) -> ChaCha8Rng {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let generation = u64::from(generation) & ((1 << 30) - 1);
        let child = (child as u64) & 0xffff_ffff;
        rng.set_stream((generation << 34) | (child << 2) | stage.number());
        rng
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn every_triple_has_its_own_repeatable_stream() {
        let streams = ChildStreams::new(7);
        let first = |g, c, s| streams.rng(g, c, s).random::<u64>();
        let a = first(3, 5, GaStage::Crossover);
        assert_eq!(a, first(3, 5, GaStage::Crossover));
        assert_ne!(a, first(3, 5, GaStage::Mutation));
        assert_ne!(a, first(3, 6, GaStage::Crossover));
        assert_ne!(a, first(4, 5, GaStage::Crossover));
        assert_ne!(a, ChildStreams::new(8).rng(3, 5, GaStage::Crossover).random::<u64>());
    }
}
