//! SGD with momentum and weight decay, as `torch.optim.SGD` (dampening 0, no Nesterov), with
//! gradient-norm clipping as `nn.utils.clip_grad_norm_`.
//!
//! Written out rather than using `tch::nn::Optimizer` because a search checkpoint must hold the
//! momentum buffers, and tch does not expose them.

use std::collections::BTreeMap;

use tch::{nn::VarStore, Device, Tensor};

/// Hyper-parameters of one SGD step (the learning rate comes from the schedule per step).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SgdConfig {
    pub momentum: f64,
    pub weight_decay: f64,
}

/// Optimizer state: one momentum buffer per trainable variable, keyed by its state-dict name.
pub struct Sgd {
    config: SgdConfig,
    params: Vec<(String, Tensor)>,
    momentum: BTreeMap<String, Tensor>,
}

/// The variables of `vs` that require a gradient, in the order of their names: the order in
/// which the optimizer, the replicas' fingerprint and the tests walk them.
pub fn trainable_by_name(vs: &VarStore) -> Vec<(String, Tensor)> {
    let mut named: Vec<(String, Tensor)> =
        vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    named
}

impl Sgd {
    /// Tracks every variable of `vs` that requires a gradient.
    pub fn new(vs: &VarStore, config: SgdConfig) -> Self {
        Self { config, params: trainable_by_name(vs), momentum: BTreeMap::new() }
    }

    /// Where the tracked variables live (the CPU when there are none).
    pub fn device(&self) -> Device {
        self.params.first().map_or(Device::Cpu, |(_, p)| p.device())
    }

    pub fn zero_grad(&mut self) {
        for (_, p) in &mut self.params {
            p.zero_grad();
        }
    }

    /// Scales all gradients so that their joint L2 norm is at most `max_norm`, as PyTorch's
    /// `clip_grad_norm_` (its 1e-6 guard; the coefficient computed on the device, so that a GPU
    /// is not waited for).
    pub fn clip_grad_norm(&mut self, max_norm: f64) {
        tch::no_grad(|| {
            let norms: Vec<Tensor> =
                self.params.iter().map(|(_, p)| p.grad()).filter(|g| g.defined()).map(|g| g.norm()).collect();
            if norms.is_empty() {
                return;
            }
            let total = Tensor::stack(&norms, 0).norm();
            let coef = ((&total + 1e-6).reciprocal() * max_norm).clamp_max(1.0);
            for (_, p) in &self.params {
                let mut g = p.grad();
                if g.defined() {
                    let _ = g.g_mul_(&coef);
                }
            }
        })
    }

    /// One update: d = g + wd·p; buf = momentum·buf + d; p -= lr·buf.
    pub fn step(&mut self, lr: f64) {
        let SgdConfig { momentum, weight_decay } = self.config;
        tch::no_grad(|| {
            for (name, p) in &mut self.params {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                let d = if weight_decay != 0.0 { g + &*p * weight_decay } else { g.shallow_clone() };
                let update = if momentum != 0.0 {
                    match self.momentum.get_mut(name) {
                        Some(buf) => {
                            let _ = buf.g_mul_scalar_(momentum).g_add_(&d);
                            buf.shallow_clone()
                        }
                        None => {
                            let buf = d.detach().copy();
                            self.momentum.insert(name.clone(), buf.shallow_clone());
                            buf
                        }
                    }
                } else {
                    d
                };
                let _ = p.g_sub_(&(update * lr));
            }
        });
    }

    /// The defined gradients, in parameter order (by name): what data-parallel replicas sum.
    pub fn gradients(&self) -> Vec<Tensor> {
        self.params.iter().map(|(_, p)| p.grad()).filter(|g| g.defined()).collect()
    }

    /// Per parameter, in parameter order: whether it has a momentum buffer.
    pub fn momentum_mask(&self) -> Vec<bool> {
        self.params.iter().map(|(name, _)| self.momentum.contains_key(name)).collect()
    }

    /// Gives exactly the parameters of `mask` (as [`Sgd::momentum_mask`] orders them) a
    /// momentum buffer, zeros where new, and returns those buffers in parameter order: a replica
    /// then receives another's momentum into them.
    pub fn momentum_for(&mut self, mask: &[bool]) -> Vec<Tensor> {
        let mut kept = BTreeMap::new();
        let mut out = Vec::new();
        for ((name, p), &wanted) in self.params.iter().zip(mask) {
            if !wanted {
                continue;
            }
            let buf = match self.momentum.remove(name) {
                Some(buf) => buf,
                None => p.detach().zeros_like(),
            };
            out.push(buf.shallow_clone());
            kept.insert(name.clone(), buf);
        }
        self.momentum = kept;
        out
    }

    /// About the bytes a checkpoint of `vs` (every variable) and of this optimizer's momentum
    /// takes as safetensors, whether or not the first step has made the momentum yet.
    pub fn checkpoint_bytes(&self, vs: &VarStore) -> u64 {
        let variables = vs.variables();
        let weights = crate::weights::safetensors_size(variables.iter().map(|(name, t)| (name.as_str(), t)));
        weights + crate::weights::safetensors_size(self.params.iter().map(|(name, p)| (name.as_str(), p)))
    }

