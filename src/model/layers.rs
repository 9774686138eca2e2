//! Building blocks with PyTorch's parameter names, initialisation and numerics: `Conv2d`
//! (`weight`), `BatchNorm2d` (`weight`, `bias`, `running_mean`, `running_var`,
//! `num_batches_tracked`) and `Linear` (`weight`, `bias`).
//!
//! tch's own layers lack `num_batches_tracked` and initialise BatchNorm weights from U[0,1), so
//! a state_dict written by evnas would not load strictly into the reference modules; these do.

use std::cell::Cell;

use tch::{nn, Device, Kind, Tensor};

thread_local! {
    static PORTABLE: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with the layers computing only through ops whose shapes follow their input: none of
/// the CPU layout tricks (phase-split dilated convolutions, channel-major BatchNorm), which read
/// the batch size into reshapes. A trace taken inside (TorchScript export) then runs on any
/// batch size, on any device. Same numbers either way.
pub fn portable<T>(f: impl FnOnce() -> T) -> T {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            PORTABLE.with(|p| p.set(self.0));
        }
    }
    let _restore = Restore(PORTABLE.with(|p| p.replace(true)));
    f()
}

fn is_portable() -> bool {
    PORTABLE.with(Cell::get)
}

/// Whether the CPU layout tricks apply to `x`: on CPU tensors, where they were measured faster,
/// outside [`portable`]. A GPU's kernels take these shapes directly; the tricks' extra copies
/// there were never measured to pay.
fn layout_tricks_apply(x: &Tensor) -> bool {
    x.device() == Device::Cpu && !is_portable()
}

/// Spatial size (height, width) of a feature map, tracked when counting multiply-accumulates.
pub type Hw = (i64, i64);

/// PyTorch's default weight initialisation for Conv2d and Linear: kaiming_uniform with
/// a = sqrt(5), which is U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
fn torch_default_uniform(fan_in: i64) -> nn::Init {
    let bound = 1.0 / (fan_in as f64).sqrt();
    nn::Init::Uniform { lo: -bound, up: bound }
}

/// A bias-free 2-d convolution (every convolution of the reference cells is bias-free).
#[derive(Debug)]
pub struct Conv2d {
    pub weight: Tensor,
    stride: [i64; 2],
    padding: [i64; 2],
    dilation: [i64; 2],
    groups: i64,
}

/// Geometry of a [`Conv2d`].
#[derive(Debug, Clone, Copy)]
pub struct ConvSpec {
    pub c_in: i64,
    pub c_out: i64,
    pub kernel: [i64; 2],
    pub stride: [i64; 2],
    pub padding: [i64; 2],
    pub dilation: [i64; 2],
    pub groups: i64,
}

impl ConvSpec {
    /// Square kernel, stride and padding; no dilation, no groups.
    pub fn square(c_in: i64, c_out: i64, kernel: i64, stride: i64, padding: i64) -> Self {
        Self {
            c_in,
            c_out,
            kernel: [kernel, kernel],
            stride: [stride, stride],
            padding: [padding, padding],
            dilation: [1, 1],
            groups: 1,
        }
    }

    pub fn dilated(self, dilation: i64) -> Self {
        Self { dilation: [dilation, dilation], ..self }
    }

    pub fn grouped(self, groups: i64) -> Self {
        Self { groups, ..self }
    }
}

impl Conv2d {
    pub fn new(p: &nn::Path, spec: ConvSpec) -> Self {
        let fan_in = spec.c_in / spec.groups * spec.kernel[0] * spec.kernel[1];
        let weight = p.var(
            "weight",
            &[spec.c_out, spec.c_in / spec.groups, spec.kernel[0], spec.kernel[1]],
            torch_default_uniform(fan_in),
        );
        Self {
            weight,
            stride: spec.stride,
            padding: spec.padding,
            dilation: spec.dilation,
            groups: spec.groups,
        }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        if let Some(padding) = self.dilated_depthwise_same_padding(x).filter(|_| layout_tricks_apply(x)) {
            return self.forward_dilation_2_by_phases(x, padding);
        }
        x.conv2d(&self.weight, None::<&Tensor>, self.stride, self.padding, self.dilation, self.groups)
    }

