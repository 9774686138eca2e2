//! The finiteness check of training losses, batched on a GPU.
//!
//! Reading a loss to the host waits for the device to finish the step, so a GPU checked at every
//! step idles while the host queues the next one. On a CUDA device the losses of
//! [`CUDA_INTERVAL`] steps are therefore checked together, before the last of them updates the
//! weights: a diverged batch is still named exactly (batch and individual) and the run still
//! stops, with the last checkpoint intact, but up to `CUDA_INTERVAL - 1` steps after it may have
//! reached the in-memory weights, which are not saved. On the CPU, where reading costs nothing,
//! every loss is checked before its own step.

use tch::{Device, Kind, Tensor};

/// Steps whose losses a CUDA device checks at once.
pub const CUDA_INTERVAL: usize = 32;

/// Losses recorded but not yet checked, each with what names its step.
pub struct LossCheck<K> {
    interval: usize,
    pending: Vec<(K, Tensor)>,
}

/// Steps whose losses are checked together by replicas on `devices`: every step on the CPU
/// (no wait to save), [`CUDA_INTERVAL`] where any is a CUDA device (each check waits for it).
pub fn interval_for(devices: &[Device]) -> usize {
    if devices.iter().any(|d| d.is_cuda()) {
        CUDA_INTERVAL
    } else {
        1
    }
}

impl<K: Copy> LossCheck<K> {
    /// Checks every `interval` steps (at least 1).
    pub fn every(interval: usize) -> Self {
        Self { interval: interval.max(1), pending: Vec::new() }
    }

    /// Every step on the CPU, every [`CUDA_INTERVAL`] steps on a CUDA device.
    pub fn for_device(device: Device) -> Self {
        Self::every(interval_for(&[device]))
    }

    /// Steps checked together.
    pub fn interval(&self) -> usize {
        self.interval
    }

    /// Whether the next [`record`](Self::record) checks its group.
    pub fn will_check(&self) -> bool {
        self.pending.len() + 1 >= self.interval
    }

    /// Records step `step`'s loss (a scalar) before its update; when the group is complete,
    /// checks it and returns the first step whose loss is not finite.
    pub fn record(&mut self, step: K, loss: &Tensor) -> Option<K> {
        self.pending.push((step, loss.detach().to_kind(Kind::Float).reshape([1])));
        if self.pending.len() >= self.interval {
            self.check()
        } else {
            None
        }
    }

    /// Checks the losses recorded so far: the first step whose loss is not finite.
    pub fn check(&mut self) -> Option<K> {
        if self.pending.is_empty() {
            return None;
        }
        let losses: Vec<Tensor> = self.pending.iter().map(|(_, loss)| loss.shallow_clone()).collect();
        let finite = Vec::<bool>::try_from(&Tensor::cat(&losses, 0).isfinite()).expect("a flag per loss");
        let first_bad = finite.iter().position(|&ok| !ok).map(|i| self.pending[i].0);
        self.pending.clear();
        first_bad
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar(x: f32) -> Tensor {
        Tensor::from(x)
    }

    #[test]
    fn every_step_names_the_step_at_once() {
        let mut check = LossCheck::every(1);
        assert_eq!(check.record(0, &scalar(1.0)), None);
        assert_eq!(check.record(1, &scalar(f32::NAN)), Some(1));
        assert_eq!(check.check(), None);
    }

    #[test]
    fn a_group_names_its_first_bad_step_when_complete_or_checked() {
        let mut check = LossCheck::every(3);
        assert!(!check.will_check());
        assert_eq!(check.record(0, &scalar(1.0)), None);
        assert_eq!(check.record(1, &scalar(f32::INFINITY)), None);
        assert!(check.will_check());
        assert_eq!(check.record(2, &scalar(f32::NAN)), Some(1));
        assert_eq!(check.record(3, &scalar(2.0)), None);
        assert_eq!(check.record(4, &scalar(f32::NAN)), None);
        assert_eq!(check.check(), Some(4));
        assert_eq!(check.check(), None);
        assert_eq!(LossCheck::<usize>::for_device(Device::Cpu).interval, 1);
        assert_eq!(LossCheck::<usize>::for_device(Device::Cuda(0)).interval, CUDA_INTERVAL);
    }
}
