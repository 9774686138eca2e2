//! The DARTS one-shot supernet (reference model_search.py: `MixedOp`, `Cell`, `Network`).
//!
//! EvNAS (Sinha & Chen 2021, §3.1) shares this network's weights among all individuals: each
//! forward receives the (decoded) α of the normal and reduction cells, applies a softmax over
//! the op dimension as the reference does, and weights every candidate op of every edge by it.
//!
//! Work the reference does and we skip, without changing a result: the `none` op contributes
//! exactly `w * 0`, so it is never computed; everything the edges leaving one state compute from
//! that state alone is computed once per state (see [`EdgeInput`]).

use tch::{nn, Tensor};

use super::layers::{channels_last, BatchNorm2d, Conv2d, ConvSpec, Hw, Linear};
use super::ops::{avg_pool_3x3, max_pool_3x3, FactorizedReduce, Op, ReluConvBn};
use super::{ArchWeights, CellWeights, ModelError, OneShotModel};
use crate::space::{DartsOp, DARTS_PRIMITIVES};

/// Shape of the supernet (reference `Network(C, num_classes, layers, ...)` arguments).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SupernetConfig {
    /// C: channels of the first cells; doubled at each reduction cell.
    pub init_channels: i64,
    /// Number of cells; reduction cells sit at layers/3 and 2*layers/3.
    pub layers: usize,
    /// Image channels: 3 for CIFAR, 1 for Fashion-MNIST (the reference hard-codes 3).
    pub in_channels: i64,
    pub num_classes: i64,
    /// Intermediate nodes per cell.
    pub steps: usize,
    /// How many of the last nodes are concatenated into the cell output.
    pub multiplier: usize,
    /// The stem outputs stem_multiplier * C channels.
    pub stem_multiplier: i64,
}

impl SupernetConfig {
    /// The reference's defaults for steps (4), multiplier (4) and stem multiplier (3).
    pub fn new(init_channels: i64, layers: usize, in_channels: i64, num_classes: i64) -> Self {
        Self { init_channels, layers, in_channels, num_classes, steps: 4, multiplier: 4, stem_multiplier: 3 }
    }

    /// Edges per cell: node i (0-based) has 2 + i inputs. 14 for 4 steps.
    pub fn edges_per_cell(&self) -> usize {
        (0..self.steps).map(|i| 2 + i).sum()
    }

    fn is_reduction(&self, cell: usize) -> bool {
        cell == self.layers / 3 || cell == 2 * self.layers / 3
    }
}

/// What every edge leaving one state of a cell computes from that state alone: the state, its
/// ReLU (the first layer of every conv op) and its two pooled maps after their BatchNorms.
///
/// The reference computes these once per edge. All edges leaving a state share its stride, and a
/// pool's BatchNorm has no affine parameters, so in train mode (batch statistics) every edge's
/// pool + BatchNorm gives the same tensor; in eval mode too, because their running statistics
/// are kept equal (see [`MixedOp::copy_pool_stats_from`]). Computing them once per state saves
/// 9 of the 14 pool/BatchNorm pairs of a cell, and their backward passes.
struct EdgeInput {
    x: Tensor,
    relu: Tensor,
    max_pool: Tensor,
    avg_pool: Tensor,
}

/// All eight candidate ops of one edge (reference `MixedOp`), keys `_ops.<k>...`; pooling ops
/// are followed by a non-affine BatchNorm (`_ops.1.1`, `_ops.2.1`).
#[derive(Debug)]
struct MixedOp {
    /// (column of α, op); `none` is left out (it adds exactly zero).
    ops: Vec<(usize, Op)>,
    max_pool_bn: BatchNorm2d,
    avg_pool_bn: BatchNorm2d,
    stride: i64,
}

impl MixedOp {
    fn new(p: &nn::Path, c: i64, stride: i64) -> Self {
        let p = p.sub("_ops");
        let column = |op: DartsOp| DARTS_PRIMITIVES.iter().position(|&o| o == op).expect("a DARTS primitive");
        let pool_bn = |op: DartsOp| BatchNorm2d::new(&p.sub(column(op)).sub("1"), c, false);
        let ops = DARTS_PRIMITIVES
            .iter()
            .enumerate()
            .filter(|(_, &op)| op != DartsOp::Zero)
            .map(|(k, &op)| (k, Op::new(&p.sub(k), op, c, stride, false)))
            .collect();
        Self {
            ops,
            max_pool_bn: pool_bn(DartsOp::MaxPool3x3),
            avg_pool_bn: pool_bn(DartsOp::AvgPool3x3),
            stride,
        }
    }

