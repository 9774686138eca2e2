//! Every bad input a user can hand evnas (configs, genotypes, weights, datasets, command lines, run
//! directories) is rejected by the real binary with one `error: ` line that names the file or the
//! field at fault, gives each cause once (outermost context first, no `(os error N)`), exits 2 for
//! a bad command line or config and 1 for anything found while running, and writes nothing.
//!
//! One table, one test: each case runs in its own temporary directory, with every path given
//! relative to it (so the message must show the path as the user typed it), and every mismatch
//! of every case is reported together at the end.

mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use common::search::{evnas, run_ok, tiny_setup, write_tiny_cifar10, write_tiny_fashion_mnist};
use common::{cifar10_bytes, gzip, idx_bytes, write};
use evnas::space::Genotype;

/// Exit code of a bad command line or config (nothing was run).
const USAGE: i32 = 2;
/// Exit code of a failure found while running (data, weights, genotype files, checkpoints).
const RUNTIME: i32 = 1;

type Build = Box<dyn Fn(&Path) -> Command>;

struct Case {
    name: &'static str,
    /// Writes the case's files into its (empty) directory and returns the command to run there.
    build: Build,
    code: i32,
    /// A distinctive part of the cause: it must appear exactly once in stderr.
    cause: &'static str,
    /// The file (as given on the command line) or `section.key` at fault: each must appear.
    named: Vec<&'static str>,
    /// Paths (relative to the case's directory) the command may create, change or remove.
    may_change: &'static [&'static str],
}

fn case(
    name: &'static str,
    code: i32,
    cause: &'static str,
    named: &[&'static str],
    build: impl Fn(&Path) -> Command + 'static,
) -> Case {
    Case { name, build: Box::new(build), code, cause, named: named.to_vec(), may_change: &[] }
}

fn fixture(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(relative)
}

fn copy_fixture(relative: &str, to: &Path) {
    fs::copy(fixture(relative), to).unwrap_or_else(|e| panic!("copy {relative}: {e}"));
}

fn cmd(args: &[&str]) -> Command {
    let mut c = evnas();
    c.args(args);
    c
}

// ---------------------------------------------------------------------------------------------
// Configs

/// The tiny search of `common::search::write_tiny_config`, with paths relative to the case's
/// directory: data in `data`, runs under `runs`.
const TINY: &[(&str, &[(&str, &str)])] = &[
    (
        "search",
        &[
            ("population", "4"),
            ("generations", "1"),
            ("tournament_size", "2"),
            ("elites", "1"),
            ("seed", "7"),
        ],
    ),
    ("supernet", &[("init_channels", "4"), ("layers", "3")]),
    ("train", &[("batch_size", "16")]),
    ("fitness", &[("batch_size", "32"), ("subset", "0")]),
    (
        "data",
        &[("dataset", "\"fashion-mnist\""), ("path", "\"data\""), ("train_subset", "0"), ("workers", "1")],
    ),
    ("run", &[("dir", "\"runs\""), ("device", "\"cpu\""), ("threads", "1")]),
];

/// [`TINY`] as TOML with `changes` (`section.key`, TOML value) set.
fn tiny_toml(changes: &[(&str, &str)]) -> String {
    let mut sections: Vec<(String, Vec<(String, String)>)> = TINY
        .iter()
        .map(|(s, kv)| (s.to_string(), kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()))
        .collect();
    for (path, value) in changes {
        let (section, key) = path.split_once('.').expect("section.key");
        let at = match sections.iter().position(|(s, _)| s == section) {
            Some(at) => at,
            None => {
                sections.push((section.to_string(), Vec::new()));
                sections.len() - 1
            }
        };
        let entries = &mut sections[at].1;
        match entries.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value.to_string(),
            None => entries.push((key.to_string(), value.to_string())),
        }
    }
    let mut text = String::new();
    for (section, entries) in sections {
        let _ = writeln!(text, "[{section}]");
        for (key, value) in entries {
            let _ = writeln!(text, "{key} = {value}");
        }
        text.push('\n');
    }
    text
}

/// `evnas search --quiet --config bad.toml` on [`TINY`] with `changes`.
fn config_case(
    name: &'static str,
    changes: &'static [(&'static str, &'static str)],
    cause: &'static str,
    named: &'static [&'static str],
) -> Case {
    case(name, USAGE, cause, named, move |dir| {
        write(&dir.join("bad.toml"), tiny_toml(changes).as_bytes());
        cmd(&["search", "--quiet", "--config", "bad.toml"])
    })
}

/// `evnas search --quiet --config bad.toml` on a file holding `text`.
fn raw_config_case(
    name: &'static str,
    text: &'static str,
    cause: &'static str,
    named: &'static [&'static str],
) -> Case {
    case(name, USAGE, cause, named, move |dir| {
        write(&dir.join("bad.toml"), text.as_bytes());
        cmd(&["search", "--quiet", "--config", "bad.toml"])
    })
}

/// `evnas search --quiet --config tiny.toml` (a valid config) followed by `extra`.
fn valid_config_command(dir: &Path, extra: &[&str]) -> Command {
    write(&dir.join("tiny.toml"), tiny_toml(&[]).as_bytes());
    let mut c = cmd(&["search", "--quiet", "--config", "tiny.toml"]);
    c.args(extra);
    c
}

