//! Shared test helpers: the paper's genotypes written out (reference genotypes.py), so model
//! tests do not depend on the genotype parser.

use evnas::space::{DartsOp, Gene, Genotype};

fn genes(list: &[(&str, usize)]) -> Vec<Gene> {
    list.iter().map(|&(name, input)| (DartsOp::from_name(name).expect("known op"), input)).collect()
}

fn genotype(normal: &[(&str, usize)], reduce: &[(&str, usize)]) -> Genotype {
    Genotype {
        normal: genes(normal),
        normal_concat: vec![2, 3, 4, 5],
        reduce: genes(reduce),
        reduce_concat: vec![2, 3, 4, 5],
    }
}

pub fn evnas_a() -> Genotype {
    genotype(
        &[
            ("sep_conv_3x3", 0),
            ("sep_conv_3x3", 1),
            ("sep_conv_5x5", 2),
            ("sep_conv_3x3", 1),
            ("skip_connect", 0),
            ("skip_connect", 2),
            ("dil_conv_5x5", 3),
            ("sep_conv_3x3", 1),
        ],
        &[
            ("dil_conv_5x5", 1),
            ("avg_pool_3x3", 0),
            ("sep_conv_3x3", 0),
            ("avg_pool_3x3", 2),
            ("skip_connect", 1),
            ("skip_connect", 2),
            ("skip_connect", 1),
            ("sep_conv_5x5", 0),
        ],
    )
}

pub fn evnas_b() -> Genotype {
    genotype(
        &[
            ("sep_conv_5x5", 0),
            ("sep_conv_3x3", 1),
            ("sep_conv_5x5", 2),
            ("max_pool_3x3", 0),
            ("sep_conv_3x3", 0),
            ("sep_conv_3x3", 1),
            ("skip_connect", 0),
            ("sep_conv_5x5", 2),
        ],
        &[
            ("skip_connect", 1),
            ("max_pool_3x3", 0),
            ("max_pool_3x3", 0),
            ("avg_pool_3x3", 1),
            ("skip_connect", 2),
            ("avg_pool_3x3", 3),
            ("sep_conv_5x5", 2),
            ("sep_conv_5x5", 0),
        ],
    )
}

pub fn evnas_c() -> Genotype {
    genotype(
        &[
            ("skip_connect", 0),
            ("sep_conv_3x3", 1),
            ("skip_connect", 2),
            ("sep_conv_5x5", 1),
            ("max_pool_3x3", 1),
            ("sep_conv_3x3", 0),
            ("sep_conv_3x3", 0),
            ("sep_conv_5x5", 3),
        ],
        &[
            ("sep_conv_5x5", 1),
            ("dil_conv_3x3", 0),
            ("sep_conv_5x5", 0),
            ("skip_connect", 1),
            ("max_pool_3x3", 0),
            ("max_pool_3x3", 1),
            ("max_pool_3x3", 0),
            ("max_pool_3x3", 2),
        ],
    )
}

pub fn darts_v2() -> Genotype {
    genotype(
        &[
            ("sep_conv_3x3", 0),
            ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 0),
            ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 1),
            ("skip_connect", 0),
            ("skip_connect", 0),
            ("dil_conv_3x3", 2),
        ],
        &[
            ("max_pool_3x3", 0),
            ("max_pool_3x3", 1),
            ("skip_connect", 2),
            ("max_pool_3x3", 1),
            ("max_pool_3x3", 0),
            ("skip_connect", 2),
            ("skip_connect", 2),
            ("max_pool_3x3", 1),
        ],
    )
}
