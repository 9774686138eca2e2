//! The learning-rate schedule of the search: `CosineAnnealingLR(T_max = generations)` stepped once
//! per generation, as the reference's train_search.py.

/// Learning rate used throughout generation `generation` (0-based) of `generations`.
pub fn cosine_lr(lr: f64, lr_min: f64, generation: usize, generations: usize) -> f64 {
    let t = generation as f64 / generations.max(1) as f64;
    lr_min + (lr - lr_min) * (1.0 + (std::f64::consts::PI * t).cos()) / 2.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_at_lr_and_approaches_lr_min() {
        assert!((cosine_lr(0.025, 0.001, 0, 50) - 0.025).abs() < 1e-12);
        assert!((cosine_lr(0.025, 0.001, 25, 50) - 0.013).abs() < 1e-12);
        let last = cosine_lr(0.025, 0.001, 49, 50);
        assert!(last > 0.001 && last < 0.00103);
    }
}
