//! Images/s of DARTS supernet training and fitness evaluation on this machine's CPU, through the
//! same library calls the search makes (`train_epoch`: forward, loss, backward, gradient
//! clipping, SGD; `evaluate_individual`: no-grad forward with batch-statistics BatchNorm), for the
//! CPU default (C=8, 5 cells, 1x28x28) and the paper-sized supernet (C=16, 8 cells, 3x32x32); the
//! bf16 fitness option beside fp32, with the Kendall tau between the two fitness rankings of a
//! random population on a briefly trained supernet (Fashion-MNIST when installed).
//!
//! A benchmark, not a test: nothing is asserted. `scripts/bench/supernet_vs_reference.sh` runs it
//! beside the reference PyTorch code on the same configs and checks logits parity.
//!
//! `cargo bench --bench supernet_throughput -- [--config default|paper|all] [--iters N]
//!  [--threads T] [--fitness-workers W] [--layout channels-last|nchw|both] [--tau N]
//!  [--tau-train-batches B] [--tau-images M] [--no-bf16] [--bf16-batch B] [--parity FILE] [--json]`
//!
//! "fitness" is the search's fitness phase: W individuals measured at once, one thread each
//! (run.fitness_workers; W = 0, the default, decides as the search does: one per thread for a
//! supernet narrower than 16 channels, else 1); "1 indiv." is one individual on all T threads,
//! as the reference measures.
//!
//! bf16 evaluation is timed on batches of `--bf16-batch` images (default 16): on CPUs without
//! AVX-512 BF16 libtorch's bf16 depthwise convolutions are very slow and a full fitness batch
//! would dominate the run.

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use evnas::data::{read_mnist_like, Batch, DatasetKind, SplitName, DEFAULT_FASHION_MNIST_DIR};
use evnas::model::{ArchWeights, OneShotModel, Supernet, SupernetConfig};
use evnas::space::{decode, AlphaMatrix};
use evnas::stop::StopFlag;
use evnas::train::fitness::{evaluate_in_parallel, evaluate_individual, EvalBatch, FitnessJob, Replica};
use evnas::train::reduced_precision::{kendall_tau, Bf16Shadow};
use evnas::train::sgd::{Sgd, SgdConfig};
use evnas::train::supernet_epoch::{train_epoch, EpochSettings};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{nn::VarStore, Device, Kind, Tensor};

/// One benchmarked shape.
#[derive(Clone, Copy)]
struct Setup {
    name: &'static str,
    config: SupernetConfig,
    hw: i64,
    train_batch: i64,
    eval_batch: i64,
}

const SETUPS: [Setup; 2] = [
    // config/evnas.toml: Fashion-MNIST, batch 64, fitness batch 512.
    Setup {
        name: "default",
        config: SupernetConfig {
            init_channels: 8,
            layers: 5,
            in_channels: 1,
            num_classes: 10,
            steps: 4,
            multiplier: 4,
            stem_multiplier: 3,
        },
        hw: 28,
        train_batch: 64,
        eval_batch: 512,
    },
    // The paper's CIFAR-10 search supernet.
    Setup {
        name: "paper",
        config: SupernetConfig {
            init_channels: 16,
            layers: 8,
            in_channels: 3,
            num_classes: 10,
            steps: 4,
            multiplier: 4,
            stem_multiplier: 3,
        },
        hw: 32,
        train_batch: 64,
        eval_batch: 256,
    },
];