    /// For a depthwise convolution with dilation 2 and "same" padding (DilConv), the padding of
    /// the equivalent undilated convolution on each 2x2 phase of the input.
    fn dilated_depthwise_same_padding(&self, x: &Tensor) -> Option<[i64; 2]> {
        let k = self.weight.size();
        let depthwise = self.groups > 1 && k[1] == 1 && k[0] == self.groups;
        let same = (0..2).all(|i| self.padding[i] == (k[2 + i] - 1));
        (depthwise && self.dilation == [2, 2] && same && x.dim() == 4)
            .then_some([self.padding[0] / 2, self.padding[1] / 2])
    }

    /// A dilation-2 convolution reads only one 2x2 phase of the input per output pixel, so it
    /// equals undilated convolutions of the phases: the same products and sums (bit-identical
    /// here), but libtorch's CPU kernels for undilated depthwise convolutions, above all their
    /// weight gradient, are 2-3x faster than the dilated ones.
    fn forward_dilation_2_by_phases(&self, x: &Tensor, padding: [i64; 2]) -> Tensor {
        let size = x.size();
        let (n, c, h, w) = (size[0], size[1], size[2], size[3]);
        let conv = |t: &Tensor| t.conv2d(&self.weight, None::<&Tensor>, [1, 1], padding, [1, 1], self.groups);
        if self.stride == [2, 2] {
            // Strided: only the even phase is read.
            return conv(&x.slice(2, 0, None, 2).slice(3, 0, None, 2));
        }
        if self.stride != [1, 1] {
            return x.conv2d(
                &self.weight,
                None::<&Tensor>,
                self.stride,
                self.padding,
                self.dilation,
                self.groups,
            );
        }
        // Each phase must be of even split and at least as large as the kernel: odd sizes (7x7
        // after two reductions of 28x28) get one more row/column of zeros, which the
        // convolution's own zero padding would have read anyway, and phases smaller than the
        // kernel are padded up to it; the extra output rows/columns are cut off. (libtorch's
        // weight gradient for those shapes runs through im2col, 3-10x slower.)
        let kernel = self.weight.size();
        let phase_padded = |n: i64, k: i64| 2 * ((n + 1) / 2).max(k);
        let (hp, wp) = (phase_padded(h, kernel[2]), phase_padded(w, kernel[3]));
        if (hp, wp) != (h, w) {
            let padded = x.constant_pad_nd([0, wp - w, 0, hp - h]);
            return self.forward_dilation_2_by_phases(&padded, padding).slice(2, 0, h, 1).slice(3, 0, w, 1);
        }
        let (h2, w2) = (h / 2, w / 2);
        // Keep the caller's memory layout: channels-last stays channels-last.
        let strides = x.stride();
        if strides[1] == 1 && c > 1 {
            // (N, H, W, C) memory -> phases stacked on the batch: (4N, H/2, W/2, C)
            let phases = x
                .permute([0, 2, 3, 1])
                .reshape([n, h2, 2, w2, 2, c])
                .permute([2, 4, 0, 1, 3, 5])
                .reshape([4 * n, h2, w2, c])
                .permute([0, 3, 1, 2]);
            conv(&phases)
                .permute([0, 2, 3, 1])
                .reshape([2, 2, n, h2, w2, c])
                .permute([2, 3, 0, 4, 1, 5])
                .reshape([n, h, w, c])
                .permute([0, 3, 1, 2])
        } else {
            // (N, C, H, W) -> (4N, C, H/2, W/2)
            let phases =
                x.reshape([n, c, h2, 2, w2, 2]).permute([3, 5, 0, 1, 2, 4]).reshape([4 * n, c, h2, w2]);
            conv(&phases).reshape([2, 2, n, c, h2, w2]).permute([2, 3, 4, 0, 5, 1]).reshape([n, c, h, w])
        }
    }

    /// Output size for an input of size `hw`, as PyTorch computes it (floor mode).
    pub fn out_hw(&self, hw: Hw) -> Hw {
        let k = self.weight.size();
        let dim = |i: usize, n: i64| {
            (n + 2 * self.padding[i] - self.dilation[i] * (k[2 + i] - 1) - 1) / self.stride[i] + 1
        };
        (dim(0, hw.0), dim(1, hw.1))
    }