    /// The shared part of every edge leaving `x`, computed with this edge's pool BatchNorms.
    fn edge_input(&self, x: &Tensor, train: bool) -> EdgeInput {
        EdgeInput {
            x: x.shallow_clone(),
            relu: x.relu(),
            max_pool: self.max_pool_bn.forward_t(&max_pool_3x3(x, self.stride), train),
            avg_pool: self.avg_pool_bn.forward_t(&avg_pool_3x3(x, self.stride), train),
        }
    }

    /// After `first` computed the [`EdgeInput`] this edge used, take over the running statistics
    /// its pool BatchNorms would have reached themselves (they normalised the same tensor).
    fn copy_pool_stats_from(&self, first: &MixedOp) {
        self.max_pool_bn.copy_running_stats_from(&first.max_pool_bn);
        self.avg_pool_bn.copy_running_stats_from(&first.avg_pool_bn);
    }

    /// Σ_k w_k · op_k(x), summed in the reference's order.
    fn forward(&self, input: &EdgeInput, weights: &[f32], train: bool) -> Tensor {
        let mut sum: Option<Tensor> = None;
        // Folding the weight into an op's closing BatchNorm saves a pass, but only without
        // gradients: libtorch 2.11's CPU BatchNorm backward computes a wrong input gradient when
        // the output gradient arrives in another layout than the input (here: channel slices of
        // the cell's concatenated output), which the multiplication's backward otherwise avoids.
        let fold = !input.relu.requires_grad();
        for (k, op) in &self.ops {
            let w = f64::from(weights[*k]);
            let weighted = match op {
                Op::MaxPool3x3 { .. } => &input.max_pool * w,
                Op::AvgPool3x3 { .. } => &input.avg_pool * w,
                op if fold => op.forward_shared_relu_scaled(&input.x, &input.relu, train, w),
                op => op.forward_shared_relu(&input.x, &input.relu, train) * w,
            };
            // In place: the sum is a fresh tensor no backward pass needs (same additions, same order).
            sum = Some(match sum {
                None => weighted,
                Some(mut s) => {
                    s += &weighted;
                    s
                }
            });
        }
        sum.expect("a mixed op holds at least one non-zero op")
    }

    fn macs(&self, hw: Hw) -> (u64, Hw) {
        self.ops.iter().fold((0, hw), |(total, _), (_, op)| {
            let (m, out) = op.macs(hw);
            (total + m, out)
        })
    }

    fn convs(&self) -> Vec<&Conv2d> {
        self.ops.iter().flat_map(|(_, op)| op.convs()).collect()
    }
}

/// The first input of a cell is reduced when the previous cell was a reduction cell.
#[derive(Debug)]
enum Preprocess {
    Reduce(FactorizedReduce),
    Conv(ReluConvBn),
}

impl Preprocess {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        match self {
            Preprocess::Reduce(op) => op.forward_t(x, train),
            Preprocess::Conv(op) => op.forward_t(x, train),
        }
    }

    fn macs(&self, hw: Hw) -> (u64, Hw) {
        match self {
            Preprocess::Reduce(op) => op.macs(hw),
            Preprocess::Conv(op) => op.macs(hw),
        }
    }

    fn convs(&self) -> Vec<&Conv2d> {
        match self {
            Preprocess::Reduce(op) => op.convs(),
            Preprocess::Conv(op) => op.convs(),
        }
    }
}

/// One search cell (reference model_search.py `Cell`).
#[derive(Debug)]
struct SearchCell {
    reduction: bool,
    preprocess0: Preprocess,
    preprocess1: ReluConvBn,
    steps: usize,
    multiplier: usize,
    /// One mixed op per edge, node by node, inputs in order (`_ops.<edge>`).
    ops: Vec<MixedOp>,
}

