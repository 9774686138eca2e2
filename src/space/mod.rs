//! Search spaces: candidate operations, the architecture parameter α, decoding and genotypes.

pub mod alpha;
pub mod genotype;
pub mod ops;

pub use alpha::AlphaMatrix;
pub use genotype::{Gene, Genotype};
pub use ops::{DartsOp, Nb201Op, DARTS_PRIMITIVES, NB201_PRIMITIVES};
