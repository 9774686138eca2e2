//! Weights interchange with PyTorch: reading `torch.save` files (zip and legacy formats) that
//! PyTorch 2.11 wrote (tests/fixtures/weights, made by scripts/fixtures/make_weights_fixtures.py),
//! loading them into a tch VarStore, and writing safetensors that PyTorch loads strictly.
//!
//! Expected values: each fixture `<name>_{zip,legacy}.pt` has `expected_<name>.pt`, the same
//! tensors made contiguous and saved as a plain dict, which tch's own `Tensor::loadz_multi` reads.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use evnas::weights::{
    load_into, read_safetensors, read_state_dict, read_torch_file, read_weights, save_safetensors,
    LoadOptions, LoadProblem, TorchObject, WeightsError,
};
use tch::nn::{self, ModuleT, VarStore};
use tch::{Device, Kind, Tensor};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/weights").join(name)
}

fn expected(name: &str) -> HashMap<String, Tensor> {
    let path = fixture(&format!("expected_{name}.pt"));
    Tensor::loadz_multi(&path)
        .unwrap_or_else(|e| panic!("tch reads {}: {e}", path.display()))
        .into_iter()
        .collect()
}

fn assert_same_tensors(got: &[(String, Tensor)], want: &HashMap<String, Tensor>, what: &str) {
    let mut got_names: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
    let mut want_names: Vec<&str> = want.keys().map(String::as_str).collect();
    got_names.sort();
    want_names.sort();
    assert_eq!(got_names, want_names, "{what}: names");
    for (name, tensor) in got {
        let want = &want[name];
        assert_eq!(tensor.kind(), want.kind(), "{what}: kind of {name}");
        assert_eq!(tensor.size(), want.size(), "{what}: shape of {name}");
        assert!(tensor.is_contiguous(), "{what}: {name} is not contiguous");
        assert!(tensor.equal(want), "{what}: values of {name}\n got {tensor}\nwant {want}");
    }
}

#[test]
fn state_dicts_read_like_pytorch_in_both_formats() {
    for name in ["state_dict", "checkpoint", "dataparallel", "parameters"] {
        let want = expected(name);
        for format in ["zip", "legacy"] {
            let path = fixture(&format!("{name}_{format}.pt"));
            let got = read_state_dict(&path).unwrap_or_else(|e| panic!("{e}"));
            assert_same_tensors(&got, &want, &format!("{name}_{format}"));
        }
    }
}

#[test]
fn state_dict_keeps_file_order_and_dtypes() {
    let got = read_state_dict(fixture("state_dict_zip.pt")).expect("readable");
    let names: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(&names[..4], ["0.weight", "1.weight", "1.bias", "1.running_mean"]);
    let kinds: HashMap<&str, Kind> = got.iter().map(|(k, t)| (k.as_str(), t.kind())).collect();
    assert_eq!(kinds["1.num_batches_tracked"], Kind::Int64);
    assert_eq!(kinds["extra.float64"], Kind::Double);
    assert_eq!(kinds["extra.bf16"], Kind::BFloat16);
    assert_eq!(kinds["extra.f16"], Kind::Half);
    assert_eq!(kinds["extra.bool"], Kind::Bool);
    assert_eq!(kinds["extra.uint8"], Kind::Uint8);
}

#[test]
fn strided_views_of_one_storage_are_rebuilt() {
    for format in ["zip", "legacy"] {
        let got: HashMap<String, Tensor> = read_state_dict(fixture(&format!("state_dict_{format}.pt")))
            .expect("readable")
            .into_iter()
            .collect();
        let base = &got["extra.same_storage"];
        assert_eq!(got["extra.transposed"].size(), [4, 3]);
        assert!(got["extra.transposed"].equal(&base.tr()), "{format}: transposed view");
        assert!(
            got["extra.offset_view"].equal(&base.slice(0, 1, 3, 1).slice(1, 2, 4, 1)),
            "{format}: offset view"
        );
        assert_eq!(got["extra.scalar"].size(), Vec::<i64>::new());
        assert_eq!(got["extra.empty"].size(), [0, 3]);
    }
}

