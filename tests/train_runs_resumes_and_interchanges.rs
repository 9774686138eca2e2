//! `evnas train` on tiny CIFAR-10 files (C=4, 5 cells, auxiliary head, cutout, drop path): the
//! loss falls and the schedule is train.py's; the weights it writes give, in `evnas eval`, the
//! test accuracy it reported; a run killed in the middle of an epoch and resumed ends with the
//! very bytes of an uninterrupted run; a NaN loss stops it cleanly; its safetensors hold the
//! reference NetworkCIFAR's state_dict (keys, shapes, dtypes), read by PyTorch; bf16 autocast
//! trains fp32 weights along the fp32 loss curve.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::search::{evnas, run_ok, write_tiny_cifar10};
use serde_json::Value;

/// 320 training and 100 test images of ten learnable classes.
fn tiny_cifar(root: &Path) -> PathBuf {
    let data = root.join("cifar");
    write_tiny_cifar10(&data, 320);
    let other = root.join("other");
    write_tiny_cifar10(&other, 500);
    std::fs::copy(other.join("data_batch_1.bin"), data.join("test_batch.bin")).unwrap();
    data
}

fn train(data: &Path, run: &Path, epochs: usize) -> Command {
    let mut cmd = evnas();
    cmd.args(["train", "--genotype", "EvNAS-A", "--dataset", "cifar10", "--data"])
        .arg(data)
        .args(["--epochs", &epochs.to_string(), "--init-channels", "4", "--layers", "5"])
        .args(["--batch-size", "32", "--device", "cpu", "--quiet", "--run-dir"])
        .arg(run)
        .args(["--set", "final_training.test_batch_size=50", "--set", "run.threads=1"]);
    cmd
}

fn epochs(run: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(run.join("epochs.jsonl")).expect("epochs.jsonl");
    text.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
}

/// The records without their timings (which differ from run to run).
fn epochs_without_timings(run: &Path) -> Vec<Value> {
    let mut records = epochs(run);
    for r in &mut records {
        let fields = r.as_object_mut().unwrap();
        for key in ["train_seconds", "test_seconds", "images_per_second"] {
            fields.remove(key).unwrap_or_else(|| panic!("record has {key}"));
        }
    }
    records
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("readable")).expect("JSON")
}

/// `evnas eval --json` (fp32) of a run's `weights/last.safetensors`, loaded strictly.
fn eval_last_weights(data: &Path, run: &Path) -> Value {
    let eval = run_ok(
        evnas()
            .args(["eval", "--genotype", "EvNAS-A", "--dataset", "cifar10", "--init-channels", "4"])
            .args(["--layers", "5", "--batch-size", "50", "--device", "cpu", "--json", "--data"])
            .arg(data)
            .arg("--weights")
            .arg(run.join("weights/last.safetensors")),
    );
    serde_json::from_slice(&eval.stdout).expect("eval --json")
}

#[test]
fn training_lowers_the_loss_on_schedule_and_its_weights_give_the_reported_accuracy() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_cifar(dir.path());
    let run = dir.path().join("run");
    let out = run_ok(&mut train(&data, &run, 4));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("EvNAS-A on cifar10: test top-1"), "{stdout}");

    let records = epochs(&run);
    assert_eq!(records.len(), 4);
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r["epoch"], i + 1);
        let lr = 0.5 * 0.025 * (1.0 + (std::f64::consts::PI * i as f64 / 4.0).cos());
        assert!((r["learning_rate"].as_f64().unwrap() - lr).abs() < 1e-12, "lr of epoch {}", i + 1);
        assert!((r["drop_path_prob"].as_f64().unwrap() - 0.2 * i as f64 / 4.0).abs() < 1e-12);
        assert_eq!(r["train_images"], 320);
        assert!(r["test_top1"].is_number(), "every epoch is tested");
    }
    let first = records[0]["train_loss"].as_f64().unwrap();
    let last = records[3]["train_loss"].as_f64().unwrap();
    assert!(last < 0.9 * first, "training loss {first} -> {last}");

    let result = json(&run.join("result.json"));
    assert_eq!(result["epochs"], 4);
    assert_eq!(result["test_top1"], records[3]["test_top1"]);
    for file in ["weights/best.safetensors", "weights/last.safetensors", "learning_curve.svg"] {
        assert!(run.join(file).is_file(), "{file}");
    }
    let checkpoints: Vec<String> = std::fs::read_dir(run.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(checkpoints.len(), 2, "keep_checkpoints = 2: {checkpoints:?}");

    // The last weights, loaded strictly by `evnas eval`, score what training reported.
    let scored = eval_last_weights(&data, &run);
    assert_eq!(scored["images"], 100);
    assert_eq!(scored["top1"], result["test_top1"], "eval of last.safetensors vs result.json");
}

