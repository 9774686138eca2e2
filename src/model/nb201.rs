//! The NAS-Bench-201 one-shot supernet (search space S2 of EvNAS §4): the reference's
//! search_model_NAS201.py `TinyNetwork`, search_cellsNAS201.py `NAS201SearchCell` and
//! cell_operationsNAS201.py `ResNetBasicblock` and ops.
//!
//! Three stages of N search cells (4 nodes, 6 edges, 5 candidate ops per edge) joined by
//! residual reduction blocks. As in the DARTS supernet, α is an input of each forward and the
//! `none` op (exactly zero) is not computed.

use tch::{nn, Tensor};

use super::layers::{BatchNorm2d, Conv2d, ConvSpec, Linear};
use super::ops::{avg_pool_3x3, ReluConvBn};
use super::{ArchWeights, CellWeights, ModelError, OneShotModel};
use crate::space::{Nb201Op, NB201_PRIMITIVES};

/// Shape of the NAS-Bench-201 supernet (reference `TinyNetwork` arguments).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nb201Config {
    /// C of the first stage; 2C and 4C in the next two.
    pub init_channels: i64,
    /// N: search cells per stage.
    pub cells_per_stage: usize,
    /// Nodes per cell including the input node (4: 6 edges).
    pub max_nodes: usize,
    pub in_channels: i64,
    pub num_classes: i64,
    /// BatchNorm affine parameters inside the search cells (the reference searches with false).
    pub affine: bool,
    /// BatchNorm running statistics inside the search cells (reference flag, default false).
    pub track_running_stats: bool,
}

impl Nb201Config {
    /// The reference search setting: C=16, N=5, 4 nodes, no affine and no running stats in cells.
    pub fn new(in_channels: i64, num_classes: i64) -> Self {
        Self {
            init_channels: 16,
            cells_per_stage: 5,
            max_nodes: 4,
            in_channels,
            num_classes,
            affine: false,
            track_running_stats: false,
        }
    }

    /// 6 for 4 nodes.
    pub fn edges_per_cell(&self) -> usize {
        self.max_nodes * (self.max_nodes - 1) / 2
    }
}

/// One candidate op of an edge (stride 1, C_in = C_out inside search cells).
#[derive(Debug)]
enum EdgeOp {
    Skip,
    Conv(ReluConvBn),
    AvgPool,
}

/// A search cell: node i sums, over every earlier node j, Σ_k w_k · op_k(node j). Keys
/// `edges.<i><-<j>.<k>...`.
#[derive(Debug)]
struct SearchCell {
    /// Per edge, in the reference's edge index order (i ascending, then j): (α column, op).
    edges: Vec<Vec<(usize, EdgeOp)>>,
    max_nodes: usize,
}

impl SearchCell {
    fn new(p: &nn::Path, c: i64, config: &Nb201Config) -> Self {
        let mut edges = Vec::new();
        for i in 1..config.max_nodes {
            for j in 0..i {
                let edge = p.sub("edges").sub(format!("{i}<-{j}"));
                let ops = NB201_PRIMITIVES
                    .iter()
                    .enumerate()
                    .filter_map(|(k, &op)| {
                        let path = edge.sub(k);
                        let conv = |kernel: i64, padding: i64| {
                            EdgeOp::Conv(ReluConvBn::with_tracking(
                                &path,
                                ConvSpec::square(c, c, kernel, 1, padding),
                                config.affine,
                                config.track_running_stats,
                            ))
                        };
                        let built = match op {
                            Nb201Op::Zero => return None,
                            Nb201Op::SkipConnect => EdgeOp::Skip,
                            Nb201Op::NorConv1x1 => conv(1, 0),
                            Nb201Op::NorConv3x3 => conv(3, 1),
                            Nb201Op::AvgPool3x3 => EdgeOp::AvgPool,
                        };
                        Some((k, built))
                    })
                    .collect();
                edges.push(ops);
            }
        }
        Self { edges, max_nodes: config.max_nodes }
    }

    fn forward(&self, x: &Tensor, weights: &CellWeights, train: bool) -> Tensor {
        let mut nodes = vec![x.shallow_clone()];
        let mut edge = 0;
        for _ in 1..self.max_nodes {
            let mut node: Option<Tensor> = None;
            for input in &nodes {
                let relu_input = input.relu();
                let mut mixed: Option<Tensor> = None;
                for (k, op) in &self.edges[edge] {
                    let y = match op {
                        EdgeOp::Skip => input.shallow_clone(),
                        EdgeOp::Conv(conv) => conv.forward_relu_applied(&relu_input, train),
                        EdgeOp::AvgPool => avg_pool_3x3(input, 1),
                    };
                    let weighted = y * f64::from(weights.edge(edge)[*k]);
                    mixed = Some(match mixed {
                        None => weighted,
                        Some(m) => m + weighted,
                    });
                }
                edge += 1;
                // An edge whose only candidate would be `none` contributes zeros.
                let mixed = mixed.unwrap_or_else(|| input.zeros_like());
                node = Some(match node {
                    None => mixed,
                    Some(n) => n + mixed,
                });
            }
            nodes.push(node.expect("every node has an input"));
        }
        nodes.pop().expect("cell has nodes")
    }
}

