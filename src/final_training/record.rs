//! What a training run reports: one record per epoch (`epochs.jsonl`) and the result
//! (`result.json`).

use serde::{Deserialize, Serialize};

/// One finished epoch. Accuracies in percent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based.
    pub epoch: usize,
    pub learning_rate: f64,
    pub drop_path_prob: f64,
    /// Mean training loss (with the auxiliary term, as train.py's `train_obj`).
    pub train_loss: f64,
    pub train_top1: f64,
    pub train_top5: f64,
    /// Test split measurements, when this epoch was tested.
    pub test_loss: Option<f64>,
    pub test_top1: Option<f64>,
    pub test_top5: Option<f64>,
    pub train_images: u64,
    pub train_seconds: f64,
    pub test_seconds: f64,
    /// Training images per second of compute and data wait.
    pub images_per_second: f64,
}

impl EpochRecord {
    /// The epoch as one line (after `epoch N/E`).
    pub fn summary(&self) -> String {
        let test = match (self.test_top1, self.test_top5) {
            (Some(t1), Some(t5)) => format!("  test top-1 {t1:.2}% top-5 {t5:.2}%"),
            _ => String::new(),
        };
        format!(
            "lr {:.5}  train loss {:.4} top-1 {:.2}%{}  {:.0} img/s  {:.1} s",
            self.learning_rate,
            self.train_loss,
            self.train_top1,
            test,
            self.images_per_second,
            self.train_seconds + self.test_seconds
        )
    }
}

/// `result.json`: the last epoch's test accuracy, and the best one's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingResult {
    pub genotype: String,
    pub dataset: String,
    pub epochs: usize,
    pub test_top1: f64,
    pub test_top5: f64,
    pub best_epoch: usize,
    pub best_test_top1: f64,
    pub parameters: u64,
    /// Training and testing time of all epochs (checkpoints excluded).
    pub seconds: f64,
}
