//! The shipped configs load and validate; bad values are all reported at once.

use std::path::Path;

use evnas::config::{self, ConfigError};

#[test]
fn shipped_default_loads() {
    let cfg = config::load(Some(Path::new("config/evnas.toml")), &[]).expect("default config");
    assert_eq!(cfg.data.dataset, "fashion-mnist");
}

#[test]
fn paper_config_has_the_papers_settings() {
    let cfg = config::load(Some(Path::new("config/evnas-cifar10-paper.toml")), &[]).expect("paper config");
    let s = &cfg.search;
    assert_eq!((s.population, s.generations, s.tournament_size, s.elites), (50, 50, 10, 1));
    assert!((s.mutation_rate - 0.1).abs() < 1e-12);
    assert_eq!((cfg.supernet.init_channels, cfg.supernet.layers, cfg.train.batch_size), (16, 8, 64));
    assert!((cfg.train.learning_rate - 0.025).abs() < 1e-12);
    assert!((cfg.train.learning_rate_min - 0.001).abs() < 1e-12);
    assert!((cfg.data.train_portion - 0.5).abs() < 1e-12);
    assert_eq!(cfg.fitness.batch_size, 1024);
}

#[test]
fn overrides_apply_and_every_problem_is_reported() {
    let cfg = config::load(None, &["search.population=12".into(), "train.momentum=0.5".into()]).unwrap();
    assert_eq!(cfg.search.population, 12);
    assert!((cfg.train.momentum - 0.5).abs() < 1e-12);

    let err = config::load(
        None,
        &["search.population=1".into(), "train.learning_rate=-1".into(), "data.dataset=mnist".into()],
    )
    .unwrap_err();
    let ConfigError::Invalid { problems, .. } = &err else { panic!("expected Invalid, got {err}") };
    // population, tournament_size, elites, learning_rate, learning_rate_min, dataset
    assert_eq!(problems.len(), 6, "{problems:#?}");
    let text = err.to_string();
    assert!(text.contains("search.population") && text.contains("data.dataset"), "{text}");
}

#[test]
fn every_key_of_a_wrong_type_is_listed_with_the_other_problems() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    let text = "[search]\npopulation = \"four\"\nmutation_rate = 7\nbogus = 1\n[train]\nbatch_size = \"x\"\n";
    std::fs::write(&path, text).unwrap();
    let err = config::load(Some(&path), &[]).unwrap_err();
    let ConfigError::Invalid { problems, .. } = &err else { panic!("expected Invalid, got {err}") };
    assert_eq!(problems.len(), 4, "{problems:#?}");
    for named in ["search.population", "search.mutation_rate", "search.bogus", "train.batch_size"] {
        assert!(problems.iter().any(|p| p.contains(named)), "{named} missing: {problems:#?}");
    }
    // A wrong type alone reads as it did: one field, no list.
    std::fs::write(&path, "[search]\npopulation = \"four\"\n").unwrap();
    let err = config::load(Some(&path), &[]).unwrap_err();
    assert!(matches!(err, ConfigError::Field { .. }), "{err}");
}

#[test]
fn unknown_keys_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[search]\npopulaton = 5\n").unwrap();
    let err = config::load(Some(&path), &[]).unwrap_err().to_string();
    assert!(err.contains("populaton") && err.contains("bad.toml"), "{err}");
}

#[test]
fn digest_ignores_where_but_not_what() {
    let a = config::load(None, &[]).unwrap();
    let b = config::load(None, &["run.device=cpu".into(), "run.dir=/tmp/x".into()]).unwrap();
    let c = config::load(None, &["search.seed=19".into()]).unwrap();
    assert_eq!(a.digest(), b.digest());
    assert_ne!(a.digest(), c.digest());
}

/// `train.precision` came later: fp32 is left out of a saved config (so its digest is that of
/// the configs saved before the key existed, and their runs resume), a saved config without it
/// reads as fp32, and bf16 is another search.
#[test]
fn train_precision_defaults_to_fp32_and_keeps_older_digests() {
    let fp32 = config::load(None, &[]).unwrap();
    let bf16 = config::load(None, &["train.precision=bf16".into()]).unwrap();
    assert_ne!(fp32.digest(), bf16.digest());
    let saved = serde_json::to_value(&fp32).unwrap();
    assert!(saved["train"].get("precision").is_none(), "{}", saved["train"]);
    let read: config::Config = serde_json::from_value(saved).unwrap();
    assert_eq!(read.digest(), fp32.digest());
    assert_eq!(serde_json::to_value(&bf16).unwrap()["train"]["precision"], "bf16");
}