    /// Multiply-accumulates of one image through this convolution, and the output size.
    pub fn macs(&self, hw: Hw) -> (u64, Hw) {
        let out = self.out_hw(hw);
        let per_output: i64 = self.weight.size()[1..].iter().product();
        let c_out = self.weight.size()[0];
        ((out.0 * out.1 * c_out * per_output) as u64, out)
    }

    pub fn to_channels_last(&self) {
        to_channels_last_in_place(&self.weight);
    }
}

/// 2-d batch normalisation with PyTorch's defaults (eps 1e-5, momentum 0.1).
///
/// With `track_running_stats` off (the NAS-Bench-201 search cells) it has no buffers and
/// always normalises with the batch statistics, as PyTorch does.
#[derive(Debug)]
pub struct BatchNorm2d {
    weight: Option<Tensor>,
    bias: Option<Tensor>,
    running: Option<RunningStats>,
}

#[derive(Debug)]
struct RunningStats {
    mean: Tensor,
    var: Tensor,
    num_batches_tracked: Tensor,
}

const BN_EPS: f64 = 1e-5;
const BN_MOMENTUM: f64 = 0.1;

impl BatchNorm2d {
    pub fn new(p: &nn::Path, channels: i64, affine: bool) -> Self {
        Self::with_tracking(p, channels, affine, true)
    }

    pub fn with_tracking(p: &nn::Path, channels: i64, affine: bool, track_running_stats: bool) -> Self {
        let (weight, bias) = if affine {
            (
                Some(p.var("weight", &[channels], nn::Init::Const(1.0))),
                Some(p.var("bias", &[channels], nn::Init::Const(0.0))),
            )
        } else {
            (None, None)
        };
        let running = track_running_stats.then(|| RunningStats {
            mean: p.zeros_no_train("running_mean", &[channels]),
            var: p.ones_no_train("running_var", &[channels]),
            num_batches_tracked: p.add(
                "num_batches_tracked",
                Tensor::zeros([], (Kind::Int64, p.device())),
                false,
            ),
        });
        Self { weight, bias, running }
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.normalize(x, train, self.weight.as_ref())
    }

    /// `forward_t(x, train) * scale`. Without affine parameters the scale enters as a constant
    /// affine weight, saving a pass over the output forward and one over its gradient backward.
    pub fn forward_scaled(&self, x: &Tensor, train: bool, scale: f64) -> Tensor {
        if self.weight.is_some() {
            return self.forward_t(x, train) * scale;
        }
        let weight = Tensor::full([x.size()[1]], scale, (x.kind(), x.device()));
        self.normalize(x, train, Some(&weight))
    }

    fn normalize(&self, x: &Tensor, train: bool, weight: Option<&Tensor>) -> Tensor {
        if prefers_channel_major(x) && layout_tricks_apply(x) {
            // (N, C, H, W) channels-last -> (1, C, N*H*W, 1) contiguous, normalised, and back.
            let size = x.size();
            let (n, c, h, w) = (size[0], size[1], size[2], size[3]);
            let channel_major = x.permute([1, 0, 2, 3]).contiguous().view([1, c, n * h * w, 1]);
            let mut y = self.normalize_any_layout(&channel_major, train, weight);
            if y.requires_grad() {
                // The gradient coming back through the layout change below is a transposed view,
                // on which libtorch 2.11's CPU BatchNorm backward computes a wrong input gradient;
                // index_select's backward writes it into a fresh contiguous tensor instead.
                y = y.index_select(1, &Tensor::arange(c, (Kind::Int64, y.device())));
            }
            return y.view([c, n, h, w]).permute([1, 2, 3, 0]).contiguous().permute([0, 3, 1, 2]);
        }
        self.normalize_any_layout(x, train, weight)
    }

    fn normalize_any_layout(&self, x: &Tensor, train: bool, weight: Option<&Tensor>) -> Tensor {
        match &self.running {
            Some(stats) => {
                if train {
                    // PyTorch counts batches even when momentum is set; keeping the count makes our
                    // state_dict identical to the reference's after the same number of steps.
                    let mut count = stats.num_batches_tracked.shallow_clone();
                    tch::no_grad(|| {
                        let _ = count.f_add_scalar_(1);
                    });
                }
                Tensor::batch_norm(
                    x,
                    weight,
                    self.bias.as_ref(),
                    Some(&stats.mean),
                    Some(&stats.var),
                    train,
                    BN_MOMENTUM,
                    BN_EPS,
                    true,
                )
            }
            None => Tensor::batch_norm(
                x,
                weight,
                self.bias.as_ref(),
                None::<&Tensor>,
                None::<&Tensor>,
                true,
                BN_MOMENTUM,
                BN_EPS,
                true,
            ),
        }
    }

