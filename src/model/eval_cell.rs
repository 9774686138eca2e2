//! The cell of the evaluation networks, compiled from a genotype (reference model.py `Cell`),
//! and drop path (reference utils.py `drop_path`).

use tch::{nn, Tensor};

use super::eval_cifar::EvalNetConfig;
use super::layers::{Conv2d, ConvSpec, Hw};
use super::ops::{FactorizedReduce, Op, ReluConvBn};
use crate::space::{Gene, Genotype};

/// Zeroes whole samples with probability `drop_prob` and scales the kept ones by 1/keep, with a
/// mask drawn from tch's generator (deterministic under `tch::manual_seed`).
pub fn drop_path(x: &Tensor, drop_prob: f64) -> Tensor {
    if drop_prob <= 0.0 {
        return x.shallow_clone();
    }
    let keep_prob = 1.0 - drop_prob;
    // In x's precision: an fp32 mask would promote a bf16 (autocast) activation to fp32.
    let mut mask = Tensor::empty([x.size()[0], 1, 1, 1], (x.kind(), x.device()));
    let _ = mask.bernoulli_float_(keep_prob);
    // Same order as the reference: divide, then mask.
    (x / keep_prob) * mask
}

#[derive(Debug)]
enum Preprocess0 {
    Reduce(FactorizedReduce),
    Conv(ReluConvBn),
}

/// A cell of NetworkCIFAR / NetworkImageNet: each intermediate node sums two ops applied to two
/// earlier states; the output concatenates the nodes named by the genotype's concat list.
#[derive(Debug)]
pub struct EvalCell {
    pub reduction: bool,
    preprocess0: Preprocess0,
    preprocess1: ReluConvBn,
    /// (op, index of the input state), two per node.
    ops: Vec<(Op, usize)>,
    concat: Vec<usize>,
}

impl EvalCell {
    pub fn new(
        p: &nn::Path,
        genotype: &Genotype,
        channels: [i64; 3],
        reduction: bool,
        reduction_prev: bool,
    ) -> Self {
        let [c_prev_prev, c_prev, c] = channels;
        let preprocess0 = if reduction_prev {
            Preprocess0::Reduce(FactorizedReduce::new(&p.sub("preprocess0"), c_prev_prev, c, true))
        } else {
            Preprocess0::Conv(ReluConvBn::new(
                &p.sub("preprocess0"),
                ConvSpec::square(c_prev_prev, c, 1, 1, 0),
                true,
            ))
        };
        let preprocess1 = ReluConvBn::new(&p.sub("preprocess1"), ConvSpec::square(c_prev, c, 1, 1, 0), true);
        let (genes, concat): (&[Gene], &[usize]) = if reduction {
            (&genotype.reduce, &genotype.reduce_concat)
        } else {
            (&genotype.normal, &genotype.normal_concat)
        };
        let ops_path = p.sub("_ops");
        let ops = genes
            .iter()
            .enumerate()
            .map(|(i, &(op, input))| {
                let stride = if reduction && input < 2 { 2 } else { 1 };
                (Op::new(&ops_path.sub(i), op, c, stride, true), input)
            })
            .collect();
        Self { reduction, preprocess0, preprocess1, ops, concat: concat.to_vec() }
    }

    /// Number of concatenated nodes: the output has `multiplier() * C` channels.
    pub fn multiplier(&self) -> i64 {
        self.concat.len() as i64
    }

    pub fn forward_t(&self, s0: &Tensor, s1: &Tensor, drop_prob: f64, train: bool) -> Tensor {
        let s0 = match &self.preprocess0 {
            Preprocess0::Reduce(op) => op.forward_t(s0, train),
            Preprocess0::Conv(op) => op.forward_t(s0, train),
        };
        let mut states = vec![s0, self.preprocess1.forward_t(s1, train)];
        for pair in self.ops.chunks(2) {
            let mut node: Option<Tensor> = None;
            for (op, input) in pair {
                let mut h = op.forward_t(&states[*input], train);
                if train && drop_prob > 0.0 && !matches!(op, Op::Identity) {
                    h = drop_path(&h, drop_prob);
                }
                node = Some(match node {
                    None => h,
                    Some(n) => n + h,
                });
            }
            states.push(node.expect("genotype nodes have two genes"));
        }
        let chosen: Vec<&Tensor> = self.concat.iter().map(|&i| &states[i]).collect();
        Tensor::cat(&chosen, 1)
    }

    /// Convolution multiply-accumulates of one image, given the sizes of the two inputs.
    pub fn macs(&self, hw0: Hw, hw1: Hw) -> (u64, Hw) {
        let (m0, hw) = match &self.preprocess0 {
            Preprocess0::Reduce(op) => op.macs(hw0),
            Preprocess0::Conv(op) => op.macs(hw0),
        };
        let (m1, _) = self.preprocess1.macs(hw1);
        let mut total = m0 + m1;
        // Spatial size of every state: intermediate nodes of a reduction cell are already reduced.
        let mut state_hw = vec![hw, hw];
        for pair in self.ops.chunks(2) {
            let mut node_hw = hw;
            for (op, input) in pair {
                let (m, out) = op.macs(state_hw[*input]);
                total += m;
                node_hw = out;
            }
            state_hw.push(node_hw);
        }
        (total, state_hw[state_hw.len() - 1])
    }

    pub fn convs(&self) -> Vec<&Conv2d> {
        let mut convs = match &self.preprocess0 {
            Preprocess0::Reduce(op) => op.convs(),
            Preprocess0::Conv(op) => op.convs(),
        };
        convs.extend(self.preprocess1.convs());
        convs.extend(self.ops.iter().flat_map(|(op, _)| op.convs()));
        convs
    }
}

/// The cell stack of an evaluation network (reference `NetworkCIFAR` / `NetworkImageNet` loop):
/// reduction cells at layers/3 and 2·layers/3 double the channels. Starts from the stem's output
/// channels `[c_prev_prev, c_prev]` and whether the stem itself reduced; returns the cells, the
/// channels of the last cell's output and of the output the auxiliary head reads.
pub(crate) struct CellStack {
    pub cells: Vec<EvalCell>,
    pub c_out: i64,
    pub c_auxiliary: i64,
}

pub(crate) fn build_cell_stack(
    p: &nn::Path,
    config: &EvalNetConfig,
    genotype: &Genotype,
    stem_channels: [i64; 2],
    stem_reduced: bool,
) -> CellStack {
    let [mut c_prev_prev, mut c_prev] = stem_channels;
    let mut c_curr = config.init_channels;
    let mut cells = Vec::with_capacity(config.layers);
    let mut reduction_prev = stem_reduced;
    let mut c_auxiliary = c_prev;
    for i in 0..config.layers {
        let reduction = config.is_reduction(i);
        if reduction {
            c_curr *= 2;
        }
        let cell = EvalCell::new(
            &p.sub("cells").sub(i),
            genotype,
            [c_prev_prev, c_prev, c_curr],
            reduction,
            reduction_prev,
        );
        reduction_prev = reduction;
        c_prev_prev = c_prev;
        c_prev = cell.multiplier() * c_curr;
        cells.push(cell);
        if i == config.auxiliary_position() {
            c_auxiliary = c_prev;
        }
    }
    CellStack { cells, c_out: c_prev, c_auxiliary }
}