#[test]
fn checkpoint_values_around_the_state_dict_survive() {
    for format in ["zip", "legacy"] {
        let object = read_torch_file(fixture(&format!("checkpoint_{format}.pt"))).expect("readable");
        let dict = object.as_dict().expect("checkpoint is a dict");
        assert_eq!(dict.get("epoch").and_then(TorchObject::as_int), Some(3));
        assert_eq!(dict.get("lr").and_then(TorchObject::as_f64), Some(0.025));
        assert_eq!(dict.get("arch").and_then(TorchObject::as_str), Some("DARTS_V2"));
        assert_eq!(dict.get("big").and_then(TorchObject::as_int), Some(1 << 40));
        assert_eq!(dict.get("neg").and_then(TorchObject::as_int), Some(-70000));
        assert!(matches!(dict.get("blob"), Some(TorchObject::Bytes(b)) if b == b"\x00\x01ev"));
        assert!(matches!(
            dict.get("flags"),
            Some(TorchObject::List(v)) if matches!(v[..], [TorchObject::Bool(true), TorchObject::Bool(false), TorchObject::None])
        ));
        assert!(matches!(
            dict.get("shape"),
            Some(TorchObject::Tuple(v)) if matches!(v[..], [TorchObject::Int(2), TorchObject::Int(3)])
        ));
        let history = dict.get("history").and_then(TorchObject::as_dict).expect("history dict");
        assert!(matches!(history.entries[1], (TorchObject::Int(1), TorchObject::Float(f)) if f == 1.25));
        let acc = dict.get("best_acc_top1").and_then(TorchObject::as_tensor).expect("tensor metric");
        assert_eq!(acc.size(), Vec::<i64>::new());
        assert_eq!(acc.double_value(&[]), 91.25);
        let state_dict = dict.get("state_dict").and_then(TorchObject::as_dict).expect("state_dict");
        let metadata = state_dict.attribute("_metadata").and_then(TorchObject::as_dict).expect("_metadata");
        let bn = metadata.get("1").and_then(TorchObject::as_dict).expect("BN metadata");
        assert_eq!(bn.get("version").and_then(TorchObject::as_int), Some(2), "{format}");
    }
}

fn expect_err<T: std::fmt::Debug>(result: Result<T, WeightsError>, what: &str) -> WeightsError {
    match result {
        Ok(v) => panic!("{what}: expected an error, got {v:?}"),
        Err(e) => e,
    }
}

#[test]
fn malformed_files_are_errors_that_name_the_file() {
    for name in
        ["truncated_zip.pt", "truncated_legacy.pt", "wrong_magic.pt", "unknown_global_legacy.pt", "absent.pt"]
    {
        let err = expect_err(read_state_dict(fixture(name)), name);
        assert!(err.to_string().contains(name), "{name}: {err}");
    }
    let err = expect_err(read_torch_file(fixture("truncated_legacy.pt")), "truncated legacy");
    assert!(matches!(&err, WeightsError::Format { reason, .. } if reason.contains("truncated")), "{err}");
    let err = expect_err(read_torch_file(fixture("wrong_magic.pt")), "wrong magic");
    assert!(
        matches!(&err, WeightsError::Format { reason, .. } if reason.contains("not a PyTorch file")),
        "{err}"
    );
    assert!(matches!(expect_err(read_torch_file(fixture("absent.pt")), "absent"), WeightsError::Io { .. }));
}

#[test]
fn unknown_global_is_named_with_its_byte_offset() {
    let err = expect_err(read_torch_file(fixture("unknown_global_legacy.pt")), "datetime.date");
    // pickletools shows `323: c GLOBAL 'datetime date'` in this file.
    match &err {
        WeightsError::Pickle { offset, reason, .. } => {
            assert_eq!(*offset, 323, "{err}");
            assert!(reason.contains("datetime.date"), "{err}");
        }
        other => panic!("expected a pickle error, got {other}"),
    }
}

#[test]
fn damaged_bytes_never_panic() {
    // Every truncation point and a spread of flipped bytes: each read must return (Ok or Err),
    // never panic or abort.
    for name in ["checkpoint_legacy.pt", "checkpoint_zip.pt"] {
        let data = std::fs::read(fixture(name)).expect("fixture");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("damaged.pt");
        for cut in (0..data.len()).step_by(23) {
            std::fs::write(&path, &data[..cut]).expect("write");
            assert!(read_torch_file(&path).is_err(), "{name} cut at {cut} read as valid");
        }
        for at in (0..data.len()).step_by(7) {
            let mut damaged = data.clone();
            damaged[at] ^= 0x5a;
            std::fs::write(&path, &damaged).expect("write");
            let _ = read_torch_file(&path);
        }
    }
}

