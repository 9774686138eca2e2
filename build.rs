//! Builds the C++ shims (src/distributed/c10d_shim.cpp, src/train/autocast_shim.cpp,
//! src/cudnn_shim.cpp) against the libtorch torch-sys links, and links libtorch_cuda even though
//! no symbol of ours references it directly.
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
    build_c10d_shim(Path::new(&lib_dir));
    build_torch_shims(Path::new(&lib_dir));
    // After the shims on the link line: their symbols live in libtorch_cpu and c10.
    for lib in ["torch_cpu", "c10"] {
        println!("cargo:rustc-link-lib=dylib={lib}");
    }
    let version = read_libtorch_version(Path::new(&lib_dir)).unwrap_or_default();
    println!("cargo:rustc-env=EVNAS_BUILD_LIBTORCH_VERSION={version}");
}

/// A C++ build of ours as torch-sys compiles its own (C++17, the same C++ ABI, the wheel's
/// headers).
fn torch_cpp(lib_dir: &Path) -> cc::Build {
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    let include = lib_dir.parent().map(|p| p.join("include")).unwrap_or_default();
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".into());
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .flag("-DGLOG_USE_GLOG_EXPORT")
        .warnings(false);
    build
}

/// The c10d shim, with Gloo's headers from Debian's libgloo-dev (the wheel has none;
/// scripts/setup.sh installs them).
fn build_c10d_shim(lib_dir: &Path) {
    const SHIM: &str = "src/distributed/c10d_shim.cpp";
    println!("cargo:rerun-if-changed={SHIM}");
    if !Path::new("/usr/include/gloo/algorithm.h").exists() {
        println!(
            "cargo:warning=gloo's headers are missing (Debian package libgloo-dev; run scripts/setup.sh)"
        );
    }
    torch_cpp(lib_dir).file(SHIM).flag("-DUSE_C10D_GLOO").compile("evnas_c10d_shim");
}

/// The switches tch lacks, built alike: autocast for the CPU (src/train/autocast.rs) and cuDNN's
/// algorithm flags (src/cudnn.rs).
fn build_torch_shims(lib_dir: &Path) {
    const SHIMS: [&str; 2] = ["src/train/autocast_shim.cpp", "src/cudnn_shim.cpp"];
    for shim in SHIMS {
        println!("cargo:rerun-if-changed={shim}");
    }
    torch_cpp(lib_dir).files(SHIMS).compile("evnas_torch_shims");
}

include!("src/libtorch_version.rs");
