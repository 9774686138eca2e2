//! Test starts from a fixed formula instead of libtorch's global generator: lib tests run side
//! by side, and another test drawing from it between a seed and a draw gave two "identical"
//! starts different weights (seen once in a full run of the suite).

use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use crate::data::Batch;
use crate::model::{ArchWeights, Supernet, SupernetConfig};

/// The small DARTS supernet of the training tests: C=4, 3 cells, 3 input channels, 10 classes.
pub fn small_supernet() -> SupernetConfig {
    SupernetConfig::new(4, 3, 3, 10)
}

/// Values in [-1, 1] that look random, the same in every run and on every thread: a hash of
/// each element's index and `salt`, drawing nothing from libtorch's global generator.
pub fn fixed_values(shape: &[i64], salt: f64) -> Tensor {
    let n: i64 = shape.iter().product();
    let x = (Tensor::arange(n, (Kind::Double, Device::Cpu)) * 12.9898 + salt * 78.233).sin() * 43758.5453;
    ((x.frac().abs() * 2.0 - 1.0).to_kind(Kind::Float)).view(shape)
}

/// A [`small_supernet`] whose trainable weights are fixed values (BatchNorm's buffers as built).
pub fn fixed_supernet() -> (VarStore, Supernet) {
    let vs = VarStore::new(Device::Cpu);
    let model = Supernet::new(&vs.root(), small_supernet());
    tch::no_grad(|| {
        for (i, t) in trainable(&vs).iter_mut().enumerate() {
            t.copy_(&(fixed_values(&t.size(), i as f64) * 0.3));
        }
    });
    (vs, model)
}

/// The trainable tensors of `vs`, in the order of their names.
pub fn trainable(vs: &VarStore) -> Vec<Tensor> {
    super::sgd::trainable_by_name(vs).into_iter().map(|(_, t)| t).collect()
}

/// `count` architectures (14 edges × 8 ops, normal and reduce cell) of fixed α.
pub fn fixed_architectures(count: usize) -> Vec<ArchWeights> {
    (0..count)
        .map(|i| {
            let alphas = [fixed_values(&[14, 8], 100.0 + i as f64), fixed_values(&[14, 8], 200.0 + i as f64)];
            ArchWeights::from_alphas(&alphas).unwrap()
        })
        .collect()
}

/// `count` batches of `images` 3×8×8 images of 10 classes; batch `nan_at`'s images are NaN.
pub fn fixed_batches(count: usize, images: i64, nan_at: Option<usize>) -> Vec<Result<Batch, String>> {
    (0..count)
        .map(|i| {
            let pixels = fixed_values(&[images, 3, 8, 8], 1000.0 + i as f64);
            let pixels = if Some(i) == nan_at { pixels * f64::NAN } else { pixels };
            let labels = ((fixed_values(&[images], 2000.0 + i as f64) + 1.0) * 4.99).to_kind(Kind::Int64);
            Ok(Batch { images: pixels, labels, index: i })
        })
        .collect()
}
