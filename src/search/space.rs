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

    /// Mean pairwise Hamming distance of the decoded genotypes of `genomes`, as a fraction of
    /// their edges (0: all alike, 1: no two agree on any edge). An edge's gene is the operation
    /// α^d keeps on it, or none when the edge is dropped.
    pub fn diversity(self, genomes: &[&[AlphaMatrix]]) -> Result<f64, SearchError> {
        let genes = genomes
            .iter()
            .map(|genome| Ok(self.decode(genome)?.iter().flat_map(kept_ops).collect::<Vec<_>>()))
            .collect::<Result<Vec<_>, SearchError>>()?;
        let (mut distance, mut pairs) = (0.0, 0usize);
        for (i, a) in genes.iter().enumerate() {
            for b in &genes[i + 1..] {
                let differ = a.iter().zip(b).filter(|(x, y)| x != y).count();
                distance += differ as f64 / a.len().max(1) as f64;
                pairs += 1;
            }
        }
        Ok(if pairs == 0 { 0.0 } else { distance / pairs as f64 })
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

/// The operation each edge of a decoded α^d keeps (its largest weight), or `None` where every
/// weight is zero (a dropped edge).
fn kept_ops(decoded: &AlphaMatrix) -> Vec<Option<usize>> {
    (0..decoded.edges())
        .map(|edge| {
            let row = decoded.row(edge);
            let (op, weight) =
                row.iter()
                    .enumerate()
                    .fold((0, f32::NEG_INFINITY), |best, (i, &w)| if w > best.1 { (i, w) } else { best });
            (weight > 0.0).then_some(op)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evolution::Individual;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn diversity_is_zero_for_clones_and_positive_for_strangers() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let space = SpaceKind::Darts;
        let a = Individual::random(0, 0, space.genome_shape(), &mut rng);
        let b = Individual::random(1, 0, space.genome_shape(), &mut rng);
        let same = space.diversity(&[&a.genome, &a.genome, &a.genome]).unwrap();
        assert_eq!(same, 0.0);
        let mixed = space.diversity(&[&a.genome, &b.genome]).unwrap();
        assert!(mixed > 0.0 && mixed <= 1.0, "{mixed}");
        // Of three genomes, two alike: one pair in three agrees everywhere.
        let three = space.diversity(&[&a.genome, &a.genome, &b.genome]).unwrap();
        assert!((three - mixed * 2.0 / 3.0).abs() < 1e-12, "{three} vs {mixed}");
        assert_eq!(space.diversity(&[&a.genome]).unwrap(), 0.0);
    }
}
