//! Resuming picks the newest checkpoint that verifies, reports the ones it passed over, and refuses
//! a checkpoint written under a different configuration.

use std::fs;
use std::path::Path;

use evnas::checkpoint::{CheckpointError, CheckpointFile, CheckpointStore, SkipReason, MANIFEST_FILE};

fn store_with_three(root: &Path) -> CheckpointStore {
    let store = CheckpointStore::open(root, 3).unwrap();
    for generation in 1..=3u32 {
        let files = [
            CheckpointFile::new("state.json", format!("{{\"generation\":{generation}}}")),
            CheckpointFile::new("supernet.safetensors", vec![generation as u8; 4096]),
        ];
        store.save(generation, "digest-a", &files).unwrap();
    }
    store
}

fn newest_file(store: &CheckpointStore, name: &str) -> std::path::PathBuf {
    store.dir_of(3).join(name)
}

#[test]
fn truncated_file_falls_back_to_the_previous_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_with_three(tmp.path());
    let path = newest_file(&store, "supernet.safetensors");
    let bytes = fs::read(&path).unwrap();
    fs::write(&path, &bytes[..1000]).unwrap();

    let loaded = store.load_latest("digest-a").unwrap().unwrap();
    assert_eq!(loaded.generation, 2);
    assert_eq!(loaded.require("supernet.safetensors").unwrap(), &[2u8; 4096][..]);
    assert_eq!(loaded.skipped.len(), 1);
    assert_eq!(loaded.skipped[0].generation, 3);
    assert_eq!(
        loaded.skipped[0].reason,
        SkipReason::SizeMismatch { name: "supernet.safetensors".into(), expected: 4096, found: 1000 }
    );
}

#[test]
fn flipped_byte_falls_back_to_the_previous_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_with_three(tmp.path());
    let path = newest_file(&store, "supernet.safetensors");
    let mut bytes = fs::read(&path).unwrap();
    bytes[2048] ^= 0x01;
    fs::write(&path, &bytes).unwrap();

    let loaded = store.load_latest("digest-a").unwrap().unwrap();
    assert_eq!(loaded.generation, 2);
    assert!(
        matches!(&loaded.skipped[0].reason, SkipReason::HashMismatch { name, .. } if name == "supernet.safetensors"),
        "{:?}",
        loaded.skipped
    );
}

#[test]
fn missing_manifest_or_file_falls_back_over_several_checkpoints() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_with_three(tmp.path());
    fs::remove_file(newest_file(&store, MANIFEST_FILE)).unwrap();
    fs::remove_file(store.dir_of(2).join("state.json")).unwrap();

    let loaded = store.load_latest("digest-a").unwrap().unwrap();
    assert_eq!(loaded.generation, 1);
    assert_eq!(loaded.require("state.json").unwrap(), b"{\"generation\":1}");
    let reasons: Vec<(u32, SkipReason)> =
        loaded.skipped.iter().map(|s| (s.generation, s.reason.clone())).collect();
    assert_eq!(
        reasons,
        vec![(3, SkipReason::ManifestMissing), (2, SkipReason::FileMissing { name: "state.json".into() })]
    );
}

#[test]
fn garbled_manifest_is_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_with_three(tmp.path());
    let path = newest_file(&store, MANIFEST_FILE);
    let text = fs::read(&path).unwrap();
    fs::write(&path, &text[..text.len() / 2]).unwrap();

    let loaded = store.load_latest("digest-a").unwrap().unwrap();
    assert_eq!(loaded.generation, 2);
    assert!(matches!(loaded.skipped[0].reason, SkipReason::ManifestInvalid { .. }));
}

#[test]
fn every_checkpoint_corrupt_is_an_error_not_a_fresh_start() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_with_three(tmp.path());
    for generation in 1..=3 {
        fs::remove_file(store.dir_of(generation).join("state.json")).unwrap();
    }
    match store.load_latest("digest-a") {
        Err(CheckpointError::AllCorrupt { skipped, .. }) => assert_eq!(skipped.len(), 3),
        other => panic!("expected AllCorrupt, got {other:?}"),
    }
}

#[test]
fn different_config_digest_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_with_three(tmp.path());
    match store.load_latest("digest-b") {
        Err(CheckpointError::ConfigMismatch { dir, expected, found }) => {
            assert_eq!(dir, store.dir_of(3));
            assert_eq!((expected.as_str(), found.as_str()), ("digest-b", "digest-a"));
        }
        other => panic!("expected ConfigMismatch, got {other:?}"),
    }
}

#[test]
fn resuming_after_a_corrupt_newest_replaces_it() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_with_three(tmp.path());
    fs::write(newest_file(&store, "state.json"), b"{}").unwrap();
    let loaded = store.load_latest("digest-a").unwrap().unwrap();
    assert_eq!(loaded.generation, 2);

    // The run redoes generation 3 from generation 2's state and saves it over the corrupt one.
    store.save(3, "digest-a", &[CheckpointFile::new("state.json", b"{\"redone\":3}".to_vec())]).unwrap();
    let again = store.load_latest("digest-a").unwrap().unwrap();
    assert_eq!((again.generation, again.skipped.len()), (3, 0));
    assert_eq!(again.require("state.json").unwrap(), b"{\"redone\":3}");
}
