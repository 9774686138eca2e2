//! The actor pipeline, driven by `evnas search` and by `evnas serve`: the same seed gives the
//! same history and genotype whoever runs it, with 1 or 3 fitness evaluators and with random
//! delays in the GA stages; `serve` resumes its search after SIGKILL, stays up when finished,
//! exits 0 on SIGTERM; a failure in any actor ends `serve` non-zero within seconds, naming the
//! actor and the error, with every kept checkpoint intact, and a restart resumes to the same end.
//! Faults come from the test-only fault points (feature `fault-injection`).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::search::{assert_checkpoints_intact, assert_same_search, run_ok, search_command, tiny_setup};
use common::served::{config_with_runs, search_dir, Served};

/// Generous bound for a tiny search (a few seconds here) on a slow, shared machine.
const SEARCH_DEADLINE: Duration = Duration::from_secs(180);

/// Serves until the search is finished, checks that serve stays up, stops it with SIGTERM and
/// expects exit 0; returns its stderr.
fn serve_to_the_end(config: &Path) -> String {
    let mut served = Served::start(config, None);
    served.wait_for_log("search finished; serving until stopped", SEARCH_DEADLINE);
    std::thread::sleep(Duration::from_millis(500));
    assert!(served.child.try_wait().unwrap().is_none(), "serve exited after the search finished");
    served.sigterm();
    let (status, log) = served.wait(Duration::from_secs(20)).expect("serve did not exit on SIGTERM");
    assert!(status.success(), "serve exited with {status}:\n{log}");
    log
}

#[test]
fn serve_runs_the_same_search_as_search_and_stays_up_until_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, _) = tiny_setup(tmp.path(), 3);
    let reference = tmp.path().join("reference");
    run_ok(&mut search_command(&config, &reference, &[]));

    let runs = tmp.path().join("runs");
    let stderr = serve_to_the_end(&config);
    assert!(stderr.contains("generation 3/3"), "one line per generation:\n{stderr}");
    let served = search_dir(&runs);
    assert_same_search(&served, &reference);
    assert_checkpoints_intact(&served);

    // Started again on a finished search: it resumes nothing, keeps the result, stays up.
    let stderr = serve_to_the_end(&config);
    assert!(stderr.contains("opening the finished search"), "{stderr}");
    assert_same_search(&served, &reference);
}

#[test]
fn three_evaluators_and_random_ga_delays_give_the_same_search_as_one() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, _) = tiny_setup(tmp.path(), 3);
    let one = tmp.path().join("one-evaluator");
    run_ok(&mut search_command(&config, &one, &["--set", "run.fitness_workers=1"]));
    let three = tmp.path().join("three-evaluators");
    run_ok(&mut search_command(&config, &three, &["--set", "run.fitness_workers=3"]));
    assert_same_search(&three, &one);
    let delayed = tmp.path().join("delayed");
    let delays = "ga.selection=40%sleep(15);ga.crossover=40%sleep(15);ga.mutation=40%sleep(15)";
    run_ok(search_command(&config, &delayed, &["--set", "run.fitness_workers=3"]).env("FAILPOINTS", delays));
    assert_same_search(&delayed, &one);
}

#[test]
fn serve_killed_in_the_middle_of_a_generation_resumes_on_restart() {
    use std::os::unix::process::ExitStatusExt;
    let tmp = tempfile::tempdir().unwrap();
    let (config, _) = tiny_setup(tmp.path(), 3);
    let reference = tmp.path().join("reference");
    run_ok(&mut search_command(&config, &reference, &[]));

    let runs = tmp.path().join("runs");
    // Generation 2's third batch (6 batches a generation).
    let mut served = Served::start(&config, Some("train.batch=8*off->return(kill)"));
    let (status, log) = served.wait(SEARCH_DEADLINE).expect("serve was not killed");
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{log}");
    let stderr = serve_to_the_end(&config);
    assert!(stderr.contains("resuming"), "{stderr}");
    let served = search_dir(&runs);
    assert_same_search(&served, &reference);
    assert_checkpoints_intact(&served);
}

