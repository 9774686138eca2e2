//! `evnas export`: the TorchScript file runs in PyTorch without evnas and gives evnas's logits,
//! on a batch size other than the one it was traced with; the safetensors file holds exactly
//! the state_dict PyTorch saved (the reference's NetworkCIFAR, tests/fixtures/eval); weights
//! that do not fit are refused with the file named; a signal while the file is written leaves
//! the old file and no partial one.

mod common;

use std::path::Path;
use std::process::Command;

use common::search::{evnas, run_ok};
use evnas::model::{EvalDataset, NetworkCifar};
use evnas::space::Genotype;
use evnas::weights::{load_into, read_weights, save_tensors_safetensors, LoadOptions};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

const WEIGHTS: &str = "tests/fixtures/eval/evnas_a_c4_l5_legacy.pt";

fn export(format: &str, out: &Path) -> Command {
    let mut cmd = evnas();
    cmd.args(["export", "--genotype", "EvNAS-A", "--dataset", "cifar10", "--init-channels", "4"])
        .args(["--layers", "5", "--format", format, "--weights", WEIGHTS, "--out"])
        .arg(out);
    cmd
}

/// evnas's own logits of the fixture network (eval mode) on a batch of three images.
fn evnas_logits() -> (Tensor, Tensor) {
    let mut config = EvalDataset::Cifar10.default_config();
    config.init_channels = 4;
    config.layers = 5;
    config.auxiliary = false;
    let mut vs = VarStore::new(Device::Cpu);
    let net = NetworkCifar::new(&vs.root(), config, &Genotype::load("EvNAS-A").unwrap());
    load_into(&mut vs, read_weights(WEIGHTS).unwrap(), &LoadOptions::default()).unwrap();
    tch::manual_seed(3);
    let x = Tensor::randn([3, 3, 32, 32], (Kind::Float, Device::Cpu));
    let logits = tch::no_grad(|| net.forward_t(&x, false).0);
    (x, logits)
}

const PYTORCH_SIDE: &str = r#"
import sys
import torch
from safetensors import safe_open

def read(path):
    with safe_open(path, framework="pt") as f:
        return {name: f.get_tensor(name) for name in f.keys()}

script, exported, original, case = sys.argv[1:]
model = torch.jit.load(script)
case = read(case)
with torch.no_grad():
    got = model(case["x"])
diff = (got - case["logits"]).abs().max().item()
assert got.shape == case["logits"].shape, (got.shape, case["logits"].shape)
assert diff <= 1e-5, f"TorchScript logits differ from evnas's by {diff}"
# The trace is not tied to its batch size.
with torch.no_grad():
    one = model(case["x"][:1])
assert (one - case["logits"][:1]).abs().max().item() <= 1e-5

state = torch.load(original, map_location="cpu")
ours = read(exported)
assert sorted(ours) == sorted(state), (sorted(set(ours) ^ set(state)))
for key, want in state.items():
    assert ours[key].dtype == want.dtype and ours[key].shape == want.shape, key
    assert torch.equal(ours[key], want), key
print(f"ok {len(ours)} tensors, max logit difference {diff:.2e}")
"#;

#[test]
fn the_torchscript_export_runs_in_pytorch_with_evnas_logits_and_the_safetensors_are_the_state_dict() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("evnas_a.pt");
    let exported = dir.path().join("evnas_a.safetensors");
    let case = dir.path().join("case.safetensors");
    run_ok(&mut export("torchscript", &script));
    run_ok(&mut export("safetensors", &exported));
    let (x, logits) = evnas_logits();
    save_tensors_safetensors(&[("x".into(), x), ("logits".into(), logits)], &case).unwrap();

    let python = std::env::var("EVNAS_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(&python)
        .arg("-c")
        .arg(PYTORCH_SIDE)
        .args([&script, &exported, Path::new(WEIGHTS), &case])
        .env("PYTHONPATH", common::python_site_dir())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python} ({e}): install python3 or set EVNAS_PYTHON"));
    assert!(out.status.success(), "PyTorch side failed:\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok "));
}

#[test]
fn weights_that_do_not_fit_the_network_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("model.pt");
    let out = evnas()
        .args(["export", "--genotype", "DARTS_V2", "--dataset", "cifar10", "--init-channels", "4"])
        .args(["--layers", "5", "--format", "torchscript", "--weights", WEIGHTS, "--out"])
        .arg(&out_path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("evnas_a_c4_l5_legacy.pt") && stderr.contains("DARTS_V2"), "{stderr}");
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none(), "export left a file behind");
}

#[test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "holds the export at a fault point: needs fault-injection"
)]
fn a_signal_while_the_file_is_written_leaves_the_old_file_and_no_partial_one() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("model.pt");
    std::fs::write(&out_path, b"the previous export").unwrap();
    // The written file waits beside its target long enough for the signal to find it there.
    let mut export = export("torchscript", &out_path);
    let child = export.env("FAILPOINTS", "export.saved=sleep(60000)").spawn().unwrap();
    // Ended however the test ends: not left sleeping after a failed assertion.
    struct Reaped(std::process::Child);
    impl Drop for Reaped {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Reaped(child);
    let partial = || {
        std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .find(|name| name.starts_with(".model.pt.tmp-"))
    };
    let started = std::time::Instant::now();
    while partial().is_none() {
        assert!(started.elapsed().as_secs() < 60, "export wrote no temporary file");
        assert!(child.0.try_wait().unwrap().is_none(), "export ended before writing its file");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // SAFETY: kill has no preconditions; the child is ours and has not been reaped.
    unsafe { libc::kill(child.0.id() as i32, libc::SIGTERM) };
    let status = child.0.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{status:?}");
    assert_eq!(partial(), None, "the partial file stays");
    assert_eq!(std::fs::read(&out_path).unwrap(), b"the previous export");
}
