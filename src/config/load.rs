//! Layered loading: embedded default -> file -> `EVNAS__SECTION__KEY` env -> `--set` overrides.

use std::path::Path;

use super::schema::Config;
use super::validate::validate;
use super::ConfigError;

/// The shipped default (config/evnas.toml), so a partial file only names what it changes.
pub const DEFAULT_TOML: &str = include_str!("../../config/evnas.toml");
/// train_imagenet.py's [final_training] values, the defaults when data.dataset = "imagenet".
pub const IMAGENET_TRAINING_TOML: &str = include_str!("../../config/final-training-imagenet.toml");

/// One value set on the command line, over the file and the environment.
#[derive(Debug, Clone)]
pub enum Override {
    /// `--set SECTION.KEY=VALUE`: VALUE is read as a TOML scalar when it is one (number,
    /// boolean), else taken as a string; `[a, b]` is a list.
    Set(String),
    /// A flag of its own that sets `key` (`evnas train --epochs 3`); messages name the flag as
    /// `written`, the way the user typed it.
    Flag { written: String, key: &'static str, value: config::Value },
}

impl Override {
    /// How the user wrote it: `--set a.b=1`, `--epochs 3`.
    fn written(&self) -> String {
        match self {
            Override::Set(item) => format!("--set {item}"),
            Override::Flag { written, .. } => written.clone(),
        }
    }

    /// The key it sets, if it names one.
    fn key(&self) -> Option<&str> {
        match self {
            Override::Set(item) => item.split_once('=').map(|(key, _)| key.trim()),
            Override::Flag { key, .. } => Some(key),
        }
    }
}

/// Loads, merges and validates a configuration.
///
/// `overrides` are `section.key=value` strings (`evnas search --set`): see [`Override::Set`].
pub fn load(file: Option<&Path>, overrides: &[String]) -> Result<Config, ConfigError> {
    let overrides: Vec<Override> = overrides.iter().cloned().map(Override::Set).collect();
    load_with(file, &overrides)
}

/// [`load`] with overrides of every kind, the later winning.
pub fn load_with(file: Option<&Path>, overrides: &[Override]) -> Result<Config, ConfigError> {
    let text = file.map(read_file).transpose()?;
    load_layers(file, text.as_deref(), overrides)
}

/// [`load`] of `file` whose `text` the caller has read (and looked at) already: the config is
/// what was looked at, whatever the file holds by now.
pub fn load_text(file: &Path, text: &str) -> Result<Config, ConfigError> {
    load_layers(Some(file), Some(text), &[])
}

fn load_layers(
    file: Option<&Path>,
    text: Option<&str>,
    overrides: &[Override],
) -> Result<Config, ConfigError> {
    let merge = |imagenet| merge(text, imagenet, file, overrides);
    let merged = merge(false)?;
    // The dataset decides the training defaults: merge again with ImageNet's under the file.
    let imagenet = merged.get_string("data.dataset").is_ok_and(|d| d == "imagenet");
    let merged = if imagenet { merge(true)? } else { merged };
    typed(merged, file, overrides)
}

/// The config file's text. Read here rather than by `config::File::from(path)`, whose messages
/// name the file by a path relative to the working directory that the user never typed.
pub fn read_file(path: &Path) -> Result<String, ConfigError> {
    if !path.exists() {
        return Err(ConfigError::Missing { path: path.to_path_buf() });
    }
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })
}

/// The layers merged: default, (ImageNet training defaults), the file's `text`, environment,
/// overrides.
fn merge(
    text: Option<&str>,
    imagenet: bool,
    file: Option<&Path>,
    overrides: &[Override],
) -> Result<config::Config, ConfigError> {
    let mut builder =
        config::Config::builder().add_source(config::File::from_str(DEFAULT_TOML, config::FileFormat::Toml));
    if imagenet {
        builder =
            builder.add_source(config::File::from_str(IMAGENET_TRAINING_TOML, config::FileFormat::Toml));
    }
    if let Some(text) = text {
        builder = builder.add_source(config::File::from_str(text, config::FileFormat::Toml));
    }
    builder = builder.add_source(
        config::Environment::with_prefix("EVNAS").prefix_separator("__").separator("__").try_parsing(true),
    );
    for item in overrides {
        let bad = |reason: String| ConfigError::BadOverride { item: item.written(), reason };
        let (key, value) = match item {
            Override::Set(text) => {
                let (key, value) = text.split_once('=').ok_or_else(|| bad("expected KEY=VALUE".into()))?;
                (key.trim(), parse_value(value.trim()))
            }
            Override::Flag { key, value, .. } => (*key, value.clone()),
        };
        builder = builder.set_override(key, value).map_err(|e| bad(e.to_string()))?;
    }
    builder
        .build()
        .map_err(|e| ConfigError::Parse { source_name: describe(file, overrides), reason: e.to_string() })
}

