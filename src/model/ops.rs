//! The candidate operations of the DARTS space: the reference's `OPS` table in operations.py
//! (ReLUConvBN, DilConv, SepConv, FactorizedReduce, Zero, Identity, the pools, conv 7x1-1x7).
//!
//! Sub-module names follow the reference's `nn.Sequential` indices so that parameter names
//! equal its state_dict keys (e.g. a SepConv's second pointwise conv is `op.6.weight`).

use tch::{nn, Tensor};

use super::layers::{BatchNorm2d, Conv2d, ConvSpec, Hw};
use crate::space::DartsOp;

/// `ReLU -> Conv(k, stride, padding) -> BN` (reference `ReLUConvBN`), keys `op.1`, `op.2`.
#[derive(Debug)]
pub struct ReluConvBn {
    conv: Conv2d,
    bn: BatchNorm2d,
}

impl ReluConvBn {
    pub fn new(p: &nn::Path, spec: ConvSpec, affine: bool) -> Self {
        Self::with_tracking(p, spec, affine, true)
    }

    pub fn with_tracking(p: &nn::Path, spec: ConvSpec, affine: bool, track_running_stats: bool) -> Self {
        let op = p.sub("op");
        Self {
            conv: Conv2d::new(&op.sub("1"), spec),
            bn: BatchNorm2d::with_tracking(&op.sub("2"), spec.c_out, affine, track_running_stats),
        }
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.forward_relu_applied(&x.relu(), train)
    }

    /// The op on an input the caller has already passed through ReLU.
    pub fn forward_relu_applied(&self, relu_x: &Tensor, train: bool) -> Tensor {
        self.bn.forward_t(&self.conv.forward(relu_x), train)
    }

    pub fn macs(&self, hw: Hw) -> (u64, Hw) {
        self.conv.macs(hw)
    }

    pub fn convs(&self) -> Vec<&Conv2d> {
        vec![&self.conv]
    }
}

/// `ReLU -> depthwise dilated conv -> pointwise conv -> BN` (reference `DilConv`).
#[derive(Debug)]
pub struct DilConv {
    depthwise: Conv2d,
    pointwise: Conv2d,
    bn: BatchNorm2d,
}

impl DilConv {
    pub fn new(
        p: &nn::Path,
        c: i64,
        kernel: i64,
        stride: i64,
        padding: i64,
        dilation: i64,
        affine: bool,
    ) -> Self {
        let op = p.sub("op");
        Self {
            depthwise: Conv2d::new(
                &op.sub("1"),
                ConvSpec::square(c, c, kernel, stride, padding).dilated(dilation).grouped(c),
            ),
            pointwise: Conv2d::new(&op.sub("2"), ConvSpec::square(c, c, 1, 1, 0)),
            bn: BatchNorm2d::new(&op.sub("3"), c, affine),
        }
    }

    /// The op on an input already passed through ReLU, times `scale` when given.
    pub fn forward_relu_applied(&self, relu_x: &Tensor, train: bool, scale: Option<f64>) -> Tensor {
        // Step by step, each result replacing the last: a temporary would live to the end of its
        // statement, and without gradients nothing else keeps it.
        let mut step = self.depthwise.forward(relu_x);
        step = self.pointwise.forward(&step);
        finish(&self.bn, &step, train, scale)
    }

    pub fn macs(&self, hw: Hw) -> (u64, Hw) {
        let (dw, hw) = self.depthwise.macs(hw);
        let (pw, hw) = self.pointwise.macs(hw);
        (dw + pw, hw)
    }

    pub fn convs(&self) -> Vec<&Conv2d> {
        vec![&self.depthwise, &self.pointwise]
    }
}

/// Two stacked `ReLU -> depthwise -> pointwise -> BN` blocks, the first strided (reference
/// `SepConv`), keys `op.1 op.2 op.3` and `op.5 op.6 op.7`.
#[derive(Debug)]
pub struct SepConv {
    first: DilConvLike,
    second: DilConvLike,
}

#[derive(Debug)]
struct DilConvLike {
    depthwise: Conv2d,
    pointwise: Conv2d,
    bn: BatchNorm2d,
}

