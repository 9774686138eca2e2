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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_libtorch_2_11() {
        let rt = TorchRuntime::detect();
        assert_eq!(rt.libtorch_release(), "2.11.0", "{rt:?}");
        assert!(rt.lib_dir.is_some(), "libtorch_cpu.so not found in /proc/self/maps");
    }
}
