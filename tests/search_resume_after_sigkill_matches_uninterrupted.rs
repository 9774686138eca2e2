//! A search killed with SIGKILL in the middle of a generation and resumed with --resume ends with
//! the same genotype and fitness history as an uninterrupted run with the same seed.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::search::{
    assert_same_search, evnas, history_without_timings, run_ok, search_command, tiny_setup,
};

fn checkpoint_count(run: &Path) -> usize {
    std::fs::read_dir(run.join("checkpoints"))
        .map(|d| {
            d.filter_map(Result::ok).filter(|e| e.file_name().to_string_lossy().starts_with("gen-")).count()
        })
        .unwrap_or(0)
}

#[test]
fn killed_then_resumed_run_equals_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, _) = tiny_setup(tmp.path(), 3);

    let reference = tmp.path().join("uninterrupted");
    run_ok(&mut search_command(&config, &reference, &[]));

    // Kill the second run once its first generation is checkpointed and the second has begun.
    let killed = tmp.path().join("killed");
    let mut child = search_command(&config, &killed, &[])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn evnas");
    let deadline = Instant::now() + Duration::from_secs(120);
    while checkpoint_count(&killed) < 1 {
        assert!(Instant::now() < deadline, "no checkpoint within 120 s");
        assert!(child.try_wait().unwrap().is_none(), "search ended before it could be killed");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    assert!(checkpoint_count(&killed) < 3, "the run was killed before its end");

    let out = run_ok(evnas().args(["search", "--quiet", "--resume"]).arg(&killed));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("resuming"), "{stderr}");

    assert_same_search(&killed, &reference);
}

#[test]
fn resume_refuses_a_different_config() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, data) = tiny_setup(tmp.path(), 1);
    let run = tmp.path().join("run");
    run_ok(&mut search_command(&config, &run, &[]));
    let other = tmp.path().join("other.toml");
    common::search::write_tiny_config(&other, &data, &tmp.path().join("runs"), 2);
    let out = evnas().args(["search", "--resume"]).arg(&run).arg("--config").arg(&other).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("config differs"), "{stderr}");
}

#[test]
fn corrupt_newest_checkpoint_is_reported_and_the_previous_one_used() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, _) = tiny_setup(tmp.path(), 2);
    let run = tmp.path().join("run");
    run_ok(&mut search_command(&config, &run, &[]));
    let before = history_without_timings(&run);

    let newest = run.join("checkpoints").join("gen-000002").join("supernet.safetensors");
    let mut bytes = std::fs::read(&newest).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&newest, bytes).unwrap();

    let out = run_ok(evnas().args(["search", "--quiet", "--resume"]).arg(&run));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("gen-000002") && stderr.contains("unusable"), "{stderr}");
    assert!(stderr.contains("resuming") && stderr.contains("generation 2/2"), "{stderr}");
    assert_eq!(history_without_timings(&run), before, "re-running generation 2 gives the same result");
}