/// The residual reduction block between stages (reference `ResNetBasicblock(C, 2C, stride 2)`):
/// keys `conv_a`, `conv_b`, `downsample.1`.
#[derive(Debug)]
struct ResidualReduction {
    conv_a: ReluConvBn,
    conv_b: ReluConvBn,
    downsample: Conv2d,
}

impl ResidualReduction {
    fn new(p: &nn::Path, c_in: i64, c_out: i64) -> Self {
        Self {
            conv_a: ReluConvBn::new(&p.sub("conv_a"), ConvSpec::square(c_in, c_out, 3, 2, 1), true),
            conv_b: ReluConvBn::new(&p.sub("conv_b"), ConvSpec::square(c_out, c_out, 3, 1, 1), true),
            downsample: Conv2d::new(&p.sub("downsample").sub("1"), ConvSpec::square(c_in, c_out, 1, 1, 0)),
        }
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        // (N, C, H, W) -> (N, 2C, H/2, W/2)
        let block = self.conv_b.forward_t(&self.conv_a.forward_t(x, train), train);
        let residual =
            self.downsample.forward(&x.avg_pool2d([2, 2], [2, 2], [0, 0], false, true, None::<i64>));
        residual + block
    }
}

#[derive(Debug)]
enum Stage {
    Search(SearchCell),
    Reduce(Box<ResidualReduction>),
}

/// The NAS-Bench-201 supernet (reference `TinyNetwork`) without its α.
///
/// # Shapes
/// input `(N, in_channels, H, W)` -> logits `(N, num_classes)`; alphas `[cell]` of shape
/// `(edges_per_cell, 5)` f32.
#[derive(Debug)]
pub struct Nb201Supernet {
    config: Nb201Config,
    stem_conv: Conv2d,
    stem_bn: BatchNorm2d,
    cells: Vec<Stage>,
    lastact_bn: BatchNorm2d,
    classifier: Linear,
}

impl Nb201Supernet {
    pub fn new(p: &nn::Path, config: Nb201Config) -> Self {
        let c = config.init_channels;
        let stem = p.sub("stem");
        let stem_conv = Conv2d::new(&stem.sub("0"), ConvSpec::square(config.in_channels, c, 3, 1, 1));
        let stem_bn = BatchNorm2d::new(&stem.sub("1"), c, true);
        let n = config.cells_per_stage;
        let mut cells = Vec::with_capacity(3 * n + 2);
        let mut c_prev = c;
        for stage in 0..3 {
            let c_stage = c << stage;
            if stage > 0 {
                cells.push(Stage::Reduce(Box::new(ResidualReduction::new(
                    &p.sub("cells").sub(cells.len()),
                    c_prev,
                    c_stage,
                ))));
            }
            for _ in 0..n {
                cells.push(Stage::Search(SearchCell::new(
                    &p.sub("cells").sub(cells.len()),
                    c_stage,
                    &config,
                )));
            }
            c_prev = c_stage;
        }
        let lastact_bn = BatchNorm2d::new(&p.sub("lastact").sub("0"), c_prev, true);
        let classifier = Linear::new(&p.sub("classifier"), c_prev, config.num_classes);
        Self { config, stem_conv, stem_bn, cells, lastact_bn, classifier }
    }

    pub fn config(&self) -> &Nb201Config {
        &self.config
    }
}

impl OneShotModel for Nb201Supernet {
    fn forward_arch(&self, x: &Tensor, arch: &ArchWeights, train: bool) -> Result<Tensor, ModelError> {
        let [weights] = arch.expect(&["cell"], &[(self.config.edges_per_cell(), NB201_PRIMITIVES.len())])?
        else {
            return Err(ModelError::AlphaCount { expected: 1, got: arch.cells().len() });
        };
        let mut feature = self.stem_bn.forward_t(&self.stem_conv.forward(x), train);
        for cell in &self.cells {
            feature = match cell {
                Stage::Search(c) => c.forward(&feature, weights, train),
                Stage::Reduce(r) => r.forward_t(&feature, train),
            };
        }
        let out = self.lastact_bn.forward_t(&feature, train).relu();
        // (N, 4C, h, w) -> (N, 4C)
        let pooled = out.adaptive_avg_pool2d([1, 1]).flatten(1, -1);
        Ok(self.classifier.forward(&pooled))
    }
}
