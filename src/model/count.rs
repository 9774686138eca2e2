//! Model size as the papers report it: parameters in millions, counted as the reference's
//! utils.py `count_parameters_in_MB` (parameters only, auxiliary head excluded), and
//! multiply-accumulates of one inference forward, counted analytically from the module structure
//! (convolutions only; the classifier's reported apart).

use tch::{nn, Device};

use super::eval_cifar::{EvalNetConfig, NetworkCifar};
use super::eval_imagenet::NetworkImageNet;
use crate::data::DatasetKind;
use crate::space::Genotype;

/// The datasets an evaluation network is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvalDataset {
    Cifar10,
    Cifar100,
    ImageNet,
    /// 1x28x28 grey images through the CIFAR network (evnas's default search dataset).
    FashionMnist,
}

impl From<DatasetKind> for EvalDataset {
    fn from(kind: DatasetKind) -> Self {
        match kind {
            DatasetKind::Cifar10 => EvalDataset::Cifar10,
            DatasetKind::Cifar100 => EvalDataset::Cifar100,
            DatasetKind::ImageNet => EvalDataset::ImageNet,
            DatasetKind::FashionMnist => EvalDataset::FashionMnist,
        }
    }
}

impl EvalDataset {
    /// The dataset, which knows its classes and image shape.
    pub fn kind(self) -> DatasetKind {
        match self {
            EvalDataset::Cifar10 => DatasetKind::Cifar10,
            EvalDataset::Cifar100 => DatasetKind::Cifar100,
            EvalDataset::ImageNet => DatasetKind::ImageNet,
            EvalDataset::FashionMnist => DatasetKind::FashionMnist,
        }
    }

    pub fn num_classes(self) -> i64 {
        self.kind().num_classes() as i64
    }

    /// Input side in pixels: 32 for CIFAR, 224 for ImageNet (mobile setting), 28 for
    /// Fashion-MNIST.
    pub fn image_size(self) -> i64 {
        self.kind().input_shape()[2] as i64
    }

    /// Channels of an input image.
    pub fn in_channels(self) -> i64 {
        self.kind().input_shape()[0] as i64
    }

    /// The reference training scripts' defaults: C=36, 20 cells for CIFAR; C=48, 14 cells for
    /// ImageNet; auxiliary head on.
    pub fn default_config(self) -> EvalNetConfig {
        let (init_channels, layers) = match self {
            EvalDataset::Cifar10 | EvalDataset::Cifar100 | EvalDataset::FashionMnist => (36, 20),
            EvalDataset::ImageNet => (48, 14),
        };
        EvalNetConfig {
            init_channels,
            layers,
            num_classes: self.num_classes(),
            auxiliary: true,
            in_channels: self.in_channels(),
        }
    }
}

/// Size of one evaluation network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelCounts {
    /// Parameters outside the auxiliary head.
    pub params: u64,
    /// Convolution multiply-accumulates of one image, classifier excluded.
    pub conv_macs: u64,
    /// The classifier's multiply-accumulates.
    pub classifier_macs: u64,
}

impl ModelCounts {
    pub fn params_millions(&self) -> f64 {
        self.params as f64 / 1e6
    }

    pub fn macs_millions(&self) -> f64 {
        self.conv_macs as f64 / 1e6
    }

    pub fn classifier_macs_millions(&self) -> f64 {
        self.classifier_macs as f64 / 1e6
    }
}

/// Parameters (trainable variables, not buffers) whose name lacks "auxiliary", as the reference's
/// `count_parameters_in_MB` counts them.
pub fn parameter_count(vs: &nn::VarStore) -> u64 {
    vs.variables()
        .iter()
        .filter(|(name, t)| t.requires_grad() && !name.contains("auxiliary"))
        .map(|(_, t)| t.numel() as u64)
        .sum()
}

/// Builds the evaluation network of `genotype` for `dataset` on the CPU and counts it.
pub fn count_eval_network(genotype: &Genotype, dataset: EvalDataset, config: EvalNetConfig) -> ModelCounts {
    let vs = nn::VarStore::new(Device::Cpu);
    let hw = (dataset.image_size(), dataset.image_size());
    let (conv_macs, classifier_macs) = match dataset {
        EvalDataset::Cifar10 | EvalDataset::Cifar100 | EvalDataset::FashionMnist => {
            NetworkCifar::new(&vs.root(), config, genotype).macs(hw)
        }
        EvalDataset::ImageNet => NetworkImageNet::new(&vs.root(), config, genotype).macs(hw),
    };
    ModelCounts { params: parameter_count(&vs), conv_macs, classifier_macs }
}
