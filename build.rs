//! Link libtorch_cuda even though no symbol of ours references it directly.
//!
//! CUDA kernels register themselves when libtorch_cuda.so is loaded; the linker's default
//! `--as-needed` drops it, and then `tch::Cuda::is_available()` is false on every GPU machine.
//! An rpath to the libtorch lib dir lets the binary run without LD_LIBRARY_PATH.

use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/libtorch_version.rs");
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

include!("src/libtorch_version.rs");