fn config_cases() -> Vec<Case> {
    let syntax = "[search\npopulation = 4\n";
    let unknown_section = "[serach]\npopulation = 4\n";
    vec![
        raw_config_case("config_toml_syntax_error", syntax, "unclosed table", &["bad.toml"]),
        config_case(
            "config_unknown_key_in_section",
            &[("search.populaton", "4")],
            "unknown field `populaton`",
            &["bad.toml", "search.populaton"],
        ),
        raw_config_case(
            "config_unknown_section",
            unknown_section,
            "unknown field `serach`",
            &["bad.toml", "serach"],
        ),
        config_case(
            "config_string_for_integer",
            &[("search.population", "\"four\"")],
            "invalid type",
            &["bad.toml", "search.population"],
        ),
        config_case(
            "config_negative_integer",
            &[("search.population", "-3")],
            "-3",
            &["bad.toml", "search.population"],
        ),
        config_case(
            "config_metrics_on_a_port_the_system_picks",
            &[("metrics.listen", "\"127.0.0.1:0\"")],
            "port 0 is a port the system picks",
            &["bad.toml", "metrics.listen"],
        ),
        config_case(
            "config_unknown_enum_variant",
            &[("search.strategy", "\"greedy\"")],
            "greedy",
            &["bad.toml", "search.strategy"],
        ),
        config_case(
            "config_devices_not_a_device",
            &[("run.devices", "[\"cpu\", \"gpu\"]")],
            "\"gpu\" is not a device",
            &["bad.toml", "run.devices"],
        ),
        config_case(
            "config_devices_mix_cpu_and_cuda",
            &[("run.devices", "[\"cpu\", \"cuda:0\"]")],
            "mixes cpu and cuda",
            &["bad.toml", "run.devices"],
        ),
        config_case(
            "config_devices_gpu_twice",
            &[("run.devices", "[\"cuda:1\", \"cuda:1\"]")],
            "cuda:1 is listed twice",
            &["bad.toml", "run.devices"],
        ),
        config_case(
            "config_nccl_on_cpu_replicas",
            &[("run.devices", "[\"cpu\", \"cpu\"]"), ("run.collectives", "\"nccl\"")],
            "NCCL sums gradients between GPUs, and a replica is on \"cpu\"",
            &["bad.toml", "run.collectives"],
        ),
        config_case(
            "config_collectives_unknown",
            &[("run.collectives", "\"mpi\"")],
            "mpi",
            &["bad.toml", "run.collectives"],
        ),
        config_case(
            "config_population_below_2",
            &[("search.population", "1"), ("search.tournament_size", "1"), ("search.elites", "0")],
            "need at least 2 individuals",
            &["bad.toml", "search.population"],
        ),
        config_case(
            "config_zero_generations",
            &[("search.generations", "0")],
            "need at least 1 generation",
            &["bad.toml", "search.generations"],
        ),
        config_case(
            "config_tournament_larger_than_population",
            &[("search.tournament_size", "5")],
            "must be between 1 and search.population (4)",
            &["bad.toml", "search.tournament_size"],
        ),
        config_case(
            "config_tournament_zero",
            &[("search.tournament_size", "0")],
            "must be between 1 and search.population (4)",
            &["bad.toml", "search.tournament_size"],
        ),
        config_case(
            "config_elites_not_below_population",
            &[("search.elites", "4")],
            "must be below search.population (4)",
            &["bad.toml", "search.elites"],
        ),
        config_case(
            "config_mutation_rate_above_1",
            &[("search.mutation_rate", "1.5")],
            "must lie in [0, 1]",
            &["bad.toml", "search.mutation_rate"],
        ),
        config_case(
            "config_odd_init_channels",
            &[("supernet.init_channels", "3")],
            "must be a positive even number",
            &["bad.toml", "supernet.init_channels"],
        ),
        config_case(
            "config_darts_too_few_layers",
            &[("supernet.layers", "2")],
            "need at least 3 (two of them are reduction cells)",
            &["bad.toml", "supernet.layers"],
        ),
        config_case(
            "config_nas_bench_201_zero_layers",
            &[("search.space", "\"nas-bench-201\""), ("supernet.layers", "0")],
            "NAS-Bench-201 needs at least 1 cell per stage",
            &["bad.toml", "supernet.layers"],
        ),
        config_case(
            "config_zero_train_batch",
            &[("train.batch_size", "0")],
            "train.batch_size = 0: must be positive",
            &["bad.toml", "train.batch_size"],
        ),
        config_case(
            "config_negative_learning_rate",
            &[("train.learning_rate", "-0.1"), ("train.learning_rate_min", "0.0")],
            "train.learning_rate = -0.1: must be positive",
            &["bad.toml", "train.learning_rate"],
        ),
        config_case(
            "config_learning_rate_min_above_learning_rate",
            &[("train.learning_rate", "0.01"), ("train.learning_rate_min", "0.1")],
            "must lie in [0, train.learning_rate]",
            &["bad.toml", "train.learning_rate_min"],
        ),
        config_case(
            "config_momentum_1",
            &[("train.momentum", "1.0")],
            "must lie in [0, 1)",
            &["bad.toml", "train.momentum"],
        ),
        config_case(
            "config_negative_weight_decay",
            &[("train.weight_decay", "-0.0003")],
            "must not be negative",
            &["bad.toml", "train.weight_decay"],
        ),
        config_case(
            "config_zero_grad_clip",
            &[("train.grad_clip", "0.0")],
            "train.grad_clip = 0: must be positive",
            &["bad.toml", "train.grad_clip"],
        ),
        config_case(
            "config_zero_fitness_batch",
            &[("fitness.batch_size", "0")],
            "fitness.batch_size = 0: must be positive",
            &["bad.toml", "fitness.batch_size"],
        ),
        config_case(
            "config_unknown_dataset",
            &[("data.dataset", "\"mnist\"")],
            "must be one of cifar10, cifar100, fashion-mnist, imagenet",
            &["bad.toml", "data.dataset"],
        ),
        config_case(
            "config_train_portion_1",
            &[("data.train_portion", "1.0")],
            "must lie strictly between 0 and 1",
            &["bad.toml", "data.train_portion"],
        ),
        config_case(
            "config_cutout_without_length",
            &[("data.cutout", "true"), ("data.cutout_length", "0")],
            "must be positive when data.cutout is on",
            &["bad.toml", "data.cutout_length"],
        ),
        config_case(
            "config_zero_prefetch_depth",
            &[("data.prefetch_depth", "0")],
            "must be at least 1",
            &["bad.toml", "data.prefetch_depth"],
        ),
        config_case(
            "config_zero_workers",
            &[("data.workers", "0")],
            "must be at least 1",
            &["bad.toml", "data.workers"],
        ),
        config_case(
            "config_zero_keep_checkpoints",
            &[("run.keep_checkpoints", "0")],
            "keep at least 1",
            &["bad.toml", "run.keep_checkpoints"],
        ),
        config_case(
            "config_unknown_device",
            &[("run.device", "\"gpu\"")],
            "must be cpu, cuda, cuda:N or auto",
            &["bad.toml", "run.device"],
        ),
        config_case(
            "config_every_problem_reported_at_once",
            &[("search.generations", "0"), ("data.train_portion", "0.0"), ("run.keep_checkpoints", "0")],
            "3 problem(s)",
            &["bad.toml", "search.generations", "data.train_portion", "run.keep_checkpoints"],
        ),
        case("config_set_without_equals", USAGE, "expected KEY=VALUE", &["search.population"], |dir| {
            valid_config_command(dir, &["--set", "search.population"])
        }),
        case("config_set_wrong_type", USAGE, "invalid type", &["search.population"], |dir| {
            valid_config_command(dir, &["--set", "search.population=abc"])
        }),
        case("config_set_unknown_key", USAGE, "unknown field `bogus`", &["search.bogus"], |dir| {
            valid_config_command(dir, &["--set", "search.bogus=1"])
        }),
        case(
            "config_set_out_of_range",
            USAGE,
            "need at least 1 generation",
            &["search.generations"],
            |dir| valid_config_command(dir, &["--set", "search.generations=0"]),
        ),
        case(
            "config_env_override_wrong_type",
            USAGE,
            "invalid type",
            &["search.population", "EVNAS__SEARCH__POPULATION"],
            |dir| {
                let mut c = valid_config_command(dir, &[]);
                c.env("EVNAS__SEARCH__POPULATION", "abc");
                c
            },
        ),
        case("config_file_missing", USAGE, "nope.toml", &["nope.toml"], |_| {
            cmd(&["search", "--quiet", "--config", "nope.toml"])
        }),
        case("config_file_is_a_directory", USAGE, "a directory", &["conf.d"], |dir| {
            fs::create_dir(dir.join("conf.d")).unwrap();
            cmd(&["search", "--quiet", "--config", "conf.d"])
        }),
    ]
}

