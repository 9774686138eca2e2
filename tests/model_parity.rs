//! Our networks against the reference PyTorch modules: same state_dict keys, same logits
//! (max abs diff <= 1e-4) in train and eval mode, same BatchNorm buffers after a train forward.
//!
//! Fixtures: tests/fixtures/model/*.pt, made by scripts/fixtures/make_model_fixtures.py (see
//! tests/fixtures/README.md).

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use evnas::model::{
    ArchWeights, EvalNetConfig, Nb201Config, Nb201Supernet, NetworkCifar, OneShotModel, Supernet,
    SupernetConfig,
};
use tch::{nn, Device, Kind, Tensor};

const TOLERANCE: f64 = 1e-4;

struct Fixture {
    entries: HashMap<String, Tensor>,
}

impl Fixture {
    fn load(name: &str) -> Self {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/model").join(name);
        let entries = Tensor::loadz_multi(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
            .into_iter()
            .collect();
        Self { entries }
    }

    fn get(&self, key: &str) -> &Tensor {
        self.entries.get(key).unwrap_or_else(|| panic!("fixture has no {key}"))
    }

    fn keys_with_prefix(&self, prefix: &str) -> BTreeSet<String> {
        self.entries.keys().filter_map(|k| k.strip_prefix(prefix)).map(str::to_owned).collect()
    }

    /// Asserts our VarStore has exactly the reference's state_dict keys, then copies them in.
    fn load_weights_into(&self, vs: &nn::VarStore) {
        let ours: BTreeSet<String> = vs.variables().into_keys().collect();
        let reference = self.keys_with_prefix("w.");
        let missing: Vec<_> = reference.difference(&ours).take(10).collect();
        let extra: Vec<_> = ours.difference(&reference).take(10).collect();
        assert!(missing.is_empty() && extra.is_empty(), "keys missing: {missing:?}\nkeys extra: {extra:?}");
        tch::no_grad(|| {
            for (name, mut var) in vs.variables() {
                let src = self.get(&format!("w.{name}"));
                assert_eq!(var.size(), src.size(), "shape of {name}");
                var.copy_(src);
            }
        });
    }

    /// Compares our BatchNorm buffers after a train-mode forward with the reference's.
    fn assert_buffers_match(&self, vs: &nn::VarStore) {
        let vars = vs.variables();
        let after = self.keys_with_prefix("after.");
        assert!(!after.is_empty());
        for key in after {
            let ours = &vars[&key];
            let expected = self.get(&format!("after.{key}"));
            if key.ends_with("num_batches_tracked") {
                assert_eq!(ours.int64_value(&[]), expected.int64_value(&[]), "{key}");
            } else {
                assert_close(ours, expected, &key);
            }
        }
    }
}

fn assert_close(ours: &Tensor, expected: &Tensor, what: &str) {
    assert_eq!(ours.size(), expected.size(), "shape of {what}");
    let diff = (ours - expected).abs().max().double_value(&[]);
    assert!(diff <= TOLERANCE, "{what}: max abs diff {diff:e} > {TOLERANCE:e}");
}

/// The op weights (softmax of each α) that a supernet forward takes.
fn arch(alphas: &[Tensor]) -> ArchWeights {
    ArchWeights::from_alphas(alphas).expect("alpha matrices")
}

fn supernet_with_fixture() -> (Fixture, nn::VarStore, Supernet) {
    tch::manual_seed(0);
    let fixture = Fixture::load("supernet_c4_l5.pt");
    let vs = nn::VarStore::new(Device::Cpu);
    let net = Supernet::new(&vs.root(), SupernetConfig::new(4, 5, 3, 10));
    fixture.load_weights_into(&vs);
    (fixture, vs, net)
}

#[test]
fn supernet_matches_reference_in_train_then_eval_mode() {
    let (fx, vs, net) = supernet_with_fixture();
    let alphas = arch(&[fx.get("alpha_normal").shallow_clone(), fx.get("alpha_reduce").shallow_clone()]);
    let x = fx.get("input");
    let train = tch::no_grad(|| net.forward_arch(x, &alphas, true).unwrap());
    assert_close(&train, fx.get("logits_train"), "supernet train logits");
    fx.assert_buffers_match(&vs);
    let eval = tch::no_grad(|| net.forward_arch(x, &alphas, false).unwrap());
    assert_close(&eval, fx.get("logits_eval"), "supernet eval logits");
}

#[test]
fn supernet_channels_last_gives_the_same_logits() {
    let (fx, _vs, mut net) = supernet_with_fixture();
    net.use_channels_last();
    let alphas = arch(&[fx.get("alpha_normal").shallow_clone(), fx.get("alpha_reduce").shallow_clone()]);
    let train = tch::no_grad(|| net.forward_arch(fx.get("input"), &alphas, true).unwrap());
    assert_close(&train, fx.get("logits_train"), "channels-last supernet train logits");
    let eval = tch::no_grad(|| net.forward_arch(fx.get("input"), &alphas, false).unwrap());
    assert_close(&eval, fx.get("logits_eval"), "channels-last supernet eval logits");
}

#[test]
fn supernet_output_shape_for_fashion_mnist_input() {
    tch::manual_seed(0);
    let vs = nn::VarStore::new(Device::Cpu);
    let net = Supernet::new(&vs.root(), SupernetConfig::new(4, 5, 1, 10));
    let x = Tensor::randn([3, 1, 28, 28], (Kind::Float, Device::Cpu));
    let alphas = arch(&[
        Tensor::rand([14, 8], (Kind::Float, Device::Cpu)),
        Tensor::rand([14, 8], (Kind::Float, Device::Cpu)),
    ]);
    let logits = tch::no_grad(|| net.forward_arch(&x, &alphas, false).unwrap());
    assert_eq!(logits.size(), [3, 10]);
}

#[test]
fn supernet_rejects_wrongly_shaped_alpha() {
    tch::manual_seed(0);
    let vs = nn::VarStore::new(Device::Cpu);
    let net = Supernet::new(&vs.root(), SupernetConfig::new(4, 5, 3, 10));
    let x = Tensor::randn([1, 3, 8, 8], (Kind::Float, Device::Cpu));
    let alphas = [
        Tensor::rand([14, 7], (Kind::Float, Device::Cpu)),
        Tensor::rand([14, 8], (Kind::Float, Device::Cpu)),
    ];
    assert!(net.forward_arch(&x, &arch(&alphas), false).is_err());
    assert!(net.forward_arch(&x, &arch(&alphas[1..]), false).is_err());
}

#[test]
fn network_cifar_matches_reference_in_train_then_eval_mode() {
    tch::manual_seed(0);
    let fx = Fixture::load("network_cifar_evnas_a_c4_l5.pt");
    let vs = nn::VarStore::new(Device::Cpu);
    let config =
        EvalNetConfig { init_channels: 4, layers: 5, num_classes: 10, auxiliary: true, in_channels: 3 };
    let net = NetworkCifar::new(&vs.root(), config, &common::evnas_a());
    fx.load_weights_into(&vs);
    let (logits, aux) = tch::no_grad(|| net.forward_t(fx.get("input"), true));
    assert_close(&logits, fx.get("logits_train"), "NetworkCIFAR train logits");
    let aux = aux.expect("train mode with an auxiliary head gives auxiliary logits");
    assert_close(&aux, fx.get("aux_logits_train"), "NetworkCIFAR auxiliary logits");
    fx.assert_buffers_match(&vs);
    let (logits, aux) = tch::no_grad(|| net.forward_t(fx.get("input"), false));
    assert!(aux.is_none());
    assert_close(&logits, fx.get("logits_eval"), "NetworkCIFAR eval logits");
}

#[test]
fn nb201_supernet_matches_reference_in_train_then_eval_mode() {
    tch::manual_seed(0);
    let fx = Fixture::load("nb201_c4_n1.pt");
    let vs = nn::VarStore::new(Device::Cpu);
    let config = Nb201Config { init_channels: 4, cells_per_stage: 1, ..Nb201Config::new(3, 10) };
    let net = Nb201Supernet::new(&vs.root(), config);
    fx.load_weights_into(&vs);
    let alphas = arch(&[fx.get("alpha").shallow_clone()]);
    let train = tch::no_grad(|| net.forward_arch(fx.get("input"), &alphas, true).unwrap());
    assert_close(&train, fx.get("logits_train"), "NB201 train logits");
    fx.assert_buffers_match(&vs);
    let eval = tch::no_grad(|| net.forward_arch(fx.get("input"), &alphas, false).unwrap());
    assert_close(&eval, fx.get("logits_eval"), "NB201 eval logits");
}

#[test]
fn nb201_supernet_output_shape_with_default_stages() {
    tch::manual_seed(0);
    let vs = nn::VarStore::new(Device::Cpu);
    let net = Nb201Supernet::new(&vs.root(), Nb201Config { init_channels: 4, ..Nb201Config::new(3, 100) });
    let x = Tensor::randn([2, 3, 16, 16], (Kind::Float, Device::Cpu));
    let logits = tch::no_grad(|| {
        net.forward_arch(&x, &arch(&[Tensor::rand([6, 5], (Kind::Float, Device::Cpu))]), true).unwrap()
    });
    assert_eq!(logits.size(), [2, 100]);
}