/// The tch twin of the fixtures' `nn.Sequential(Conv2d(2,3,3,padding=1,bias=False),
/// BatchNorm2d(3), ReLU(), Flatten(), Linear(48,5))`, with PyTorch's variable names.
fn small_model(vs: &VarStore, linear_out: i64) -> impl ModuleT {
    let root = vs.root();
    let conv =
        nn::conv2d(&root / "0", 2, 3, 3, nn::ConvConfig { padding: 1, bias: false, ..Default::default() });
    let bn = nn::batch_norm2d(&root / "1", 3, Default::default());
    let linear = nn::linear(&root / "4", 48, linear_out, Default::default());
    nn::seq_t().add(conv).add(bn).add_fn(|x| x.relu()).add_fn(|x| x.flatten(1, -1)).add(linear)
}

fn variables_sorted(vs: &VarStore) -> Vec<(String, Tensor)> {
    let mut v: Vec<_> = vs.variables().into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn checkpoint_loads_into_a_varstore_by_name() {
    let want = expected("checkpoint");
    for format in ["zip", "legacy"] {
        let mut vs = VarStore::new(Device::Cpu);
        let _model = small_model(&vs, 5);
        let tensors = read_state_dict(fixture(&format!("checkpoint_{format}.pt"))).expect("readable");
        let report = load_into(&mut vs, tensors, &LoadOptions::default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(report.skipped, ["1.num_batches_tracked"]);
        assert_eq!(report.loaded.len(), 7);
        assert!(report.converted.is_empty());
        for (name, var) in variables_sorted(&vs) {
            assert!(var.equal(&want[&name]), "{format}: {name}");
        }
    }
}

#[test]
fn strict_load_rejects_num_batches_tracked_the_model_lacks() {
    let mut vs = VarStore::new(Device::Cpu);
    let _model = small_model(&vs, 5);
    let tensors = read_state_dict(fixture("checkpoint_zip.pt")).expect("readable");
    let err = expect_err(load_into(&mut vs, tensors, &LoadOptions::strict()), "strict");
    let WeightsError::Mismatch { problems } = err else { panic!("expected a mismatch") };
    assert_eq!(problems, [LoadProblem::Unexpected { key: "1.num_batches_tracked".into(), shape: vec![] }]);
}

#[test]
fn every_load_problem_is_listed_and_nothing_changes() {
    let mut vs = VarStore::new(Device::Cpu);
    let _model = small_model(&vs, 6);
    let _extra = vs.root().sub("5").zeros("weight", &[2]);
    let before = variables_sorted(&vs).into_iter().map(|(k, t)| (k, t.copy())).collect::<Vec<_>>();
    let mut tensors = read_state_dict(fixture("checkpoint_legacy.pt")).expect("readable");
    tensors.retain(|(k, _)| k != "1.running_var");
    let err = expect_err(load_into(&mut vs, tensors, &LoadOptions::default()), "mismatch");
    let message = err.to_string();
    let WeightsError::Mismatch { problems } = err else { panic!("expected a mismatch") };
    assert_eq!(
        problems,
        [
            LoadProblem::Missing { key: "1.running_var".into(), shape: vec![3] },
            LoadProblem::ShapeMismatch { key: "4.bias".into(), model: vec![6], weights: vec![5] },
            LoadProblem::ShapeMismatch { key: "4.weight".into(), model: vec![6, 48], weights: vec![5, 48] },
            LoadProblem::Missing { key: "5.weight".into(), shape: vec![2] },
        ],
        "{message}"
    );
    assert!(message.contains("4 problems"), "{message}");
    for ((name, now), (_, then)) in variables_sorted(&vs).iter().zip(&before) {
        assert!(now.equal(then), "{name} changed although the load failed");
    }
}

#[test]
fn tensors_are_converted_to_the_variable_kind() {
    let mut vs = VarStore::new(Device::Cpu);
    let var = vs.root().zeros("w", &[2, 2]);
    let source = Tensor::from_slice(&[1.0f64, 2.0, 3.0, 4.0]).reshape([2, 2]);
    let report = load_into(&mut vs, vec![("w".into(), source)], &LoadOptions::strict()).expect("fits");
    assert_eq!(report.converted, [("w".to_string(), Kind::Double, Kind::Float)]);
    assert_eq!(var.kind(), Kind::Float);
    assert!(var.equal(&Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0]).reshape([2, 2])));
}

