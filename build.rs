//! Builds the C++ shims (src/distributed/c10d_shim.cpp, src/train/autocast_shim.cpp,
//! src/cudnn_shim.cpp, and src/distributed/nccl_shim.cpp where NCCL can be built) against the
//! libtorch torch-sys links, and links libtorch_cuda even though no symbol of ours references it
//! directly.
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
    println!("cargo::rustc-check-cfg=cfg(evnas_nccl)");
    let nccl = build_nccl_shim(Path::new(&lib_dir));
    build_c10d_shim(Path::new(&lib_dir));
    build_torch_shims(Path::new(&lib_dir));
    // After the shims on the link line: their symbols live in libtorch_cpu and c10 (and, for
    // NCCL's, in libtorch_cuda and c10_cuda).
    let cuda_libs: &[&str] = if nccl { &["torch_cuda", "c10_cuda"] } else { &[] };
    for lib in cuda_libs.iter().chain(&["torch_cpu", "c10"]) {
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
    println!("cargo:rerun-if-changed=src/distributed/c10d_shim.h");
    if !Path::new("/usr/include/gloo/algorithm.h").exists() {
        println!(
            "cargo:warning=gloo's headers are missing (Debian package libgloo-dev; run scripts/setup.sh)"
        );
    }
    torch_cpp(lib_dir).file(SHIM).flag("-DUSE_C10D_GLOO").compile("evnas_c10d_shim");
}

/// The NCCL shim, when libtorch has CUDA and the headers ProcessGroupNCCL's need are in the wheel
/// (nccl.h from nvidia-nccl; CUDA's runtime headers, with the `crt/` and `nv/` ones that
/// scripts/setup.sh adds from nvidia-cuda-crt and nvidia-cuda-cccl), unless EVNAS_NO_NCCL is set.
/// Sets `cfg(evnas_nccl)` and says whether it did.
fn build_nccl_shim(lib_dir: &Path) -> bool {
    const SHIM: &str = "src/distributed/nccl_shim.cpp";
    println!("cargo:rerun-if-changed={SHIM}");
    println!("cargo:rerun-if-env-changed=EVNAS_NO_NCCL");
    if !lib_dir.join("libtorch_cuda.so").exists() || std::env::var_os("EVNAS_NO_NCCL").is_some() {
        return false;
    }
    // torch/lib → the wheel's site directory, whose nvidia/ holds the CUDA packages.
    let site = std::fs::canonicalize(lib_dir).ok().and_then(|d| Some(d.parent()?.parent()?.to_path_buf()));
    let nccl_include =
        site.as_ref().map(|s| s.join("nvidia/nccl/include")).filter(|d| d.join("nccl.h").exists());
    let cuda_include = site.as_ref().and_then(|s| cuda_runtime_include(&s.join("nvidia")));
    let (Some(nccl_include), Some(cuda_include)) = (nccl_include, cuda_include) else {
        println!(
            "cargo:warning=NCCL left out: the libtorch has CUDA, but nccl.h or CUDA's runtime headers (with crt/ and nv/) are missing from its wheel; run scripts/setup.sh"
        );
        return false;
    };
    torch_cpp(lib_dir)
        .file(SHIM)
        .include(nccl_include)
        .include(cuda_include)
        .flag("-DUSE_C10D_NCCL")
        .compile("evnas_nccl_shim");
    println!("cargo:rustc-cfg=evnas_nccl");
    true
}

/// `cu13` and the like: a CUDA release's directory among the wheel's nvidia packages (not
/// `cudnn` or `cusparselt`).
fn is_cuda_release_dir(name: &std::ffi::OsStr) -> bool {
    name.to_str()
        .and_then(|n| n.strip_prefix("cu"))
        .is_some_and(|release| !release.is_empty() && release.bytes().all(|b| b.is_ascii_digit()))
}

/// `nvidia/cu*/include` holding the CUDA runtime's headers complete enough to compile against.
fn cuda_runtime_include(nvidia: &Path) -> Option<std::path::PathBuf> {
    const NEEDED: [&str; 3] = ["cuda_runtime_api.h", "crt/host_config.h", "nv/target"];
    let candidates: Vec<_> = std::fs::read_dir(nvidia)
        .ok()?
        .filter_map(|entry| entry.ok().map(|e| e.path().join("include")))
        .filter(|dir| dir.parent().and_then(|p| p.file_name()).is_some_and(is_cuda_release_dir))
        .collect();
    // Built again once scripts/setup.sh adds the headers a first build lacked.
    for file in candidates.iter().flat_map(|dir| NEEDED.map(|f| dir.join(f))) {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    let mut dirs: Vec<_> =
        candidates.into_iter().filter(|dir| NEEDED.iter().all(|f| dir.join(f).exists())).collect();
    dirs.sort();
    dirs.pop()
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