impl SepConv {
    pub fn new(p: &nn::Path, c: i64, kernel: i64, stride: i64, padding: i64, affine: bool) -> Self {
        let op = p.sub("op");
        let block = |first: usize, stride: i64| DilConvLike {
            depthwise: Conv2d::new(
                &op.sub(first),
                ConvSpec::square(c, c, kernel, stride, padding).grouped(c),
            ),
            pointwise: Conv2d::new(&op.sub(first + 1), ConvSpec::square(c, c, 1, 1, 0)),
            bn: BatchNorm2d::new(&op.sub(first + 2), c, affine),
        };
        Self { first: block(1, stride), second: block(5, 1) }
    }

    /// The op on an input already passed through ReLU, times `scale` when given.
    pub fn forward_relu_applied(&self, relu_x: &Tensor, train: bool, scale: Option<f64>) -> Tensor {
        // Step by step, each result replacing the last (see DilConv).
        let mut step = self.first.depthwise.forward(relu_x);
        step = self.first.pointwise.forward(&step);
        step = self.first.bn.forward_t(&step, train);
        step = step.relu();
        step = self.second.depthwise.forward(&step);
        step = self.second.pointwise.forward(&step);
        finish(&self.second.bn, &step, train, scale)
    }

    pub fn macs(&self, hw: Hw) -> (u64, Hw) {
        let mut total = 0;
        let mut hw = hw;
        for conv in self.convs() {
            let (m, next) = conv.macs(hw);
            total += m;
            hw = next;
        }
        (total, hw)
    }

    pub fn convs(&self) -> Vec<&Conv2d> {
        vec![&self.first.depthwise, &self.first.pointwise, &self.second.depthwise, &self.second.pointwise]
    }
}

/// Halves the spatial size with two 1x1 stride-2 convolutions, the second shifted by one pixel,
/// concatenated along channels (reference `FactorizedReduce`), keys `conv_1`, `conv_2`, `bn`.
#[derive(Debug)]
pub struct FactorizedReduce {
    conv_1: Conv2d,
    conv_2: Conv2d,
    bn: BatchNorm2d,
}

impl FactorizedReduce {
    pub fn new(p: &nn::Path, c_in: i64, c_out: i64, affine: bool) -> Self {
        Self {
            conv_1: Conv2d::new(&p.sub("conv_1"), ConvSpec::square(c_in, c_out / 2, 1, 2, 0)),
            conv_2: Conv2d::new(&p.sub("conv_2"), ConvSpec::square(c_in, c_out / 2, 1, 2, 0)),
            bn: BatchNorm2d::new(&p.sub("bn"), c_out, affine),
        }
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.forward_relu_applied(&x.relu(), train, None)
    }

    /// The op on an input already passed through ReLU, times `scale` when given.
    pub fn forward_relu_applied(&self, relu_x: &Tensor, train: bool, scale: Option<f64>) -> Tensor {
        // (N, C, H, W) -> (N, C_out, H/2, W/2)
        let shifted = relu_x.slice(2, 1, None, 1).slice(3, 1, None, 1);
        let out = Tensor::cat(&[self.conv_1.forward(relu_x), self.conv_2.forward(&shifted)], 1);
        finish(&self.bn, &out, train, scale)
    }

    pub fn macs(&self, hw: Hw) -> (u64, Hw) {
        let (m1, out) = self.conv_1.macs(hw);
        let (m2, _) = self.conv_2.macs((hw.0 - 1, hw.1 - 1));
        (m1 + m2, out)
    }

    pub fn convs(&self) -> Vec<&Conv2d> {
        vec![&self.conv_1, &self.conv_2]
    }
}

/// `ReLU -> Conv(1x7) -> Conv(7x1) -> BN` (reference `conv_7x1_1x7`), keys `1`, `2`, `3`.
#[derive(Debug)]
pub struct Conv7x1x1x7 {
    conv_1x7: Conv2d,
    conv_7x1: Conv2d,
    bn: BatchNorm2d,
}

