//! How cuDNN picks convolution algorithms, per job as the reference's scripts set it: the
//! search's convolutions reproducible (train_search.py: `cudnn.deterministic = True`,
//! `benchmark = False`; a few CUDA kernels outside cuDNN, such as the global average pooling's
//! backward, still add with atomics, so a GPU search is not bit-reproducible, the reference's
//! neither); training found cells fastest (train.py:
//! `cudnn.benchmark = True`: each shape's fastest algorithm, timed at its first use). The
//! settings are libtorch's process-wide flags; they only matter on CUDA devices.

extern "C" {
    fn evnas_cudnn_set(deterministic: bool, benchmark: bool);
    fn evnas_cudnn_deterministic() -> bool;
    fn evnas_cudnn_benchmark() -> bool;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CudnnMode {
    /// Deterministic algorithms, chosen without timing: the same numbers on every run.
    Reproducible,
    /// The fastest algorithm per shape, timed at its first use; results may vary by run.
    Fastest,
}

/// Sets cuDNN's choice for the whole process.
pub fn set_mode(mode: CudnnMode) {
    let (deterministic, benchmark) = match mode {
        CudnnMode::Reproducible => (true, false),
        CudnnMode::Fastest => (false, true),
    };
    // SAFETY: the shim only sets two flags of libtorch's global context.
    unsafe { evnas_cudnn_set(deterministic, benchmark) }
}

/// The mode libtorch's flags are in; `None` for a mix neither mode sets (libtorch's default,
/// neither deterministic nor benchmarking, is one).
pub fn mode() -> Option<CudnnMode> {
    // SAFETY: reads two flags of libtorch's global context.
    let flags = unsafe { (evnas_cudnn_deterministic(), evnas_cudnn_benchmark()) };
    match flags {
        (true, false) => Some(CudnnMode::Reproducible),
        (false, true) => Some(CudnnMode::Fastest),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_set_libtorchs_flags() {
        set_mode(CudnnMode::Fastest);
        assert_eq!(mode(), Some(CudnnMode::Fastest));
        assert!(tch::Cuda::user_enabled_cudnn());
        set_mode(CudnnMode::Reproducible);
        assert_eq!(mode(), Some(CudnnMode::Reproducible));
    }
}
