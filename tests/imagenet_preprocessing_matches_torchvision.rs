//! ImageNet evaluation preprocessing equals torchvision's (test_imagenet.py: PIL loader,
//! Resize(256), CenterCrop(224), ToTensor, Normalize) on JPEGs (4:2:0, 4:2:2, 4:4:4, grey) and
//! PNGs (RGB, RGBA, grey) of odd sizes: the same 8-bit pixels, normalised values within 1e-6, and
//! the reference NetworkImageNet's predictions from `evnas eval`. Fixtures made by PyTorch,
//! torchvision 0.26 and Pillow 13 (tests/fixtures/README.md).

mod common;

use std::path::Path;

use common::search::{evnas, run_ok};
use evnas::data::decode::decode_rgb;
use evnas::data::{DatasetKind, ImageNetTransform};
use serde_json::Value;
use sha2::{Digest, Sha256};

const FIXTURES: &str = "tests/fixtures/imagenet";

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(Path::new(FIXTURES).join("expected.json")).unwrap())
        .unwrap()
}

#[test]
fn the_crops_are_torchvisions_pixels_and_the_tensors_its_values() {
    let expected = expected();
    let transform = ImageNetTransform::default();
    let norm = DatasetKind::ImageNet.normalization();
    let mut mismatched = Vec::new();
    for (name, want) in expected["images"].as_object().unwrap() {
        let bytes = std::fs::read(Path::new(FIXTURES).join("images").join(name)).unwrap();
        let image = decode_rgb(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let crop = transform.eval_crop(&image);
        assert_eq!(crop.dimensions(), (224, 224), "{name}");
        let sha: String = Sha256::digest(crop.as_raw()).iter().map(|b| format!("{b:02x}")).collect();
        if sha != want["crop_sha256"] {
            let rows: Vec<i64> =
                crop.as_raw().chunks(224 * 3).map(|r| r.iter().map(|&v| i64::from(v)).sum()).collect();
            let first = rows
                .iter()
                .zip(want["row_sums"].as_array().unwrap())
                .position(|(a, b)| Some(*a) != b.as_i64());
            mismatched.push(format!("{name}: first differing row {first:?}"));
            continue;
        }
        let mut tensor = vec![0f32; 3 * 224 * 224];
        transform.eval_into(&image, &norm, &mut tensor);
        let sum: f64 = tensor.iter().map(|&v| f64::from(v)).sum();
        let want_sum = want["tensor_sum"].as_f64().unwrap();
        assert!(
            (sum - want_sum).abs() < 1e-6 * tensor.len() as f64,
            "{name}: tensor sum {sum} vs {want_sum}"
        );
        for sample in want["samples"].as_array().unwrap() {
            let s: Vec<f64> = sample.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
            let (c, y, x) = (s[0] as usize, s[1] as usize, s[2] as usize);
            let got = f64::from(tensor[(c * 224 + y) * 224 + x]);
            assert!((got - s[3]).abs() <= 1e-6, "{name}[{c},{y},{x}]: {got} vs {}", s[3]);
        }
    }
    assert!(mismatched.is_empty(), "crops differ from torchvision's: {mismatched:#?}");
}

/// Every image filed under the class the reference network predicts for it: `evnas eval` on the
/// folder scores 100% exactly when its predictions are the reference's.
#[test]
fn evnas_eval_predicts_what_the_reference_network_predicts() {
    let expected = expected();
    let dir = tempfile::tempdir().unwrap();
    let val = dir.path().join("val");
    for class in 0..4 {
        std::fs::create_dir_all(val.join(format!("class{class}"))).unwrap();
    }
    for (name, class) in expected["predictions"].as_object().unwrap() {
        let from = Path::new(FIXTURES).join("images").join(name);
        std::fs::copy(from, val.join(format!("class{}", class.as_i64().unwrap())).join(name)).unwrap();
    }
    let out = run_ok(
        evnas()
            .args(["eval", "--genotype", "DARTS_V2", "--dataset", "imagenet", "--init-channels", "4"])
            .args(["--layers", "5", "--device", "cpu", "--json", "--weights"])
            .arg(Path::new(FIXTURES).join("network.pt"))
            .arg("--data")
            .arg(&val),
    );
    let scored: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(scored["images"], 11);
    assert_eq!(scored["top1"], 100.0, "evnas's predictions differ from the reference's: {scored}");
}