#[test]
fn bf16_autocast_trains_fp32_weights_along_the_fp32_loss_curve() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_cifar(dir.path());
    let (fp32, bf16) = (dir.path().join("fp32"), dir.path().join("bf16"));
    run_ok(&mut train(&data, &fp32, 3));
    run_ok(train(&data, &bf16, 3).args(["--set", "final_training.precision=bf16"]));
    let losses =
        |run: &Path| -> Vec<f64> { epochs(run).iter().map(|r| r["train_loss"].as_f64().unwrap()).collect() };
    let (exact, mixed) = (losses(&fp32), losses(&bf16));
    assert_ne!(exact, mixed, "bf16 must change the arithmetic");
    for (e, (a, b)) in exact.iter().zip(&mixed).enumerate() {
        assert!((a - b).abs() < 0.1 * a, "epoch {}: fp32 loss {a}, bf16 {b}", e + 1);
    }
    assert!(mixed[2] < 0.9 * mixed[0], "bf16 training loss {mixed:?}");
    // Weights stay fp32: `evnas eval` (fp32) loads them strictly and scores the reported top-1.
    let scored = eval_last_weights(&data, &bf16);
    assert_eq!(scored["top1"], json(&bf16.join("result.json"))["test_top1"]);
    // A resumed run trains as it started: its config.json keeps the precision.
    assert_eq!(json(&bf16.join("config.json"))["final_training"]["precision"], "bf16");
}

#[test]
fn a_run_killed_mid_epoch_resumes_to_the_uninterrupted_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_cifar(dir.path());
    let whole = dir.path().join("whole");
    run_ok(&mut train(&data, &whole, 3));

    let killed = dir.path().join("killed");
    // 10 batches an epoch: killed at the 6th batch of epoch 2, after epoch 1's checkpoint.
    let out = train(&data, &killed, 3)
        .env("FAILPOINTS", "final_training.batch=15*off->return(kill)")
        .output()
        .unwrap();
    assert_eq!(out.status.signal(), Some(9), "expected SIGKILL: {}", String::from_utf8_lossy(&out.stderr));
    assert!(!killed.join("result.json").exists());
    let out = run_ok(evnas().args(["train", "--quiet", "--resume"]).arg(&killed));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("resuming") && stderr.contains("after epoch 1/3"), "{stderr}");

    assert_eq!(epochs_without_timings(&killed), epochs_without_timings(&whole));
    for file in ["weights/last.safetensors", "weights/best.safetensors"] {
        let a = std::fs::read(whole.join(file)).unwrap();
        let b = std::fs::read(killed.join(file)).unwrap();
        assert!(a == b, "{file} differs after the resume");
    }
    let (a, b) = (json(&whole.join("result.json")), json(&killed.join("result.json")));
    assert_eq!(a["test_top1"], b["test_top1"]);
    common::search::assert_checkpoints_intact(&killed);

    // A finished run resumed has nothing left to do and says so by finishing at once.
    let again = run_ok(evnas().args(["train", "--quiet", "--resume"]).arg(&killed));
    assert!(String::from_utf8_lossy(&again.stderr).contains("after epoch 3/3"));
}

#[test]
fn a_non_finite_loss_stops_before_the_step_and_leaves_no_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_cifar(dir.path());
    let run = dir.path().join("run");
    let out =
        train(&data, &run, 2).env("FAILPOINTS", "final_training.loss=3*off->return(nan)").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("loss is not finite at epoch 1, batch 3"), "{stderr}");
    assert_eq!(std::fs::read_dir(run.join("checkpoints")).unwrap().count(), 0);
}