struct Args {
    configs: Vec<Setup>,
    iters: usize,
    threads: i32,
    layouts: Vec<bool>,
    tau_individuals: usize,
    tau_train_batches: usize,
    tau_images: i64,
    bf16: bool,
    bf16_batch: i64,
    parity: Option<PathBuf>,
    json: bool,
    fitness_workers: usize,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        configs: SETUPS.to_vec(),
        iters: 1,
        threads: 2,
        layouts: vec![true],
        // Small defaults keep `cargo bench` near two minutes on a 2-core CPU without bf16
        // hardware; the comparison script asks for more.
        tau_individuals: 4,
        tau_train_batches: 2,
        tau_images: 32,
        bf16: true,
        bf16_batch: 16,
        parity: None,
        json: false,
        fitness_workers: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            // cargo bench passes --bench to harness = false targets.
            "--bench" => {}
            "--config" => {
                let v = value()?;
                args.configs = SETUPS.iter().copied().filter(|s| v == "all" || s.name == v).collect();
                if args.configs.is_empty() {
                    bail!("unknown --config {v} (default, paper, all)");
                }
            }
            "--iters" => args.iters = value()?.parse()?,
            "--threads" => args.threads = value()?.parse()?,
            "--layout" => {
                args.layouts = match value()?.as_str() {
                    "channels-last" => vec![true],
                    "nchw" => vec![false],
                    "both" => vec![false, true],
                    other => bail!("unknown --layout {other}"),
                }
            }
            "--tau" => args.tau_individuals = value()?.parse()?,
            "--tau-train-batches" => args.tau_train_batches = value()?.parse()?,
            "--tau-images" => args.tau_images = value()?.parse()?,
            "--no-bf16" => args.bf16 = false,
            "--bf16-batch" => args.bf16_batch = value()?.parse()?,
            "--parity" => args.parity = Some(PathBuf::from(value()?)),
            "--json" => args.json = true,
            "--fitness-workers" => args.fitness_workers = value()?.parse()?,
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(args)
}

fn cpu() -> (Kind, Device) {
    (Kind::Float, Device::Cpu)
}

/// `count` random individuals (α ~ U[0,1)), decoded as the search decodes them.
fn population(count: usize, seed: u64) -> Result<Vec<ArchWeights>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..count)
        .map(|_| {
            let decoded = (0..2)
                .map(|_| Ok(decode(&AlphaMatrix::random(14, 8, &mut rng), 4)?))
                .collect::<Result<Vec<_>>>()?;
            Ok(ArchWeights::from_matrices(&decoded)?)
        })
        .collect()
}

fn build(setup: &Setup, channels_last: bool, seed: i64) -> (VarStore, Supernet) {
    tch::manual_seed(seed);
    let vs = VarStore::new(Device::Cpu);
    let mut net = Supernet::new(&vs.root(), setup.config);
    if channels_last {
        net.use_channels_last();
    }
    (vs, net)
}

fn bf16_shadow(setup: &Setup, channels_last: bool, fp32: &VarStore) -> Result<Bf16Shadow> {
    let (vs, net) = build(setup, channels_last, 0);
    let mut shadow = Bf16Shadow::new(vs, Box::new(net));
    shadow.refresh_from(fp32)?;
    Ok(shadow)
}

fn random_batch(setup: &Setup, n: i64) -> (Tensor, Tensor) {
    let c = setup.config.in_channels;
    (Tensor::randn([n, c, setup.hw, setup.hw], cpu()), Tensor::randint(10, [n], (Kind::Int64, Device::Cpu)))
}

const SGD: SgdConfig = SgdConfig { momentum: 0.9, weight_decay: 3e-4 };

/// Images/s of `train_epoch` over `iters` batches (after one warm-up batch).
fn train_throughput(model: &dyn OneShotModel, vs: &VarStore, setup: &Setup, iters: usize) -> Result<f64> {
    let (images, labels) = random_batch(setup, setup.train_batch);
    let mut opt = Sgd::new(vs, SGD);
    let stop = StopFlag::new();
    let architectures = population(2, 1)?;
    let settings = EpochSettings { lr: 0.025, grad_clip: 5.0, architectures: &architectures, stop: &stop };
    let batches = |count: usize| {
        (0..count).map(|index| {
            Ok::<_, std::convert::Infallible>(Batch {
                images: images.shallow_clone(),
                labels: labels.shallow_clone(),
                index,
            })
        })
    };
    train_epoch(model, &mut opt, &settings, batches(1), |_: &_| {})?;
    let report = train_epoch(model, &mut opt, &settings, batches(iters), |_: &_| {})?;
    Ok((setup.train_batch as usize * iters) as f64 / report.elapsed.as_secs_f64())
}

