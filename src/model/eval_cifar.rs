//! The CIFAR evaluation network built from a genotype (reference model.py `NetworkCIFAR` and
//! `AuxiliaryHeadCIFAR`), trained from scratch in EvNAS §4 (C=36, 20 cells, auxiliary head).

use tch::{nn, Tensor};

use super::eval_cell::{build_cell_stack, CellStack, EvalCell};
use super::layers::{BatchNorm2d, Conv2d, ConvSpec, Hw, Linear};
use crate::space::Genotype;

/// Shape of an evaluation network (reference `NetworkCIFAR(C, num_classes, layers, auxiliary)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EvalNetConfig {
    pub init_channels: i64,
    pub layers: usize,
    pub num_classes: i64,
    /// Attach the auxiliary classifier after the cell at 2*layers/3.
    pub auxiliary: bool,
    /// Image channels (3 in the reference).
    pub in_channels: i64,
}

impl EvalNetConfig {
    pub(crate) fn is_reduction(&self, cell: usize) -> bool {
        cell == self.layers / 3 || cell == 2 * self.layers / 3
    }

    pub(crate) fn auxiliary_position(&self) -> usize {
        2 * self.layers / 3
    }
}

/// Auxiliary classifier for an 8x8 input (reference `AuxiliaryHeadCIFAR`); keys
/// `features.2` conv, `features.3` BN, `features.5` conv, `features.6` BN, `classifier`.
#[derive(Debug)]
struct AuxiliaryHeadCifar {
    conv1: Conv2d,
    bn1: BatchNorm2d,
    conv2: Conv2d,
    bn2: BatchNorm2d,
    classifier: Linear,
}

impl AuxiliaryHeadCifar {
    fn new(p: &nn::Path, c: i64, num_classes: i64) -> Self {
        let f = p.sub("features");
        Self {
            conv1: Conv2d::new(&f.sub("2"), ConvSpec::square(c, 128, 1, 1, 0)),
            bn1: BatchNorm2d::new(&f.sub("3"), 128, true),
            conv2: Conv2d::new(&f.sub("5"), ConvSpec::square(128, 768, 2, 1, 0)),
            bn2: BatchNorm2d::new(&f.sub("6"), 768, true),
            classifier: Linear::new(&p.sub("classifier"), 768, num_classes),
        }
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        // (N, C, 8, 8) -> (N, C, 2, 2) -> (N, 768, 1, 1)
        let x = x.relu().avg_pool2d([5, 5], [3, 3], [0, 0], false, false, None::<i64>);
        let x = self.bn1.forward_t(&self.conv1.forward(&x), train).relu();
        let x = self.bn2.forward_t(&self.conv2.forward(&x), train).relu();
        self.classifier.forward(&x.flatten(1, -1))
    }
}

/// # Shapes
/// input `(N, in_channels, 32, 32)` -> logits `(N, num_classes)`, and in train mode with the
/// auxiliary head also auxiliary logits `(N, num_classes)`.
#[derive(Debug)]
pub struct NetworkCifar {
    config: EvalNetConfig,
    stem_conv: Conv2d,
    stem_bn: BatchNorm2d,
    cells: Vec<EvalCell>,
    auxiliary_head: Option<AuxiliaryHeadCifar>,
    classifier: Linear,
    drop_path_prob: f64,
}

impl NetworkCifar {
    pub fn new(p: &nn::Path, config: EvalNetConfig, genotype: &Genotype) -> Self {
        let c = config.init_channels;
        let c_stem = 3 * c;
        let stem = p.sub("stem");
        let stem_conv = Conv2d::new(&stem.sub("0"), ConvSpec::square(config.in_channels, c_stem, 3, 1, 1));
        let stem_bn = BatchNorm2d::new(&stem.sub("1"), c_stem, true);
        let CellStack { cells, c_out: c_prev, c_auxiliary } =
            build_cell_stack(p, &config, genotype, [c_stem, c_stem], false);
        let auxiliary_head = config
            .auxiliary
            .then(|| AuxiliaryHeadCifar::new(&p.sub("auxiliary_head"), c_auxiliary, config.num_classes));
        let classifier = Linear::new(&p.sub("classifier"), c_prev, config.num_classes);
        Self { config, stem_conv, stem_bn, cells, auxiliary_head, classifier, drop_path_prob: 0.0 }
    }

    pub fn config(&self) -> &EvalNetConfig {
        &self.config
    }

    /// Probability of dropping an op's output in train mode (the reference ramps it per epoch).
    pub fn set_drop_path_prob(&mut self, p: f64) {
        self.drop_path_prob = p;
    }

    /// Logits, and the auxiliary logits in train mode when the network has an auxiliary head.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> (Tensor, Option<Tensor>) {
        let stem = self.stem_bn.forward_t(&self.stem_conv.forward(x), train);
        let mut s0 = stem.shallow_clone();
        let mut s1 = stem;
        let mut aux_logits = None;
        for (i, cell) in self.cells.iter().enumerate() {
            let out = cell.forward_t(&s0, &s1, self.drop_path_prob, train);
            s0 = s1;
            s1 = out;
            if i == self.config.auxiliary_position() && train {
                aux_logits = self.auxiliary_head.as_ref().map(|head| head.forward_t(&s1, train));
            }
        }
        // (N, C, 8, 8) -> (N, C)
        let pooled = s1.adaptive_avg_pool2d([1, 1]).flatten(1, -1);
        (self.classifier.forward(&pooled), aux_logits)
    }

    /// Convolution multiply-accumulates of one `hw` image through the inference path (auxiliary
    /// head excluded), and the classifier's.
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
