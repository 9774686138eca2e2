//! Whether a config can run the search it names. Checked where a config is taken (`evnas
//! validate`, `evnas serve`'s start, a reload that switches to another search, `evnas doctor`),
//! so that none of them fails later, mid-service: its dataset is one a search reads, lying where
//! `data.path` says (from the files' headers and lengths, decoding no image: a fraction of a
//! second), and a search directory that already exists holds a search started with the same
//! config (the fields of its digest), or it could not be resumed.

use std::str::FromStr;

use crate::config::{Config, ConfigError};
use crate::data::{count_split, train_count, DataError, DatasetKind, SplitName};
use crate::run_lock::RunLock;
use crate::search::SearchError;

/// Every check of `cfg`; the number of training images at `data.path` when they pass.
///
/// Both checks run, so that a config wrong in both ways names both at once: one list, a config
/// error (exit 2). A failure that may pass by itself (reading failed: exit 1, restarted) is
/// given alone.
pub fn check_search(cfg: &Config) -> anyhow::Result<usize> {
    match (check_data(cfg), check_search_dir(cfg)) {
        (Ok(images), Ok(())) => Ok(images),
        (Err(e), Ok(())) | (Ok(_), Err(e)) => Err(e),
        (Err(data), Err(dir)) => match (ConfigError::is_in(&data), ConfigError::is_in(&dir)) {
            (true, true) => Err(ConfigError::Invalid {
                source_name: format!("the config of search {}", cfg.search_id()),
                problems: [data, dir].iter().map(|e| format!("{e:#}")).collect(),
            }
            .into()),
            (false, _) => Err(data),
            (true, false) => Err(dir),
        },
    }
}

/// The training images at `data.path`, or why a search cannot read them: a config error
/// (exit 2) when they are not there or not whole, a runtime one (exit 1, restarted) when
/// reading them fails otherwise (an I/O error, a network mount not up yet).
pub fn check_data(cfg: &Config) -> anyhow::Result<usize> {
    let data = &cfg.data;
    let kind = DatasetKind::from_str(&data.dataset)
        .ok()
        .filter(|kind| kind.is_in_memory())
        .ok_or_else(|| ConfigError::NotSearchable { dataset: data.dataset.clone() })?;
    let images = match count_split(kind, &data.path, SplitName::Train) {
        Ok(images) => images,
        Err(DataError::Io { path, source }) if !is_absent(&source) => {
            let context = format!("cannot check data.path = {}", data.path.display());
            return Err(anyhow::Error::new(DataError::Io { path, source }).context(context));
        }
        Err(source) => {
            return Err(
                ConfigError::DataUnusable { path: data.path.clone(), dataset: kind.name(), source }.into()
            )
        }
    };
    let train = train_count(data.train_portion, images);
    if train == 0 || train == images {
        return Err(ConfigError::EmptySplit { train_portion: data.train_portion, images, train }.into());
    }
    Ok(images)
}

/// Whether `error` says a file is not there (or not for this user) rather than that reading it
/// failed.
fn is_absent(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::{IsADirectory, NotADirectory, NotFound, PermissionDenied};
    matches!(error.kind(), NotFound | PermissionDenied | NotADirectory | IsADirectory)
}

/// Refused when another process writes the search directory of `cfg`, or trains its result
/// (their run locks are held). For a switch to a search this process does not run: `evnas
/// validate` must not ask it of the search the service runs, whose lock the service holds.
pub fn check_not_in_use(cfg: &Config) -> anyhow::Result<()> {
    let dir = cfg.run.dir.join(cfg.search_id());
    if dir.join("config.json").is_file() {
        RunLock::ensure_free(&dir)?;
        RunLock::ensure_free(&crate::launch::final_training_dir(&dir))?;
    }
    Ok(())
}

/// `cfg`, refused with the fields that differ when its search directory (`run.dir`/search id)
/// holds a search started with another config.
pub fn check_search_dir(cfg: &Config) -> anyhow::Result<()> {
    // The nearest existing ancestor of run.dir must be a directory, or creating it fails later
    // with "File exists" (a path typed wrong, not a failure a restart cures).
    let existing = cfg.run.dir.ancestors().find(|p| !p.as_os_str().is_empty() && p.exists());
    if let Some(blocker) = existing.filter(|p| !p.is_dir()) {
        return Err(ConfigError::RunDirNotADirectory {
            dir: cfg.run.dir.clone(),
            blocker: blocker.to_path_buf(),
        }
        .into());
    }
    let dir = cfg.run.dir.join(cfg.search_id());
    let differences = match crate::launch::differences_from_search(cfg, &dir) {
        // A training run where the search should be: a config problem (its id or run.dir).
        Err(SearchError::NotARun { why, .. }) => return Err(ConfigError::NotASearchDir { dir, why }.into()),
        found => found?,
    };
    if differences.is_empty() {
        return Ok(());
    }
    Err(ConfigError::SearchMismatch { dir, differences }.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_with(overrides: &[String]) -> Config {
        crate::config::load(None, overrides).expect("the default config loads")
    }

    #[test]
    fn a_config_wrong_in_data_and_search_dir_names_both() {
        let tmp = tempfile::tempdir().unwrap();
        let runs = tmp.path().join("runs");
        let set = |more: &[&str]| {
            let mut all = vec![format!("run.dir={}", runs.display()), "search.id=first".to_string()];
            all.extend(more.iter().map(|s| s.to_string()));
            config_with(&all)
        };
        let started = set(&["search.seed=7"]);
        let dir = runs.join("first");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("config.json"), serde_json::to_string(&started).unwrap()).unwrap();

        let missing = tmp.path().join("no-data");
        let both = set(&["search.seed=8", &format!("data.path={}", missing.display())]);
        let err = check_search(&both).unwrap_err();
        let message = format!("{err:#}");
        assert!(err.downcast_ref::<ConfigError>().is_some(), "{message}");
        assert!(message.contains("has 2 problem(s)"), "{message}");
        assert!(message.contains(&format!("data.path = {}", missing.display())), "{message}");
        assert!(message.contains("differing in search.seed: 7 -> 8"), "{message}");

        // Each alone is given as it is.
        let only_dir = check_search_dir(&set(&["search.seed=8"])).unwrap_err();
        assert!(format!("{only_dir:#}").contains("search.seed: 7 -> 8"));
        let only_data = check_search(&set(&["search.seed=7", &format!("data.path={}", missing.display())]));
        let message = format!("{:#}", only_data.unwrap_err());
        assert!(!message.contains("problem(s)") && message.contains("does not hold"), "{message}");
    }
}