    /// Sets this layer's running statistics and batch count to `other`'s.
    ///
    /// For BatchNorms that always normalise the same tensor: one computes, the others copy.
    pub fn copy_running_stats_from(&self, other: &BatchNorm2d) {
        if let (Some(dst), Some(src)) = (&self.running, &other.running) {
            tch::no_grad(|| {
                for (d, s) in [
                    (&dst.mean, &src.mean),
                    (&dst.var, &src.var),
                    (&dst.num_batches_tracked, &src.num_batches_tracked),
                ] {
                    d.shallow_clone().copy_(s);
                }
            });
        }
    }
}

/// Whether BatchNorm of `x` is faster on a channel-major copy than on `x` itself.
///
/// libtorch's channels-last BatchNorm kernels vectorise over the channels and are slow when
/// there are fewer than 16 (measured here, AVX2, 2 threads, batch 64 at 28x28, forward+backward:
/// 9.0 ms for 4 channels, 4.0 for 8, 17 for 12, against 0.8, 1.4 and 2.1 ms through a
/// channel-major copy; at 16 and more channels the channels-last kernel wins). With 8 channels
/// the forward alone is as fast in place, so only training takes the copy there.
fn prefers_channel_major(x: &Tensor) -> bool {
    let size = x.size();
    if size.len() != 4 || size[1] >= 16 || size[1] < 2 {
        return false;
    }
    x.stride()[1] == 1 && (size[1] != 8 || x.requires_grad())
}

/// A fully connected layer with bias, initialised as PyTorch's `nn.Linear`.
#[derive(Debug)]
pub struct Linear {
    pub weight: Tensor,
    pub bias: Tensor,
}

impl Linear {
    pub fn new(p: &nn::Path, in_features: i64, out_features: i64) -> Self {
        let init = torch_default_uniform(in_features);
        Self {
            weight: p.var("weight", &[out_features, in_features], init),
            bias: p.var("bias", &[out_features], init),
        }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        x.linear(&self.weight, Some(&self.bias))
    }

    /// Multiply-accumulates of one input vector.
    pub fn macs(&self) -> u64 {
        let s = self.weight.size();
        (s[0] * s[1]) as u64
    }
}

/// `x` (N, C, H, W) with its memory laid out N, H, W, C: PyTorch's channels-last, with the
/// strides `x.to(memory_format=torch.channels_last)` gives, size-1 dimensions included.
///
/// libtorch picks channels-last kernels from the strides. A permute-contiguous-permute round
/// trip is not enough: with one channel (Fashion-MNIST) or 1x1 kernels `contiguous` keeps the
/// old strides, libtorch then sees NCHW, and every later op runs its NCHW kernel.
pub fn channels_last(x: &Tensor) -> Tensor {
    let size = x.size();
    let [n, c, h, w] = size[..] else { return x.shallow_clone() };
    let strides = [h * w * c, 1, w * c, c];
    if n == 0 || x.stride() == strides {
        return x.shallow_clone();
    }
    let mut out = Tensor::empty_strided(&size, strides, (x.kind(), x.device()));
    tch::no_grad(|| out.copy_(x));
    out
}