// ---------------------------------------------------------------------------------------------
// Genotypes

fn evnas_a_text() -> String {
    Genotype::builtin("EvNAS-A").expect("EvNAS-A is built in").to_string()
}

/// EvNAS-A in the DARTS notation with its first op replaced by `bogus_op`.
fn write_unknown_op(path: &Path) {
    write(path, evnas_a_text().replacen("sep_conv_3x3", "bogus_op", 1).as_bytes());
}

fn genotype_cases() -> Vec<Case> {
    vec![
        case("genotype_show_unknown_op", RUNTIME, "unknown op `bogus_op`", &["g1.txt"], |dir| {
            write_unknown_op(&dir.join("g1.txt"));
            cmd(&["genotype", "show", "g1.txt"])
        }),
        case("info_unknown_op", RUNTIME, "unknown op `bogus_op`", &["g1.txt"], |dir| {
            write_unknown_op(&dir.join("g1.txt"));
            cmd(&["info", "--genotype", "g1.txt"])
        }),
        case(
            "genotype_render_unknown_op_draws_nothing",
            RUNTIME,
            "unknown op `bogus_op`",
            &["g1.txt"],
            |dir| {
                write_unknown_op(&dir.join("g1.txt"));
                cmd(&["genotype", "render", "g1.txt", "--out", "pics"])
            },
        ),
        case("genotype_truncated_text", RUNTIME, "text ends at", &["g2.txt"], |dir| {
            let text = evnas_a_text();
            let cut = text.find("reduce=").expect("reduce= in the notation");
            write(&dir.join("g2.txt"), &text.as_bytes()[..cut]);
            cmd(&["genotype", "show", "g2.txt"])
        }),
        case("genotype_json_wrong_type", RUNTIME, "invalid type: integer `5`", &["g.json"], |dir| {
            let text = r#"{"normal": 5, "normal_concat": [2, 3, 4, 5], "reduce": [], "reduce_concat": [2]}"#;
            write(&dir.join("g.json"), text.as_bytes());
            cmd(&["genotype", "show", "g.json"])
        }),
        case("genotype_json_input_out_of_range", RUNTIME, "reads state 7", &["g3.json"], |dir| {
            let mut genotype = Genotype::builtin("EvNAS-A").unwrap();
            genotype.normal[0].1 = 7;
            write(&dir.join("g3.json"), serde_json::to_string(&genotype).unwrap().as_bytes());
            cmd(&["info", "--genotype", "g3.json"])
        }),
        case(
            "genotype_unknown_builtin_name",
            RUNTIME,
            "is neither a built-in genotype",
            &["EvNAS-Z"],
            |_| cmd(&["genotype", "show", "EvNAS-Z"]),
        ),
        case("genotype_render_out_is_a_file", RUNTIME, "File exists", &["taken"], |dir| {
            write(&dir.join("taken"), b"not a directory\n");
            cmd(&["genotype", "render", "EvNAS-A", "--out", "taken"])
        }),
        case("genotype_file_is_a_directory", RUNTIME, "Is a directory", &["gdir"], |dir| {
            fs::create_dir(dir.join("gdir")).unwrap();
            cmd(&["genotype", "show", "gdir"])
        }),
    ]
}

// ---------------------------------------------------------------------------------------------
// Weights

/// The C=4, 5-layer EvNAS-A evaluation network's weights (a legacy `torch.save` state_dict).
const EVNAS_A_C4_L5: &str = "eval/evnas_a_c4_l5_legacy.pt";

/// `evnas eval` of EvNAS-A (C=4, 5 layers unless `extra` says otherwise) with `weights` on the
/// CIFAR-10 test batch fixture copied into `d/`.
fn eval_command(dir: &Path, weights: &str, extra: &[&str]) -> Command {
    fs::create_dir_all(dir.join("d")).unwrap();
    copy_fixture("eval/test_batch.bin", &dir.join("d/test_batch.bin"));
    let mut c =
        cmd(&["eval", "--genotype", "EvNAS-A", "--weights", weights, "--dataset", "cifar10", "--data", "d"]);
    let channels = if extra.contains(&"--init-channels") { &[][..] } else { &["--init-channels", "4"][..] };
    c.args(channels).args(["--layers", "5", "--device", "cpu"]).args(extra);
    c
}

/// A case whose weights file `weights` is written by `make` (given its path).
fn weights_case(
    name: &'static str,
    weights: &'static str,
    cause: &'static str,
    make: impl Fn(&Path) + 'static,
) -> Case {
    weights_case_with(name, weights, &[], cause, make)
}

fn weights_case_with(
    name: &'static str,
    weights: &'static str,
    extra: &'static [&'static str],
    cause: &'static str,
    make: impl Fn(&Path) + 'static,
) -> Case {
    case(name, RUNTIME, cause, &[weights], move |dir| {
        make(&dir.join(weights));
        eval_command(dir, weights, extra)
    })
}

/// A zip-format `torch.save` file whose pickle is `pickle` (no storages).
fn torch_zip(pickle: &[u8]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("archive/data.pkl", options).unwrap();
    zip.write_all(pickle).unwrap();
    zip.start_file("archive/byteorder", options).unwrap();
    zip.write_all(b"little").unwrap();
    zip.start_file("archive/version", options).unwrap();
    zip.write_all(b"3\n").unwrap();
    zip.finish().unwrap().into_inner()
}

/// Protocol-2 pickle of an empty list: PROTO 2, EMPTY_LIST, STOP.
const EMPTY_LIST_PICKLE: &[u8] = b"\x80\x02].";