#[test]
fn safetensors_round_trip_is_atomic_and_exact() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("model.safetensors");
    tch::manual_seed(3);
    let vs = VarStore::new(Device::Cpu);
    let _model = small_model(&vs, 5);
    let _counter = vs.root().sub("1").add("num_batches_tracked", Tensor::from(11i64), false);
    std::fs::write(&path, b"old contents").expect("write");
    save_safetensors(&vs, &path).expect("saved");
    let leftovers: Vec<_> =
        std::fs::read_dir(dir.path()).expect("dir").map(|e| e.expect("entry").file_name()).collect();
    assert_eq!(leftovers, ["model.safetensors"], "temp file left behind");
    let read = read_safetensors(&path).expect("readable");
    let want: HashMap<String, Tensor> = vs.variables();
    assert_same_tensors(&read, &want, "safetensors");
    assert_same_tensors(&read_weights(&path).expect("by extension"), &want, "read_weights");
}

#[test]
fn read_weights_dispatches_on_extension() {
    let dir = tempfile::tempdir().expect("tempdir");
    let want = expected("checkpoint");
    for name in ["ckpt.pt", "ckpt.pth", "ckpt.pth.tar", "CKPT.PTH"] {
        let path = dir.path().join(name);
        std::fs::copy(fixture("checkpoint_legacy.pt"), &path).expect("copy");
        assert_same_tensors(&read_weights(&path).unwrap_or_else(|e| panic!("{e}")), &want, name);
    }
    let path = dir.path().join("ckpt.bin");
    std::fs::copy(fixture("checkpoint_legacy.pt"), &path).expect("copy");
    assert!(matches!(read_weights(&path), Err(WeightsError::UnknownExtension { .. })));
}

const PYTORCH_FORWARD: &str = r#"
import json, sys
import torch, torch.nn as nn
from safetensors import safe_open
model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, bias=False), nn.BatchNorm2d(3), nn.ReLU(),
                      nn.Flatten(), nn.Linear(48, 5))
# safetensors.torch.load_file, without its dependency on the `packaging` package
with safe_open(sys.argv[1], framework="pt") as f:
    state = {name: f.get_tensor(name) for name in f.keys()}
model.load_state_dict(state, strict=True)
model.eval()
x = torch.linspace(-1.0, 1.0, 2 * 2 * 4 * 4).reshape(2, 2, 4, 4)
with torch.no_grad():
    print(json.dumps(model(x).flatten().tolist()))
"#;

#[test]
fn pytorch_loads_our_safetensors_strictly_and_computes_the_same_outputs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("model.safetensors");
    tch::manual_seed(5);
    let vs = VarStore::new(Device::Cpu);
    let model = small_model(&vs, 5);
    let _counter = vs.root().sub("1").add("num_batches_tracked", Tensor::from(4i64), false);
    // Non-trivial running statistics, so a BN buffer lost in transit changes the outputs.
    tch::no_grad(|| {
        let vars = vs.variables();
        vars["1.running_mean"].shallow_clone().copy_(&Tensor::from_slice(&[0.3f32, -0.2, 0.1]));
        vars["1.running_var"].shallow_clone().copy_(&Tensor::from_slice(&[1.5f32, 0.7, 2.0]));
    });
    save_safetensors(&vs, &path).expect("saved");
    let x = Tensor::linspace(-1.0, 1.0, 2 * 2 * 4 * 4, (Kind::Float, Device::Cpu)).reshape([2, 2, 4, 4]);
    let ours = Vec::<f32>::try_from(tch::no_grad(|| model.forward_t(&x, false)).flatten(0, -1)).expect("f32");

    let python = std::env::var("EVNAS_PYTHON").unwrap_or_else(|_| "python3".into());
    let site = common::python_site_dir();
    let output = Command::new(&python)
        .arg("-c")
        .arg(PYTORCH_FORWARD)
        .arg(&path)
        .env("PYTHONPATH", &site)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python} ({e}): install python3 or set EVNAS_PYTHON"));
    assert!(
        output.status.success(),
        "PyTorch side failed (python {python}, PYTHONPATH={}; it needs the torch and safetensors \
         packages there):\n{}",
        site.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let theirs: Vec<f32> = serde_json::from_slice(&output.stdout).expect("python printed a JSON list");
    assert_eq!(ours.len(), theirs.len());
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "output {i}: tch {a}, PyTorch {b}");
    }
}
