//! `evnas eval`: test top-1 / top-5 of an evaluation network built from a genotype, with weights
//! trained by evnas or saved by PyTorch from the reference code.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use evnas::data::{test_plan, test_source, DatasetKind, PrefetchConfig, Producer, StopFlag};
use evnas::model::{EvalDataset, EvalNetConfig, NetworkCifar, NetworkImageNet};
use evnas::search::resolve_device;
use evnas::space::Genotype;
use evnas::train::test_set::evaluate_test_set;
use evnas::weights::{load_into, read_weights, LoadOptions};
use tch::nn::VarStore;

#[derive(Args)]
pub struct EvalArgs {
    /// Built-in genotype name (e.g. EvNAS-A, DARTS_V2) or genotype file (JSON or DARTS notation).
    #[arg(long)]
    genotype: String,
    /// Weights: a PyTorch state_dict or checkpoint (.pt, .pth, .pth.tar) or evnas .safetensors.
    #[arg(long)]
    weights: PathBuf,
    /// cifar10, cifar100, fashion-mnist or imagenet.
    #[arg(long, value_parser = super::arg_values::dataset)]
    dataset: DatasetKind,
    /// Directory of the test split (CIFAR-10: holding test_batch.bin; ImageNet: the val folder).
    #[arg(long)]
    data: PathBuf,
    /// Channels of the first cells (default: 36, or 48 for ImageNet).
    #[arg(long, value_parser = super::arg_values::init_channels)]
    init_channels: Option<i64>,
    /// Number of cells (default: 20, or 14 for ImageNet).
    #[arg(long, value_parser = super::arg_values::layers)]
    layers: Option<usize>,
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    /// "cpu", "cuda", "cuda:N" or "auto".
    #[arg(long, default_value = "auto")]
    device: String,
    /// Print {"top1": .., "top5": .., "images": ..}.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &EvalArgs) -> anyhow::Result<ExitCode> {
    let kind = args.dataset;
    let genotype = Genotype::load(&args.genotype)?;
    let device = resolve_device(&args.device)?;
    let tensors = read_weights(&args.weights)?;
    // Networks trained with --auxiliary carry the auxiliary head's weights; build it to match.
    let auxiliary = tensors.iter().any(|(k, _)| k.starts_with("auxiliary_head."));

    let base = match kind {
        DatasetKind::ImageNet => EvalDataset::ImageNet,
        DatasetKind::Cifar100 => EvalDataset::Cifar100,
        DatasetKind::Cifar10 | DatasetKind::FashionMnist => EvalDataset::Cifar10,
    };
    let mut config: EvalNetConfig = base.default_config();
    config.num_classes = kind.num_classes() as i64;
    config.in_channels = kind.input_shape()[0] as i64;
    config.auxiliary = auxiliary;
    if let Some(c) = args.init_channels {
        config.init_channels = c;
    }
    if let Some(l) = args.layers {
        config.layers = l;
    }

    let mut vs = VarStore::new(device);
    let forward: Box<dyn Fn(&tch::Tensor) -> tch::Tensor> = match kind {
        DatasetKind::ImageNet => {
            let net = NetworkImageNet::new(&vs.root(), config, &genotype);
            Box::new(move |x| net.forward_t(x, false).0)
        }
        _ => {
            let net = NetworkCifar::new(&vs.root(), config, &genotype);
            Box::new(move |x| net.forward_t(x, false).0)
        }
    };
    load_into(&mut vs, tensors, &LoadOptions::default()).with_context(|| {
        format!(
            "cannot load {} into {} (C={}, {} layers, {} classes); check --genotype, --init-channels, --layers",
            args.weights.display(),
            args.genotype,
            config.init_channels,
            config.layers,
            config.num_classes
        )
    })?;

    let source = test_source(kind, &args.data)?;
    let plan = test_plan(source.as_ref(), args.batch_size)?;
    let producer =
        Producer::new(source, PrefetchConfig { pin_memory: device.is_cuda(), ..PrefetchConfig::default() })?;
    let batches = producer.start_epoch(plan, StopFlag::new())?;
    let tally = evaluate_test_set(&*forward, batches, device, |_| {})?;

    if args.json {
        println!(
            "{}",
            serde_json::json!({ "top1": tally.top1(), "top5": tally.top5(), "images": tally.images })
        );
    } else {
        println!(
            "{} on {} test: top-1 {:.2}%  top-5 {:.2}%  ({} images)",
            args.genotype,
            kind.name(),
            tally.top1(),
            tally.top5(),
            tally.images
        );
    }
    Ok(ExitCode::SUCCESS)
}