#[test]
fn settings_this_version_cannot_train_are_refused_before_a_run_directory_exists() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    // Fashion-MNIST's 28x28 images are too small for the auxiliary head.
    let out = evnas()
        .args(["train", "--genotype", "EvNAS-A", "--dataset", "fashion-mnist", "--epochs", "1", "--run-dir"])
        .arg(&run)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "the command line's to mend");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("final_training.auxiliary = false (--no-auxiliary)"), "{stderr}");
    assert!(!run.exists());
    let out = evnas()
        .args(["train", "--genotype", "EvNAS-A", "--set", "final_training.epochs=0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("final_training.epochs = 0"));
    let out = evnas().args(["train", "--resume"]).arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a training run directory"));
}

const PYTORCH_SIDE: &str = r#"
import sys
import torch
from safetensors import safe_open

ours_path, reference_path = sys.argv[1:]
with safe_open(ours_path, framework="pt") as f:
    ours = {name: f.get_tensor(name) for name in f.keys()}
reference = torch.load(reference_path, map_location="cpu")
state = {k[2:]: v for k, v in reference.items() if k.startswith("w.")}
missing, unexpected = sorted(set(state) - set(ours)), sorted(set(ours) - set(state))
assert not missing and not unexpected, f"missing {missing[:5]}, unexpected {unexpected[:5]}"
for key, want in state.items():
    got = ours[key]
    assert got.dtype == want.dtype and got.shape == want.shape, (key, got.dtype, got.shape, want.dtype, want.shape)
    assert torch.isfinite(got.float()).all(), key
print(f"ok {len(ours)} tensors")
"#;

#[test]
fn the_trained_weights_are_the_reference_state_dict_in_pytorch() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_cifar(dir.path());
    let run = dir.path().join("run");
    run_ok(&mut train(&data, &run, 1));
    let python = std::env::var("EVNAS_PYTHON").unwrap_or_else(|_| "python3".into());
    // The reference's NetworkCIFAR(C=4, 10 classes, 5 layers, auxiliary=True, EvNAS-A), saved by
    // PyTorch (tests/fixtures/README.md).
    let out = Command::new(&python)
        .arg("-c")
        .arg(PYTORCH_SIDE)
        .arg(run.join("weights/best.safetensors"))
        .arg("tests/fixtures/model/network_cifar_evnas_a_c4_l5.pt")
        .env("PYTHONPATH", common::python_site_dir())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    assert!(out.status.success(), "PyTorch side failed:\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok "));
}

/// An ImageNet-style folder: `train/` and `val/`, 3 classes of small JPEGs and PNGs.
fn tiny_imagenet(root: &Path) -> PathBuf {
    let data = root.join("imagenet");
    for (split, per_class) in [("train", 6), ("val", 2)] {
        for class in 0..3u8 {
            let dir = data.join(split).join(format!("n0{class}"));
            std::fs::create_dir_all(&dir).unwrap();
            for i in 0..per_class {
                let image = image::RgbImage::from_fn(48 + i * 7, 40 + i * 3, |x, y| {
                    let tone = (class as u32 * 90 + x * 3 + y * 2 + i * 11) % 256;
                    image::Rgb([tone as u8, (255 - tone) as u8, class * 100])
                });
                let ext = if i % 2 == 0 { "jpg" } else { "png" };
                image.save(dir.join(format!("{i}.{ext}"))).unwrap();
            }
        }
    }
    data
}

#[test]
fn an_imagenet_folder_trains_a_network_imagenet_with_train_imagenets_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_imagenet(dir.path());
    let run = dir.path().join("run");
    run_ok(
        evnas()
            .args(["train", "--genotype", "DARTS_V2", "--dataset", "imagenet", "--data"])
            .arg(&data)
            .args(["--epochs", "2", "--init-channels", "4", "--layers", "5", "--batch-size", "6"])
            .args(["--device", "cpu", "--quiet", "--set", "final_training.test_batch_size=6", "--run-dir"])
            .arg(&run),
    );
    let records = epochs(&run);
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["train_images"], 18);
    // train_imagenet.py's defaults: learning rate 0.1, decayed linearly.
    assert!((records[0]["learning_rate"].as_f64().unwrap() - 0.1).abs() < 1e-12);
    assert!((records[1]["learning_rate"].as_f64().unwrap() - 0.05).abs() < 1e-12);
    let config = json(&run.join("config.json"));
    assert_eq!(config["final_training"]["label_smoothing"], 0.1);
    assert_eq!(config["final_training"]["lr_schedule"], "linear");
    // The classifier has the folder's 3 classes.
    let weights = evnas::weights::read_weights(run.join("weights/last.safetensors")).unwrap();
    let classifier = weights.iter().find(|(k, _)| k == "classifier.weight").expect("classifier");
    assert_eq!(classifier.1.size()[0], 3);
    assert_eq!(json(&run.join("result.json"))["dataset"], "imagenet");
}
