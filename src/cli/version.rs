//! `evnas --version`.

use std::process::ExitCode;

use evnas::runtime::TorchRuntime;

pub fn run() -> anyhow::Result<ExitCode> {
    let rt = TorchRuntime::detect();
    println!("evnas {}", env!("CARGO_PKG_VERSION"));
    println!("libtorch {}", rt.libtorch_version);
    println!("{}", rt.cuda_summary());
    Ok(ExitCode::SUCCESS)
}
