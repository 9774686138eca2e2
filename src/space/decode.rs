//! DARTS decoding, EvNAS §3.2: α → genotype → one-hot α^d.
//!
//! Implements the reference's `utils.derive_architecture_topk` (genes of one cell) and
//! `utils.discretize` (the one-hot α^d the supernet is run with), which agree with
//! `model_search.Network.genotype()`:
//! - per edge, softmax the row; the chosen op is the argmax, or, if that is `none`, the best
//!   other op; the edge's strength is the softmax weight of the chosen op;
//! - per intermediate node keep the 2 strongest incoming edges, strongest first, ties kept in
//!   edge order (Python's `sort` is stable, also with `reverse=True`).
//!
//! Edge rows are ordered node by node: node i reads states 0..i+2, so with 4 steps the nodes
//! start at rows 0, 2, 5, 9 and the cell has 14 edges.
//!
//! Ties between ops go to the lower column, as `torch.argmax`. Where `none` ties for the maximum
//! the reference takes `torch.topk(w, 2).indices[1]`, whose order among equal values torch leaves
//! unspecified; we take the best non-`none` op, lowest column first.

use super::alpha::AlphaMatrix;
use super::genotype::{Gene, Genotype};
use super::ops::{DartsOp, DARTS_PRIMITIVES};

/// Intermediate nodes whose outputs the supernet concatenates (`multiplier` in model_search.py).
pub const DARTS_MULTIPLIER: usize = 4;

/// Incoming edges kept per intermediate node.
pub const EDGES_PER_NODE: usize = 2;

/// α that cannot be decoded as a DARTS cell.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum DecodeError {
    #[error("alpha has {ops} op columns; the DARTS space has {expected}")]
    OpCount { ops: usize, expected: usize },
    #[error("alpha has {edges} edge rows; a DARTS cell with {steps} steps has {expected}")]
    EdgeCount { edges: usize, steps: usize, expected: usize },
    #[error("a DARTS cell needs at least one step")]
    NoSteps,
    #[error("alpha value at edge {edge}, op {op} is {value}, not a finite number")]
    NotFinite { edge: usize, op: usize, value: f32 },
    #[error("op {op} of gene {gene} is not a DARTS search primitive, so it has no alpha column")]
    NotAPrimitive { gene: usize, op: DartsOp },
    #[error("gene {gene} reads state {input}, outside node {node}'s inputs")]
    InputOutOfRange { gene: usize, node: usize, input: usize },
    #[error("genes {} and {gene} of node {node} both read state {input}; α has one row per edge", gene - 1)]
    DuplicateInput { gene: usize, node: usize, input: usize },
    #[error("{genes} genes do not make a cell of {steps} steps with 2 genes each")]
    GeneCount { genes: usize, steps: usize },
}

/// Edge rows of a cell with `steps` intermediate nodes: 2 + 3 + ... + (steps + 1).
pub fn edges_for_steps(steps: usize) -> usize {
    steps * (steps + 3) / 2
}

/// Steps of a cell with `edges` edge rows (14 → 4), if any cell has that many.
pub fn steps_for_edges(edges: usize) -> Option<usize> {
    (1..=edges).find(|&steps| edges_for_steps(steps) == edges)
}

/// First edge row of intermediate node `node`.
pub fn node_offset(node: usize) -> usize {
    edges_for_steps(node)
}

/// The states concatenated into the cell output, `range(2 + steps - multiplier, steps + 2)`;
/// clamped at 0 because the supernet's `states[-multiplier:]` never reaches before state 0.
pub fn darts_concat(steps: usize) -> Vec<usize> {
    ((steps + 2).saturating_sub(DARTS_MULTIPLIER)..steps + 2).collect()
}