/// Images/s of `evaluate_individual` over `iters` batches (after one warm-up batch).
fn eval_throughput(model: &dyn OneShotModel, setup: &Setup, batch_size: i64, iters: usize) -> Result<f64> {
    let (images, labels) = random_batch(setup, batch_size);
    let batch = EvalBatch { images, labels };
    let stop = StopFlag::new();
    let arch = &population(1, 2)?[0];
    evaluate_individual(model, arch, [Ok::<_, Infallible>(&batch)], true, &stop)?;
    let started = Instant::now();
    evaluate_individual(model, arch, std::iter::repeat_n(Ok::<_, Infallible>(&batch), iters), true, &stop)?;
    Ok((batch_size as usize * iters) as f64 / started.elapsed().as_secs_f64())
}

/// Images/s of the search's fitness phase with `workers` fitness workers (run.fitness_workers):
/// `workers` individuals of `iters` batches each, measured at once, each worker on its own copy
/// of `vs`'s weights and one libtorch thread (after a warm-up individual per worker).
fn parallel_eval_throughput(
    vs: &VarStore,
    setup: &Setup,
    channels_last: bool,
    workers: usize,
    iters: usize,
) -> Result<f64> {
    let mut replicas = (0..workers)
        .map(|_| {
            let (mut replica_vs, model) = build(setup, channels_last, 0);
            replica_vs.copy(vs)?;
            Ok(Replica { vs: replica_vs, model: Box::new(model) })
        })
        .collect::<Result<Vec<_>>>()?;
    let (images, labels) = random_batch(setup, setup.eval_batch);
    let batch = EvalBatch { images, labels };
    let stop = StopFlag::new();
    let archs = population(workers, 2)?;
    let jobs = |batches: usize| {
        archs
            .iter()
            .enumerate()
            .map(|(index, arch)| {
                Ok::<_, anyhow::Error>(FitnessJob {
                    id: index as u64,
                    architecture: arch.clone(),
                    batches: Box::new(
                        (0..batches).map(|_| Ok(batch.shallow_clone())).collect::<Vec<_>>().into_iter(),
                    ),
                })
            })
            .collect::<Vec<_>>()
    };
    evaluate_in_parallel(&mut replicas, jobs(1), true, &stop, |_, _| Ok(()))?;
    let started = Instant::now();
    evaluate_in_parallel(&mut replicas, jobs(iters), true, &stop, |_, _| Ok(()))?;
    Ok((setup.eval_batch as usize * iters * workers) as f64 / started.elapsed().as_secs_f64())
}

/// Fashion-MNIST training images (normalised) and labels, or random ones when not installed.
fn images_for_tau(setup: &Setup, count: i64) -> Result<(Tensor, Tensor, &'static str)> {
    let dir = Path::new(DEFAULT_FASHION_MNIST_DIR);
    if setup.name != "default" || !dir.exists() {
        let (x, y) = random_batch(setup, count);
        return Ok((x, y, "random"));
    }
    let data = read_mnist_like(dir, SplitName::Train, 10)?;
    let n = (count as usize).min(data.len());
    let pixels = Tensor::from_slice(&data.pixels()[..n * data.image_len()]);
    let norm = DatasetKind::FashionMnist.normalization();
    let x = (pixels.to_kind(Kind::Float) / 255.0 - f64::from(norm.mean[0])) / f64::from(norm.std[0]);
    let labels = Tensor::from_slice(&data.labels()[..n]);
    Ok((x.view([n as i64, 1, 28, 28]), labels, "fashion-mnist"))
}

struct TauResult {
    tau_top1: Option<f64>,
    tau_loss: Option<f64>,
    individuals: usize,
    images: i64,
    data: &'static str,
}

