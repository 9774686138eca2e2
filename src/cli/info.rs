//! `evnas info`: size of a genotype's evaluation network (parameters, multiply-accumulates), as
//! the papers report it (EvNAS Tables 1-2: params in M, ImageNet mult-adds in M).

use std::process::ExitCode;

use clap::{Args, ValueEnum};
use evnas::model::{count_eval_network, EvalDataset};
use evnas::space::Genotype;

#[derive(Args)]
pub struct InfoArgs {
    /// Built-in genotype name (e.g. EvNAS-A, DARTS_V2) or genotype file (JSON or DARTS notation).
    #[arg(long)]
    genotype: String,
    #[arg(long, value_enum, default_value_t = DatasetArg::Cifar10)]
    dataset: DatasetArg,
    /// Channels of the first cells (default: 36 for CIFAR, 48 for ImageNet).
    #[arg(long, value_parser = super::arg_values::init_channels)]
    init_channels: Option<i64>,
    /// Number of cells (default: 20 for CIFAR, 14 for ImageNet).
    #[arg(long, value_parser = super::arg_values::layers)]
    layers: Option<usize>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum DatasetArg {
    Cifar10,
    Cifar100,
    Imagenet,
    FashionMnist,
}

impl From<DatasetArg> for EvalDataset {
    fn from(d: DatasetArg) -> Self {
        match d {
            DatasetArg::Cifar10 => EvalDataset::Cifar10,
            DatasetArg::Cifar100 => EvalDataset::Cifar100,
            DatasetArg::Imagenet => EvalDataset::ImageNet,
            DatasetArg::FashionMnist => EvalDataset::FashionMnist,
        }
    }
}

pub fn run(args: &InfoArgs) -> anyhow::Result<ExitCode> {
    let genotype = Genotype::load(&args.genotype)?;
    let dataset = EvalDataset::from(args.dataset);
    let mut config = dataset.default_config();
    if let Some(c) = args.init_channels {
        config.init_channels = c;
    }
    if let Some(l) = args.layers {
        config.layers = l;
    }
    let counts = count_eval_network(&genotype, dataset, config);
    if args.json {
        let value = serde_json::json!({
            "genotype": args.genotype,
            "dataset": dataset.kind().name(),
            "init_channels": config.init_channels,
            "layers": config.layers,
            "image_size": dataset.image_size(),
            "params": counts.params,
            "params_millions": counts.params_millions(),
            "macs": counts.conv_macs,
            "macs_millions": counts.macs_millions(),
            "classifier_macs_millions": counts.classifier_macs_millions(),
        });
        println!("{value}");
    } else {
        println!(
            "{} on {} (C={}, {} cells, {}x{} input)",
            args.genotype,
            dataset.kind().name(),
            config.init_channels,
            config.layers,
            dataset.image_size(),
            dataset.image_size()
        );
        println!("params: {:.3} M ({} without the auxiliary head)", counts.params_millions(), counts.params);
        println!(
            "multiply-accumulates: {:.1} M in convolutions + {:.3} M in the classifier",
            counts.macs_millions(),
            counts.classifier_macs_millions()
        );
    }
    Ok(ExitCode::SUCCESS)
}
