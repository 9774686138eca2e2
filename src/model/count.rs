//! Model size as the papers report it: parameters in millions, counted as the reference's
//! utils.py `count_parameters_in_MB` (parameters only, auxiliary head excluded), and
//! multiply-accumulates of one inference forward, counted analytically from the module structure
//! (convolutions only; the classifier's reported apart).

use tch::{nn, Device};

use super::eval_cifar::{EvalNetConfig, NetworkCifar};
use super::eval_imagenet::NetworkImageNet;
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

impl EvalDataset {
    pub fn num_classes(self) -> i64 {
        match self {
            EvalDataset::Cifar10 | EvalDataset::FashionMnist => 10,
            EvalDataset::Cifar100 => 100,
            EvalDataset::ImageNet => 1000,
        }
    }

    /// Input side in pixels: 32 for CIFAR, 224 for ImageNet (mobile setting), 28 for
    /// Fashion-MNIST.
    pub fn image_size(self) -> i64 {
        match self {
            EvalDataset::Cifar10 | EvalDataset::Cifar100 => 32,
            EvalDataset::ImageNet => 224,
            EvalDataset::FashionMnist => 28,
        }
    }

    /// Channels of an input image.
    pub fn in_channels(self) -> i64 {
        match self {
            EvalDataset::FashionMnist => 1,
            _ => 3,
        }
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