/// Trains `train_batches` batches through a random population, then ranks the population by
/// fp32 and by bf16 fitness on the same held-out images.
fn fitness_tau(setup: &Setup, channels_last: bool, args: &Args) -> Result<TauResult> {
    let train_images = setup.train_batch * args.tau_train_batches as i64;
    let (x, y, data) = images_for_tau(setup, train_images + args.tau_images)?;
    let (vs, net) = build(setup, channels_last, 0);
    let individuals = population(args.tau_individuals, 3)?;
    let stop = StopFlag::new();
    let mut opt = Sgd::new(&vs, SGD);
    let settings = EpochSettings { lr: 0.025, grad_clip: 5.0, architectures: &individuals, stop: &stop };
    let batches = (0..args.tau_train_batches).map(|i| {
        let rows = (i as i64 * setup.train_batch, setup.train_batch);
        Ok::<_, std::convert::Infallible>(Batch {
            images: x.narrow(0, rows.0, rows.1),
            labels: y.narrow(0, rows.0, rows.1),
            index: i,
        })
    });
    train_epoch(&net, &mut opt, &settings, batches, |_: &_| {})?;
    let held_out = x.size()[0] - train_images;
    let valid: Vec<EvalBatch> = (0..held_out)
        .step_by(setup.eval_batch as usize)
        .map(|start| {
            let len = setup.eval_batch.min(held_out - start);
            EvalBatch {
                images: x.narrow(0, train_images + start, len),
                labels: y.narrow(0, train_images + start, len),
            }
        })
        .collect();
    let shadow = bf16_shadow(setup, channels_last, &vs)?;
    let (mut top1, mut loss) = ([Vec::new(), Vec::new()], [Vec::new(), Vec::new()]);
    for arch in &individuals {
        for (k, model) in [&net as &dyn OneShotModel, &shadow].into_iter().enumerate() {
            let tally = evaluate_individual(model, arch, valid.iter().map(Ok::<_, Infallible>), true, &stop)?;
            top1[k].push(tally.top1());
            // Lower loss is better: negate so both lists rank "higher is fitter".
            loss[k].push(-tally.mean_loss());
        }
    }
    Ok(TauResult {
        tau_top1: kendall_tau(&top1[0], &top1[1]),
        tau_loss: kendall_tau(&loss[0], &loss[1]),
        individuals: individuals.len(),
        images: held_out,
        data,
    })
}

/// Max |logits_evnas - logits_reference| on the reference's weights, input and α, and the
/// largest difference of a weight gradient of the training loss relative to that weight's largest
/// reference gradient (a file written by scripts/bench/reference_supernet_throughput.py
/// --parity-out).
fn parity(path: &Path, channels_last: bool) -> Result<(String, f64, f64)> {
    let entries: std::collections::HashMap<String, Tensor> = Tensor::loadz_multi(path)
        .with_context(|| format!("reading {}", path.display()))?
        .into_iter()
        .collect();
    let get = |k: &str| entries.get(k).with_context(|| format!("{} has no {k}", path.display()));
    let shape = Vec::<i64>::try_from(get("config")?)?;
    let &[c, layers, in_channels, classes] = shape.as_slice() else { bail!("config must hold 4 numbers") };
    let vs = VarStore::new(Device::Cpu);
    let mut net = Supernet::new(&vs.root(), SupernetConfig::new(c, layers as usize, in_channels, classes));
    tch::no_grad(|| -> Result<()> {
        for (name, mut var) in vs.variables() {
            var.copy_(get(&format!("w.{name}"))?);
        }
        Ok(())
    })?;
    if channels_last {
        net.use_channels_last();
    }
    let alphas = ArchWeights::from_alphas(&[
        get("alpha_normal")?.shallow_clone(),
        get("alpha_reduce")?.shallow_clone(),
    ])?;
    let x = get("x")?;
    let logits = tch::no_grad(|| net.forward_arch(x, &alphas, true).map_err(anyhow::Error::from))?;
    let diff = (logits - get("logits")?).abs().max().double_value(&[]);
    // The same order as the reference: a second train-mode forward, now with gradients.
    let loss = net.forward_arch(x, &alphas, true)?.cross_entropy_for_logits(get("y")?);
    loss.backward();
    let mut grad_diff: f64 = 0.0;
    for (name, var) in vs.variables().into_iter().filter(|(_, v)| v.requires_grad()) {
        let reference = get(&format!("g.{name}"))?;
        let scale = reference.abs().max().double_value(&[]).max(1e-12);
        grad_diff = grad_diff.max((var.grad() - reference).abs().max().double_value(&[]) / scale);
    }
    Ok((format!("C={c} L={layers} in={in_channels}"), diff, grad_diff))
}

fn layout_name(channels_last: bool) -> &'static str {
    if channels_last {
        "channels-last"
    } else {
        "nchw"
    }
}