/// A legacy-format `torch.save` stream whose object pickle is `object` (no storages): magic
/// number, protocol version 1001, sys_info, the object, an empty storage key list.
fn torch_legacy(object: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    // LONG1 of 0x1950a86a20f9469cfc6c, little-endian.
    out.extend_from_slice(b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.");
    // BININT2 1001.
    out.extend_from_slice(b"\x80\x02M\xe9\x03.");
    // {'little_endian': True}
    out.extend_from_slice(b"\x80\x02}X\x0d\x00\x00\x00little_endian\x88s.");
    out.extend_from_slice(object);
    out.extend_from_slice(EMPTY_LIST_PICKLE);
    out
}

/// The C=4 EvNAS-A weights as safetensors, without the keys `drop` names.
fn evnas_a_safetensors(drop: &[&str]) -> Vec<u8> {
    let tensors: Vec<(String, tch::Tensor)> = evnas::weights::read_weights(fixture(EVNAS_A_C4_L5))
        .expect("fixture reads")
        .into_iter()
        .filter(|(k, _)| !drop.contains(&k.as_str()))
        .collect();
    evnas::weights::safetensors_bytes(&tensors).expect("safetensors encoding")
}

fn weights_cases() -> Vec<Case> {
    vec![
        weights_case("weights_not_a_pytorch_file", "notes.pt", "not a PyTorch file", |p| {
            write(p, b"these are my notes, not weights\n")
        }),
        weights_case("weights_pickle_without_magic", "magic.pt", "not a PyTorch file", |p| {
            copy_fixture("weights/wrong_magic.pt", p)
        }),
        weights_case("weights_empty_file", "empty.pt", "the file is empty", |p| write(p, b"")),
        weights_case("weights_truncated_zip", "half_zip.pt", "not a readable zip archive", |p| {
            copy_fixture("weights/truncated_zip.pt", p)
        }),
        weights_case("weights_truncated_legacy", "cut_legacy.pt", "truncated", |p| {
            copy_fixture("weights/truncated_legacy.pt", p)
        }),
        weights_case("weights_zip_list_instead_of_dict", "list_zip.pt", "holds a list, not a dict", |p| {
            write(p, &torch_zip(EMPTY_LIST_PICKLE))
        }),
        weights_case(
            "weights_legacy_list_instead_of_dict",
            "list_legacy.pth",
            "holds a list, not a dict",
            |p| write(p, &torch_legacy(EMPTY_LIST_PICKLE)),
        ),
        weights_case_with(
            "weights_for_another_init_channels",
            "c4.pt",
            &["--init-channels", "6"],
            "shape of cells.0._ops.0.op.1.weight: model [6, 1, 3, 3], weights [4, 1, 3, 3]",
            |p| copy_fixture(EVNAS_A_C4_L5, p),
        ),
        weights_case("weights_missing_keys", "no_classifier.safetensors", "missing classifier.weight", |p| {
            write(p, &evnas_a_safetensors(&["classifier.weight", "classifier.bias"]))
        }),
        weights_case(
            "weights_zip_state_dict_of_another_model",
            "sequential.pt",
            "unexpected 0.weight",
            |p| copy_fixture("weights/state_dict_zip.pt", p),
        ),
        weights_case("weights_forbidden_global", "global.pt", "global datetime.date is not supported", |p| {
            copy_fixture("weights/unknown_global_legacy.pt", p)
        }),
        weights_case("weights_wrong_extension", "weights.bin", "unknown weights file extension", |p| {
            copy_fixture(EVNAS_A_C4_L5, p)
        }),
        weights_case("weights_truncated_safetensors", "cut.safetensors", "incomplete metadata", |p| {
            let bytes = evnas_a_safetensors(&[]);
            write(p, &bytes[..bytes.len() / 2])
        }),
        weights_case("weights_file_missing", "nope.pt", "No such file or directory", |_| {}),
        weights_case("weights_file_is_a_directory", "wdir.pt", "Is a directory", |p| {
            fs::create_dir(p).unwrap()
        }),
        case("eval_test_batch_missing", RUNTIME, "No such file or directory", &["d/test_batch.bin"], |dir| {
            copy_fixture(EVNAS_A_C4_L5, &dir.join("w.pt"));
            let c = eval_command(dir, "w.pt", &[]);
            fs::remove_file(dir.join("d/test_batch.bin")).unwrap();
            c
        }),
        case(
            "eval_test_batch_truncated",
            RUNTIME,
            "is not a whole number of 3073-byte records",
            &["d/test_batch.bin"],
            |dir| {
                copy_fixture(EVNAS_A_C4_L5, &dir.join("w.pt"));
                let c = eval_command(dir, "w.pt", &[]);
                let path = dir.join("d/test_batch.bin");
                let bytes = fs::read(&path).unwrap();
                write(&path, &bytes[..bytes.len() - 100]);
                c
            },
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// Datasets

const IMAGES: &str = "data/train-images-idx3-ubyte.gz";
const LABELS: &str = "data/train-labels-idx1-ubyte.gz";

/// `evnas search` on the tiny config over the tiny Fashion-MNIST in `data/`, after `damage`.
fn dataset_case(
    name: &'static str,
    cause: &'static str,
    named: &'static [&'static str],
    damage: impl Fn(&Path) + 'static,
) -> Case {
    case(name, RUNTIME, cause, named, move |dir| {
        write_tiny_data(dir);
        damage(dir);
        valid_config_command(dir, &[])
    })
}

/// `evnas search` on the tiny config switched to CIFAR-10 in `cifar/` (8 images per file).
fn cifar_case(
    name: &'static str,
    cause: &'static str,
    named: &'static [&'static str],
    damage: impl Fn(&Path) + 'static,
) -> Case {
    case(name, RUNTIME, cause, named, move |dir| {
        fs::create_dir_all(dir.join("cifar")).unwrap();
        for i in 1..=5 {
            write(&dir.join(format!("cifar/data_batch_{i}.bin")), &cifar10_bytes(&[0, 1, 2, 3, 4, 5, 6, 7]));
        }
        damage(dir);
        let text = tiny_toml(&[("data.dataset", "\"cifar10\""), ("data.path", "\"cifar\"")]);
        write(&dir.join("cifar.toml"), text.as_bytes());
        cmd(&["search", "--quiet", "--config", "cifar.toml"])
    })
}

fn labels(n: usize) -> Vec<u8> {
    (0..n).map(|i| ((i * 7 + 3) % 10) as u8).collect()
}

fn dataset_cases() -> Vec<Case> {
    vec![
        dataset_case("dataset_missing_images_file", "No such file or directory", &[IMAGES], |dir| {
            fs::remove_file(dir.join(IMAGES)).unwrap()
        }),
        case(
            "dataset_missing_directory",
            RUNTIME,
            "No such file or directory",
            &["nodata/train-images-idx3-ubyte.gz"],
            |dir| {
                let text = tiny_toml(&[("data.path", "\"nodata\"")]);
                write(&dir.join("nodata.toml"), text.as_bytes());
                cmd(&["search", "--quiet", "--config", "nodata.toml"])
            },
        ),
        dataset_case("dataset_truncated_idx_record", "record 191 is incomplete", &[IMAGES], |dir| {
            let body = vec![7u8; 191 * 784 + 100];
            write(&dir.join(IMAGES), &gzip(&idx_bytes(0x803, &[192, 28, 28], &body)));
        }),
        dataset_case("dataset_label_out_of_range", "record 5: label 10 out of range", &[LABELS], |dir| {
            let mut l = labels(192);
            l[5] = 10;
            write(&dir.join(LABELS), &gzip(&idx_bytes(0x801, &[192], &l)));
        }),
        dataset_case("dataset_wrong_idx_magic", "bad IDX magic 0x00000803", &[LABELS], |dir| {
            write(&dir.join(LABELS), &gzip(&idx_bytes(0x803, &[192], &labels(192))));
        }),
        dataset_case("dataset_image_label_count_mismatch", "holds 191 labels", &[IMAGES, LABELS], |dir| {
            write(&dir.join(LABELS), &gzip(&idx_bytes(0x801, &[191], &labels(191))));
        }),
        dataset_case("dataset_truncated_gzip_stream", "gzip stream", &[LABELS], |dir| {
            let bytes = gzip(&idx_bytes(0x801, &[192], &labels(192)));
            write(&dir.join(LABELS), &bytes[..bytes.len() / 2]);
        }),
        cifar_case(
            "dataset_cifar_truncated_record",
            "is not a whole number of 3073-byte records",
            &["cifar/data_batch_3.bin"],
            |dir| {
                let path = dir.join("cifar/data_batch_3.bin");
                let bytes = fs::read(&path).unwrap();
                write(&path, &bytes[..bytes.len() - 100]);
            },
        ),
        cifar_case(
            "dataset_cifar_label_out_of_range",
            "record 3: label 10 out of range",
            &["cifar/data_batch_2.bin"],
            |dir| write(&dir.join("cifar/data_batch_2.bin"), &cifar10_bytes(&[0, 1, 2, 10, 4, 5, 6, 7])),
        ),
        // What a search needs of its data, checked before the daemon takes a config (validate,
        // serve's start, a reload switching searches): a config problem, exit 2.
        tiny_data_case(
            "validate_data_path_missing",
            VALIDATE,
            &[("data.path", "\"nodata\"")],
            "No such file or directory",
            &["data.path = nodata", "nodata/train-images-idx3-ubyte.gz"],
        ),
        case(
            "validate_run_dir_under_a_file",
            USAGE,
            "is not a directory, so no search directory can be made under it",
            &["run.dir", "afile"],
            |dir| {
                write(&dir.join("afile"), b"not a directory");
                write_tiny_search(dir, &[("run.dir", "\"afile/runs\"")]);
                cmd(&["validate", "--config", "bad.toml"])
            },
        ),
        tiny_data_case(
            "validate_dataset_a_search_cannot_read",
            VALIDATE,
            &[("data.dataset", "\"imagenet\"")],
            "a search reads its dataset into memory",
            &["data.dataset", "imagenet"],
        ),
        // No filesystem holds a trillion checkpoints: refused before the first generation,
        // its run directory removed (run.dir itself, `runs`, stays made).
        Case {
            may_change: &["runs"],
            ..tiny_data_case(
                "search_without_room_for_its_checkpoints",
                SEARCH,
                &[("run.keep_checkpoints", "1000000000000"), ("search.generations", "1000000000000")],
                "are needed for 1000000000000 more checkpoint(s)",
                &["run.keep_checkpoints", "runs/"],
            )
        },
        // In a --run-dir that was there, only what the search wrote goes; the user's file stays.
        Case {
            may_change: &["mine/config.json", "mine/best", "mine/checkpoints", "mine/stop-checkpoint"],
            ..case(
                "search_without_room_in_an_existing_run_dir",
                RUNTIME,
                "are needed for 1000000000000 more checkpoint(s)",
                &["run.keep_checkpoints", "mine/checkpoints"],
                |dir| {
                    let huge =
                        [("run.keep_checkpoints", "1000000000000"), ("search.generations", "1000000000000")];
                    write_tiny_search(dir, &huge);
                    fs::create_dir(dir.join("mine")).unwrap();
                    write(&dir.join("mine/notes.txt"), b"mine");
                    cmd(&["search", "--quiet", "--config", "bad.toml", "--run-dir", "mine"])
                },
            )
        },
        // The same for training the found cells: refused before the first epoch.
        Case {
            may_change: &["out"],
            ..case(
                "train_without_room_for_its_checkpoints",
                RUNTIME,
                "are needed for 1000000000000 more checkpoint(s)",
                &["final_training.keep_checkpoints", "out/checkpoints"],
                |dir| {
                    write_tiny_cifar10(&dir.join("cifar"), 40);
                    write(&dir.join("cifar/test_batch.bin"), &cifar10_bytes(&[0, 1, 2, 3]));
                    let mut c =
                        cmd(&["train", "--genotype", "EvNAS-A", "--dataset", "cifar10", "--data", "cifar"]);
                    c.args(["--epochs", "1000000000000", "--init-channels", "4", "--layers", "5"]);
                    c.args(["--batch-size", "8"]);
                    c.args(["--device", "cpu", "--quiet", "--run-dir", "out"]);
                    c.args(["--set", "final_training.keep_checkpoints=1000000000000"]);
                    c
                },
            )
        },
        // A search whose result cannot be trained is refused before it runs, not after it.
        tiny_data_case(
            "validate_final_training_of_an_untrainable_result",
            VALIDATE,
            &[("final_training.enabled", "true")],
            "reads 8x8 feature maps",
            &["final_training.enabled"],
        ),
        tiny_data_case(
            "search_then_train_of_an_untrainable_result",
            (USAGE, &["search", "--quiet", "--config", "bad.toml", "--then-train", "--run-dir", "r"]),
            &[],
            "reads 8x8 feature maps",
            &["--then-train", "final_training.auxiliary"],
        ),
        tiny_data_case(
            "validate_split_leaves_nothing_to_train",
            VALIDATE,
            &[("data.train_portion", "0.001")],
            "into 0 to train the supernet and 192 to measure fitness",
            &["data.train_portion"],
        ),
    ]
}

/// The 192 images of [`TINY`]'s dataset in `dir/data`.
fn write_tiny_data(dir: &Path) {
    fs::create_dir_all(dir.join("data")).unwrap();
    write_tiny_fashion_mnist(&dir.join("data"), 192);
}

/// [`write_tiny_data`], and [`TINY`] with `changes` in `dir/bad.toml`.
fn write_tiny_search(dir: &Path, changes: &[(&str, &str)]) {
    write_tiny_data(dir);
    write(&dir.join("bad.toml"), tiny_toml(changes).as_bytes());
}

/// `evnas ARGS` on [`TINY`] (in `bad.toml`) with `changes`, its 192 images in `data`.
fn tiny_data_case(
    name: &'static str,
    (code, args): (i32, &'static [&'static str]),
    changes: &'static [(&'static str, &'static str)],
    cause: &'static str,
    named: &'static [&'static str],
) -> Case {
    case(name, code, cause, named, move |dir| {
        write_tiny_search(dir, changes);
        cmd(args)
    })
}

