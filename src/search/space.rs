//! The search space as the engine sees it: genome shapes, decoding to α^d, and a readable
//! description of the architecture a genome stands for.

use std::path::{Path, PathBuf};

use crate::evolution::{CellShape, DARTS_GENOME_SHAPE, NB201_GENOME_SHAPE};
use crate::space::SpaceKind;
use crate::space::{decode, AlphaMatrix};

use super::SearchError;

/// DARTS cells have 4 intermediate nodes.
const DARTS_STEPS: usize = 4;

/// A decoded architecture in the forms a run directory keeps.
pub struct Architecture {
    /// DARTS notation, or the NAS-Bench-201 architecture string.
    pub text: String,
    pub json: serde_json::Value,
}

impl SpaceKind {
    pub fn genome_shape(self) -> &'static [CellShape] {
        match self {
            SpaceKind::Darts => &DARTS_GENOME_SHAPE,
            SpaceKind::NasBench201 => &NB201_GENOME_SHAPE,
        }
    }

    /// α^d of every cell of `genome`.
    pub fn decode(self, genome: &[AlphaMatrix]) -> Result<Vec<AlphaMatrix>, SearchError> {
        match self {
            SpaceKind::Darts => genome
                .iter()
                .map(|a| decode::decode(a, DARTS_STEPS).map_err(|e| SearchError::Decode(e.to_string())))
                .collect(),
            SpaceKind::NasBench201 => genome
                .iter()
                .map(|a| crate::space::nb201_decode(a).map_err(|e| SearchError::Decode(e.to_string())))
                .collect(),
        }
    }

    /// The architecture a genome decodes to.
    pub fn describe(self, genome: &[AlphaMatrix]) -> Result<Architecture, SearchError> {
        match self {
            SpaceKind::Darts => {
                let [normal, reduce] = genome else {
                    return Err(SearchError::Decode(format!(
                        "DARTS genome has {} cells, not 2",
                        genome.len()
                    )));
                };
                let g = decode::genotype_from_alphas(normal, reduce, DARTS_STEPS)
                    .map_err(|e| SearchError::Decode(e.to_string()))?;
                let json = serde_json::to_value(&g).map_err(|e| SearchError::Decode(e.to_string()))?;
                Ok(Architecture { text: g.to_string(), json })
            }
            SpaceKind::NasBench201 => {
                let [cell] = genome else {
                    return Err(SearchError::Decode(format!(
                        "NAS-Bench-201 genome has {} cells, not 1",
                        genome.len()
                    )));
                };
                let g = crate::space::Nb201Genotype::from_alpha(cell)
                    .map_err(|e| SearchError::Decode(e.to_string()))?;
                let text = g.to_string();
                Ok(Architecture { json: serde_json::json!({ "arch": text }), text })
            }
        }
    }

    /// Writes the cell pictures of a genome into `dir` (DARTS only; NAS-Bench-201 has none).
    pub fn write_pictures(self, genome: &[AlphaMatrix], dir: &Path) -> Result<Vec<PathBuf>, SearchError> {
        match self {
            SpaceKind::Darts => {
                let [normal, reduce] = genome else { return Ok(Vec::new()) };
                let g = decode::genotype_from_alphas(normal, reduce, DARTS_STEPS)
                    .map_err(|e| SearchError::Decode(e.to_string()))?;
                crate::space::render::write_genotype_pictures(&g, dir)
                    .map_err(|e| SearchError::Io { path: dir.to_path_buf(), reason: e.to_string() })
            }
            SpaceKind::NasBench201 => Ok(Vec::new()),
        }
    }
}
