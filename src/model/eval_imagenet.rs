//! The ImageNet evaluation network in the mobile setting (reference model.py `NetworkImageNet`
//! and `AuxiliaryHeadImageNet`): a two-stage stride-8 stem, then cells; 224x224 input.

use tch::{nn, Tensor};

use super::eval_cell::{build_cell_stack, CellStack, EvalCell};
use super::eval_cifar::EvalNetConfig;
use super::layers::{BatchNorm2d, Conv2d, ConvSpec, Hw, Linear};
use crate::space::Genotype;

/// Auxiliary classifier for a 14x14 input (reference `AuxiliaryHeadImageNet`); like the
/// reference it has no BatchNorm after its second convolution. Keys `features.2`, `features.3`,
/// `features.5`, `classifier`.
#[derive(Debug)]
struct AuxiliaryHeadImageNet {
    conv1: Conv2d,
    bn1: BatchNorm2d,
    conv2: Conv2d,
    classifier: Linear,
}

impl AuxiliaryHeadImageNet {
    fn new(p: &nn::Path, c: i64, num_classes: i64) -> Self {
        let f = p.sub("features");
        Self {
            conv1: Conv2d::new(&f.sub("2"), ConvSpec::square(c, 128, 1, 1, 0)),
            bn1: BatchNorm2d::new(&f.sub("3"), 128, true),
            conv2: Conv2d::new(&f.sub("5"), ConvSpec::square(128, 768, 2, 1, 0)),
            classifier: Linear::new(&p.sub("classifier"), 768, num_classes),
        }
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let x = x.relu().avg_pool2d([5, 5], [2, 2], [0, 0], false, false, None::<i64>);
        let x = self.bn1.forward_t(&self.conv1.forward(&x), train).relu();
        let x = self.conv2.forward(&x).relu();
        self.classifier.forward(&x.flatten(1, -1))
    }
}

/// # Shapes
/// input `(N, in_channels, 224, 224)` -> logits `(N, num_classes)` (+ auxiliary logits in train
/// mode with the auxiliary head).
#[derive(Debug)]
pub struct NetworkImageNet {
    config: EvalNetConfig,
    stem0_conv1: Conv2d,
    stem0_bn1: BatchNorm2d,
    stem0_conv2: Conv2d,
    stem0_bn2: BatchNorm2d,
    stem1_conv: Conv2d,
    stem1_bn: BatchNorm2d,
    cells: Vec<EvalCell>,
    auxiliary_head: Option<AuxiliaryHeadImageNet>,
    classifier: Linear,
    drop_path_prob: f64,
}

impl NetworkImageNet {
    pub fn new(p: &nn::Path, config: EvalNetConfig, genotype: &Genotype) -> Self {
        let c = config.init_channels;
        let stem0 = p.sub("stem0");
        let stem1 = p.sub("stem1");
        let stem0_conv1 = Conv2d::new(&stem0.sub("0"), ConvSpec::square(config.in_channels, c / 2, 3, 2, 1));
        let stem0_bn1 = BatchNorm2d::new(&stem0.sub("1"), c / 2, true);
        let stem0_conv2 = Conv2d::new(&stem0.sub("3"), ConvSpec::square(c / 2, c, 3, 2, 1));
        let stem0_bn2 = BatchNorm2d::new(&stem0.sub("4"), c, true);
        let stem1_conv = Conv2d::new(&stem1.sub("1"), ConvSpec::square(c, c, 3, 2, 1));
        let stem1_bn = BatchNorm2d::new(&stem1.sub("2"), c, true);

        // The first cell's s0 comes from stem0, at twice the resolution of stem1's output.
        let CellStack { cells, c_out: c_prev, c_auxiliary } =
            build_cell_stack(p, &config, genotype, [c, c], true);
        let auxiliary_head = config
            .auxiliary
            .then(|| AuxiliaryHeadImageNet::new(&p.sub("auxiliary_head"), c_auxiliary, config.num_classes));
        let classifier = Linear::new(&p.sub("classifier"), c_prev, config.num_classes);
        Self {
            config,
            stem0_conv1,
            stem0_bn1,
            stem0_conv2,
            stem0_bn2,
            stem1_conv,
            stem1_bn,
            cells,
            auxiliary_head,
            classifier,
            drop_path_prob: 0.0,
        }
    }

    pub fn config(&self) -> &EvalNetConfig {
        &self.config
    }

    pub fn set_drop_path_prob(&mut self, p: f64) {
        self.drop_path_prob = p;
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> (Tensor, Option<Tensor>) {
        // (N, 3, 224, 224) -> (N, C, 56, 56) -> (N, C, 28, 28)
        let s = self.stem0_bn1.forward_t(&self.stem0_conv1.forward(x), train).relu();
        let mut s0 = self.stem0_bn2.forward_t(&self.stem0_conv2.forward(&s), train);
        let mut s1 = self.stem1_bn.forward_t(&self.stem1_conv.forward(&s0.relu()), train);
        let mut aux_logits = None;
        for (i, cell) in self.cells.iter().enumerate() {
            let out = cell.forward_t(&s0, &s1, self.drop_path_prob, train);
            s0 = s1;
            s1 = out;
            if i == self.config.auxiliary_position() && train {
                aux_logits = self.auxiliary_head.as_ref().map(|head| head.forward_t(&s1, train));
            }
        }
        // (N, C, 7, 7) -> (N, C): the reference's AvgPool2d(7)
        let pooled = s1.avg_pool2d([7, 7], [7, 7], [0, 0], false, true, None::<i64>).flatten(1, -1);
        (self.classifier.forward(&pooled), aux_logits)
    }

    /// Convolution multiply-accumulates of one `hw` image through the inference path (auxiliary
    /// head excluded), and the classifier's.
    pub fn macs(&self, hw: Hw) -> (u64, u64) {
        let (m1, hw) = self.stem0_conv1.macs(hw);
        let (m2, hw0) = self.stem0_conv2.macs(hw);
        let (m3, hw1) = self.stem1_conv.macs(hw0);
        let mut total = m1 + m2 + m3;
        let (mut hw0, mut hw1) = (hw0, hw1);
        for cell in &self.cells {
            let (m, out) = cell.macs(hw0, hw1);
            total += m;
            hw0 = hw1;
            hw1 = out;
        }
        (total, self.classifier.macs())
    }
}
