//! A derived architecture: per cell type, two (op, input) genes per intermediate node.
//!
//! Mirrors the reference's `Genotype` namedtuple (genotypes.py). `Display` prints it exactly as
//! Python prints the namedtuple, so strings move freely between this crate and the reference;
//! [`Genotype::parse_darts`] reads that notation back (see `darts_notation.rs`).

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::builtin;
use super::darts_notation::{self, NotationError};
use super::ops::DartsOp;

/// One gene: the operation on an edge and the index of the state it reads
/// (0 = c_{k-2}, 1 = c_{k-1}, 2.. = earlier intermediate nodes).
pub type Gene = (DartsOp, usize);

/// The reference's `Genotype(normal, normal_concat, reduce, reduce_concat)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Genotype {
    pub normal: Vec<Gene>,
    pub normal_concat: Vec<usize>,
    pub reduce: Vec<Gene>,
    pub reduce_concat: Vec<usize>,
}

/// Which of the two cell types a part of a genotype describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CellKind {
    Normal,
    Reduce,
}

impl CellKind {
    /// The reference's field prefix: `normal` or `reduce`.
    pub fn name(self) -> &'static str {
        match self {
            CellKind::Normal => "normal",
            CellKind::Reduce => "reduce",
        }
    }
}

impl fmt::Display for CellKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A genotype that no cell can be built from.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum InvalidGenotype {
    #[error("{cell} cell has {count} genes; it needs two per intermediate node, so a positive even count")]
    BadGeneCount { cell: CellKind, count: usize },
    #[error("{cell} gene {gene} reads state {input}, but node {node} can only read states 0..{}", node + 2)]
    InputOutOfRange { cell: CellKind, gene: usize, node: usize, input: usize },
    #[error("{cell}_concat is empty")]
    EmptyConcat { cell: CellKind },
    #[error("{cell}_concat item {item} names state {state}, but the cell has only states 0..{states}")]
    ConcatOutOfRange { cell: CellKind, item: usize, state: usize, states: usize },
    #[error("{cell}_concat item {item} names state {state} a second time")]
    DuplicateConcat { cell: CellKind, item: usize, state: usize },
}

/// A genotype with its name: what a training run trains, as its `genotype.json` holds it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NamedGenotype {
    pub name: String,
    pub genotype: Genotype,
}

