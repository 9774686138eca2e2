//! A search on two CPU replicas (`run.devices = ["cpu", "cpu"]`, data-parallel training over
//! c10d Gloo) repeats bit for bit under the same seed, and a run killed in the middle of its
//! training and resumed ends exactly as the uninterrupted one: the resumed replicas start from the
//! leader's checkpointed weights and momentum.

mod common;

use common::search::{
    assert_checkpoints_intact, assert_same_search, evnas, history_text_without_timings,
    history_without_timings, run_ok, search_command, tiny_setup,
};

const TWO_REPLICAS: [&str; 4] = ["--set", "run.devices=[cpu, cpu]", "--set", "run.threads=2"];

#[test]
fn two_cpu_replicas_repeat_exactly_and_resume_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    // 3 generations of 4 individuals; 96 training images in batches of 16 (8 per replica).
    let (config, _) = tiny_setup(tmp.path(), 3);
    let [a, b] = ["a", "b"].map(|name| tmp.path().join(name));
    for run in [&a, &b] {
        let out = run_ok(&mut search_command(&config, run, &TWO_REPLICAS));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("2 replicas: [Cpu, Cpu]"), "{stderr}");
    }
    assert_same_search(&a, &b);
    let history = history_without_timings(&a);
    assert_eq!(history.len(), 3);
    let text = std::fs::read_to_string(a.join("generations.jsonl")).unwrap();
    for line in text.lines() {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        let train = &record["train"];
        assert_eq!(train["images"], 96, "every image trained once, across the replicas: {train}");
        assert!(train["loss"].as_f64().unwrap().is_finite());
        assert!(train["communication_seconds"].as_f64().unwrap() > 0.0, "{train}");
    }

    // Killed at the 9th training batch (generation 2's third), resumed from generation 1's checkpoint.
    let killed = tmp.path().join("killed");
    let out = search_command(&config, &killed, &TWO_REPLICAS)
        .env("FAILPOINTS", "train.batch=8*off->return(kill)")
        .output()
        .expect("run evnas");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(libc::SIGKILL), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run_ok(evnas().args(["search", "--quiet", "--resume"]).arg(&killed));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("resuming") && stderr.contains("2 replicas"), "{stderr}");
    assert_eq!(history_text_without_timings(&killed), history_text_without_timings(&a));
    assert_same_search(&killed, &a);
    assert_checkpoints_intact(&killed);

    // --device overrides the list: one device, and another (BatchNorm per replica) history.
    let single = tmp.path().join("single");
    let mut cmd = search_command(&config, &single, &TWO_REPLICAS);
    let out = run_ok(cmd.args(["--device", "cpu"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("(Cpu)") && !stderr.contains("replicas"), "{stderr}");
}

/// A replica that fails its step before its all-reduce (a CUDA replica out of memory, say: tch
/// panics) has the others give theirs up: the search fails at once, naming the cause, where the
/// others waited out the 10-minute collective timeout and then named only that.
#[test]
fn a_replica_failing_before_its_all_reduce_fails_the_search_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, _) = tiny_setup(tmp.path(), 2);
    // The 4th and 5th arrivals at the point: the leader's and the other replica's, in an order
    // of their own; a panic as libtorch's errors are in tch.
    for (case, (fault, cause)) in [
        ("replica.reduce=3*off->return(error)", "fault injected at replica.reduce"),
        ("replica.reduce=4*off->return(error)", "fault injected at replica.reduce"),
        ("replica.reduce=4*off->panic(out of memory)", "panicked: out of memory"),
    ]
    .into_iter()
    .enumerate()
    {
        let started = std::time::Instant::now();
        let run = tmp.path().join(format!("run-{case}"));
        let out = search_command(&config, &run, &TWO_REPLICAS).env("FAILPOINTS", fault).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{fault}: {stderr}");
        assert!(stderr.contains(cause) && !stderr.contains("Timed out"), "{fault}: {stderr}");
        assert!(started.elapsed() < std::time::Duration::from_secs(60), "{fault}: {:?}", started.elapsed());
    }
}

/// `evnas validate` (systemd's ExecReload, on the machine of the search) names devices this
/// machine lacks, and still passes the config: it may be meant for another machine.
#[test]
fn validate_names_devices_this_machine_lacks() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, _) = tiny_setup(tmp.path(), 1);
    let text = std::fs::read_to_string(&config).unwrap();
    let elsewhere = text.replace("[run]\n", "[run]\ndevices = [\"cuda:62\", \"cuda:63\"]\n");
    assert_ne!(elsewhere, text);
    std::fs::write(&config, elsewhere).unwrap();
    let out = evnas().args(["validate", "--config"]).arg(&config).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains(": valid; search"), "{stderr}");
    for device in ["cuda:62", "cuda:63"] {
        assert!(
            stderr.contains(&format!("warning: a search on this machine would not start: device {device}: ")),
            "{stderr}"
        );
    }
    // The key the config set, not run.device.
    assert!(stderr.contains("in run.devices") && !stderr.contains("use run.device "), "{stderr}");

    std::fs::write(&config, text).unwrap();
    let out = evnas().args(["validate", "--config"]).arg(&config).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}
