//! A search killed with SIGKILL at deterministic points (fault points, feature
//! `fault-injection`) and resumed with --resume ends with the same generations.jsonl (every
//! number, timings aside, byte for byte) and genotype as an uninterrupted run with the same seed.

mod common;

use std::path::Path;

use common::search::{
    assert_same_search, evnas, history_text_without_timings, history_without_timings, run_ok, search_command,
    tiny_setup,
};

/// Runs the search with `FAILPOINTS=failpoints`, expects it to die by SIGKILL.
fn run_until_killed(config: &Path, run: &Path, failpoints: &str, extra: &[&str]) {
    use std::os::unix::process::ExitStatusExt;
    let out = search_command(config, run, extra).env("FAILPOINTS", failpoints).output().expect("run evnas");
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGKILL),
        "{failpoints}: expected SIGKILL, got {}:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs the search with `FAILPOINTS=failpoints`, expects it stopped by its SIGTERM (exit 130);
/// its stderr.
fn run_until_stopped(config: &Path, run: &Path, failpoints: &str) -> String {
    let out = search_command(config, run, &[]).env("FAILPOINTS", failpoints).output().expect("run evnas");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(130), "{failpoints}: {stderr}");
    stderr
}

fn resume(run: &Path) -> String {
    let out = run_ok(evnas().args(["search", "--quiet", "--resume"]).arg(run));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn killed_at_every_kind_of_point_then_resumed_equals_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    // 3 generations of 4 individuals; 96 training images in batches of 16: 6 batches a generation.
    let (config, _) = tiny_setup(tmp.path(), 3);
    let reference = tmp.path().join("uninterrupted");
    run_ok(&mut search_command(&config, &reference, &[]));
    let expected_text = history_text_without_timings(&reference);

    let kill_points = [
        ("before-first-checkpoint", "train.batch=2*off->return(kill)"),
        ("in-training", "train.batch=8*off->return(kill)"),
        ("in-fitness", "fitness.individual=5*off->return(kill)"),
        ("writing-checkpoint", "checkpoint.write=1*off->return(kill)"),
        ("after-last-checkpoint", "search.finished=return(kill)"),
    ];
    for (name, failpoints) in kill_points {
        let run = tmp.path().join(name);
        run_until_killed(&config, &run, failpoints, &[]);
        let stderr = resume(&run);
        assert!(stderr.contains("resuming"), "{name}: {stderr}");
        if name == "before-first-checkpoint" {
            assert!(stderr.contains("stopped before its first checkpoint"), "{name}: {stderr}");
        }
        assert!(!stderr.contains("changed since its checkpoint"), "{name}: same setup: {stderr}");
        assert_eq!(history_text_without_timings(&run), expected_text, "{name}: generations.jsonl differs");
        assert_same_search(&run, &reference);
        common::search::assert_checkpoints_intact(&run);
    }
}

#[test]
fn sigterm_stops_at_the_next_batch_with_exit_130_and_the_run_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, _) = tiny_setup(tmp.path(), 2);
    let reference = tmp.path().join("uninterrupted");
    run_ok(&mut search_command(&config, &reference, &[]));
    let stopped = tmp.path().join("stopped");
    // SIGTERM during generation 2's training (6 batches a generation).
    let stderr = run_until_stopped(&config, &stopped, "train.batch=7*off->1*return(sigterm)");
    assert!(stderr.contains("resume with: evnas search --resume"), "{stderr}");
    resume(&stopped);
    assert_same_search(&stopped, &reference);
}

#[test]
fn failing_checkpoint_writer_ends_the_search_naming_it_and_the_run_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, _) = tiny_setup(tmp.path(), 2);
    let reference = tmp.path().join("uninterrupted");
    run_ok(&mut search_command(&config, &reference, &[]));
    let failed = tmp.path().join("failed");
    // The second checkpoint fails while it is written (on the writer thread).
    let out = search_command(&config, &failed, &[])
        .env("FAILPOINTS", "checkpoint.write=1*off->1*return(error)")
        .output()
        .expect("run evnas");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.matches("fault injected at checkpoint.write").count(), 1, "{stderr}");
    common::search::assert_checkpoints_intact(&failed);
    resume(&failed);
    assert_same_search(&failed, &reference);
}