fn typed(merged: config::Config, file: Option<&Path>, overrides: &[Override]) -> Result<Config, ConfigError> {
    // Through a JSON tree so that serde_path_to_error can name the key at fault, unknown keys
    // included (the config crate names only the section, and enums by their Rust type name).
    let mut tree: serde_json::Value = merged
        .try_deserialize()
        .map_err(|e| ConfigError::Parse { source_name: describe(file, overrides), reason: e.to_string() })?;
    // Unknown keys are all listed, with the problems of the rest; not just the first one.
    let unknown = take_unknown_keys(&mut tree);
    let (cfg, mistyped) = deserialize_all(tree, |key, reason| ConfigError::Field {
        place: place_of(&key, file, overrides),
        key,
        reason,
    })?;
    let mut problems: Vec<String> = unknown
        .iter()
        .map(|key| {
            let leaf = key.rsplit('.').next().unwrap_or(key);
            format!("{}: key `{key}`: unknown field `{leaf}`", place_of(key, file, overrides))
        })
        .collect();
    let only_one_mistyped = mistyped.len() == 1 && problems.is_empty();
    problems.extend(mistyped.iter().map(ToString::to_string));
    problems.extend(validate(&cfg));
    match mistyped.into_iter().next() {
        // One wrong type alone reads as it always has: the key, where it was set, and why.
        Some(field) if only_one_mistyped && problems.len() == 1 => Err(field),
        _ if !problems.is_empty() => {
            Err(ConfigError::Invalid { source_name: describe(file, overrides), problems })
        }
        _ => Ok(cfg),
    }
}

/// Keys mistyped at most (each is one more pass of serde).
const MAX_MISTYPED: usize = 32;

/// `tree` typed, and each key of a wrong type (as `field(key, reason)` makes it): serde stops at
/// the first, so each is put back to the built-in default's value and the tree typed again, to
/// list them all at once, with the problems of the other keys' values.
fn deserialize_all(
    mut tree: serde_json::Value,
    field: impl Fn(String, String) -> ConfigError,
) -> Result<(Config, Vec<ConfigError>), ConfigError> {
    let default = toml_tree(DEFAULT_TOML).ok();
    let mut mistyped = Vec::new();
    loop {
        let e = match serde_path_to_error::deserialize::<_, Config>(&tree) {
            Ok(cfg) => return Ok((cfg, mistyped)),
            Err(e) => e,
        };
        let key = e.path().to_string();
        let error = field(key.clone(), e.into_inner().to_string());
        // "section.key", or "section.key[2]" for an item of a list: the whole key goes back.
        let (section, name) = key.split_once('.').unwrap_or((key.as_str(), ""));
        let name = name.split('[').next().unwrap_or(name);
        let replacement = default.as_ref().and_then(|d| d.get(section)?.get(name)).cloned();
        let slot = tree.get_mut(section).and_then(|s| s.get_mut(name));
        match (slot, replacement) {
            (Some(slot), Some(value)) if mistyped.len() < MAX_MISTYPED && *slot != value => {
                *slot = value;
                mistyped.push(error);
            }
            // Nothing to put back (a whole section of the wrong type, say): this one alone.
            _ if mistyped.is_empty() => return Err(error),
            _ => {
                mistyped.push(error);
                let problems = mistyped.iter().map(ToString::to_string).collect();
                return Err(ConfigError::Invalid { source_name: String::from("the config"), problems });
            }
        }
    }
}

/// Removes from `tree` every section and key the built-in default does not have; returns them
/// as `section.key`.
fn take_unknown_keys(tree: &mut serde_json::Value) -> Vec<String> {
    let Ok(default) = toml_tree(DEFAULT_TOML) else { return Vec::new() };
    let mut unknown = Vec::new();
    let Some(sections) = tree.as_object_mut() else { return unknown };
    sections.retain(|section, body| match (default.get(section), body.as_object_mut()) {
        (Some(known), Some(keys)) => {
            keys.retain(|key, _| {
                let ok = known.get(key).is_some();
                if !ok {
                    unknown.push(format!("{section}.{key}"));
                }
                ok
            });
            true
        }
        (Some(_), None) => true,
        (None, _) => {
            unknown.push(section.clone());
            false
        }
    });
    unknown
}

/// Section `name` of the built-in default, typed.
pub(crate) fn default_section<T: serde::de::DeserializeOwned>(name: &str) -> T {
    let tree = toml_tree(DEFAULT_TOML).expect("the built-in default config parses");
    serde_json::from_value(tree[name].clone()).expect("the built-in default's sections fit the schema")
}

fn toml_tree(text: &str) -> Result<serde_json::Value, config::ConfigError> {
    config::Config::builder()
        .add_source(config::File::from_str(text, config::FileFormat::Toml))
        .build()?
        .try_deserialize()
}

fn describe(file: Option<&Path>, overrides: &[Override]) -> String {
    let base = file.map(|p| p.display().to_string()).unwrap_or_else(|| "the built-in default config".into());
    if overrides.is_empty() {
        base
    } else {
        let written: Vec<String> = overrides.iter().map(Override::written).collect();
        format!("{base} with {}", written.join(" "))
    }
}

/// Which layer set `key`: the last override of it, else its `EVNAS__` variable, else the file.
fn place_of(key: &str, file: Option<&Path>, overrides: &[Override]) -> String {
    if let Some(item) = overrides.iter().rev().find(|o| o.key() == Some(key)) {
        return item.written();
    }
    let var = format!("EVNAS__{}", key.replace('.', "__").to_ascii_uppercase());
    if std::env::var_os(&var).is_some() {
        return format!("environment variable {var}");
    }
    describe(file, &[])
}

/// A TOML-like list (`[a, b]`, its items scalars) or a scalar.
fn parse_value(text: &str) -> config::Value {
    match text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        Some(items) if items.trim().is_empty() => Vec::<config::Value>::new().into(),
        Some(items) => items.split(',').map(|item| parse_scalar(item.trim())).collect::<Vec<_>>().into(),
        None => parse_scalar(text),
    }
}

fn parse_scalar(text: &str) -> config::Value {
    if let Ok(v) = text.parse::<i64>() {
        return v.into();
    }
    if let Ok(v) = text.parse::<f64>() {
        return v.into();
    }
    if let Ok(v) = text.parse::<bool>() {
        return v.into();
    }
    text.trim_matches('"').to_string().into()
}