    /// Momentum buffers by variable name (empty before the first step), for checkpoints.
    pub fn momentum_buffers(&self) -> Vec<(String, Tensor)> {
        self.momentum.iter().map(|(k, v)| (k.clone(), v.shallow_clone())).collect()
    }

    /// Restores momentum buffers saved by [`Sgd::momentum_buffers`].
    pub fn restore_momentum(&mut self, buffers: Vec<(String, Tensor)>) -> Result<(), SgdStateError> {
        let mut restored = BTreeMap::new();
        for (name, buf) in buffers {
            let Some((_, p)) = self.params.iter().find(|(n, _)| *n == name) else {
                return Err(SgdStateError::UnknownParameter { name });
            };
            if buf.size() != p.size() {
                return Err(SgdStateError::Shape { name, expected: p.size(), found: buf.size() });
            }
            // Into a buffer of the parameter's memory layout (channels-last stays channels-last).
            let mut restored_buf = p.detach().empty_like();
            restored_buf.copy_(&buf);
            restored.insert(name, restored_buf);
        }
        self.momentum = restored;
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SgdStateError {
    #[error("momentum buffer for unknown parameter {name}")]
    UnknownParameter { name: String },
    #[error("momentum buffer {name} has shape {found:?}, parameter has {expected:?}")]
    Shape { name: String, expected: Vec<i64>, found: Vec<i64> },
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{nn, Device, Kind};

    /// Two steps on f(w) = sum(w²)/2 (gradient w), checked against the closed form of PyTorch's
    /// update: buf1 = w0(1+wd), w1 = w0 - lr·buf1; buf2 = m·buf1 + w1(1+wd), w2 = w1 - lr·buf2.
    #[test]
    fn matches_pytorch_sgd_update() {
        let vs = VarStore::new(Device::Cpu);
        let w = vs.root().var_copy("w", &Tensor::from_slice(&[1.0f32, -2.0]));
        let (lr, m, wd) = (0.1, 0.9, 0.01);
        let mut opt = Sgd::new(&vs, SgdConfig { momentum: m, weight_decay: wd });
        let mut expected = [1.0f64, -2.0];
        let mut buf = [0.0f64; 2];
        for _ in 0..2 {
            opt.zero_grad();
            (&w * &w).sum(Kind::Float).g_div_scalar(2.0).backward();
            opt.step(lr);
            for i in 0..2 {
                buf[i] = m * buf[i] + expected[i] * (1.0 + wd);
                expected[i] -= lr * buf[i];
            }
        }
        let got: Vec<f32> = Vec::<f32>::try_from(&w).unwrap();
        for i in 0..2 {
            assert!((got[i] as f64 - expected[i]).abs() < 1e-6, "{got:?} vs {expected:?}");
        }
        assert_eq!(opt.momentum_buffers().len(), 1);
    }

    #[test]
    fn clipping_bounds_the_joint_norm() {
        let vs = VarStore::new(Device::Cpu);
        let root = vs.root();
        let a = root.var_copy("a", &Tensor::from_slice(&[3.0f32]));
        let b = root.var_copy("b", &Tensor::from_slice(&[4.0f32]));
        let mut opt = Sgd::new(&vs, SgdConfig { momentum: 0.0, weight_decay: 0.0 });
        opt.zero_grad();
        ((&a * &a + &b * &b).sum(Kind::Float) / 2.0).backward();
        opt.clip_grad_norm(1.0);
        // Gradients (3, 4), norm 5: scaled to norm 1, same direction.
        let grads = || (a.grad().double_value(&[0]), b.grad().double_value(&[0]));
        let (ga, gb) = grads();
        assert!((ga - 0.6).abs() < 1e-6 && (gb - 0.8).abs() < 1e-6, "{ga} {gb}");
        // Below the bound: untouched (the coefficient is clamped to 1).
        opt.clip_grad_norm(10.0);
        assert_eq!(grads(), (ga, gb));
        let _ = nn::VarStore::new(Device::Cpu);
    }

    #[test]
    fn restore_rejects_wrong_shapes() {
        let vs = VarStore::new(Device::Cpu);
        let _w = vs.root().var_copy("w", &Tensor::from_slice(&[1.0f32, 2.0]));
        let mut opt = Sgd::new(&vs, SgdConfig { momentum: 0.9, weight_decay: 0.0 });
        let err = opt.restore_momentum(vec![("w".into(), Tensor::zeros([3], (Kind::Float, Device::Cpu)))]);
        assert!(matches!(err, Err(SgdStateError::Shape { .. })));
        let err = opt.restore_momentum(vec![("v".into(), Tensor::zeros([2], (Kind::Float, Device::Cpu)))]);
        assert!(matches!(err, Err(SgdStateError::UnknownParameter { .. })));
    }
}
