//! Mixed precision as PyTorch's `torch.autocast`: while an [`Autocast`] guard lives, the calling
//! thread's convolutions and matrix products on its device run in a lower precision (their inputs
//! and fp32 weights cast per op, the cast weights cached until the guard ends); everything else,
//! the weights, their gradients and the optimizer stay fp32. Backward needs no guard: each op's
//! gradient follows the dtypes its forward recorded.

use std::ffi::c_int;
use std::marker::PhantomData;

use tch::Device;

use super::Precision;

extern "C" {
    fn evnas_autocast_is_enabled(cuda: c_int) -> bool;
    fn evnas_autocast_dtype(cuda: c_int) -> c_int;
    fn evnas_autocast_set(cuda: c_int, enabled: bool, dtype: c_int, enter: bool);
}

/// The precision autocast casts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LowPrecision {
    BFloat16,
    /// fp16: CUDA only.
    Half,
}

impl LowPrecision {
    /// Its c10::ScalarType code.
    fn scalar_type(self) -> c_int {
        match self {
            LowPrecision::Half => 5,
            LowPrecision::BFloat16 => 15,
        }
    }
}

/// Autocast on for the calling thread until dropped; the state before it comes back then.
/// Not `Send`: the state belongs to the thread that made the guard.
pub struct Autocast {
    cuda: c_int,
    was_enabled: bool,
    was_dtype: c_int,
    _thread_bound: PhantomData<*const ()>,
}

impl Autocast {
    /// Ops on `device` (CPU, or CUDA of any index) run in `precision`.
    pub fn enter(device: Device, precision: LowPrecision) -> Self {
        let cuda = c_int::from(device.is_cuda());
        // SAFETY: the shim only reads and sets libtorch's thread-local autocast state.
        unsafe {
            let (was_enabled, was_dtype) = (evnas_autocast_is_enabled(cuda), evnas_autocast_dtype(cuda));
            evnas_autocast_set(cuda, true, precision.scalar_type(), true);
            Self { cuda, was_enabled, was_dtype, _thread_bound: PhantomData }
        }
    }
}

impl Autocast {
    /// Autocast to bf16 on `device` when `precision` is bf16; nothing for fp32.
    pub fn for_precision(device: Device, precision: Precision) -> Option<Self> {
        (precision == Precision::Bf16).then(|| Self::enter(device, LowPrecision::BFloat16))
    }
}

impl Drop for Autocast {
    fn drop(&mut self) {
        // SAFETY: as in `enter`, on the thread that entered (the guard is not Send).
        unsafe { evnas_autocast_set(self.cuda, self.was_enabled, self.was_dtype, false) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Kind, Tensor};

    #[test]
    fn convolutions_run_in_bf16_inside_the_guard_only() {
        let x = Tensor::randn([2, 3, 8, 8], (Kind::Float, Device::Cpu));
        let w = Tensor::randn([4, 3, 3, 3], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let conv = |x: &Tensor| x.conv2d::<&Tensor>(&w, None, [1, 1], [1, 1], [1, 1], 1);
        let inside = {
            let _bf16 = Autocast::enter(Device::Cpu, LowPrecision::BFloat16);
            let y = conv(&x);
            // An op outside autocast's lists keeps its input's dtype.
            assert_eq!(y.relu().kind(), Kind::BFloat16);
            y
        };
        assert_eq!(inside.kind(), Kind::BFloat16);
        assert_eq!(conv(&x).kind(), Kind::Float, "the guard's end turns autocast off");
        // The gradient reaches the fp32 weight as fp32.
        inside.to_kind(Kind::Float).sum(Kind::Float).backward();
        assert_eq!(w.grad().kind(), Kind::Float);
        let reference = conv(&x);
        let diff = (inside.to_kind(Kind::Float) - reference).abs().max().double_value(&[]);
        assert!(diff > 0.0 && diff < 0.1, "bf16 rounding only: {diff}");
    }

    #[test]
    fn guards_nest_and_restore_the_state_before_them() {
        let x = Tensor::randn([4, 4], (Kind::Float, Device::Cpu));
        let outer = Autocast::enter(Device::Cpu, LowPrecision::BFloat16);
        {
            let _inner = Autocast::enter(Device::Cpu, LowPrecision::BFloat16);
            assert_eq!(x.mm(&x).kind(), Kind::BFloat16);
        }
        assert_eq!(x.mm(&x).kind(), Kind::BFloat16, "the outer guard still holds");
        drop(outer);
        assert_eq!(x.mm(&x).kind(), Kind::Float);
    }
}
