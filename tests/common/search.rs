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

/// The settings in which the tests' search configs differ; everything else is shared.
pub struct SearchConfig {
    pub dataset: &'static str,
    pub population: usize,
    pub generations: usize,
    pub seed: u64,
    pub init_channels: usize,
    pub train_batch: usize,
    pub fitness_batch: usize,
}

impl SearchConfig {
    /// 4 individuals, C=4, 3 cells on the Fashion-MNIST-format files of [`write_tiny_fashion_mnist`].
    pub fn tiny(generations: usize) -> Self {
        Self {
            dataset: "fashion-mnist",
            population: 4,
            generations,
            seed: 7,
            init_channels: 4,
            train_batch: 16,
            fitness_batch: 32,
        }
    }

    /// The paper's input and width (3x32x32 CIFAR-10, C=16) on the files of
    /// [`write_tiny_cifar10`], 2 individuals and 2 generations, cut down elsewhere to run in seconds.
    pub fn paper_shaped() -> Self {
        Self {
            dataset: "cifar10",
            population: 2,
            generations: 2,
            seed: 3,
            init_channels: 16,
            train_batch: 8,
            fitness_batch: 24,
        }
    }

    pub fn write(&self, path: &Path, data: &Path, runs: &Path) {
        let Self { dataset, population, generations, seed, init_channels, train_batch, fitness_batch } = self;
        let text = format!(
            r#"
[search]
population = {population}
generations = {generations}
tournament_size = 2
elites = 1
seed = {seed}

[supernet]
init_channels = {init_channels}
layers = 3

[train]
batch_size = {train_batch}

[fitness]
batch_size = {fitness_batch}
subset = 0

[data]
dataset = "{dataset}"
path = "{data}"
train_subset = 0
workers = 1

[run]
dir = "{runs}"
device = "cpu"
threads = 1

[metrics]
listen = ""
"#,
            data = data.display(),
            runs = runs.display()
        );
        std::fs::write(path, text).expect("write config");
    }
}

/// A config file for a search of `generations` generations on the tiny dataset in `data`.
pub fn write_tiny_config(path: &Path, data: &Path, runs: &Path, generations: usize) {
    SearchConfig::tiny(generations).write(path, data, runs);
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
            train.remove("communication_seconds");
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

/// `generations.jsonl` as text with the timing values blanked: every other byte must repeat.
pub fn history_text_without_timings(run: &Path) -> String {
    let mut text = std::fs::read_to_string(run.join("generations.jsonl")).expect("generations.jsonl");
    for key in
        ["\"evaluation_seconds\":", "\"data_wait_seconds\":", "\"communication_seconds\":", "\"seconds\":"]
    {
        let mut from = 0;
        while let Some(at) = text[from..].find(key) {
            let start = from + at + key.len();
            let len = text[start..]
                .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E')))
                .unwrap_or(text.len() - start);
            text.replace_range(start..start + len, "0");
            from = start + 1;
        }
    }
    text
}

/// Every kept checkpoint of `run` matches its manifest (sizes and sha256), and no half-written
/// checkpoint directory is left in place of a complete one.
pub fn assert_checkpoints_intact(run: &Path) {
    let root = run.join("checkpoints");
    let mut count = 0;
    for entry in std::fs::read_dir(&root).expect("checkpoints dir") {
        let dir = entry.unwrap().path();
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("gen-") {
            continue;
        }
        count += 1;
        let manifest: evnas::checkpoint::Manifest =
            serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).expect("manifest"))
                .expect("manifest json");
        for file in &manifest.files {
            let bytes =
                std::fs::read(dir.join(&file.name)).unwrap_or_else(|e| panic!("{name}/{}: {e}", file.name));
            assert_eq!(bytes.len() as u64, file.size, "{name}/{} size", file.name);
            assert_eq!(evnas::checkpoint::sha256_hex(&bytes), file.sha256, "{name}/{} sha256", file.name);
        }
    }
    assert!(count > 0, "{} holds no checkpoint", root.display());
}

/// CIFAR-10 binary training files in `dir` (`n` images spread over data_batch_1..5, 10
/// learnable classes: class k is a bright square at a position given by k).
pub fn write_tiny_cifar10(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let per_file = n.div_ceil(5);
    for file in 0..5 {
        let mut bytes = Vec::new();
        for i in (file * per_file)..((file + 1) * per_file).min(n) {
            let class = (i * 7 + 3) % 10;
            bytes.push(class as u8);
            for c in 0..3 {
                for y in 0..32 {
                    for x in 0..32 {
                        let square = (y / 8 == class / 4 && x / 8 == class % 4) as u32 * 180;
                        let noise = ((i * 131 + c * 53 + y * 29 + x * 17) % 61) as u32;
                        bytes.push((square + noise).min(255) as u8);
                    }
                }
            }
        }
        write(&dir.join(format!("data_batch_{}.bin", file + 1)), &bytes);
    }
}

/// Gives the tiny set-up in `root` (its `data/` and `config`) a test split and a small
/// [final_training] section: 2 epochs of a C=4, 5-cell network on 96 images.
pub fn add_tiny_final_training(root: &Path, config: &Path, enabled: bool) {
    let data = root.join("data");
    let test = root.join("test-split");
    std::fs::create_dir_all(&test).unwrap();
    write_tiny_fashion_mnist(&test, 100);
    for kind in ["images-idx3", "labels-idx1"] {
        let from = test.join(format!("train-{kind}-ubyte.gz"));
        std::fs::copy(from, data.join(format!("t10k-{kind}-ubyte.gz"))).unwrap();
    }
    let mut text = std::fs::read_to_string(config).unwrap();
    text.push_str(&format!(
        "\n[final_training]\nenabled = {enabled}\nepochs = 2\ninit_channels = 4\nlayers = 5\n\
         batch_size = 32\ntest_batch_size = 100\nauxiliary = false\ntrain_subset = 96\n"
    ));
    std::fs::write(config, text).unwrap();
}
