//! Whether a config can run the search it names: a search directory that already exists must
//! hold a search started with the same config (the fields of its digest), or it could not be
//! resumed. Checked where a config is taken: `evnas validate`, `evnas serve`'s start, and a
//! reload that switches to another search, so that none of them fails later, mid-service.

use crate::config::{Config, ConfigError};

/// `cfg`, refused with the fields that differ when its search directory (`run.dir`/search id)
/// holds a search started with another config.
pub fn check_search_dir(cfg: &Config) -> anyhow::Result<()> {
    let dir = cfg.run.dir.join(cfg.search_id());
    let differences = crate::launch::differences_from_search(cfg, &dir)?;
    if differences.is_empty() {
        return Ok(());
    }
    Err(ConfigError::SearchMismatch { dir, differences }.into())
}
