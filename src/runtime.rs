//! What libtorch this process runs on: version, CUDA devices, the library's location.
//!
//! The version is read from the loaded library's install (version.py or build-version beside
//! its lib dir), so that a binary run with another LD_LIBRARY_PATH reports what it really uses.

use std::path::PathBuf;

include!("libtorch_version.rs");

/// Facts about the libtorch loaded into this process.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TorchRuntime {
    /// e.g. "2.11.0+cu130"; the build-time version when the loaded one cannot be read.
    pub libtorch_version: String,
    /// Directory of the loaded libtorch_cpu.so, when it can be found.
    pub lib_dir: Option<PathBuf>,
    pub cuda_available: bool,
    pub cuda_devices: i64,
    pub cudnn_available: bool,
}

impl TorchRuntime {
    pub fn detect() -> Self {
        let lib_dir = loaded_libtorch_dir();
        let libtorch_version = lib_dir
            .as_ref()
            .and_then(|d| read_libtorch_version(d))
            .unwrap_or_else(|| env!("EVNAS_BUILD_LIBTORCH_VERSION").to_string());
        Self {
            libtorch_version,
            lib_dir,
            cuda_available: tch::Cuda::is_available(),
            cuda_devices: tch::Cuda::device_count(),
            cudnn_available: tch::Cuda::cudnn_is_available(),
        }
    }

    /// The version without a local build tag: "2.11.0+cu130" → "2.11.0".
    pub fn libtorch_release(&self) -> &str {
        self.libtorch_version.split('+').next().unwrap_or(&self.libtorch_version)
    }

    pub fn cuda_summary(&self) -> String {
        if self.cuda_available {
            format!("CUDA available, {} device(s)", self.cuda_devices)
        } else {
            "CUDA not available".to_string()
        }
    }
}

/// Finds libtorch_cpu.so among this process's mapped files.
fn loaded_libtorch_dir() -> Option<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| p.ends_with("/libtorch_cpu.so"))
        .and_then(|p| PathBuf::from(p).parent().map(PathBuf::from))
}

/// Whether this CPU computes bfloat16 natively (AVX-512 BF16 or AMX, from /proc/cpuinfo's
/// flags): elsewhere libtorch emulates bf16 and it runs many times slower than fp32 (5-40x
/// measured on an AVX2-only EPYC).
pub fn cpu_computes_bf16() -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/cpuinfo") else { return false };
    info.lines()
        .filter(|l| l.starts_with("flags"))
        .take(1)
        .any(|l| l.split_whitespace().any(|flag| flag == "avx512_bf16" || flag == "amx_bf16"))
}

/// Warns when `key` = "bf16" asks for bf16 arithmetic on the CPU (`on_cpu`) and this CPU would
/// only emulate it.
pub fn warn_if_bf16_is_emulated(key: &str, on_cpu: bool) {
    if on_cpu && !cpu_computes_bf16() {
        tracing::warn!(
            "{key} = \"bf16\" on a CPU without AVX-512 BF16 or AMX: libtorch emulates bf16 here, many \
             times slower than fp32"
        );
    }
}

/// How the process's threads share glibc's heap ([`keep_freed_memory`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arenas {
    /// One heap for all threads: the least memory.
    One,
    /// glibc's default: an arena per thread (up to 8 per core).
    PerThread,
}

