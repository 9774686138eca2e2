//! What a reloaded config changes, field by field: the values a running search can take at its
//! next generation boundary (hot), the search's state and id, the log level, and everything
//! else, which only a restart can change.

use serde_json::Value;

use crate::config::Config;

/// Fields a running search takes at its next generation boundary.
pub const HOT: [&str; 6] = [
    "search.mutation_rate",
    "search.tournament_size",
    "search.elites",
    "search.population",
    "search.generations",
    "fitness.subset",
];

/// Fields applied by the service itself, at once.
const SERVICE: [&str; 2] = ["search.state", "run.log_level"];

/// How a reloaded config differs from the running one.
#[derive(Debug, Default, PartialEq)]
pub struct ConfigDiff {
    /// `key: old -> new` for each changed hot or service field.
    pub changes: Vec<String>,
    /// One line per field only a restart can change: the key, its values and why.
    pub restart_only: Vec<String>,
    /// The search id changes: the current search stops and the new one starts.
    pub new_search: bool,
}

impl ConfigDiff {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.restart_only.is_empty() && !self.new_search
    }
}

/// Compares `new` with the `running` config. With a new `search.id`, a new search starts, so
/// only the process's own settings (`run.*`, `metrics.*`) stay restart-only.
pub fn diff(running: &Config, new: &Config) -> ConfigDiff {
    let (old_fields, new_fields) = (running.fields(), new.fields());
    // Only a changed `search.id` names a new search: with derived ids, a restart-only change
    // would otherwise pass for one.
    let new_search = running.search.id != new.search.id;
    let mut out = ConfigDiff { new_search, ..ConfigDiff::default() };
    for (key, new_value) in &new_fields {
        let old_value = old_fields.get(key).cloned().unwrap_or(Value::Null);
        if &old_value == new_value || key == "search.id" {
            continue;
        }
        let change = format!("{key}: {old_value} -> {new_value}");
        if HOT.contains(&key.as_str()) || SERVICE.contains(&key.as_str()) {
            out.changes.push(change);
        } else if new_search && !(key.starts_with("run.") || key.starts_with("metrics.")) {
            out.changes.push(format!("{change} (for the new search)"));
        } else {
            out.restart_only.push(format!("{change}: {}", why_restart(key)));
        }
    }
    if new_search {
        out.changes.push(format!("search.id: {} -> {}", running.search_id(), new.search_id()));
    }
    out
}

/// Why a field needs a restart.
fn why_restart(key: &str) -> &'static str {
    let section = key.split('.').next().unwrap_or("");
    match (section, key) {
        (_, "search.seed") => {
            "every random stream of the search derives from it; restart (or give a new search.id)"
        }
        (_, "search.space") | (_, "search.strategy") => {
            "the population's genomes are made for it; restart (or give a new search.id)"
        }
        ("supernet", _) => "the supernet is built with this shape once; restart (or give a new search.id)",
        ("data", _) => "the data is loaded and split once; restart (or give a new search.id)",
        ("train", _) => "the supernet's training is set up with it once; restart (or give a new search.id)",
        ("fitness", _) => "the fitness evaluators are built with it once; restart (or give a new search.id)",
        ("run", _) => "the process is set up with it (devices, threads, directories); restart evnas",
        ("metrics", _) => "the metrics listener is bound at start; restart evnas",
        ("final_training", _) => {
            "the search task reads it when it starts; restart evnas (a final training already begun keeps the settings it began with)"
        }
        _ => "restart evnas",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default() -> Config {
        crate::config::load(None, &[]).unwrap()
    }

    #[test]
    fn hot_fields_are_changes_and_nothing_else() {
        let running = default();
        let mut new = running.clone();
        new.search.mutation_rate = 0.5;
        new.search.population = 7;
        new.search.state = crate::config::SearchStateSetting::Paused;
        let d = diff(&running, &new);
        assert_eq!(d.restart_only, Vec::<String>::new());
        assert!(!d.new_search);
        assert_eq!(d.changes.len(), 3, "{:?}", d.changes);
        assert!(
            d.changes.iter().any(|c| c.starts_with("search.mutation_rate: 0.1 -> 0.5")),
            "{:?}",
            d.changes
        );
    }

    #[test]
    fn restart_only_fields_are_named_with_a_reason() {
        let running = default();
        let mut new = running.clone();
        new.supernet.layers = 8;
        new.train.batch_size = 32;
        new.metrics.listen = "127.0.0.1:1".into();
        new.search.mutation_rate = 0.2;
        let d = diff(&running, &new);
        assert_eq!(d.restart_only.len(), 3, "{:?}", d.restart_only);
        assert!(d.restart_only.iter().any(|r| r.starts_with("supernet.layers: 4 -> 8: the supernet")));
        assert!(d.restart_only.iter().any(|r| r.starts_with("metrics.listen")));
        assert_eq!(d.changes.len(), 1);
    }

    #[test]
    fn a_new_id_allows_a_new_search_but_not_new_process_settings() {
        let running = default();
        let mut new = running.clone();
        new.search.id = "other".into();
        new.supernet.layers = 8;
        new.run.threads = 3;
        let d = diff(&running, &new);
        assert!(d.new_search);
        assert_eq!(d.restart_only.len(), 1, "{:?}", d.restart_only);
        assert!(d.restart_only[0].starts_with("run.threads"));
    }

    #[test]
    fn a_derived_id_never_lets_a_restart_only_change_through() {
        let running = default();
        let mut new = running.clone();
        new.search.seed = 99;
        let d = diff(&running, &new);
        assert!(!d.new_search);
        assert_eq!(d.restart_only.len(), 1, "{:?}", d.restart_only);
    }

    /// `HOT` names exactly the fields `Config::hot_settings` carries.
    #[test]
    fn the_hot_keys_are_the_hot_settings() {
        let running = default();
        let changed = running.clone().with_hot_settings(&crate::search::HotSettings {
            population: 97,
            generations: 98,
            tournament_size: 99,
            elites: 96,
            mutation_rate: 0.95,
            fitness_subset: 94,
        });
        let mut keys: Vec<String> = diff(&running, &changed)
            .changes
            .iter()
            .map(|c| c.split(':').next().unwrap().to_string())
            .collect();
        keys.sort();
        let mut hot: Vec<&str> = HOT.to_vec();
        hot.sort();
        assert_eq!(keys, hot);
    }

    #[test]
    fn the_same_config_is_no_change() {
        assert!(diff(&default(), &default()).is_empty());
    }
}
