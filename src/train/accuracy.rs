//! Running top-1 / top-5 / loss totals over batches, as the reference's `accuracy` + `AvgrageMeter`.

use tch::{Kind, Tensor};

/// Sums over the batches seen so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Tally {
    pub images: u64,
    pub correct_top1: u64,
    pub correct_top5: u64,
    /// Sum over images of the cross-entropy loss.
    pub loss_sum: f64,
}

impl Tally {
    /// Adds one batch: `logits` [B, classes], `labels` [B] (i64), `mean_loss` the batch's mean loss.
    pub fn add(&mut self, logits: &Tensor, labels: &Tensor, mean_loss: f64) {
        let n = labels.size()[0];
        let classes = logits.size()[1];
        let k = classes.min(5);
        let (_, top) = logits.topk(k, 1, true, true);
        let hits = top.eq_tensor(&labels.unsqueeze(1));
        let top1 = hits.narrow(1, 0, 1).sum(Kind::Int64).int64_value(&[]);
        let top5 = hits.sum(Kind::Int64).int64_value(&[]);
        self.images += n as u64;
        self.correct_top1 += top1 as u64;
        self.correct_top5 += top5 as u64;
        self.loss_sum += mean_loss * n as f64;
    }

    pub fn merge(&mut self, other: &Tally) {
        self.images += other.images;
        self.correct_top1 += other.correct_top1;
        self.correct_top5 += other.correct_top5;
        self.loss_sum += other.loss_sum;
    }

    /// Top-1 accuracy in percent (0 when nothing was seen).
    pub fn top1(&self) -> f64 {
        self.percent(self.correct_top1)
    }

    pub fn top5(&self) -> f64 {
        self.percent(self.correct_top5)
    }

    pub fn mean_loss(&self) -> f64 {
        if self.images == 0 {
            0.0
        } else {
            self.loss_sum / self.images as f64
        }
    }

    fn percent(&self, count: u64) -> f64 {
        if self.images == 0 {
            0.0
        } else {
            100.0 * count as f64 / self.images as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_top1_and_top5() {
        // Rows: the label ranks first, third, and last of 6 classes.
        let logits = Tensor::from_slice(&[
            9.0f32, 1.0, 2.0, 3.0, 4.0, 5.0, //
            1.0, 9.0, 8.0, 3.0, 4.0, 5.0, //
            6.0, 5.0, 4.0, 3.0, 2.0, 1.0,
        ])
        .view([3, 6]);
        let labels = Tensor::from_slice(&[0i64, 4, 5]);
        let mut t = Tally::default();
        t.add(&logits, &labels, 2.0);
        assert_eq!((t.images, t.correct_top1, t.correct_top5), (3, 1, 2));
        assert!((t.top1() - 100.0 / 3.0).abs() < 1e-9);
        assert!((t.mean_loss() - 2.0).abs() < 1e-12);
    }
}