/// Makes glibc keep freed tensor memory in the process instead of handing it back to the kernel.
///
/// A supernet step allocates and frees thousands of tensors of 0.1 to 30 MB. glibc serves such
/// blocks with mmap and unmaps them on free, so every step touches fresh pages that the kernel
/// must fault in and zero: 9 to 13% of the CPU time of a step, measured here, and 10 to 30% more
/// images/s once reused. Raising the mmap threshold to its maximum (32 MiB) and the trim threshold
/// keeps those blocks on the heap for reuse; memory use stays at the step's peak.
///
/// All threads share one heap (glibc's arena count set to 1, unless `MALLOC_ARENA_MAX` says
/// otherwise): with one arena per thread, the trainer's heap kept its step's peak while each
/// fitness evaluator's heap grew to its own, and peak RSS was their sum (measured here on the
/// memory config: 4.94 GB with the arenas, 3.63 GB with one, at the same speed). Except with
/// [`Arenas::PerThread`], for threads that run libtorch at the same moments: on one arena they
/// queue on its lock. Measured here: 2 data-parallel CPU replicas of C=8 on 2 cores trained at
/// 25 img/s with one arena, 34-35 with glibc's per-thread arenas, peak RSS +4% (a limit of 2
/// arenas gave either, as threads happened to share them); 2 fitness evaluators of the default
/// config (C=4) measured a generation in 9.5-12.6 s with one arena, 9.5-10.9 s with an arena
/// each, peak RSS +5-9% (memory config: 2.22-2.36 GB, 2.42-2.47 GB). Call once, early, before
/// other threads allocate (glibc fixes the limit when a second thread first allocates). The
/// arenas it sets up decide [`release_freed_memory_between_phases`]. A no-op off glibc.
pub fn keep_freed_memory(arenas: Arenas) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const MIB: libc::c_int = 1 << 20;
        // glibc reads the variable as a number: 1 is one arena; 0 or anything else, its default.
        let chosen = std::env::var_os("MALLOC_ARENA_MAX").map(|v| {
            match v.to_str().and_then(|v| parse_count(v.trim())) {
                Some(1) => Arenas::One,
                _ => Arenas::PerThread,
            }
        });
        if KEPT_ON.set(chosen.unwrap_or(arenas)).is_err() {
            // Set up already: the arenas are fixed by now, and the record must stay true.
            return;
        }
        // SAFETY: mallopt only changes allocator parameters; it is called before the process
        // starts threads that allocate (and glibc serialises it against malloc in any case).
        unsafe {
            // Setting any of these turns off glibc's dynamic threshold, so set all three.
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 * MIB);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 1024 * MIB);
            libc::mallopt(libc::M_TOP_PAD, 64 * MIB);
            if chosen.is_none() && arenas == Arenas::One {
                libc::mallopt(libc::M_ARENA_MAX, 1);
            }
        }
    }
}

/// A count as glibc's tunables read it: decimal, `0x` hexadecimal or `0` octal.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn parse_count(text: &str) -> Option<u64> {
    let text = text.strip_prefix('+').unwrap_or(text);
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None if text.len() > 1 && text.starts_with('0') => u64::from_str_radix(&text[1..], 8).ok(),
        None => text.parse().ok(),
    }
}

/// The arenas on which [`keep_freed_memory`] keeps freed memory; unset until it is called (and
/// off glibc), where glibc hands large freed blocks back by itself.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
static KEPT_ON: std::sync::OnceLock<Arenas> = std::sync::OnceLock::new();

/// Where a phase of a generation starts: hands the heap's free pages back to the kernel
/// (glibc's `malloc_trim`) where [`keep_freed_memory`] keeps them on an arena per thread, and
/// does nothing otherwise (one arena, or glibc's own settings, or off glibc).
///
/// Each phase runs on new threads (the leader replica's training, the fitness evaluators and
/// their OpenMP teams), and a new thread takes whichever arena a thread left last. Untrimmed,
/// every arena kept the peak of whatever phase had last used it: side by side, evaluators
/// reused the trainer's freed pages only in part (memory config: peak RSS 2.62/2.64 GB, trimmed
/// 2.23/2.30 GB), and on 2 CPU replicas RSS grew by a phase's peak every generation (paper
/// supernet: 5.6 GB in the first generation, 19 GB after six, and training 1.3x slower from
/// the second on; trimmed, 5.6 GB after six; AMD EPYC Zen 3). Trimming costs one fault per page
/// the next phase touches, once per phase. On one arena every phase reuses the last one's
/// pages, and trimming only added page faults (paper-sized supernet, one evaluator: 1.2 M more
/// and 7% slower, AMD EPYC).
pub fn release_freed_memory_between_phases() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if KEPT_ON.get() == Some(&Arenas::PerThread) {
        // SAFETY: malloc_trim only returns free heap pages to the kernel; it locks each arena.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_libtorch_2_11() {
        let rt = TorchRuntime::detect();
        assert_eq!(rt.libtorch_release(), "2.11.0", "{rt:?}");
        assert!(rt.lib_dir.is_some(), "libtorch_cpu.so not found in /proc/self/maps");
    }

    /// MALLOC_ARENA_MAX as glibc reads it: "1", "01", "+1" and "0x1" are one arena.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn arena_counts_read_as_glibc_reads_them() {
        for one in ["1", "01", "+1", "0x1", "0X1"] {
            assert_eq!(parse_count(one), Some(1), "{one}");
        }
        assert_eq!(parse_count("010"), Some(8));
        assert_eq!(parse_count("0"), Some(0));
        assert_eq!(parse_count("four"), None);
        assert_eq!(parse_count(""), None);
    }
}