fn check_shape(alpha: &AlphaMatrix, steps: usize) -> Result<(), DecodeError> {
    if steps == 0 {
        return Err(DecodeError::NoSteps);
    }
    if alpha.ops() != DARTS_PRIMITIVES.len() {
        return Err(DecodeError::OpCount { ops: alpha.ops(), expected: DARTS_PRIMITIVES.len() });
    }
    let expected = edges_for_steps(steps);
    if alpha.edges() != expected {
        return Err(DecodeError::EdgeCount { edges: alpha.edges(), steps, expected });
    }
    if let Some(index) = alpha.values().iter().position(|v| !v.is_finite()) {
        let (edge, op) = (index / alpha.ops(), index % alpha.ops());
        return Err(DecodeError::NotFinite { edge, op, value: alpha.values()[index] });
    }
    Ok(())
}

/// The chosen op column of one softmaxed edge row and its weight.
fn strongest_op(weights: &[f32]) -> (usize, f32) {
    let none = 0; // DARTS_PRIMITIVES[0] is `none`
    let mut best = none;
    for (column, &w) in weights.iter().enumerate() {
        if w > weights[best] {
            best = column;
        }
    }
    if best == none {
        best = 1;
        for (column, &w) in weights.iter().enumerate().skip(2) {
            if w > weights[best] {
                best = column;
            }
        }
    }
    (best, weights[best])
}

/// Genes of one cell: per node, the 2 strongest incoming edges, strongest first, as (op, input).
pub fn derive_cell(alpha: &AlphaMatrix, steps: usize) -> Result<Vec<Gene>, DecodeError> {
    check_shape(alpha, steps)?;
    let mut genes = Vec::with_capacity(EDGES_PER_NODE * steps);
    for node in 0..steps {
        let offset = node_offset(node);
        // (input state, op column, strength) for every incoming edge, in edge order.
        let mut candidates: Vec<(usize, usize, f32)> = (0..node + 2)
            .map(|input| {
                let (column, strength) = strongest_op(&alpha.softmax_row(offset + input));
                (input, column, strength)
            })
            .collect();
        // Stable, descending: equal strengths keep edge order, as Python's sort(reverse=True).
        candidates.sort_by(|a, b| b.2.total_cmp(&a.2));
        genes.extend(
            candidates
                .iter()
                .take(EDGES_PER_NODE)
                .map(|&(input, column, _)| (DARTS_PRIMITIVES[column], input)),
        );
    }
    Ok(genes)
}

/// One-hot α of a cell's genes: 1.0 at (edge of each gene, column of its op), 0 elsewhere.
pub fn alpha_from_genes(genes: &[Gene], steps: usize) -> Result<AlphaMatrix, DecodeError> {
    if steps == 0 {
        return Err(DecodeError::NoSteps);
    }
    if genes.len() != EDGES_PER_NODE * steps {
        return Err(DecodeError::GeneCount { genes: genes.len(), steps });
    }
    let mut alpha = AlphaMatrix::zeros(edges_for_steps(steps), DARTS_PRIMITIVES.len());
    for (gene, &(op, input)) in genes.iter().enumerate() {
        let node = gene / EDGES_PER_NODE;
        if input >= node + 2 {
            return Err(DecodeError::InputOutOfRange { gene, node, input });
        }
        if gene % EDGES_PER_NODE == 1 && genes[gene - 1].1 == input {
            return Err(DecodeError::DuplicateInput { gene, node, input });
        }
        let column = op.primitive_index().ok_or(DecodeError::NotAPrimitive { gene, op })?;
        alpha.set(node_offset(node) + input, column, 1.0);
    }
    Ok(alpha)
}

/// α^d of one cell, as the reference's `discretize`: zeros, 1.0 at each chosen (edge, op).
pub fn decode(alpha: &AlphaMatrix, steps: usize) -> Result<AlphaMatrix, DecodeError> {
    alpha_from_genes(&derive_cell(alpha, steps)?, steps)
}

