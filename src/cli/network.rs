//! The evaluation network of a genotype with its trained weights, as `evnas eval` and `evnas
//! export` build it: NetworkCIFAR or NetworkImageNet, shaped by the dataset and the flags, the
//! weights (evnas safetensors or PyTorch files) loaded strictly.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use evnas::data::DatasetKind;
use evnas::model::{EvalDataset, EvalNetConfig, NetworkCifar, NetworkImageNet};
use evnas::space::Genotype;
use evnas::weights::{load_into, read_weights, LoadOptions};
use tch::nn::VarStore;
use tch::{Device, Tensor};

#[derive(Args)]
pub struct NetworkArgs {
    /// Built-in genotype name (e.g. EvNAS-A, DARTS_V2) or genotype file (JSON or DARTS notation).
    #[arg(long)]
    pub genotype: String,
    /// Weights: a PyTorch state_dict or checkpoint (.pt, .pth, .pth.tar) or evnas .safetensors.
    #[arg(long)]
    pub weights: PathBuf,
    /// cifar10, cifar100, fashion-mnist or imagenet.
    #[arg(long, value_parser = super::arg_values::dataset)]
    pub dataset: DatasetKind,
    /// Channels of the first cells (default: 36, or 48 for ImageNet).
    #[arg(long, value_parser = super::arg_values::init_channels)]
    pub init_channels: Option<i64>,
    /// Number of cells (default: 20, or 14 for ImageNet).
    #[arg(long, value_parser = super::arg_values::layers)]
    pub layers: Option<usize>,
}

/// A network with its weights loaded, in eval mode.
pub struct LoadedNetwork {
    pub vs: VarStore,
    /// Logits of a batch (the auxiliary head, when the weights have one, is not used).
    pub forward: Box<dyn Fn(&Tensor) -> Tensor>,
    pub config: EvalNetConfig,
    /// (channels, height, width) of one input image.
    pub input_shape: [i64; 3],
}

/// The network of `args` on `device`, with `classes` outputs: those of the test data when it is
/// known, else those its weights' classifier has (an image folder may hold any number of
/// classes), else the dataset's.
pub fn load(args: &NetworkArgs, classes: Option<usize>, device: Device) -> anyhow::Result<LoadedNetwork> {
    let kind = args.dataset;
    let genotype = Genotype::load(&args.genotype)?;
    let tensors = read_weights(&args.weights)?;
    // Networks trained with --auxiliary carry the auxiliary head's weights; build it to match.
    let auxiliary = tensors.iter().any(|(k, _)| k.starts_with("auxiliary_head."));

    let mut config: EvalNetConfig = EvalDataset::from(kind).default_config();
    let classifier_rows = tensors.iter().find(|(k, _)| k == "classifier.weight").map(|(_, t)| t.size()[0]);
    config.num_classes = match (classes, classifier_rows) {
        (Some(n), _) => n as i64,
        (None, Some(rows)) => rows,
        (None, None) => kind.num_classes() as i64,
    };
    config.auxiliary = auxiliary;
    if let Some(c) = args.init_channels {
        config.init_channels = c;
    }
    if let Some(l) = args.layers {
        config.layers = l;
    }

    let mut vs = VarStore::new(device);
    let forward: Box<dyn Fn(&Tensor) -> Tensor> = match kind {
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
    let [c, h, w] = kind.input_shape().map(|d| d as i64);
    Ok(LoadedNetwork { vs, forward, config, input_shape: [c, h, w] })
}
