//! The network a training run trains: NetworkCIFAR for the 32x32 (and 28x28) datasets,
//! NetworkImageNet for ImageNet, as the reference's train.py and train_imagenet.py build them.

use tch::{nn, Tensor};

use crate::data::DatasetKind;
use crate::model::{EvalNetConfig, NetworkCifar, NetworkImageNet};
use crate::space::Genotype;

#[derive(Debug)]
pub enum TrainedNetwork {
    Cifar(NetworkCifar),
    ImageNet(NetworkImageNet),
}

impl TrainedNetwork {
    pub fn new(p: &nn::Path, dataset: DatasetKind, config: EvalNetConfig, genotype: &Genotype) -> Self {
        match dataset {
            DatasetKind::ImageNet => Self::ImageNet(NetworkImageNet::new(p, config, genotype)),
            _ => Self::Cifar(NetworkCifar::new(p, config, genotype)),
        }
    }

    /// Logits, and the auxiliary logits in train mode when the network has an auxiliary head.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> (Tensor, Option<Tensor>) {
        match self {
            Self::Cifar(net) => net.forward_t(x, train),
            Self::ImageNet(net) => net.forward_t(x, train),
        }
    }

    pub fn set_drop_path_prob(&mut self, p: f64) {
        match self {
            Self::Cifar(net) => net.set_drop_path_prob(p),
            Self::ImageNet(net) => net.set_drop_path_prob(p),
        }
    }
}