impl Conv7x1x1x7 {
    pub fn new(p: &nn::Path, c: i64, stride: i64, affine: bool) -> Self {
        let spec = |kernel: [i64; 2], stride: [i64; 2], padding: [i64; 2]| ConvSpec {
            c_in: c,
            c_out: c,
            kernel,
            stride,
            padding,
            dilation: [1, 1],
            groups: 1,
        };
        Self {
            conv_1x7: Conv2d::new(&p.sub("1"), spec([1, 7], [1, stride], [0, 3])),
            conv_7x1: Conv2d::new(&p.sub("2"), spec([7, 1], [stride, 1], [3, 0])),
            bn: BatchNorm2d::new(&p.sub("3"), c, affine),
        }
    }

    /// The op on an input already passed through ReLU, times `scale` when given.
    pub fn forward_relu_applied(&self, relu_x: &Tensor, train: bool, scale: Option<f64>) -> Tensor {
        let mut step = self.conv_1x7.forward(relu_x);
        step = self.conv_7x1.forward(&step);
        finish(&self.bn, &step, train, scale)
    }

    pub fn macs(&self, hw: Hw) -> (u64, Hw) {
        let (m1, hw) = self.conv_1x7.macs(hw);
        let (m2, hw) = self.conv_7x1.macs(hw);
        (m1 + m2, hw)
    }

    pub fn convs(&self) -> Vec<&Conv2d> {
        vec![&self.conv_1x7, &self.conv_7x1]
    }
}

/// An op's closing BatchNorm, with the op's weight in a mixed op folded in when given.
fn finish(bn: &BatchNorm2d, x: &Tensor, train: bool, scale: Option<f64>) -> Tensor {
    match scale {
        Some(scale) => bn.forward_scaled(x, train, scale),
        None => bn.forward_t(x, train),
    }
}

/// 3x3 max pooling, padding 1 (reference `nn.MaxPool2d(3, stride, padding=1)`).
pub fn max_pool_3x3(x: &Tensor, stride: i64) -> Tensor {
    x.max_pool2d([3, 3], [stride, stride], [1, 1], [1, 1], false)
}

/// 3x3 average pooling, padding 1, padding excluded from the mean (`count_include_pad=False`).
pub fn avg_pool_3x3(x: &Tensor, stride: i64) -> Tensor {
    x.avg_pool2d([3, 3], [stride, stride], [1, 1], false, false, None::<i64>)
}

/// Output size of a 3x3, padding-1 pool or of the strided `none` op.
fn pool_out_hw(hw: Hw, stride: i64) -> Hw {
    ((hw.0 - 1) / stride + 1, (hw.1 - 1) / stride + 1)
}

/// One entry of the reference `OPS` table, built for `c` channels and a stride.
#[derive(Debug)]
pub enum Op {
    /// `none`: zeros of the (strided) input's shape.
    Zero {
        stride: i64,
    },
    MaxPool3x3 {
        stride: i64,
    },
    AvgPool3x3 {
        stride: i64,
    },
    /// `skip_connect` with stride 1.
    Identity,
    /// `skip_connect` with stride 2.
    FactorizedReduce(FactorizedReduce),
    SepConv(SepConv),
    DilConv(DilConv),
    Conv7x1x1x7(Conv7x1x1x7),
}

impl Op {
    /// Builds `OPS[op](c, stride, affine)` under `p`.
    pub fn new(p: &nn::Path, op: DartsOp, c: i64, stride: i64, affine: bool) -> Self {
        match op {
            DartsOp::Zero => Op::Zero { stride },
            DartsOp::MaxPool3x3 => Op::MaxPool3x3 { stride },
            DartsOp::AvgPool3x3 => Op::AvgPool3x3 { stride },
            DartsOp::SkipConnect if stride == 1 => Op::Identity,
            DartsOp::SkipConnect => Op::FactorizedReduce(FactorizedReduce::new(p, c, c, affine)),
            DartsOp::SepConv3x3 => Op::SepConv(SepConv::new(p, c, 3, stride, 1, affine)),
            DartsOp::SepConv5x5 => Op::SepConv(SepConv::new(p, c, 5, stride, 2, affine)),
            DartsOp::SepConv7x7 => Op::SepConv(SepConv::new(p, c, 7, stride, 3, affine)),
            DartsOp::DilConv3x3 => Op::DilConv(DilConv::new(p, c, 3, stride, 2, 2, affine)),
            DartsOp::DilConv5x5 => Op::DilConv(DilConv::new(p, c, 5, stride, 4, 2, affine)),
            DartsOp::Conv7x1_1x7 => Op::Conv7x1x1x7(Conv7x1x1x7::new(p, c, stride, affine)),
        }
    }