/// Failure to find, read or parse a genotype.
#[derive(Debug, thiserror::Error)]
pub enum GenotypeError {
    #[error(transparent)]
    Notation(#[from] NotationError),
    #[error(transparent)]
    Invalid(#[from] InvalidGenotype),
    #[error("`{name}` is neither a built-in genotype ({}) nor an existing file", builtin::NAMES.join(", "))]
    NotFound { name: String },
    #[error("cannot read genotype file {}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("genotype file {}", path.display())]
    FileNotation { path: PathBuf, source: NotationError },
    #[error("genotype file {} is not a JSON genotype", path.display())]
    FileJson { path: PathBuf, source: serde_json::Error },
    #[error("genotype file {}", path.display())]
    FileInvalid { path: PathBuf, source: InvalidGenotype },
}

impl Genotype {
    pub fn genes(&self, cell: CellKind) -> &[Gene] {
        match cell {
            CellKind::Normal => &self.normal,
            CellKind::Reduce => &self.reduce,
        }
    }

    pub fn concat(&self, cell: CellKind) -> &[usize] {
        match cell {
            CellKind::Normal => &self.normal_concat,
            CellKind::Reduce => &self.reduce_concat,
        }
    }

    /// Checks what the reference's evaluation cell (model.py) relies on: two genes per node,
    /// each reading an earlier state, and concat naming distinct existing states.
    pub fn validate(&self) -> Result<(), InvalidGenotype> {
        for cell in [CellKind::Normal, CellKind::Reduce] {
            validate_cell(cell, self.genes(cell), self.concat(cell))?;
        }
        Ok(())
    }

    /// Parses the DARTS Python notation, e.g. `Genotype(normal=[('sep_conv_3x3', 0), ...], ...)`.
    pub fn parse_darts(text: &str) -> Result<Genotype, NotationError> {
        darts_notation::parse(text)
    }

    /// A genotype named in the reference's genotypes.py (`EvNAS-A`, `darts_v2`, `nasnet`, ...),
    /// matched ignoring case, dashes and underscores.
    pub fn builtin(name: &str) -> Option<Genotype> {
        builtin::lookup(name)
    }

    /// A built-in name, else a file holding our JSON form or the DARTS notation.
    pub fn load(name_or_path: &str) -> Result<Genotype, GenotypeError> {
        if let Some(genotype) = builtin::lookup(name_or_path) {
            return Ok(genotype);
        }
        let path = Path::new(name_or_path);
        if !path.exists() {
            return Err(GenotypeError::NotFound { name: name_or_path.to_string() });
        }
        Self::load_file(path)
    }

    /// Reads a file holding our JSON form (first non-blank char `{`), also as the `genotype` of
    /// a named one (`{"name": …, "genotype": {…}}`, the genotype.json of a training run), or the
    /// DARTS notation.
    pub fn load_file(path: &Path) -> Result<Genotype, GenotypeError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| GenotypeError::Io { path: path.to_path_buf(), source })?;
        if text.trim_start().starts_with('{') {
            // A file with a "genotype" key is the named form: its errors are the ones to name.
            let named =
                serde_json::from_str::<serde_json::Value>(&text).is_ok_and(|v| v.get("genotype").is_some());
            let parsed = if named {
                serde_json::from_str::<NamedGenotype>(&text).map(|n| n.genotype)
            } else {
                serde_json::from_str(&text)
            };
            let genotype: Genotype =
                parsed.map_err(|source| GenotypeError::FileJson { path: path.to_path_buf(), source })?;
            genotype
                .validate()
                .map_err(|source| GenotypeError::FileInvalid { path: path.to_path_buf(), source })?;
            Ok(genotype)
        } else {
            darts_notation::parse(&text)
                .map_err(|source| GenotypeError::FileNotation { path: path.to_path_buf(), source })
        }
    }
}

fn validate_cell(cell: CellKind, genes: &[Gene], concat: &[usize]) -> Result<(), InvalidGenotype> {
    if genes.is_empty() || !genes.len().is_multiple_of(2) {
        return Err(InvalidGenotype::BadGeneCount { cell, count: genes.len() });
    }
    for (gene, &(_, input)) in genes.iter().enumerate() {
        let node = gene / 2;
        if input >= node + 2 {
            return Err(InvalidGenotype::InputOutOfRange { cell, gene, node, input });
        }
    }
    if concat.is_empty() {
        return Err(InvalidGenotype::EmptyConcat { cell });
    }
    let states = genes.len() / 2 + 2;
    for (item, &state) in concat.iter().enumerate() {
        if state >= states {
            return Err(InvalidGenotype::ConcatOutOfRange { cell, item, state, states });
        }
        if concat[..item].contains(&state) {
            return Err(InvalidGenotype::DuplicateConcat { cell, item, state });
        }
    }
    Ok(())
}

impl fmt::Display for Genotype {
    /// Exactly Python's repr of the reference namedtuple.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Genotype(normal=")?;
        write_genes(f, &self.normal)?;
        f.write_str(", normal_concat=")?;
        write_concat(f, &self.normal_concat)?;
        f.write_str(", reduce=")?;
        write_genes(f, &self.reduce)?;
        f.write_str(", reduce_concat=")?;
        write_concat(f, &self.reduce_concat)?;
        f.write_str(")")
    }
}

fn write_genes(f: &mut fmt::Formatter<'_>, genes: &[Gene]) -> fmt::Result {
    f.write_str("[")?;
    for (i, (op, input)) in genes.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "('{op}', {input})")?;
    }
    f.write_str("]")
}

fn write_concat(f: &mut fmt::Formatter<'_>, concat: &[usize]) -> fmt::Result {
    f.write_str("[")?;
    for (i, state) in concat.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{state}")?;
    }
    f.write_str("]")
}

impl std::str::FromStr for Genotype {
    type Err = NotationError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        darts_notation::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Genotype {
        Genotype {
            normal: vec![(DartsOp::SepConv3x3, 0), (DartsOp::SkipConnect, 1)],
            normal_concat: vec![2],
            reduce: vec![(DartsOp::MaxPool3x3, 1), (DartsOp::DilConv5x5, 0)],
            reduce_concat: vec![2],
        }
    }

