//! Link libtorch_cuda even though no symbol of ours references it directly.
//!
//! CUDA kernels register themselves when libtorch_cuda.so is loaded; the linker's default
//! `--as-needed` drops it, and then `tch::Cuda::is_available()` is false on every GPU machine.
//! An rpath to the libtorch lib dir lets the binary run without LD_LIBRARY_PATH.

use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // Set by torch-sys (`links = "tch"`) for its direct dependents.
    let Ok(lib_dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib_dir}");
    if Path::new(&lib_dir).join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
    let version = read_libtorch_version(Path::new(&lib_dir)).unwrap_or_default();
    println!("cargo:rustc-env=EVNAS_BUILD_LIBTORCH_VERSION={version}");
}

/// libtorch zips carry `build-version`; PyTorch wheels carry `version.py`.
fn read_libtorch_version(lib_dir: &Path) -> Option<String> {
    let root = lib_dir.parent()?;
    if let Ok(text) = std::fs::read_to_string(root.join("build-version")) {
        return Some(text.trim().to_string());
    }
    let text = std::fs::read_to_string(root.join("version.py")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("__version__ = "))
        .map(|v| v.trim().trim_matches('\'').trim_matches('"').to_string())
}
