//! A tiny search set-up for end-to-end tests: a learnable Fashion-MNIST-format dataset and a
//! config small enough that a generation takes about a second on a CPU.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::{gzip, idx_bytes, write};

/// Writes `n` 28x28 images of 10 classes (class k: a bright horizontal bar at row 2k + noise) as
/// gzipped IDX train files in `dir`.
pub fn write_tiny_fashion_mnist(dir: &Path, n: usize) {
    let mut pixels = Vec::with_capacity(n * 784);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let class = (i * 7 + 3) % 10;
        labels.push(class as u8);
        for y in 0..28 {
            for x in 0..28 {
                let bar = (y / 2 == class + 2) as u32 * 200;
                let noise = ((i * 131 + y * 29 + x * 17) % 41) as u32;
                pixels.push((bar + noise).min(255) as u8);
            }
        }
    }
    write(&dir.join("train-images-idx3-ubyte.gz"), &gzip(&idx_bytes(0x803, &[n as u32, 28, 28], &pixels)));
    write(&dir.join("train-labels-idx1-ubyte.gz"), &gzip(&idx_bytes(0x801, &[n as u32], &labels)));
}

/// A config file for a 3-generation search on the tiny dataset in `data`.
pub fn write_tiny_config(path: &Path, data: &Path, runs: &Path, generations: usize) {
    let text = format!(
        r#"
[search]
population = 4
generations = {generations}
tournament_size = 2
elites = 1
seed = 7

[supernet]
init_channels = 4
layers = 3

[train]
batch_size = 16

[fitness]
batch_size = 32
subset = 0

[data]
dataset = "fashion-mnist"
path = "{data}"
train_subset = 0
workers = 1

[run]
dir = "{runs}"
device = "cpu"
threads = 1
"#,
        data = data.display(),
        runs = runs.display()
    );
    std::fs::write(path, text).expect("write config");
}

pub fn evnas() -> Command {
    Command::new(env!("CARGO_BIN_EXE_evnas"))
}

/// `evnas search --quiet --config CONFIG --run-dir RUN` followed by `extra` (e.g. `--set k=v`).
pub fn search_command(config: &Path, run: &Path, extra: &[&str]) -> Command {
    let mut cmd = evnas();
    cmd.args(["search", "--quiet", "--config"]).arg(config).arg("--run-dir").arg(run).args(extra);
    cmd
}

/// Asserts that two run directories hold the same history (timings aside) and result genotype.
pub fn assert_same_search(a: &Path, b: &Path) {
    assert_eq!(history_without_timings(a), history_without_timings(b), "histories differ");
    let genotype = |run: &Path| std::fs::read_to_string(run.join("genotype.json")).expect("genotype.json");
    assert_eq!(genotype(a), genotype(b), "genotypes differ");
}

pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run evnas");
    assert!(
        out.status.success(),
        "evnas failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `generations.jsonl` of a run without its timing fields (which differ between runs).
pub fn history_without_timings(run: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(run.join("generations.jsonl")).expect("generations.jsonl");
    text.lines()
        .map(|line| {
            let mut v: serde_json::Value = serde_json::from_str(line).expect("json line");
            v.as_object_mut().unwrap().remove("evaluation_seconds");
            let train = v["train"].as_object_mut().unwrap();
            train.remove("seconds");
            train.remove("data_wait_seconds");
            v
        })
        .collect()
}

pub fn tiny_setup(root: &Path, generations: usize) -> (PathBuf, PathBuf) {
    let data = root.join("data");
    std::fs::create_dir_all(&data).unwrap();
    write_tiny_fashion_mnist(&data, 192);
    let config = root.join("tiny.toml");
    write_tiny_config(&config, &data, &root.join("runs"), generations);
    (config, data)
}