#[test]
fn a_failing_actor_ends_serve_naming_it_and_a_restart_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, _) = tiny_setup(tmp.path(), 3);
    let reference = tmp.path().join("reference");
    run_ok(&mut search_command(&config, &reference, &[]));

    let faults = [
        ("train.batch=8*off->return(error)", "the trainer failed", "fault injected at train.batch"),
        ("train.loss=9*off->return(nan)", "the trainer failed", "loss is not finite"),
        ("train.batch=8*off->panic(injected panic)", "the trainer died", "injected panic"),
        (
            "fitness.individual=5*off->return(error)",
            "the fitness evaluator failed",
            "fault injected at fitness.individual",
        ),
        ("fitness.individual=6*off->panic(injected panic)", "the fitness evaluator died", "injected panic"),
        (
            "checkpoint.write=1*off->return(error)",
            "the checkpoint writer failed",
            "fault injected at checkpoint.write",
        ),
        ("ga.crossover=5*off->return(error)", "the crossover failed", "fault injected at ga.crossover"),
        // SIGTERM in generation 2, and its stop checkpoint (the second write) fails, as on a
        // full disk: a failure, not a clean stop; the restart resumes from generation 1's.
        (
            "train.batch=8*off->1*return(sigterm);checkpoint.write=1*off->return(error)",
            "the checkpoint writer failed",
            "fault injected at checkpoint.write",
        ),
    ];
    for (case, (failpoints, actor, error)) in faults.into_iter().enumerate() {
        let runs = tmp.path().join(format!("runs-{case}"));
        let own_config = config_with_runs(&config, tmp.path(), &runs);

        let started = Instant::now();
        let mut served = Served::start(&own_config, Some(failpoints));
        let Some((status, stderr)) = served.wait(SEARCH_DEADLINE) else {
            panic!("{failpoints}: serve did not exit after the fault:\n{}", served.log());
        };
        assert_eq!(status.code(), Some(1), "{failpoints}: {status}\n{stderr}");
        assert!(
            stderr.contains(actor) && stderr.contains(error),
            "{failpoints}: expected {actor:?} and {error:?}:\n{stderr}"
        );
        // A tiny search takes about 10 s here: a failure must end it, not hang it.
        assert!(started.elapsed() < Duration::from_secs(60), "{failpoints}: took {:?}", started.elapsed());
        let served = search_dir(&runs);
        if served.join("checkpoints").read_dir().map(|mut d| d.next().is_some()).unwrap_or(false) {
            assert_checkpoints_intact(&served);
        }
        serve_to_the_end(&own_config);
        assert_same_search(&served, &reference);
        assert_checkpoints_intact(&served);
    }
}

#[test]
fn sigterm_in_training_or_fitness_checkpoints_where_it_stopped_and_serve_resumes_there() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, _) = tiny_setup(tmp.path(), 3);
    let reference = tmp.path().join("reference");
    run_ok(&mut search_command(&config, &reference, &[]));

    let stops = [
        // Generation 2's third batch (6 batches a generation).
        ("training", "train.batch=8*off->1*return(sigterm)", "stopped after training batch"),
        // Generation 2's second individual (4 a generation).
        ("fitness", "fitness.individual=5*off->1*return(sigterm)", "stopped in fitness"),
    ];
    for (case, failpoints, resumed) in stops {
        let runs = tmp.path().join(format!("runs-{case}"));
        let own_config = config_with_runs(&config, tmp.path(), &runs);

        let mut served = Served::start(&own_config, Some(failpoints));
        let Some((status, log)) = served.wait(SEARCH_DEADLINE) else {
            panic!("{case}: serve did not stop on SIGTERM:\n{}", served.log());
        };
        assert!(status.success(), "{case}: {status}\n{log}");
        assert!(log.contains("stop checkpoint written"), "{case}:\n{log}");
        let dir = search_dir(&runs);
        assert!(
            dir.join("stop-checkpoint").join("gen-000001").join("manifest.json").is_file(),
            "{case}:\n{log}"
        );
        let log = serve_to_the_end(&own_config);
        assert!(log.contains(resumed), "{case}: expected {resumed:?}:\n{log}");
        assert_same_search(&dir, &reference);
        assert_checkpoints_intact(&dir);
    }
}