#[test]
fn paper_shaped_supernet_checkpoints_and_resumes_in_both_layouts() {
    // 3 input channels and C=16 (the paper's stem and width) on CIFAR-10 files: the layouts where
    // channels-last tensors are not contiguous, which a checkpoint must save all the same.
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("cifar");
    common::search::write_tiny_cifar10(&data, 48);
    let config = tmp.path().join("paper-shaped.toml");
    common::search::SearchConfig::paper_shaped().write(&config, &data, &tmp.path().join("runs"));
    for channels_last in ["true", "false"] {
        let layout = format!("supernet.channels_last={channels_last}");
        let extra = ["--set", layout.as_str()];
        let reference = tmp.path().join(format!("uninterrupted-cl-{channels_last}"));
        run_ok(&mut search_command(&config, &reference, &extra));
        let killed = tmp.path().join(format!("killed-cl-{channels_last}"));
        // Generation 2's second training batch (3 batches a generation).
        run_until_killed(&config, &killed, "train.batch=4*off->return(kill)", &extra);
        let stderr = resume(&killed);
        assert!(stderr.contains("resuming") && stderr.contains("generation 2/2"), "{stderr}");
        assert_same_search(&killed, &reference);
        common::search::assert_checkpoints_intact(&killed);
    }
}

#[test]
fn resume_refuses_a_different_config() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, data) = tiny_setup(tmp.path(), 1);
    let run = tmp.path().join("run");
    run_ok(&mut search_command(&config, &run, &[]));
    let other = tmp.path().join("other.toml");
    common::search::write_tiny_config(&other, &data, &tmp.path().join("runs"), 1);
    let text = std::fs::read_to_string(&other).unwrap();
    std::fs::write(&other, text.replace("seed = 7", "seed = 8")).unwrap();
    let out = evnas().args(["search", "--resume"]).arg(&run).arg("--config").arg(&other).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("config differs"), "{stderr}");
}

/// The thread count is not part of a run's identity (a run may move to another machine), but it
/// changes libtorch's rounding: a resume under another count goes on and says so.
#[test]
fn a_resume_under_another_thread_count_says_its_numbers_will_differ() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, _) = tiny_setup(tmp.path(), 2);
    let run = tmp.path().join("run");
    run_until_killed(&config, &run, "train.batch=8*off->return(kill)", &[]);
    let more_threads = tmp.path().join("more-threads.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("threads = 1"), "{text}");
    std::fs::write(&more_threads, text.replace("threads = 1", "threads = 2")).unwrap();
    let out =
        run_ok(evnas().args(["search", "--quiet", "--resume"]).arg(&run).arg("--config").arg(&more_threads));
    let stderr = String::from_utf8_lossy(&out.stderr);
    // (Two threads also make two fitness evaluators of the tiny supernet: run.fitness_workers = 0.)
    assert!(stderr.contains("warning: CPU threads (1 -> 2), "), "{stderr}");
    assert!(stderr.contains("changed since its checkpoint was computed"), "{stderr}");
    common::search::assert_checkpoints_intact(&run);
}

