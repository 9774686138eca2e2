//! Parsers for argument values with rules of their own, so that clap rejects a bad value as
//! bad usage (exit 2, with the flag named) before anything runs.

use std::str::FromStr;

use evnas::data::DatasetKind;

/// `--dataset`: one of the dataset names evnas reads.
pub fn dataset(text: &str) -> Result<DatasetKind, String> {
    DatasetKind::from_str(text).map_err(|e| e.to_string())
}

/// `--init-channels` of an evaluation network: a positive even number (cells split channels in two).
pub fn init_channels(text: &str) -> Result<i64, String> {
    match text.parse::<i64>() {
        Ok(c) if c > 0 && c % 2 == 0 => Ok(c),
        _ => Err(format!("expected a positive even number, got {text}")),
    }
}

/// `--layers` of an evaluation network: at least 3 (the reduction cells sit at 1/3 and 2/3).
pub fn layers(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(l) if l >= 3 => Ok(l),
        _ => Err(format!("expected a number of at least 3, got {text}")),
    }
}

/// `--out` of a plot: an SVG file, named so (a slip of the keyboard must not replace a run's
/// `generations.jsonl` with a picture).
pub fn svg_path(text: &str) -> Result<std::path::PathBuf, String> {
    let path = std::path::PathBuf::from(text);
    match path.extension() {
        Some(e) if e.eq_ignore_ascii_case("svg") => Ok(path),
        _ => Err(format!("the plot is SVG: expected a file name ending in .svg, got {text}")),
    }
}

/// `--device` of a command that runs a network: "cpu", "auto", "cuda" or "cuda:N" (whether that
/// GPU exists is found when it is asked for, exit 1).
pub fn device(text: &str) -> Result<String, String> {
    let cuda_index = text.strip_prefix("cuda:").is_some_and(|n| n.parse::<usize>().is_ok());
    match text {
        "cpu" | "auto" | "cuda" => Ok(text.to_string()),
        _ if cuda_index => Ok(text.to_string()),
        _ => Err(format!("expected cpu, auto, cuda or cuda:N, got {text}")),
    }
}

/// A count that must be at least 1 (a batch size).
pub fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("expected a number of at least 1, got {text}")),
    }
}
