//! Output shapes of the evaluation networks and drop path's determinism under tch::manual_seed.

mod common;

use evnas::model::eval_cell::drop_path;
use evnas::model::{EvalNetConfig, NetworkCifar, NetworkImageNet};
use std::sync::Mutex;

use tch::{nn, Device, Kind, Tensor};

/// libtorch's default generator is global and tests run on parallel threads: the tests of this
/// file take turns so that manual_seed determines what each one draws.
static GLOBAL_RNG: Mutex<()> = Mutex::new(());

fn config(init_channels: i64, layers: usize, num_classes: i64) -> EvalNetConfig {
    EvalNetConfig { init_channels, layers, num_classes, auxiliary: true, in_channels: 3 }
}

#[test]
fn network_cifar_gives_logits_and_auxiliary_logits_in_train_mode() {
    let _rng = GLOBAL_RNG.lock().unwrap_or_else(|e| e.into_inner());
    tch::manual_seed(0);
    let vs = nn::VarStore::new(Device::Cpu);
    let mut net = NetworkCifar::new(&vs.root(), config(4, 5, 100), &common::evnas_b());
    net.set_drop_path_prob(0.2);
    let x = Tensor::randn([2, 3, 32, 32], (Kind::Float, Device::Cpu));
    let (logits, aux) = tch::no_grad(|| net.forward_t(&x, true));
    assert_eq!(logits.size(), [2, 100]);
    assert_eq!(aux.map(|a| a.size()), Some(vec![2, 100]));
    let (logits, aux) = tch::no_grad(|| net.forward_t(&x, false));
    assert_eq!(logits.size(), [2, 100]);
    assert!(aux.is_none());
}

/// As the reference's `drop_path` (applied only `if self.training and drop_prob > 0`): it changes
/// a train-mode forward, never an eval-mode one.
#[test]
fn drop_path_acts_in_train_mode_only() {
    let _rng = GLOBAL_RNG.lock().unwrap_or_else(|e| e.into_inner());
    tch::manual_seed(1);
    let vs = nn::VarStore::new(Device::Cpu);
    let mut net = NetworkCifar::new(&vs.root(), config(4, 5, 10), &common::evnas_a());
    let x = Tensor::randn([4, 3, 32, 32], (Kind::Float, Device::Cpu));
    let forward = |net: &NetworkCifar, train: bool| {
        tch::manual_seed(2);
        tch::no_grad(|| net.forward_t(&x, train).0)
    };
    // Eval mode first: a train-mode forward moves the BatchNorm running statistics.
    let eval_plain = forward(&net, false);
    net.set_drop_path_prob(0.6);
    assert!(forward(&net, false).equal(&eval_plain), "eval mode must not drop paths");
    let train_dropped = forward(&net, true);
    net.set_drop_path_prob(0.0);
    assert!(!forward(&net, true).allclose(&train_dropped, 1e-6, 1e-6, false), "train mode drops paths");
}

#[test]
fn network_imagenet_gives_logits_for_224_pixel_input() {
    let _rng = GLOBAL_RNG.lock().unwrap_or_else(|e| e.into_inner());
    tch::manual_seed(0);
    let vs = nn::VarStore::new(Device::Cpu);
    let net = NetworkImageNet::new(&vs.root(), config(8, 3, 1000), &common::darts_v2());
    let x = Tensor::randn([2, 3, 224, 224], (Kind::Float, Device::Cpu));
    let (logits, aux) = tch::no_grad(|| net.forward_t(&x, true));
    assert_eq!(logits.size(), [2, 1000]);
    assert_eq!(aux.map(|a| a.size()), Some(vec![2, 1000]));
}

#[test]
fn drop_path_is_deterministic_under_manual_seed_and_drops_whole_samples() {
    let _rng = GLOBAL_RNG.lock().unwrap_or_else(|e| e.into_inner());
    let x = Tensor::ones([64, 2, 3, 3], (Kind::Float, Device::Cpu));
    tch::manual_seed(5);
    let a = drop_path(&x, 0.5);
    tch::manual_seed(5);
    let b = drop_path(&x, 0.5);
    assert!(a.equal(&b));
    // Every sample is all zeros or all 1/keep = 2.
    let per_sample = a.sum_dim_intlist([1, 2, 3].as_slice(), false, Kind::Float);
    let values = Vec::<f32>::try_from(per_sample).unwrap();
    assert!(values.iter().all(|&v| v == 0.0 || v == 36.0));
    assert!(values.contains(&0.0) && values.contains(&36.0));
}
