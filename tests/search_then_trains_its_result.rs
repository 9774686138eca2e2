//! The search's result trained from scratch once the search ends: `evnas search --then-train`
//! and `evnas serve` with `final_training.enabled`, both into the search's `final_training/`.

mod common;

use std::path::Path;
use std::time::Duration;

use common::search::{add_tiny_final_training, run_ok, search_command, tiny_setup};
use common::served::{search_dir, Served};
use serde_json::Value;

/// The tiny search set-up with a test split and a small [final_training] section.
fn setup(root: &Path, enabled: bool) -> std::path::PathBuf {
    let (config, _) = tiny_setup(root, 1);
    add_tiny_final_training(root, &config, enabled);
    config
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .expect("JSON")
}

/// The final training trained the genotype the search found, for every epoch.
fn assert_trained_the_result(search: &Path) {
    let trained = search.join("final_training");
    let result = json(&trained.join("result.json"));
    assert_eq!(result["epochs"], 2);
    assert!(result["test_top1"].is_number());
    assert_eq!(json(&trained.join("genotype.json"))["genotype"], json(&search.join("genotype.json")));
    assert!(trained.join("weights/last.safetensors").is_file());
}

#[test]
fn search_then_train_trains_the_found_genotype() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path(), false);
    let run = dir.path().join("run");
    let out = run_ok(&mut search_command(&config, &run, &["--then-train"]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("test top-1") && stdout.contains("final_training"), "{stdout}");
    assert_trained_the_result(&run);
}

#[test]
fn serve_trains_the_result_when_final_training_is_enabled_and_stays_up() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path(), true);
    let mut served = Served::start(&config, None);
    served.wait_for_log("final training finished", Duration::from_secs(180));
    let log = served.log();
    assert_eq!(log.matches("final training epoch").count(), 2, "{log}");
    assert_trained_the_result(&search_dir(&dir.path().join("runs")));
    // Finished, it serves on until stopped.
    served.wait_for_log("serving until stopped", Duration::from_secs(10));
    served.sigterm();
    let (status, log) = served.wait(Duration::from_secs(30)).expect("serve exits on SIGTERM");
    assert!(status.success(), "{status}:\n{log}");
}
