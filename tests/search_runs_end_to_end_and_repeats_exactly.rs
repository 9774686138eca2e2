//! A tiny search runs end to end, fills its run directory, and repeats bit for bit under the
//! same seed on the CPU.

mod common;

use common::search::{assert_same_search, history_without_timings, run_ok, search_command, tiny_setup};

#[test]
fn tiny_search_fills_run_dir_and_is_deterministic() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, _) = tiny_setup(tmp.path(), 2);
    let run_a = tmp.path().join("a");
    let run_b = tmp.path().join("b");
    for run in [&run_a, &run_b] {
        let out = run_ok(&mut search_command(&config, run, &[]));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("found cells:\nGenotype(normal=["), "{stdout}");
    }

    for file in [
        "config.json",
        "generations.jsonl",
        "fitness.svg",
        "genotype.json",
        "genotype.txt",
        "best/genotype.json",
        "best/genotype.txt",
        "best/alpha.json",
        "best/normal.svg",
        "best/reduction.svg",
    ] {
        assert!(run_a.join(file).is_file(), "missing {file}");
    }
    let checkpoints: Vec<_> = std::fs::read_dir(run_a.join("checkpoints")).unwrap().collect();
    assert_eq!(checkpoints.len(), 2, "one checkpoint per generation boundary");

    let history = history_without_timings(&run_a);
    assert_eq!(history.len(), 2);
    for (g, record) in history.iter().enumerate() {
        assert_eq!(record["generation"], g + 1);
        let individuals = record["individuals"].as_array().unwrap();
        assert_eq!(individuals.len(), 4);
        let tops: Vec<f64> = individuals.iter().map(|i| i["fitness"]["top1"].as_f64().unwrap()).collect();
        assert!(tops.windows(2).all(|w| w[0] >= w[1]), "ranked best first: {tops:?}");
        assert_eq!(record["best"], individuals[0]);
    }
    // Generation 2 holds the elite of generation 1 and children with two parents each.
    let gen2 = history[1]["individuals"].as_array().unwrap();
    let best1 = &history[0]["best"]["id"];
    assert!(gen2.iter().any(|i| &i["id"] == best1), "the elite survives");
    assert_eq!(gen2.iter().filter(|i| i["parents"].as_array().unwrap().len() == 2).count(), 3);

    // Same seed, same history and genotype.
    assert_same_search(&run_a, &run_b);
}

#[test]
fn nas_bench_201_space_and_random_baseline_run() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, _) = tiny_setup(tmp.path(), 2);
    let run = tmp.path().join("nb201-random");
    let out = run_ok(&mut search_command(
        &config,
        &run,
        &[
            "--set",
            "search.space=nas-bench-201",
            "--set",
            "supernet.layers=1",
            "--set",
            "search.strategy=random",
        ],
    ));
    let stdout = String::from_utf8_lossy(&out.stdout);
    // A NAS-Bench-201 architecture string: three nodes, six edges.
    let arch = stdout.lines().find(|l| l.starts_with('|')).expect("architecture line");
    assert_eq!(arch.matches('~').count(), 6, "{arch}");
    let history = history_without_timings(&run);
    // The random baseline keeps the elite and draws the rest fresh: no child has parents.
    let gen2 = history[1]["individuals"].as_array().unwrap();
    assert!(gen2.iter().all(|i| i["parents"].as_array().unwrap().is_empty()));
    assert_eq!(gen2.iter().filter(|i| i["born"] == 1).count(), 3);
}

#[test]
fn fitness_workers_measure_what_one_thread_measures() {
    // Each worker runs libtorch on one thread, as `run.threads = 1` does: the histories must
    // agree bit for bit, on clean (shared) and on augmented (per-individual) validation batches.
    let tmp = tempfile::tempdir().unwrap();
    let (config, _) = tiny_setup(tmp.path(), 2);
    for augment in ["false", "true"] {
        let runs = ["1", "3"].map(|workers| {
            let run = tmp.path().join(format!("augment-{augment}-workers-{workers}"));
            let settings = [format!("run.fitness_workers={workers}"), format!("fitness.augment={augment}")];
            run_ok(&mut search_command(&config, &run, &["--set", &settings[0], "--set", &settings[1]]));
            run
        });
        assert_same_search(&runs[0], &runs[1]);
    }
}