/// The genotype of a normal/reduce α pair, concat `range(2 + steps - 4, steps + 2)`.
pub fn genotype_from_alphas(
    normal: &AlphaMatrix,
    reduce: &AlphaMatrix,
    steps: usize,
) -> Result<Genotype, DecodeError> {
    Ok(Genotype {
        normal: derive_cell(normal, steps)?,
        normal_concat: darts_concat(steps),
        reduce: derive_cell(reduce, steps)?,
        reduce_concat: darts_concat(steps),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const STEPS: usize = 4;
    const EDGES: usize = 14;
    const OPS: usize = 8;

    fn alpha(values: Vec<f32>) -> AlphaMatrix {
        AlphaMatrix::from_values(EDGES, OPS, values).unwrap()
    }

    /// A transcription of model_search.py `genotype()._parse`, an independent route to the genes:
    /// sort edges by their best non-`none` weight (stable), take the best non-`none` op.
    fn oracle(alpha: &AlphaMatrix) -> Vec<Gene> {
        let mut genes = Vec::new();
        for node in 0..STEPS {
            let rows: Vec<Vec<f32>> =
                (0..node + 2).map(|j| alpha.softmax_row(node_offset(node) + j)).collect();
            let best = |row: &Vec<f32>| (1..OPS).fold(1, |k, c| if row[c] > row[k] { c } else { k });
            let mut edges: Vec<usize> = (0..node + 2).collect();
            edges.sort_by(|&x, &y| rows[y][best(&rows[y])].total_cmp(&rows[x][best(&rows[x])]));
            for &j in &edges[..2] {
                genes.push((DARTS_PRIMITIVES[best(&rows[j])], j));
            }
        }
        genes
    }

    /// Genes of each node as a sorted pair: the order within a node only permutes the two
    /// summands of that node, which α^d (equal weights) cannot record.
    fn per_node_sets(genes: &[Gene]) -> Vec<Vec<(usize, usize)>> {
        genes
            .chunks(2)
            .map(|pair| {
                let mut p: Vec<_> = pair.iter().map(|(op, i)| (*i, op.primitive_index().unwrap())).collect();
                p.sort();
                p
            })
            .collect()
    }

    /// Uniform values, and values from a small set so that ties between ops and edges are common.
    fn alpha_values() -> impl Strategy<Value = Vec<f32>> {
        prop_oneof![
            prop::collection::vec(-4.0f32..4.0, EDGES * OPS),
            prop::collection::vec(prop::sample::select(vec![0.0f32, 0.5, 1.0]), EDGES * OPS),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn decoded_alpha_has_two_ones_per_node_never_none(values in alpha_values()) {
            let d = decode(&alpha(values), STEPS).unwrap();
            prop_assert!(d.values().iter().all(|&v| v == 0.0 || v == 1.0));
            for node in 0..STEPS {
                let rows = node_offset(node)..node_offset(node) + node + 2;
                let ones: f32 = rows.clone().flat_map(|e| d.row(e).to_vec()).sum();
                prop_assert_eq!(ones, 2.0);
                for edge in rows {
                    prop_assert_eq!(d.get(edge, 0), 0.0, "none chosen on edge {}", edge);
                    let in_row: f32 = d.row(edge).iter().sum();
                    prop_assert!(in_row == 0.0 || in_row == 1.0);
                }
            }
        }

        #[test]
        fn derive_cell_agrees_with_model_search_genotype(values in alpha_values()) {
            let a = alpha(values);
            prop_assert_eq!(derive_cell(&a, STEPS).unwrap(), oracle(&a));
        }

        #[test]
        fn genotype_of_decoded_alpha_is_genotype_of_alpha(n in alpha_values(), r in alpha_values()) {
            let (n, r) = (alpha(n), alpha(r));
            let g = genotype_from_alphas(&n, &r, STEPS).unwrap();
            let (nd, rd) = (decode(&n, STEPS).unwrap(), decode(&r, STEPS).unwrap());
            let gd = genotype_from_alphas(&nd, &rd, STEPS).unwrap();
            prop_assert_eq!(per_node_sets(&gd.normal), per_node_sets(&g.normal));
            prop_assert_eq!(per_node_sets(&gd.reduce), per_node_sets(&g.reduce));
            prop_assert_eq!(&gd.normal_concat, &g.normal_concat);
            // α^d re-encodes exactly: the genes of α^d give back α^d itself.
            prop_assert_eq!(alpha_from_genes(&gd.normal, STEPS).unwrap(), nd);
        }

        #[test]
        fn decode_is_idempotent(values in alpha_values()) {
            let once = decode(&alpha(values), STEPS).unwrap();
            prop_assert_eq!(decode(&once, STEPS).unwrap(), once);
        }
    }

    #[test]
    fn edge_layout_matches_reference() {
        assert_eq!((0..4).map(node_offset).collect::<Vec<_>>(), [0, 2, 5, 9]);
        assert_eq!(edges_for_steps(4), 14);
        assert_eq!(steps_for_edges(14), Some(4));
        assert_eq!(steps_for_edges(2), Some(1));
        assert_eq!(steps_for_edges(13), None);
        assert_eq!(darts_concat(4), [2, 3, 4, 5]);
        assert_eq!(darts_concat(2), [0, 1, 2, 3]);
    }

    #[test]
    fn none_argmax_falls_back_to_second_best_and_strength_follows_it() {
        // Node 0: edge 0 has `none` on top, then skip_connect (0.9); edge 1 is sep_conv_3x3 (0.5).
        let mut a = AlphaMatrix::zeros(EDGES, OPS);
        a.set(0, 0, 5.0);
        a.set(0, 3, 0.9);
        a.set(1, 4, 0.5);
        let genes = derive_cell(&a, STEPS).unwrap();
        // Edge 1's weight e^.5/(e^.5+7) beats edge 0's e^.9/(e^5+e^.9+6): despite the larger α,
        // edge 0 is weaker because `none` takes most of its softmax mass.
        assert_eq!(&genes[..2], &[(DartsOp::SepConv3x3, 1), (DartsOp::SkipConnect, 0)]);
    }

    #[test]
    fn ties_keep_edge_and_column_order() {
        // All-equal rows: every edge ties, every op ties (none included): first two edges,
        // max_pool_3x3 (the first non-none column).
        let genes = derive_cell(&AlphaMatrix::zeros(EDGES, OPS), STEPS).unwrap();
        for (node, pair) in genes.chunks(2).enumerate() {
            assert_eq!(pair, [(DartsOp::MaxPool3x3, 0), (DartsOp::MaxPool3x3, 1)], "node {node}");
        }
    }

    #[test]
    fn shapes_and_values_are_checked() {
        let wrong_ops = AlphaMatrix::zeros(EDGES, 5);
        assert_eq!(derive_cell(&wrong_ops, STEPS), Err(DecodeError::OpCount { ops: 5, expected: 8 }));
        let wrong_edges = AlphaMatrix::zeros(10, OPS);
        assert_eq!(
            decode(&wrong_edges, STEPS),
            Err(DecodeError::EdgeCount { edges: 10, steps: 4, expected: 14 })
        );
        let mut nan = AlphaMatrix::zeros(EDGES, OPS);
        nan.set(3, 2, f32::NAN);
        assert!(matches!(derive_cell(&nan, STEPS), Err(DecodeError::NotFinite { edge: 3, op: 2, .. })));
        let genes = [(DartsOp::SepConv7x7, 0), (DartsOp::SkipConnect, 1)];
        assert_eq!(
            alpha_from_genes(&genes, 1),
            Err(DecodeError::NotAPrimitive { gene: 0, op: DartsOp::SepConv7x7 })
        );
        let same_input = [(DartsOp::SepConv3x3, 1), (DartsOp::SkipConnect, 1)];
        assert_eq!(
            alpha_from_genes(&same_input, 1),
            Err(DecodeError::DuplicateInput { gene: 1, node: 0, input: 1 })
        );
    }

    #[test]
    fn builtin_darts_genotypes_encode_and_decode_back() {
        for name in ["DARTS_V1", "DARTS_V2", "EvNAS-A", "EvNAS-B", "EvNAS-C"] {
            let g = Genotype::builtin(name).unwrap();
            let n = alpha_from_genes(&g.normal, STEPS).unwrap();
            let r = alpha_from_genes(&g.reduce, STEPS).unwrap();
            let back = genotype_from_alphas(&n, &r, STEPS).unwrap();
            assert_eq!(per_node_sets(&back.normal), per_node_sets(&g.normal), "{name}");
            assert_eq!(per_node_sets(&back.reduce), per_node_sets(&g.reduce), "{name}");
        }
    }
}
