//! Search spaces: candidate operations, the architecture parameter α, decoding and genotypes.

pub mod alpha;
pub mod builtin;
pub mod darts_notation;
pub mod decode;
pub mod genotype;
pub mod kind;
pub mod nb201;
pub mod ops;
pub mod render;
pub mod text_pos;

pub use alpha::AlphaMatrix;
pub use darts_notation::NotationError;
pub use decode::{alpha_from_genes, decode, derive_cell, genotype_from_alphas, steps_for_edges, DecodeError};
pub use genotype::{CellKind, Gene, Genotype, GenotypeError, InvalidGenotype, NamedGenotype};
pub use kind::SpaceKind;
pub use nb201::{nb201_decode, Nb201Error, Nb201Genotype, NB201_EDGES};
pub use ops::{DartsOp, Nb201Op, DARTS_PRIMITIVES, NB201_PRIMITIVES};
pub use render::{render_cell_dot, render_cell_svg, write_genotype_pictures, RenderError};
pub use text_pos::TextPos;