fn main() -> Result<()> {
    evnas::runtime::keep_freed_memory(evnas::runtime::Arenas::One);
    let args = parse_args()?;
    tch::set_num_threads(args.threads);
    if let Some(path) = &args.parity {
        for &channels_last in &args.layouts {
            let (what, diff, grad_diff) = parity(path, channels_last)?;
            let layout = layout_name(channels_last);
            if args.json {
                println!(
                    "{{\"kind\":\"parity\",\"layout\":\"{layout}\",\"max_abs_diff\":{diff:e},\
                     \"max_grad_rel_diff\":{grad_diff:e}}}"
                );
            } else {
                println!(
                    "parity {what} {layout}: max |logits - reference| = {diff:.3e}, \
                     max |grad - reference| / max |reference grad| = {grad_diff:.3e}"
                );
            }
        }
        return Ok(());
    }
    if !args.json {
        println!(
            "{:<8} {:<14} {:>7} {:>10} {:>10} {:>10} {:>10} {:>8}   (threads {}, {} timed batches)",
            "config",
            "layout",
            "batch",
            "train i/s",
            "fitness",
            "1 indiv.",
            "bf16 i/s",
            "bf16 x",
            args.threads,
            args.iters
        );
    }
    for setup in &args.configs {
        for &channels_last in &args.layouts {
            let (vs, net) = build(setup, channels_last, 0);
            let train = train_throughput(&net, &vs, setup, args.iters)?;
            let fp32_one = eval_throughput(&net, setup, setup.eval_batch, args.iters)?;
            let workers = evnas::search::fitness_workers(
                args.fitness_workers,
                setup.config.init_channels as usize,
                args.threads.max(1) as usize,
                usize::MAX, // no population here to bound them
            );
            let fp32 = if workers > 1 {
                parallel_eval_throughput(&vs, setup, channels_last, workers, args.iters)?
            } else {
                fp32_one
            };
            let bf16 = if args.bf16 {
                let shadow = bf16_shadow(setup, channels_last, &vs)?;
                eval_throughput(&shadow, setup, args.bf16_batch.min(setup.eval_batch), args.iters)?
            } else {
                f64::NAN
            };
            let layout = layout_name(channels_last);
            if args.json {
                println!(
                    "{{\"kind\":\"throughput\",\"impl\":\"evnas\",\"config\":\"{}\",\"layout\":\"{layout}\",\
                     \"train_batch\":{},\"eval_batch\":{},\"train_ips\":{train:.3},\"eval_ips\":{fp32:.3},\
                     \"eval_one_ips\":{fp32_one:.3},\"fitness_workers\":{workers},\"eval_bf16_ips\":{bf16:.3}}}",
                    setup.name, setup.train_batch, setup.eval_batch
                );
            } else {
                println!(
                    "{:<8} {:<14} {:>3}/{:<3} {train:>10.1} {fp32:>10.1} {fp32_one:>10.1} {bf16:>10.1} {:>7.2}x",
                    setup.name,
                    layout,
                    setup.train_batch,
                    setup.eval_batch,
                    bf16 / fp32_one
                );
            }
        }
    }
    if args.tau_individuals >= 2 {
        let setup = &args.configs[0];
        let channels_last = *args.layouts.last().unwrap_or(&true);
        let t = fitness_tau(setup, channels_last, &args)?;
        let show = |v: Option<f64>| v.map_or("undefined".to_string(), |t| format!("{t:.3}"));
        if args.json {
            let num = |v: Option<f64>| v.map_or("null".to_string(), |t| format!("{t:.4}"));
            println!(
                "{{\"kind\":\"tau\",\"config\":\"{}\",\"individuals\":{},\"images\":{},\"data\":\"{}\",\
                 \"train_batches\":{},\"tau_top1\":{},\"tau_loss\":{}}}",
                setup.name,
                t.individuals,
                t.images,
                t.data,
                args.tau_train_batches,
                num(t.tau_top1),
                num(t.tau_loss)
            );
        } else {
            println!(
                "bf16 vs fp32 fitness ranking ({} individuals, {} {} images, supernet trained {} batches): \
                 Kendall tau top-1 {}, loss {}",
                t.individuals,
                t.images,
                t.data,
                args.tau_train_batches,
                show(t.tau_top1),
                show(t.tau_loss)
            );
        }
    }
    Ok(())
}