/// Re-lays a 4-d parameter out channels-last, keeping its identity (and its VarStore entry).
pub fn to_channels_last_in_place(t: &Tensor) {
    if t.dim() == 4 {
        let converted = tch::no_grad(|| channels_last(t));
        let mut shared = t.shallow_clone();
        shared.set_data(&converted);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn direct(conv: &Conv2d, x: &Tensor) -> Tensor {
        x.conv2d(&conv.weight, None::<&Tensor>, conv.stride, conv.padding, conv.dilation, conv.groups)
    }

    #[test]
    fn batch_norm_through_a_channel_major_copy_matches_the_direct_one() {
        // Channels-last inputs with few channels take the channel-major path; NCHW ones do not.
        // The output gradient arrives channels-last, as from the convolution that follows.
        let vs = nn::VarStore::new(Device::Cpu);
        for (i, (channels, affine)) in [(4, true), (8, false), (12, false)].into_iter().enumerate() {
            let [direct, copied] =
                [0, 1].map(|k| BatchNorm2d::new(&vs.root().sub(format!("bn{i}_{k}")), channels, affine));
            let x = Tensor::randn([6, channels, 5, 7], (Kind::Float, Device::Cpu)) * 3.0 + 1.0;
            let x_nchw = x.detach().set_requires_grad(true);
            let x_cl = channels_last(&x).set_requires_grad(true);
            assert!(prefers_channel_major(&x_cl) && !prefers_channel_major(&x_nchw));
            let y_nchw = direct.forward_scaled(&x_nchw, true, 0.25);
            let y_cl = copied.forward_scaled(&x_cl, true, 0.25);
            assert_eq!(y_cl.stride()[1], 1, "the output stays channels-last");
            let upstream = channels_last(&Tensor::randn([6, channels, 5, 7], (Kind::Float, Device::Cpu)));
            (&y_nchw * &upstream).sum(Kind::Float).backward();
            (&y_cl * &upstream).sum(Kind::Float).backward();
            let max_diff = |a: &Tensor, b: &Tensor| (a - b).abs().max().double_value(&[]);
            assert!(max_diff(&y_nchw, &y_cl) < 1e-5, "{channels} channels: outputs");
            assert!(max_diff(&x_nchw.grad(), &x_cl.grad()) < 1e-5, "{channels} channels: input gradients");
            let (a, b) = (direct.running.as_ref().unwrap(), copied.running.as_ref().unwrap());
            assert!(max_diff(&a.mean, &b.mean) < 1e-6 && max_diff(&a.var, &b.var) < 1e-5);
        }
    }

    #[test]
    fn channels_last_gives_pytorch_strides_for_size_one_dimensions() {
        // One input channel (Fashion-MNIST) and 1x1 kernels: a permute-contiguous round trip
        // would keep the NCHW strides here and libtorch would run every op in NCHW.
        let cases: [([i64; 4], [i64; 4]); 3] =
            [([2, 1, 28, 28], [784, 1, 28, 1]), ([8, 8, 1, 1], [8, 1, 8, 8]), ([8, 1, 3, 3], [9, 1, 3, 1])];
        for (size, strides) in cases {
            let x = Tensor::randn(size, (Kind::Float, Device::Cpu));
            let y = channels_last(&x);
            assert_eq!(y.stride(), strides, "{size:?}");
            assert_eq!(y.size(), size);
            assert!(y.equal(&x), "{size:?}: values changed");
        }
        // A conv on such an input and weight answers channels-last.
        let x = channels_last(&Tensor::randn([2, 1, 8, 8], (Kind::Float, Device::Cpu)));
        let w = channels_last(&Tensor::randn([4, 1, 3, 3], (Kind::Float, Device::Cpu)));
        let y = x.conv2d(&w, None::<&Tensor>, [1, 1], [1, 1], [1, 1], 1);
        assert_eq!(y.stride(), [256, 1, 32, 4]);
    }

    #[test]
    fn dilated_depthwise_by_phases_equals_the_dilated_convolution() {
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        for (i, (kernel, stride, size)) in
            [(3, 1, 8), (5, 1, 8), (3, 2, 8), (5, 2, 7), (3, 1, 7), (5, 1, 7), (3, 1, 6), (5, 1, 9)]
                .into_iter()
                .enumerate()
        {
            let spec = ConvSpec::square(6, 6, kernel, stride, kernel - 1).dilated(2).grouped(6);
            let conv = Conv2d::new(&vs.root().sub(i), spec);
            let x = Tensor::randn([2, 6, size, size], (Kind::Float, Device::Cpu));
            for input in [x.shallow_clone(), channels_last(&x)] {
                let diff = (conv.forward(&input) - direct(&conv, &input)).abs().max().double_value(&[]);
                assert!(diff < 1e-6, "k{kernel} s{stride} {size}x{size}: {diff}");
            }
        }
    }
}
