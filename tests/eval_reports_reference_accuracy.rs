//! `evnas eval` on a NetworkCIFAR state_dict saved by PyTorch (legacy format) reports the same
//! test accuracy as the reference's own test preprocessing and forward; on an image folder the
//! number of classes is the folder's.

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

/// An image folder of `classes` classes, one PNG each, in `dir`.
fn image_folder(dir: &std::path::Path, classes: &[&str]) {
    for (i, class) in classes.iter().enumerate() {
        std::fs::create_dir_all(dir.join(class)).unwrap();
        let shade = 40 * i as u8;
        image::RgbImage::from_fn(70, 50, |x, y| image::Rgb([shade, (x * 3) as u8, (y * 5) as u8]))
            .save(dir.join(class).join("0.png"))
            .unwrap();
    }
}

#[test]
fn on_an_image_folder_the_classes_come_from_the_folder_and_must_match_the_weights() {
    use evnas::model::{EvalNetConfig, NetworkImageNet};
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("three_classes.safetensors");
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let config =
        EvalNetConfig { init_channels: 4, layers: 3, num_classes: 3, auxiliary: false, in_channels: 3 };
    let _net = NetworkImageNet::new(&vs.root(), config, &common::genotypes::darts_v2());
    evnas::weights::save_safetensors(&vs, &weights).unwrap();
    let eval = |folder: &std::path::Path| {
        let mut cmd = evnas();
        cmd.args(["eval", "--genotype", "DARTS_V2", "--dataset", "imagenet", "--device", "cpu", "--json"])
            .args(["--init-channels", "4", "--layers", "3", "--weights"])
            .arg(&weights)
            .arg("--data")
            .arg(folder);
        cmd
    };

    let three = dir.path().join("three");
    image_folder(&three, &["ant", "bee", "cat"]);
    let out = run_ok(&mut eval(&three));
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(got["images"], 3);

    let two = dir.path().join("two");
    image_folder(&two, &["ant", "bee"]);
    let out = eval(&two).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("2 classes") && stderr.contains("classifier.weight"), "{stderr}");

    // Without test data, the export takes the classes from the weights.
    let script = dir.path().join("net.pt");
    let out = run_ok(
        evnas()
            .args(["export", "--genotype", "DARTS_V2", "--dataset", "imagenet", "--init-channels", "4"])
            .args(["--layers", "3", "--format", "torchscript", "--weights"])
            .arg(&weights)
            .arg("--out")
            .arg(&script),
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("3 classes"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