impl SearchCell {
    #[allow(clippy::too_many_arguments)]
    fn new(
        p: &nn::Path,
        steps: usize,
        multiplier: usize,
        c_prev_prev: i64,
        c_prev: i64,
        c: i64,
        reduction: bool,
        reduction_prev: bool,
    ) -> Self {
        let preprocess0 = if reduction_prev {
            Preprocess::Reduce(FactorizedReduce::new(&p.sub("preprocess0"), c_prev_prev, c, false))
        } else {
            Preprocess::Conv(ReluConvBn::new(
                &p.sub("preprocess0"),
                ConvSpec::square(c_prev_prev, c, 1, 1, 0),
                false,
            ))
        };
        let preprocess1 = ReluConvBn::new(&p.sub("preprocess1"), ConvSpec::square(c_prev, c, 1, 1, 0), false);
        let ops_path = p.sub("_ops");
        let mut ops = Vec::new();
        for node in 0..steps {
            for input in 0..2 + node {
                let stride = if reduction && input < 2 { 2 } else { 1 };
                ops.push(MixedOp::new(&ops_path.sub(ops.len()), c, stride));
            }
        }
        Self { reduction, preprocess0, preprocess1, steps, multiplier, ops }
    }

    /// Index of the first edge that reads state `state` (0, 1: the cell inputs; 2..: nodes):
    /// edges are ordered node by node, and node i reads states 0..2+i.
    fn first_edge_from(&self, state: usize) -> usize {
        Self::first_edge_of_node(state.max(1) - 1) + state
    }

    /// `weights`: softmax(α) rows, one per edge.
    ///
    /// Goes state by state rather than node by node: each state's [`EdgeInput`] (its ReLU and
    /// pools, three state-sized tensors) is made when the state is complete, added into every
    /// node that reads it, and dropped, so that one is alive at a time instead of one per state.
    /// Each node still sums its inputs in the reference's order (state 0, 1, 2, ...).
    fn forward(&self, s0: &Tensor, s1: &Tensor, weights: &CellWeights, train: bool) -> Tensor {
        let mut states = vec![self.preprocess0.forward_t(s0, train), self.preprocess1.forward_t(s1, train)];
        let mut nodes: Vec<Option<Tensor>> = (0..self.steps).map(|_| None).collect();
        // Node k reads states 0..=k+1; the last node's output is read by none.
        for j in 0..=self.steps {
            let input = self.ops[self.first_edge_from(j)].edge_input(&states[j], train);
            for (node, sum) in nodes.iter_mut().enumerate().skip(j.max(1) - 1) {
                let edge = Self::first_edge_of_node(node) + j;
                let y = self.ops[edge].forward(&input, weights.edge(edge), train);
                *sum = Some(match sum.take() {
                    None => y,
                    Some(mut n) => {
                        n += &y;
                        n
                    }
                });
            }
            drop(input);
            // Only the last `multiplier` states make the cell's output.
            if j + self.multiplier < 2 + self.steps {
                states[j] = Tensor::new();
            }
            // Node j-1 has all its inputs now: it is state j+1.
            if j >= 1 {
                states.push(nodes[j - 1].take().expect("every node has at least two inputs"));
            }
        }
        if train {
            self.sync_pool_stats();
        }
        Tensor::cat(&states[states.len() - self.multiplier..], 1)
    }

    /// Index of node `node`'s first edge (edges are ordered node by node, node i has 2+i).
    fn first_edge_of_node(node: usize) -> usize {
        (0..node).map(|i| 2 + i).sum()
    }

    /// Gives every edge's pool BatchNorms the running statistics of the first edge leaving the
    /// same state, which computed the shared [`EdgeInput`].
    fn sync_pool_stats(&self) {
        let mut edge = 0;
        for node in 0..self.steps {
            for j in 0..2 + node {
                let first = self.first_edge_from(j);
                if first != edge + j {
                    self.ops[edge + j].copy_pool_stats_from(&self.ops[first]);
                }
            }
            edge += 2 + node;
        }
    }

    fn macs(&self, hw0: Hw, hw1: Hw) -> (u64, Hw) {
        let (m0, hw) = self.preprocess0.macs(hw0);
        let (m1, _) = self.preprocess1.macs(hw1);
        let mut total = m0 + m1;
        // Spatial size of every state: intermediate nodes of a reduction cell are already reduced.
        let mut state_hw = vec![hw, hw];
        let mut edge = 0;
        for _ in 0..self.steps {
            let mut node_hw = hw;
            for (input, &input_hw) in state_hw.iter().enumerate() {
                let (m, out) = self.ops[edge + input].macs(input_hw);
                total += m;
                node_hw = out;
            }
            edge += state_hw.len();
            state_hw.push(node_hw);
        }
        (total, state_hw[state_hw.len() - 1])
    }

