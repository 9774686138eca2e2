//! Pictures of a cell, like the reference's visualize.py `plot()`: inputs c_{k-2} and c_{k-1},
//! intermediate nodes 0.., the output c_{k}; one edge per gene labelled with its op, and an edge
//! from each concatenated state to c_{k}.
//!
//! Graphviz DOT text (for users who have `dot`) and an SVG drawn here without external tools.
//! Unlike visualize.py, which joins every intermediate node to c_{k}, the output edges follow
//! the genotype's concat list, so NASNet/AmoebaNet cells are drawn as they are built.

mod dot;
mod layout;
mod svg;

use std::path::{Path, PathBuf};

use super::genotype::{CellKind, Gene, Genotype, InvalidGenotype};

pub use dot::render_cell_dot;
pub use svg::render_cell_svg;

/// A cell that cannot be drawn, or a picture that cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error(
        "{count} genes do not make a cell: it needs two per intermediate node, so a positive even count"
    )]
    GeneCount { count: usize },
    #[error("gene {gene} reads state {input}, but node {node} can only read states 0..{}", node + 2)]
    InputOutOfRange { gene: usize, node: usize, input: usize },
    #[error("concat names state {state}, but the cell has only states 0..{states}")]
    ConcatOutOfRange { state: usize, states: usize },
    #[error(transparent)]
    Invalid(#[from] InvalidGenotype),
    #[error("cannot write picture {}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("cannot create directory {}", path.display())]
    CreateDir { path: PathBuf, source: std::io::Error },
}

/// The drawable graph of one cell. States 0 and 1 are the inputs, 2.. the intermediate nodes,
/// and `output()` is c_{k}.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CellGraph {
    pub steps: usize,
    /// (from state, to node id, op label); concat edges have no label.
    pub edges: Vec<(usize, usize, Option<String>)>,
}

impl CellGraph {
    pub fn new(genes: &[Gene], concat: &[usize]) -> Result<Self, RenderError> {
        if genes.is_empty() || !genes.len().is_multiple_of(2) {
            return Err(RenderError::GeneCount { count: genes.len() });
        }
        let steps = genes.len() / 2;
        let mut edges = Vec::with_capacity(genes.len() + concat.len());
        for (gene, &(op, input)) in genes.iter().enumerate() {
            let node = gene / 2;
            if input >= node + 2 {
                return Err(RenderError::InputOutOfRange { gene, node, input });
            }
            edges.push((input, node + 2, Some(op.name().to_string())));
        }
        let output = steps + 2;
        for &state in concat {
            if state >= output {
                return Err(RenderError::ConcatOutOfRange { state, states: output });
            }
            edges.push((state, output, None));
        }
        Ok(Self { steps, edges })
    }

    pub fn output(&self) -> usize {
        self.steps + 2
    }

    pub fn node_count(&self) -> usize {
        self.steps + 3
    }

    /// The reference's node names: `c_{k-2}`, `c_{k-1}`, `0`, `1`, ..., `c_{k}`.
    pub fn node_name(&self, id: usize) -> String {
        match id {
            0 => "c_{k-2}".to_string(),
            1 => "c_{k-1}".to_string(),
            _ if id == self.output() => "c_{k}".to_string(),
            _ => (id - 2).to_string(),
        }
    }
}

/// Writes `normal.dot`, `normal.svg`, `reduction.dot` and `reduction.svg` (the reference's
/// file names) into `dir`, creating it if needed; returns the paths written.
pub fn write_genotype_pictures(genotype: &Genotype, dir: &Path) -> Result<Vec<PathBuf>, RenderError> {
    genotype.validate()?;
    std::fs::create_dir_all(dir)
        .map_err(|source| RenderError::CreateDir { path: dir.to_path_buf(), source })?;
    let mut written = Vec::with_capacity(4);
    for (cell, stem, title) in
        [(CellKind::Normal, "normal", "normal cell"), (CellKind::Reduce, "reduction", "reduction cell")]
    {
        let (genes, concat) = (genotype.genes(cell), genotype.concat(cell));
        for (ext, text) in
            [("dot", render_cell_dot(genes, concat, title)?), ("svg", render_cell_svg(genes, concat, title)?)]
        {
            let path = dir.join(format!("{stem}.{ext}"));
            std::fs::write(&path, text).map_err(|source| RenderError::Io { path: path.clone(), source })?;
            written.push(path);
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::DartsOp;

    #[test]
    fn graph_has_gene_and_concat_edges() {
        let genes = [
            (DartsOp::SepConv3x3, 0),
            (DartsOp::SkipConnect, 1),
            (DartsOp::MaxPool3x3, 2),
            (DartsOp::DilConv3x3, 0),
        ];
        let graph = CellGraph::new(&genes, &[2, 3]).unwrap();
        assert_eq!(graph.edges.len(), 6);
        assert_eq!(graph.edges[2], (2, 3, Some("max_pool_3x3".into())));
        assert_eq!(graph.edges[5], (3, 4, None));
        assert_eq!(
            (0..5).map(|i| graph.node_name(i)).collect::<Vec<_>>(),
            ["c_{k-2}", "c_{k-1}", "0", "1", "c_{k}"]
        );
    }

    #[test]
    fn bad_cells_are_rejected() {
        let genes = [(DartsOp::SepConv3x3, 0), (DartsOp::SkipConnect, 2)];
        assert!(matches!(CellGraph::new(&genes, &[2]), Err(RenderError::InputOutOfRange { gene: 1, .. })));
        assert!(matches!(CellGraph::new(&genes[..1], &[2]), Err(RenderError::GeneCount { count: 1 })));
        let genes = [(DartsOp::SepConv3x3, 0), (DartsOp::SkipConnect, 1)];
        assert!(matches!(
            CellGraph::new(&genes, &[3]),
            Err(RenderError::ConcatOutOfRange { state: 3, states: 3 })
        ));
    }

    #[test]
    fn writes_four_pictures() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("pics");
        let written = write_genotype_pictures(&Genotype::builtin("EvNAS-A").unwrap(), &out).unwrap();
        let names: Vec<_> =
            written.iter().map(|p| p.file_name().unwrap().to_str().unwrap().to_string()).collect();
        assert_eq!(names, ["normal.dot", "normal.svg", "reduction.dot", "reduction.svg"]);
        for path in written {
            assert!(std::fs::metadata(&path).unwrap().len() > 100, "{}", path.display());
        }
    }
}