/// A budget is a value a reload may change: a finished search resumed with a larger one goes
/// on, its final population bred first, and ends as a search that had the larger budget from
/// the start (the first generation's learning rate is the schedule's first either way); only
/// the budget its first generation records differs.
#[test]
fn a_finished_search_given_a_larger_budget_continues_as_if_it_had_had_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, data) = tiny_setup(tmp.path(), 1);
    let run = tmp.path().join("run");
    run_ok(&mut search_command(&config, &run, &[]));
    let longer = tmp.path().join("longer.toml");
    common::search::write_tiny_config(&longer, &data, &tmp.path().join("runs"), 2);
    let out = run_ok(evnas().args(["search", "--quiet", "--resume"]).arg(&run).arg("--config").arg(&longer));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("search.generations = 2 (was 1) in force from generation 2"), "{stderr}");

    let reference = tmp.path().join("reference");
    run_ok(&mut search_command(&longer, &reference, &[]));
    let mut extended = history_without_timings(&run);
    assert_eq!(extended[0]["settings"]["generations"], 1);
    extended[0]["settings"]["generations"] = 2.into();
    assert_eq!(extended, history_without_timings(&reference));
    let genotype = |r: &std::path::Path| std::fs::read_to_string(r.join("genotype.json")).unwrap();
    assert_eq!(genotype(&run), genotype(&reference));
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

/// A generation stopped in fitness and resumed records the fitness time of both runs, as it
/// counts the images of both (its images per second were the resumed part's alone, 3 times too
/// many with 7 of 10 measured before the stop).
#[test]
fn a_generation_resumed_in_fitness_records_its_whole_fitness_time() {
    let tmp = tempfile::tempdir().unwrap();
    // 1 generation of 4 individuals, one measurer (1 thread).
    let (config, _) = tiny_setup(tmp.path(), 1);
    let stopped = tmp.path().join("stopped");
    // Two measurements held 1.5 s each, then SIGTERM as the third starts: two measured before
    // the stop, the other two after the resume.
    run_until_stopped(&config, &stopped, "fitness.individual=2*sleep(1500)->1*return(sigterm)");
    let stderr = resume(&stopped);
    assert!(stderr.contains("stopped in fitness, 2 individual(s) measured"), "{stderr}");
    let history = std::fs::read_to_string(stopped.join("generations.jsonl")).unwrap();
    let record: serde_json::Value = serde_json::from_str(history.lines().next().unwrap()).unwrap();
    let seconds = record["evaluation_seconds"].as_f64().unwrap();
    assert!(seconds >= 3.0, "{seconds} s for {} images", record["evaluated_images"]);
    // timings.jsonl: the resumed run's own time, which trained nothing.
    let timings = first_timings(&stopped);
    assert_eq!(timings["train_seconds"].as_f64(), Some(0.0), "{timings}");
    assert!(seconds - timings["fitness_seconds"].as_f64().unwrap() >= 3.0, "{timings} of {seconds} s");
}

/// A generation stopped in training and resumed records its whole training time; timings.jsonl
/// the resumed run's own (it had the time before the stop too).
#[test]
fn a_generation_resumed_in_training_records_its_whole_training_time() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, _) = tiny_setup(tmp.path(), 1);
    let stopped = tmp.path().join("stopped");
    // Two batches held 1 s each, then SIGTERM in the third: the rest trains after the resume.
    let stop = run_until_stopped(&config, &stopped, "train.batch=2*sleep(1000)->1*return(sigterm)");
    // Not a terminal: no line break for a "^C" or a progress bar to end.
    assert!(stop.contains("stopping after the current batch") && !stop.starts_with('\n'), "{stop}");
    assert!(!stop.lines().any(str::is_empty), "{stop}");
    let stderr = resume(&stopped);
    assert!(stderr.contains("stopped after training batch"), "{stderr}");
    let history = std::fs::read_to_string(stopped.join("generations.jsonl")).unwrap();
    let record: serde_json::Value = serde_json::from_str(history.lines().next().unwrap()).unwrap();
    let seconds = record["train"]["seconds"].as_f64().unwrap();
    assert!(seconds >= 2.0, "{seconds} s");
    let timings = first_timings(&stopped);
    assert!(seconds - timings["train_seconds"].as_f64().unwrap() >= 2.0, "{timings} of {seconds} s");
}

fn first_timings(run: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(run.join("timings.jsonl")).unwrap();
    serde_json::from_str(text.lines().next().unwrap()).unwrap()
}