    /// Whether the op begins with a ReLU, so a caller may share one ReLU among several ops.
    pub fn starts_with_relu(&self) -> bool {
        matches!(self, Op::FactorizedReduce(_) | Op::SepConv(_) | Op::DilConv(_) | Op::Conv7x1x1x7(_))
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        if self.starts_with_relu() {
            self.forward_shared_relu(x, &x.relu(), train)
        } else {
            self.forward_shared_relu(x, x, train)
        }
    }

    /// Forward given the input `x` and `relu_x = relu(x)` (used only by ops that start with ReLU).
    pub fn forward_shared_relu(&self, x: &Tensor, relu_x: &Tensor, train: bool) -> Tensor {
        self.forward_relu_scaled(x, relu_x, train, None)
    }

    /// `scale * forward_shared_relu(x, relu_x, train)`, the scale folded into the closing
    /// BatchNorm of the ops that end with one (a mixed op's weighting of its candidates).
    pub fn forward_shared_relu_scaled(&self, x: &Tensor, relu_x: &Tensor, train: bool, scale: f64) -> Tensor {
        if self.starts_with_relu() {
            self.forward_relu_scaled(x, relu_x, train, Some(scale))
        } else {
            self.forward_relu_scaled(x, relu_x, train, None) * scale
        }
    }

    fn forward_relu_scaled(&self, x: &Tensor, relu_x: &Tensor, train: bool, scale: Option<f64>) -> Tensor {
        match self {
            // The reference multiplies by 0.; zeros differ from that only for inf/NaN inputs.
            Op::Zero { stride: 1 } => x.zeros_like(),
            Op::Zero { stride } => x.slice(2, 0, None, *stride).slice(3, 0, None, *stride).zeros_like(),
            Op::MaxPool3x3 { stride } => max_pool_3x3(x, *stride),
            Op::AvgPool3x3 { stride } => avg_pool_3x3(x, *stride),
            Op::Identity => x.shallow_clone(),
            Op::FactorizedReduce(op) => op.forward_relu_applied(relu_x, train, scale),
            Op::SepConv(op) => op.forward_relu_applied(relu_x, train, scale),
            Op::DilConv(op) => op.forward_relu_applied(relu_x, train, scale),
            Op::Conv7x1x1x7(op) => op.forward_relu_applied(relu_x, train, scale),
        }
    }

    /// Convolution multiply-accumulates for one image of size `hw`, and the output size.
    pub fn macs(&self, hw: Hw) -> (u64, Hw) {
        match self {
            Op::Zero { stride } | Op::MaxPool3x3 { stride } | Op::AvgPool3x3 { stride } => {
                (0, pool_out_hw(hw, *stride))
            }
            Op::Identity => (0, hw),
            Op::FactorizedReduce(op) => op.macs(hw),
            Op::SepConv(op) => op.macs(hw),
            Op::DilConv(op) => op.macs(hw),
            Op::Conv7x1x1x7(op) => op.macs(hw),
        }
    }

    /// The op's convolutions (for channels-last conversion).
    pub fn convs(&self) -> Vec<&Conv2d> {
        match self {
            Op::Zero { .. } | Op::MaxPool3x3 { .. } | Op::AvgPool3x3 { .. } | Op::Identity => Vec::new(),
            Op::FactorizedReduce(op) => op.convs(),
            Op::SepConv(op) => op.convs(),
            Op::DilConv(op) => op.convs(),
            Op::Conv7x1x1x7(op) => op.convs(),
        }
    }
}
