//! `evnas eval` on a NetworkCIFAR state_dict saved by PyTorch (legacy format) reports the same
//! test accuracy as the reference's own test preprocessing and forward.

mod common;

use common::search::{evnas, run_ok};

#[test]
fn eval_matches_reference_on_legacy_pytorch_weights() {
    let dir = std::path::Path::new("tests/fixtures/eval");
    let out = run_ok(
        evnas()
            .args(["eval", "--genotype", "EvNAS-A", "--dataset", "cifar10", "--device", "cpu", "--json"])
            .args(["--init-channels", "4", "--layers", "5", "--batch-size", "16"])
            .arg("--weights")
            .arg(dir.join("evnas_a_c4_l5_legacy.pt"))
            .arg("--data")
            .arg(dir),
    );
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    assert_eq!(got["images"], 40);
    for key in ["top1", "top5"] {
        let (g, e) = (got[key].as_f64().unwrap(), expected[key].as_f64().unwrap());
        assert!((g - e).abs() < 1e-3, "{key}: evnas {g}, reference {e}");
    }
}

#[test]
fn eval_names_weights_that_do_not_fit() {
    let dir = std::path::Path::new("tests/fixtures/eval");
    let out = evnas()
        .args(["eval", "--genotype", "DARTS_V2", "--dataset", "cifar10", "--device", "cpu"])
        .args(["--init-channels", "4", "--layers", "5"])
        .arg("--weights")
        .arg(dir.join("evnas_a_c4_l5_legacy.pt"))
        .arg("--data")
        .arg(dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("evnas_a_c4_l5_legacy.pt") && stderr.contains("DARTS_V2"), "{stderr}");
}