    #[test]
    fn prints_python_namedtuple_repr() {
        assert_eq!(
            small().to_string(),
            "Genotype(normal=[('sep_conv_3x3', 0), ('skip_connect', 1)], normal_concat=[2], \
             reduce=[('max_pool_3x3', 1), ('dil_conv_5x5', 0)], reduce_concat=[2])"
        );
    }

    #[test]
    fn json_uses_op_names_and_round_trips() {
        let json = serde_json::to_string(&small()).unwrap();
        assert!(json.contains(r#"["sep_conv_3x3",0]"#), "{json}");
        let back: Genotype = serde_json::from_str(&json).unwrap();
        assert_eq!(back, small());
    }

    #[test]
    fn validation_names_the_problem() {
        let mut g = small();
        g.reduce.push((DartsOp::SepConv3x3, 0));
        assert_eq!(g.validate(), Err(InvalidGenotype::BadGeneCount { cell: CellKind::Reduce, count: 3 }));

        let mut g = small();
        g.normal[1].1 = 2;
        assert_eq!(
            g.validate(),
            Err(InvalidGenotype::InputOutOfRange { cell: CellKind::Normal, gene: 1, node: 0, input: 2 })
        );

        let mut g = small();
        g.normal_concat = vec![2, 3];
        assert_eq!(
            g.validate(),
            Err(InvalidGenotype::ConcatOutOfRange { cell: CellKind::Normal, item: 1, state: 3, states: 3 })
        );

        let mut g = small();
        g.reduce_concat = vec![2, 2];
        assert_eq!(
            g.validate(),
            Err(InvalidGenotype::DuplicateConcat { cell: CellKind::Reduce, item: 1, state: 2 })
        );

        let mut g = small();
        g.reduce_concat.clear();
        assert_eq!(g.validate(), Err(InvalidGenotype::EmptyConcat { cell: CellKind::Reduce }));
        assert!(small().validate().is_ok());
    }

    #[test]
    fn load_reads_json_and_notation_files_and_names_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let json_path = dir.path().join("g.json");
        std::fs::write(&json_path, serde_json::to_string_pretty(&small()).unwrap()).unwrap();
        assert_eq!(Genotype::load(json_path.to_str().unwrap()).unwrap(), small());
        // A training run's genotype.json: the genotype with its name.
        let named_path = dir.path().join("named.json");
        let named = serde_json::json!({ "name": "small", "genotype": small() });
        std::fs::write(&named_path, named.to_string()).unwrap();
        assert_eq!(Genotype::load(named_path.to_str().unwrap()).unwrap(), small());

        let text_path = dir.path().join("g.txt");
        std::fs::write(&text_path, format!("{}\n", small())).unwrap();
        assert_eq!(Genotype::load(text_path.to_str().unwrap()).unwrap(), small());

        let bad_path = dir.path().join("bad.txt");
        std::fs::write(&bad_path, "Genotype(normal=[('sep_conv_4x4', 0)])").unwrap();
        // The message names the file; its source, the notation error, names the op.
        let err =
            format!("{:#}", anyhow::Error::from(Genotype::load(bad_path.to_str().unwrap()).unwrap_err()));
        assert!(err.contains("bad.txt") && err.matches("sep_conv_4x4").count() == 1, "{err}");

        let bad_json = dir.path().join("bad.json");
        std::fs::write(&bad_json, r#"{"normal": [["sep_conv_3x3", 0]]}"#).unwrap();
        let err = Genotype::load(bad_json.to_str().unwrap()).unwrap_err().to_string();
        assert!(err.contains("bad.json"), "{err}");

        let err = Genotype::load("no-such-genotype").unwrap_err().to_string();
        assert!(err.contains("no-such-genotype") && err.contains("EvNAS-A"), "{err}");
    }

    #[test]
    fn load_prefers_builtin_names() {
        assert_eq!(Genotype::load("evnas-a").unwrap(), Genotype::builtin("EvNASA").unwrap());
    }
}
