//! Fitness evaluation in bfloat16 (`fitness.precision = "bf16"`), an option beyond the paper.
//!
//! The reference measures fitness in fp32. On CPUs with AVX-512 BF16 / AMX, oneDNN runs bf16
//! convolutions several times faster, and fitness only needs the *ranking* of the population,
//! which survives the rounding well (the benchmark reports Kendall's tau against fp32). Training
//! stays fp32: the shadow is a bf16 copy of the trained weights, refreshed once per generation.

use tch::{nn::VarStore, Kind, TchError, Tensor};

use crate::model::{ArchWeights, ModelError, OneShotModel};

/// A bf16 copy of a one-shot model, evaluated with bf16 inputs and returning f32 logits.
///
/// Its BatchNorm running statistics are the copy's own: a train-mode fitness forward updates
/// them, not the fp32 model's (those are used only by `fitness.batchnorm = "running"`, which
/// does not update them).
pub struct Bf16Shadow {
    vs: VarStore,
    model: Box<dyn OneShotModel>,
}

impl Bf16Shadow {
    /// Takes a model built in its own `vs` with the same variable names as the fp32 model, and
    /// casts its floating-point variables to bf16 (integer buffers such as
    /// `num_batches_tracked` stay as they are).
    pub fn new(mut vs: VarStore, model: Box<dyn OneShotModel>) -> Self {
        vs.bfloat16();
        Self { vs, model }
    }

    /// Copies (and rounds to bf16) the current values of the fp32 model's variables; call it
    /// after each generation's training.
    pub fn refresh_from(&mut self, fp32: &VarStore) -> Result<(), TchError> {
        self.vs.copy(fp32)
    }

    pub fn var_store(&self) -> &VarStore {
        &self.vs
    }
}

impl OneShotModel for Bf16Shadow {
    /// `x` f32 or bf16 `(N, C, H, W)` -> f32 logits `(N, classes)`.
    fn forward_arch(&self, x: &Tensor, arch: &ArchWeights, train: bool) -> Result<Tensor, ModelError> {
        let logits = self.model.forward_arch(&x.to_kind(Kind::BFloat16), arch, train)?;
        Ok(logits.to_kind(Kind::Float))
    }
}

/// Kendall's tau-b between two score lists of equal length (ties handled as in
/// `scipy.stats.kendalltau`); `None` when fewer than two items or one list is constant.
pub fn kendall_tau(a: &[f64], b: &[f64]) -> Option<f64> {
    if a.len() != b.len() || a.len() < 2 {
        return None;
    }
    let (mut concordant, mut discordant, mut ties_a, mut ties_b) = (0i64, 0i64, 0i64, 0i64);
    for i in 0..a.len() {
        for j in i + 1..a.len() {
            let da = a[i] - a[j];
            let db = b[i] - b[j];
            if da == 0.0 && db == 0.0 {
                continue;
            } else if da == 0.0 {
                ties_a += 1;
            } else if db == 0.0 {
                ties_b += 1;
            } else if (da > 0.0) == (db > 0.0) {
                concordant += 1;
            } else {
                discordant += 1;
            }
        }
    }
    let n0 = (concordant + discordant + ties_a) as f64;
    let n1 = (concordant + discordant + ties_b) as f64;
    (n0 > 0.0 && n1 > 0.0).then(|| (concordant - discordant) as f64 / (n0 * n1).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Supernet;
    use crate::train::fixed_start::{fixed_supernet, fixed_values, small_supernet};
    use tch::{Device, Kind};

    #[test]
    fn kendall_tau_of_known_rankings() {
        assert_eq!(kendall_tau(&[1.0, 2.0, 3.0], &[10.0, 20.0, 30.0]), Some(1.0));
        assert_eq!(kendall_tau(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]), Some(-1.0));
        // scipy.stats.kendalltau([1, 2, 3, 4], [1, 3, 2, 4]) = 0.6667; with a tie in b:
        // kendalltau([1, 2, 3, 4], [1, 2, 2, 4]) = 0.9129.
        let t = kendall_tau(&[1.0, 2.0, 3.0, 4.0], &[1.0, 3.0, 2.0, 4.0]).unwrap();
        assert!((t - 2.0 / 3.0).abs() < 1e-12);
        let t = kendall_tau(&[1.0, 2.0, 3.0, 4.0], &[1.0, 2.0, 2.0, 4.0]).unwrap();
        assert!((t - 0.912_870_929).abs() < 1e-8);
        assert_eq!(kendall_tau(&[1.0, 1.0], &[1.0, 2.0]), None);
    }

    #[test]
    fn bf16_shadow_follows_the_fp32_weights_within_bf16_rounding() {
        // A fixed start: drawn from libtorch's global generator, which tests side by side share,
        // an unlucky draw once put the difference past the bound.
        let (vs, net) = fixed_supernet();
        let shadow_vs = VarStore::new(Device::Cpu);
        let shadow_net = Supernet::new(&shadow_vs.root(), small_supernet());
        let mut shadow = Bf16Shadow::new(shadow_vs, Box::new(shadow_net));
        shadow.refresh_from(&vs).unwrap();
        let alpha = Tensor::zeros([14, 8], (Kind::Float, Device::Cpu));
        let arch = ArchWeights::from_alphas(&[alpha.shallow_clone(), alpha]).unwrap();
        let x = fixed_values(&[4, 3, 8, 8], 7.0);
        let (fp32, bf16) = tch::no_grad(|| {
            (net.forward_arch(&x, &arch, true).unwrap(), shadow.forward_arch(&x, &arch, true).unwrap())
        });
        assert_eq!(bf16.kind(), Kind::Float);
        let scale = fp32.abs().max().double_value(&[]);
        let diff = (&fp32 - &bf16).abs().max().double_value(&[]);
        // bf16 keeps 8 mantissa bits; a few layers of rounding stay within a few percent.
        assert!(diff <= 0.05 * scale.max(1.0), "diff {diff} scale {scale}");
        assert!(diff > 0.0, "the shadow must actually compute in bf16");
        let kinds: Vec<Kind> = shadow.var_store().variables().values().map(Tensor::kind).collect();
        assert!(kinds.contains(&Kind::BFloat16) && kinds.contains(&Kind::Int64));
    }
}
