//! `evnas doctor`: checks what a search needs and says what is wrong, one line per problem.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use evnas::config::ConfigError;
use evnas::runtime::TorchRuntime;

#[derive(Args)]
pub struct DoctorArgs {
    /// Dataset directories to check (default: the Fashion-MNIST package's directory).
    #[arg(long = "data")]
    data: Vec<PathBuf>,
    /// Check what this config file's search needs too: its dataset at `data.path`, that
    /// `run.dir` is writable, and that an existing search of its id can resume under it.
    #[arg(long)]
    config: Option<PathBuf>,
}

const FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";

pub fn run(args: &DoctorArgs) -> anyhow::Result<ExitCode> {
    let rt = TorchRuntime::detect();
    let mut problems = Vec::new();

    match &rt.lib_dir {
        Some(dir) => println!("ok: libtorch {} loaded from {}", rt.libtorch_version, dir.display()),
        None => problems.push("libtorch_cpu.so is not mapped into this process".to_string()),
    }
    if rt.libtorch_release() != "2.11.0" {
        problems.push(format!("libtorch is {}, evnas is built for 2.11.0", rt.libtorch_version));
    }
    if rt.cuda_available {
        println!("ok: {} (cuDNN {})", rt.cuda_summary(), if rt.cudnn_available { "on" } else { "off" });
        for index in 0..rt.cuda_devices.max(0) as usize {
            match tensor_op_on(tch::Device::Cuda(index)) {
                Ok(()) => println!("ok: tensor op on cuda:{index}"),
                Err(why) => problems.push(format!("tensor op on cuda:{index} failed: {why}")),
            }
        }
    } else {
        println!("note: CUDA not available; searches will run on the CPU");
    }
    check_nccl(&rt, &mut problems);

    let mut dirs = args.data.clone();
    if let Some(path) = &args.config {
        match evnas::config::load(Some(path), &[]) {
            Ok(cfg) => {
                match check_writable_dir(&cfg.run.dir) {
                    Ok(note) => println!("ok: run directory {}{note}", cfg.run.dir.display()),
                    Err(why) => problems.push(format!("run directory {}: {why}", cfg.run.dir.display())),
                }
                match evnas::daemon::check_data(&cfg) {
                    Ok(images) => println!(
                        "ok: data.path {} holds {images} {} training images",
                        cfg.data.path.display(),
                        cfg.data.dataset
                    ),
                    // A dataset read per batch from a folder (ImageNet, for `evnas train`) is
                    // checked as a directory below.
                    Err(e) if matches!(e.downcast_ref(), Some(ConfigError::NotSearchable { .. })) => {
                        dirs.push(cfg.data.path.clone())
                    }
                    Err(e) => problems.push(super::failure::describe(&e)),
                }
                if let Err(e) = evnas::daemon::check_search_dir(&cfg) {
                    problems.push(super::failure::describe(&e));
                }
            }
            Err(err) => problems.push(err.one_line()),
        }
    }
    if dirs.is_empty() && args.config.is_none() {
        dirs.push(PathBuf::from(FASHION_MNIST_DIR));
    }
    for dir in &dirs {
        match check_readable_dir(dir) {
            Ok(n) => println!("ok: dataset directory {} ({n} files)", dir.display()),
            Err(why) => problems.push(format!("dataset directory {}: {why}", dir.display())),
        }
    }

    for p in &problems {
        println!("problem: {p}");
    }
    Ok(if problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// NCCL's version, then an all-reduce across every GPU (one rank each) when there are any.
fn check_nccl(rt: &TorchRuntime, problems: &mut Vec<String>) {
    let Some(version) = evnas::distributed::nccl_version() else {
        println!("note: built without NCCL; replicas on GPUs sum gradients through Gloo (via the host)");
        return;
    };
    if !rt.cuda_available {
        println!("ok: NCCL {version} linked (no GPU to run it on)");
        return;
    }
    let gpus: Vec<tch::Device> = (0..rt.cuda_devices.max(0) as usize).map(tch::Device::Cuda).collect();
    match evnas::distributed::nccl_all_reduce_check(&gpus, NCCL_CHECK_TIMEOUT) {
        Ok(()) => println!("ok: NCCL {version} all-reduce across {} GPU(s)", gpus.len()),
        Err(why) => {
            problems.push(format!("NCCL {version} all-reduce across {} GPU(s) failed: {why}", gpus.len()))
        }
    }
}

/// How long the NCCL check waits for its ranks: they are threads of this process.
const NCCL_CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// A small matrix product checked against the CPU, to prove kernels really run on `device`.
fn tensor_op_on(device: tch::Device) -> Result<(), String> {
    let a = tch::Tensor::arange(12, (tch::Kind::Float, tch::Device::Cpu)).view([3, 4]);
    let expected = a.matmul(&a.tr());
    let got = a.f_to_device(device).and_then(|g| g.f_matmul(&g.tr())).map_err(|e| e.to_string())?;
    let got = got.to_device(tch::Device::Cpu);
    if got.allclose(&expected, 1e-5, 1e-5, false) {
        Ok(())
    } else {
        Err("result differs from the CPU's".into())
    }
}

/// Whether files can be made in `dir`, or, where it does not exist yet, in the directory it
/// would be made in: a note for the latter.
fn check_writable_dir(dir: &Path) -> Result<String, String> {
    let mut existing = dir;
    while !existing.exists() {
        existing = match existing.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
    }
    if !existing.is_dir() {
        return Err(format!("{} is not a directory", existing.display()));
    }
    let probe = existing.join(format!(".evnas-doctor-{}", std::process::id()));
    std::fs::File::create(&probe).map_err(|e| format!("cannot write in {}: {e}", existing.display()))?;
    let _ = std::fs::remove_file(&probe);
    Ok(if existing == dir { String::new() } else { format!(" (to be made in {})", existing.display()) })
}

fn check_readable_dir(dir: &Path) -> Result<usize, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| e.to_string())?;
    let n = entries.filter_map(Result::ok).count();
    if n == 0 {
        return Err("is empty".to_string());
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_directory_is_writable_where_it_is_or_would_be_made() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(check_writable_dir(tmp.path()), Ok(String::new()));
        let later = tmp.path().join("runs").join("deeper");
        let note = check_writable_dir(&later).unwrap();
        assert_eq!(note, format!(" (to be made in {})", tmp.path().display()));
        let file = tmp.path().join("a-file");
        std::fs::write(&file, b"x").unwrap();
        let err = check_writable_dir(&file.join("runs")).unwrap_err();
        assert!(err.contains("is not a directory"), "{err}");
        assert!(std::fs::read_dir(tmp.path()).unwrap().count() == 1, "the probe file was left behind");
    }
}
