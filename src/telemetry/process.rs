//! Samples of the process for the metrics: resident memory (from /proc) and, on CUDA, the
//! memory in use on each device (cudaMemGetInfo from the CUDA runtime libtorch loaded).

use std::ffi::{c_int, c_void};

/// Resident set size in bytes, from /proc/self/statm.
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf only reads a system constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    (page > 0).then(|| pages * page as u64)
}

type SetDevice = unsafe extern "C" fn(c_int) -> c_int;
type MemGetInfo = unsafe extern "C" fn(*mut usize, *mut usize) -> c_int;

/// The CUDA runtime's functions, when libtorch has loaded it into the process.
pub struct CudaMemory {
    set_device: SetDevice,
    mem_get_info: MemGetInfo,
}

impl CudaMemory {
    /// `None` without the CUDA runtime in the process.
    pub fn find() -> Option<Self> {
        let set_device = symbol(c"cudaSetDevice")?;
        let mem_get_info = symbol(c"cudaMemGetInfo")?;
        // SAFETY: the symbols have these C signatures in every CUDA runtime (cuda_runtime_api.h).
        let (set_device, mem_get_info) = unsafe {
            (
                std::mem::transmute::<*mut c_void, SetDevice>(set_device),
                std::mem::transmute::<*mut c_void, MemGetInfo>(mem_get_info),
            )
        };
        Some(Self { set_device, mem_get_info })
    }

    /// Bytes in use on each of `devices` (by every process), as (index, bytes). Sets this
    /// thread's current device: call it from a thread of its own.
    pub fn used(&self, devices: &[usize]) -> Vec<(usize, u64)> {
        devices
            .iter()
            .filter_map(|&i| {
                let (mut free, mut total) = (0usize, 0usize);
                // SAFETY: plain CUDA runtime calls with valid out-pointers.
                let ok = unsafe {
                    (self.set_device)(i as c_int) == 0 && (self.mem_get_info)(&mut free, &mut total) == 0
                };
                ok.then(|| (i, (total - free) as u64))
            })
            .collect()
    }
}

fn symbol(name: &std::ffi::CStr) -> Option<*mut c_void> {
    // SAFETY: dlsym with RTLD_DEFAULT looks a name up in the objects already loaded.
    let ptr = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    (!ptr.is_null()).then_some(ptr)
}