    fn convs(&self) -> Vec<&Conv2d> {
        let mut convs = self.preprocess0.convs();
        convs.extend(self.preprocess1.convs());
        convs.extend(self.ops.iter().flat_map(MixedOp::convs));
        convs
    }
}

/// The DARTS supernet (reference model_search.py `Network`), without its α: those are
/// an input of [`OneShotModel::forward_arch`].
///
/// # Shapes
/// input `(N, in_channels, H, W)` -> logits `(N, num_classes)`; alphas `[normal, reduce]`,
/// each `(edges_per_cell, 8)` f32.
#[derive(Debug)]
pub struct Supernet {
    config: SupernetConfig,
    stem_conv: Conv2d,
    stem_bn: BatchNorm2d,
    cells: Vec<SearchCell>,
    classifier: Linear,
    channels_last: bool,
}

impl Supernet {
    pub fn new(p: &nn::Path, config: SupernetConfig) -> Self {
        let c = config.init_channels;
        let c_stem = config.stem_multiplier * c;
        let stem = p.sub("stem");
        let stem_conv = Conv2d::new(&stem.sub("0"), ConvSpec::square(config.in_channels, c_stem, 3, 1, 1));
        let stem_bn = BatchNorm2d::new(&stem.sub("1"), c_stem, true);

        let (mut c_prev_prev, mut c_prev, mut c_curr) = (c_stem, c_stem, c);
        let cells_path = p.sub("cells");
        let mut cells = Vec::with_capacity(config.layers);
        let mut reduction_prev = false;
        for i in 0..config.layers {
            let reduction = config.is_reduction(i);
            if reduction {
                c_curr *= 2;
            }
            cells.push(SearchCell::new(
                &cells_path.sub(i),
                config.steps,
                config.multiplier,
                c_prev_prev,
                c_prev,
                c_curr,
                reduction,
                reduction_prev,
            ));
            reduction_prev = reduction;
            c_prev_prev = c_prev;
            c_prev = config.multiplier as i64 * c_curr;
        }
        let classifier = Linear::new(&p.sub("classifier"), c_prev, config.num_classes);
        Self { config, stem_conv, stem_bn, cells, classifier, channels_last: false }
    }

    pub fn config(&self) -> &SupernetConfig {
        &self.config
    }

    /// Lays the convolution weights (and, in each forward, the input) out channels-last.
    ///
    /// Same numbers up to float rounding order; on CPU the channels-last kernels are faster.
    /// Call it after loading weights: loading copies into the existing layout.
    pub fn use_channels_last(&mut self) {
        self.stem_conv.to_channels_last();
        for cell in &self.cells {
            for conv in cell.convs() {
                conv.to_channels_last();
            }
        }
        self.channels_last = true;
    }

    /// Convolution multiply-accumulates of one image of size `hw` (millions not applied), and the
    /// classifier's, for the whole supernet (every candidate op counted).
    pub fn macs(&self, hw: Hw) -> (u64, u64) {
        let (mut total, hw) = self.stem_conv.macs(hw);
        let (mut hw0, mut hw1) = (hw, hw);
        for cell in &self.cells {
            let (m, out) = cell.macs(hw0, hw1);
            total += m;
            hw0 = hw1;
            hw1 = out;
        }
        (total, self.classifier.macs())
    }
}

impl OneShotModel for Supernet {
    fn forward_arch(&self, x: &Tensor, arch: &ArchWeights, train: bool) -> Result<Tensor, ModelError> {
        let shape = (self.config.edges_per_cell(), DARTS_PRIMITIVES.len());
        let [normal, reduce] = arch.expect(&["normal", "reduce"], &[shape, shape])? else {
            return Err(ModelError::AlphaCount { expected: 2, got: arch.cells().len() });
        };
        let x = if self.channels_last { channels_last(x) } else { x.shallow_clone() };
        let stem = self.stem_bn.forward_t(&self.stem_conv.forward(&x), train);
        let mut s0 = stem.shallow_clone();
        let mut s1 = stem;
        for cell in &self.cells {
            let weights = if cell.reduction { reduce } else { normal };
            let out = cell.forward(&s0, &s1, weights, train);
            s0 = s1;
            s1 = out;
        }
        // (N, C, h, w) -> (N, C)
        let pooled = s1.adaptive_avg_pool2d([1, 1]).flatten(1, -1);
        Ok(self.classifier.forward(&pooled))
    }
}