/// A search that cannot start, found once its supernet is built (exit 1).
const SEARCH: (i32, &[&str]) = (RUNTIME, &["search", "--quiet", "--config", "bad.toml"]);
/// What `evnas validate` refuses (exit 2).
const VALIDATE: (i32, &[&str]) = (USAGE, &["validate", "--config", "bad.toml"]);

// ---------------------------------------------------------------------------------------------
// Command lines

fn cli_cases() -> Vec<Case> {
    vec![
        case(
            "cli_unknown_subcommand",
            USAGE,
            "unrecognized subcommand 'frobnicate'",
            &["frobnicate"],
            |_| cmd(&["frobnicate"]),
        ),
        case("cli_unknown_flag", USAGE, "unexpected argument '--bogus'", &["--bogus"], |_| {
            cmd(&["search", "--bogus"])
        }),
        case(
            "cli_missing_required_argument",
            USAGE,
            "the following required arguments were not provided",
            &["--weights"],
            |_| cmd(&["eval", "--genotype", "EvNAS-A"]),
        ),
        case("cli_bad_enum_value", USAGE, "invalid value 'mnist'", &["--dataset"], |_| {
            cmd(&["info", "--genotype", "EvNAS-A", "--dataset", "mnist"])
        }),
        case("cli_not_a_number", USAGE, "invalid value 'many'", &["--layers"], |_| {
            cmd(&["info", "--genotype", "EvNAS-A", "--layers", "many"])
        }),
        case("cli_conflicting_flags", USAGE, "cannot be used with", &["--resume", "--set"], |_| {
            cmd(&["search", "--resume", "run", "--set", "search.seed=1"])
        }),
        case("cli_eval_unknown_dataset", USAGE, "unknown dataset", &["mnist2"], |dir| {
            copy_fixture(EVNAS_A_C4_L5, &dir.join("w.pt"));
            cmd(&["eval", "--genotype", "EvNAS-A", "--weights", "w.pt", "--dataset", "mnist2", "--data", "."])
        }),
        case("cli_info_odd_init_channels", USAGE, "positive even number", &["--init-channels"], |_| {
            cmd(&["info", "--genotype", "EvNAS-A", "--init-channels", "3"])
        }),
        case(
            "cli_compare_plot_not_svg",
            USAGE,
            "expected a file name ending in .svg",
            &["run/generations.jsonl"],
            |_| cmd(&["compare", "run", "--out", "run/generations.jsonl"]),
        ),
        case("cli_eval_batch_of_none", USAGE, "expected a number of at least 1", &["--batch-size"], |_| {
            cmd(&[
                "eval",
                "--genotype",
                "EvNAS-A",
                "--weights",
                "w.pt",
                "--dataset",
                "cifar10",
                "--batch-size",
                "0",
            ])
        }),
        case(
            "cli_export_unknown_device",
            USAGE,
            "expected cpu, auto, cuda or cuda:N",
            &["--device", "gpu0"],
            |_| {
                let mut c =
                    cmd(&["export", "--genotype", "EvNAS-A", "--weights", "w.pt", "--format", "torchscript"]);
                c.args(["--dataset", "cifar10", "--out", "m.pt", "--device", "gpu0"]);
                c
            },
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// Output files

/// `evnas export` of EvNAS-A (C=4, 5 layers) with its weights in `w.pt`, as `format` to `out`.
fn export_command(dir: &Path, format: &str, out: &str) -> Command {
    copy_fixture(EVNAS_A_C4_L5, &dir.join("w.pt"));
    let mut c = cmd(&["export", "--genotype", "EvNAS-A", "--weights", "w.pt", "--dataset", "cifar10"]);
    c.args(["--init-channels", "4", "--layers", "5", "--format", format, "--out", out]);
    c
}

/// What a training run's directory holds after an epoch, as far as telling it apart goes.
fn write_training_run_files(run: &Path) {
    fs::create_dir_all(run.join("weights")).unwrap();
    write(&run.join("config.json"), b"{}");
    write(&run.join("epochs.jsonl"), b"{}\n");
}

fn output_cases() -> Vec<Case> {
    vec![
        case("export_onto_a_directory", RUNTIME, "is a directory", &["out"], |dir| {
            fs::create_dir(dir.join("out")).unwrap();
            export_command(dir, "safetensors", "out")
        }),
        case("export_into_a_missing_directory", RUNTIME, "does not exist", &["nodir/m.pt"], |dir| {
            export_command(dir, "torchscript", "nodir/m.pt")
        }),
        case("export_over_the_weights_it_reads", RUNTIME, "is the weights file it reads", &["w.pt"], |dir| {
            export_command(dir, "torchscript", "w.pt")
        }),
        case(
            "search_into_a_directory_another_run_left",
            RUNTIME,
            "holds timings.jsonl but no config.json",
            &["old"],
            |dir| {
                write_tiny_data(dir);
                fs::create_dir(dir.join("old")).unwrap();
                write(&dir.join("old/timings.jsonl"), b"{}\n");
                valid_config_command(dir, &["--run-dir", "old"])
            },
        ),
        case(
            "train_into_a_directory_another_run_left",
            RUNTIME,
            "holds epochs.jsonl but no config.json",
            &["old"],
            |dir| {
                fs::create_dir(dir.join("old")).unwrap();
                write(&dir.join("old/epochs.jsonl"), b"{}\n");
                let mut c =
                    cmd(&["train", "--genotype", "EvNAS-A", "--dataset", "fashion-mnist", "--data", "d"]);
                c.args(["--no-auxiliary", "--epochs", "1", "--run-dir", "old", "--quiet"]);
                c
            },
        ),
        case("search_resume_of_a_training_run", RUNTIME, "it holds a training run", &["t"], |dir| {
            write_training_run_files(&dir.join("t"));
            cmd(&["search", "--quiet", "--resume", "t"])
        }),
        case("train_resume_of_a_search", RUNTIME, "holds a search, not a training run", &["s"], |dir| {
            fs::create_dir_all(dir.join("s/best")).unwrap();
            write(&dir.join("s/config.json"), b"{}");
            cmd(&["train", "--quiet", "--resume", "s"])
        }),
        // Its run directory, made before the data is read, goes again: the same command, mended,
        // starts it (only the mtime of the directory that held it changes).
        Case {
            may_change: &["."],
            ..case(
                "train_with_its_data_missing",
                RUNTIME,
                "No such file or directory",
                &["nodata/train-images-idx3-ubyte"],
                |_| {
                    let mut c = cmd(&["train", "--genotype", "EvNAS-A", "--dataset", "fashion-mnist"]);
                    c.args([
                        "--data",
                        "nodata",
                        "--no-auxiliary",
                        "--epochs",
                        "1",
                        "--run-dir",
                        "t",
                        "--quiet",
                    ]);
                    c
                },
            )
        },
        // Settings that cannot be trained are the command line's fault (exit 2), named as typed.
        case(
            "train_auxiliary_head_on_28x28_images",
            USAGE,
            "reads 8x8 feature maps",
            &["final_training.auxiliary", "--no-auxiliary"],
            |_| {
                let mut c = cmd(&["train", "--genotype", "EvNAS-A", "--dataset", "fashion-mnist"]);
                c.args(["--data", "d", "--epochs", "1", "--run-dir", "t", "--quiet"]);
                c
            },
        ),
        Case {
            may_change: &["."],
            ..case(
                "train_subset_beyond_the_training_set",
                USAGE,
                "asks for more images than the training set's 40",
                &["final_training.train_subset"],
                |dir| {
                    write_tiny_cifar10(&dir.join("cifar"), 40);
                    write(&dir.join("cifar/test_batch.bin"), &cifar10_bytes(&[0, 1, 2, 3]));
                    let mut c =
                        cmd(&["train", "--genotype", "EvNAS-A", "--dataset", "cifar10", "--data", "cifar"]);
                    c.args(["--train-subset", "41", "--epochs", "1", "--run-dir", "t", "--quiet"]);
                    c
                },
            )
        },
        case("train_as_a_process_of_a_job", USAGE, "evnas train runs as one process", &["rank 1"], |_| {
            let mut c =
                cmd(&["train", "--genotype", "EvNAS-A", "--dataset", "fashion-mnist", "--no-auxiliary"]);
            c.env("WORLD_SIZE", "2")
                .env("RANK", "1")
                .env("MASTER_ADDR", "127.0.0.1")
                .env("MASTER_PORT", "29500");
            c
        }),
        case("train_flag_out_of_range", USAGE, "must be at least 1", &["--epochs 0"], |_| {
            cmd(&["train", "--genotype", "EvNAS-A", "--dataset", "fashion-mnist", "--epochs", "0"])
        }),
    ]
}

// ---------------------------------------------------------------------------------------------
// Run directories and checkpoints

/// A finished 1-generation tiny search in `dir/run` whose newest checkpoint is its only one;
/// returns that checkpoint's directory.
fn finished_run(dir: &Path) -> PathBuf {
    tiny_setup(dir, 1);
    run_ok(evnas().args(["search", "--quiet", "--config", "tiny.toml", "--run-dir", "run"]).current_dir(dir));
    only_checkpoint(&dir.join("run"))
}

/// Removes every checkpoint of `run` but the newest and returns the newest.
fn only_checkpoint(run: &Path) -> PathBuf {
    let mut all: Vec<PathBuf> = fs::read_dir(run.join("checkpoints"))
        .expect("checkpoints dir")
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("gen-"))
        .collect();
    all.sort();
    let newest = all.pop().expect("a checkpoint");
    for old in all {
        fs::remove_dir_all(old).unwrap();
    }
    newest
}

fn resume() -> Command {
    cmd(&["search", "--quiet", "--resume", "run"])
}

/// Sets the manifest entry of `name` in checkpoint `dir` to `size` and `sha256`.
fn set_manifest_entry(dir: &Path, name: &str, size: Option<u64>, sha256: &str) {
    let path = dir.join("manifest.json");
    let mut manifest: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    let files = manifest["files"].as_array_mut().expect("manifest files");
    let entry = files.iter_mut().find(|f| f["name"] == name).expect("manifest entry");
    entry["sha256"] = sha256.into();
    if let Some(size) = size {
        entry["size"] = size.into();
    }
    write(&path, serde_json::to_string_pretty(&manifest).unwrap().as_bytes());
}

fn copy_flat_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

fn run_dir_cases() -> Vec<Case> {
    vec![
        case("resume_dir_without_config_json", RUNTIME, "no config.json", &["empty_run"], |dir| {
            fs::create_dir(dir.join("empty_run")).unwrap();
            cmd(&["search", "--quiet", "--resume", "empty_run"])
        }),
        case("search_run_dir_already_holds_a_run", RUNTIME, "already holds a run", &["taken_run"], |dir| {
            write_tiny_data(dir);
            fs::create_dir(dir.join("taken_run")).unwrap();
            write(&dir.join("taken_run/config.json"), b"{}");
            valid_config_command(dir, &["--run-dir", "taken_run"])
        }),
        case("search_unavailable_cuda_device", RUNTIME, "CUDA device(s) available", &["cuda:99"], |dir| {
            write_tiny_data(dir);
            valid_config_command(dir, &["--device", "cuda:99"])
        }),
        case("compare_garbled_config_json", RUNTIME, "missing field `search`", &["r1/config.json"], |dir| {
            fs::create_dir(dir.join("r1")).unwrap();
            write(&dir.join("r1/config.json"), b"{}");
            cmd(&["compare", "r1"])
        }),
        case("resume_garbled_config_json", RUNTIME, "EOF while parsing", &["run/config.json"], |dir| {
            fs::create_dir(dir.join("run")).unwrap();
            write(&dir.join("run/config.json"), b"{\"search\": {");
            resume()
        }),
        case(
            "resume_only_checkpoint_truncated",
            RUNTIME,
            "file supernet.safetensors has",
            &["run/checkpoints/gen-"],
            |dir| {
                let newest = finished_run(dir);
                let path = newest.join("supernet.safetensors");
                let bytes = fs::read(&path).unwrap();
                write(&path, &bytes[..bytes.len() / 2]);
                resume()
            },
        ),
        case(
            "resume_manifest_sha256_mismatch",
            RUNTIME,
            "has sha256",
            &["run/checkpoints/gen-", "supernet.safetensors"],
            |dir| {
                let newest = finished_run(dir);
                set_manifest_entry(&newest, "supernet.safetensors", None, &"0".repeat(64));
                resume()
            },
        ),
        case(
            "resume_truncated_weights_with_matching_manifest",
            RUNTIME,
            "incomplete metadata",
            &["run/checkpoints/gen-", "supernet.safetensors"],
            |dir| {
                let newest = finished_run(dir);
                let path = newest.join("supernet.safetensors");
                let bytes = fs::read(&path).unwrap();
                let cut = &bytes[..bytes.len() / 2];
                write(&path, cut);
                set_manifest_entry(&newest, "supernet.safetensors", Some(cut.len() as u64), &sha256(cut));
                resume()
            },
        ),
        case(
            "resume_checkpoint_of_another_config",
            RUNTIME,
            "was written with config digest",
            &["run/checkpoints/gen-"],
            |dir| {
                let newest = finished_run(dir);
                run_ok(
                    evnas()
                        .args(["search", "--quiet", "--config", "tiny.toml", "--run-dir", "other"])
                        .args(["--set", "search.seed=8"])
                        .current_dir(dir),
                );
                let theirs = only_checkpoint(&dir.join("other"));
                fs::remove_dir_all(&newest).unwrap();
                copy_flat_dir(&theirs, &newest);
                resume()
            },
        ),
        case("resume_with_another_config_file", RUNTIME, "config differs", &["other.toml"], |dir| {
            finished_run(dir);
            let text = fs::read_to_string(dir.join("tiny.toml")).unwrap();
            write(&dir.join("other.toml"), text.replace("seed = 7", "seed = 8").as_bytes());
            cmd(&["search", "--quiet", "--resume", "run", "--config", "other.toml"])
        }),
    ]
}

fn sha256(bytes: &[u8]) -> String {
    evnas::checkpoint::sha256_hex(bytes)
}

// ---------------------------------------------------------------------------------------------
// The runner

#[derive(Debug, PartialEq)]
struct Entry {
    dir: bool,
    len: u64,
    modified: Option<SystemTime>,
}

/// Every file and directory under `root` (relative paths), with size and mtime; run locks left out.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Entry> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Entry>) {
        let Ok(entries) = fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = fs::symlink_metadata(&path) else { continue };
            // A run's lock names whoever took it last (a failed resume too): no run state.
            if path.file_name() == Some(std::ffi::OsStr::new(evnas::run_lock::LOCK_FILE)) {
                continue;
            }
            let relative = path.strip_prefix(root).unwrap().to_path_buf();
            out.insert(
                relative,
                Entry { dir: meta.is_dir(), len: meta.len(), modified: meta.modified().ok() },
            );
            if meta.is_dir() {
                walk(root, &path, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    if let Ok(meta) = fs::metadata(root) {
        out.insert(PathBuf::from("."), Entry { dir: true, len: 0, modified: meta.modified().ok() });
    }
    walk(root, root, &mut out);
    out
}

/// What changed between two snapshots, leaving out `may_change` (and the mtimes of the
/// directories holding them).
fn changes(
    before: &BTreeMap<PathBuf, Entry>,
    after: &BTreeMap<PathBuf, Entry>,
    may_change: &[&str],
) -> Vec<String> {
    let allowed = |p: &Path| may_change.iter().any(|m| p.starts_with(m));
    let holds_allowed =
        |p: &Path| p == Path::new(".") || may_change.iter().any(|m| Path::new(m).starts_with(p));
    let mut out = Vec::new();
    for (path, entry) in after {
        if allowed(path) {
            continue;
        }
        match before.get(path) {
            None => out.push(format!("created {}", path.display())),
            Some(old) if old == entry => {}
            Some(old) if old.dir && entry.dir && holds_allowed(path) && !may_change.is_empty() => {}
            Some(old) if old.dir && entry.dir => {
                out.push(format!("directory {} modified (an entry was added or removed)", path.display()))
            }
            Some(_) => out.push(format!("changed {}", path.display())),
        }
    }
    for path in before.keys() {
        if !after.contains_key(path) && !allowed(path) {
            out.push(format!("removed {}", path.display()));
        }
    }
    out
}

fn shell_word(word: &str) -> String {
    if !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@".contains(c)) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

fn command_line(cmd: &Command) -> String {
    let mut words: Vec<String> = cmd
        .get_envs()
        .filter_map(|(k, v)| {
            v.map(|v| format!("{}={}", k.to_string_lossy(), shell_word(&v.to_string_lossy())))
        })
        .collect();
    words.push("evnas".into());
    words.extend(cmd.get_args().map(|a| shell_word(&a.to_string_lossy())));
    words.join(" ")
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

/// Runs one case; returns its report when any assertion fails.
fn run_case(case: &Case) -> Option<String> {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let mut command = match catch_unwind(AssertUnwindSafe(|| (case.build)(dir))) {
        Ok(c) => c,
        Err(panic) => {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            return Some(format!("--- {}: SET-UP FAILED: {why}\n", case.name));
        }
    };
    command.current_dir(dir);
    let own: Vec<String> = command.get_envs().map(|(k, _)| k.to_string_lossy().into_owned()).collect();
    for (key, _) in std::env::vars() {
        if key.starts_with("EVNAS") && !own.contains(&key) {
            command.env_remove(&key);
        }
    }
    let before = snapshot(dir);
    let out = command.output().expect("run evnas");
    let after = snapshot(dir);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();

    let mut failed = Vec::new();
    // 1. Exit code.
    let code = out.status.code();
    if code != Some(case.code) {
        failed.push(format!("exit code {code:?}, expected {}", case.code));
    }
    // 2. The cause, once.
    let n = count(&stderr, case.cause);
    if n != 1 {
        failed.push(format!("cause {:?} appears {n} times in stderr, expected exactly once", case.cause));
    }
    // 3. The file or field at fault, as given.
    let absolute = [dir.to_path_buf(), dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf())];
    for named in &case.named {
        if !stderr.contains(named) {
            failed.push(format!("stderr does not name {named:?}"));
        }
        if stderr.contains(&format!("../{named}")) {
            failed.push(format!("stderr names {named:?} by a ../ path, not as given"));
        }
        if absolute.iter().any(|a| stderr.contains(&a.join(named).display().to_string())) {
            failed.push(format!("stderr names {named:?} by its absolute path, not as given"));
        }
    }
    // 4. One clean error report.
    if !stderr.starts_with("error: ") {
        failed.push("stderr does not start with \"error: \"".into());
    }
    if stderr.lines().any(|l| l.contains("panicked")) {
        failed.push("stderr has a line with \"panicked\"".into());
    }
    if stderr.contains("(os error ") {
        failed.push("stderr keeps an \"(os error N)\" suffix".into());
    }
    // 5. Nothing written.
    for change in changes(&before, &after, case.may_change) {
        failed.push(format!("wrote where it had no business: {change}"));
    }

    if failed.is_empty() {
        return None;
    }
    let tmp_text = dir.display().to_string();
    let mut report = format!("--- {}\n", case.name);
    let _ = writeln!(report, "command: cd $TMP && {}", command_line(&command));
    let _ = writeln!(report, "exit code: {code:?} (expected {})", case.code);
    let _ = writeln!(report, "stderr:");
    for line in stderr.replace(&tmp_text, "$TMP").lines() {
        let _ = writeln!(report, "  | {line}");
    }
    let _ = writeln!(report, "failed:");
    for f in failed {
        let _ = writeln!(report, "  - {f}");
    }
    Some(report)
}

fn all_cases() -> Vec<Case> {
    let mut cases = config_cases();
    cases.extend(genotype_cases());
    cases.extend(weights_cases());
    cases.extend(dataset_cases());
    cases.extend(cli_cases());
    cases.extend(output_cases());
    cases.extend(run_dir_cases());
    cases
}

#[test]
fn bad_inputs_are_rejected_clearly() {
    let cases = all_cases();
    let mut names: Vec<&str> = cases.iter().map(|c| c.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), cases.len(), "case names must be unique");

    let reports: Vec<String> = cases.iter().filter_map(run_case).collect();
    for report in &reports {
        println!("{report}");
    }
    println!("{} of {} bad-input cases failed", reports.len(), cases.len());
    assert!(
        reports.is_empty(),
        "{} of {} bad-input cases failed (reports above)",
        reports.len(),
        cases.len()
    );
}
