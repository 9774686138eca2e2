//! Golden check of DARTS decoding against the reference implementation's own outputs.
//!
//! tests/fixtures/space/decode_reference.json was made by
//! `scripts/fixtures/space_decode_reference.py` (see its header): 12 α pairs drawn by torch and
//! what utils.derive_architecture_topk, utils.discretize and model_search's genotype() made of them.

use evnas::space::{decode, derive_cell, genotype_from_alphas, AlphaMatrix, Gene, Genotype};
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    normal: Vec<f32>,
    reduce: Vec<f32>,
    topk_normal: Vec<Gene>,
    topk_reduce: Vec<Gene>,
    discretized_normal: Vec<f32>,
    discretized_reduce: Vec<f32>,
    genotype: Genotype,
}

fn alpha(values: &[f32]) -> AlphaMatrix {
    AlphaMatrix::from_values(14, 8, values.to_vec()).expect("fixture alphas are 14 x 8")
}

#[test]
fn decoding_matches_reference_outputs() {
    let text = include_str!("fixtures/space/decode_reference.json");
    let fixture: Fixture = serde_json::from_str(text).expect("fixture parses");
    assert_eq!(fixture.cases.len(), 12);
    for (i, case) in fixture.cases.iter().enumerate() {
        let (normal, reduce) = (alpha(&case.normal), alpha(&case.reduce));
        assert_eq!(derive_cell(&normal, 4).unwrap(), case.topk_normal, "case {i} normal genes");
        assert_eq!(derive_cell(&reduce, 4).unwrap(), case.topk_reduce, "case {i} reduce genes");
        assert_eq!(decode(&normal, 4).unwrap(), alpha(&case.discretized_normal), "case {i} normal α^d");
        assert_eq!(decode(&reduce, 4).unwrap(), alpha(&case.discretized_reduce), "case {i} reduce α^d");
        assert_eq!(genotype_from_alphas(&normal, &reduce, 4).unwrap(), case.genotype, "case {i} genotype");
    }
}
