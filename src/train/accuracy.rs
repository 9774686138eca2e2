//! Running top-1 / top-5 / loss totals over batches, as the reference's `accuracy` + `AvgrageMeter`.

use tch::{Device, Kind, Tensor};

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
    /// Reads the batch's counts to the host (one synchronisation of a CUDA device).
    pub fn add(&mut self, logits: &Tensor, labels: &Tensor, mean_loss: f64) {
        let counts = Vec::<i64>::try_from(&hit_counts(logits, labels).to_kind(Kind::Int64))
            .expect("two counts of a batch");
        self.images += labels.size()[0] as u64;
        self.correct_top1 += counts[0] as u64;
        self.correct_top5 += counts[1] as u64;
        self.loss_sum += mean_loss * labels.size()[0] as f64;
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

/// A [`Tally`] whose sums stay on the logits' device until read: adding a batch queues a few
/// small kernels and never waits for the device, so a GPU runs ahead of the host.
///
/// The sums are f64 and added batch by batch in the same order as [`Tally::merge`] of per-batch
/// tallies, so [`read`](Self::read) gives the same bits as adding host tallies would.
#[derive(Debug, Default)]
pub struct DeviceTally {
    /// What was added before the first batch: the start of the device sums.
    base: Tally,
    images: u64,
    /// top-1 hits, top-5 hits, loss sum; `None` until a batch is added.
    sums: Option<Tensor>,
}

impl DeviceTally {
    /// Continues from `base` (a pass stopped earlier, or nothing).
    pub fn starting_at(base: Tally) -> Self {
        Self { base, images: base.images, sums: None }
    }

    /// Adds one batch: `loss` the batch's mean loss, a scalar tensor on the logits' device.
    pub fn add(&mut self, logits: &Tensor, labels: &Tensor, loss: &Tensor) {
        self.images += labels.size()[0] as u64;
        self.accumulate(&batch_sums(logits, labels, loss));
    }

    /// Adds a batch already counted on the host.
    pub fn add_tally(&mut self, tally: &Tally) {
        let device = self.sums.as_ref().map_or(Device::Cpu, Tensor::device);
        self.images += tally.images;
        self.accumulate(&sums_of(tally).to_device(device));
    }

    fn accumulate(&mut self, batch: &Tensor) {
        match &mut self.sums {
            Some(sums) => {
                // One device per tally: `add_tally` follows the sums' device, and no caller adds
                // a device's batches after host tallies.
                debug_assert_eq!(sums.device(), batch.device(), "a tally's sums on two devices");
                let _ = sums.g_add_(batch);
            }
            None => self.sums = Some(sums_of(&self.base).to_device(batch.device()) + batch),
        }
    }

    /// The sums so far (waits for the device).
    pub fn read(&self) -> Tally {
        match &self.sums {
            None => self.base,
            Some(sums) => {
                let s = Vec::<f64>::try_from(sums).expect("three sums of a tally");
                Tally {
                    images: self.images,
                    correct_top1: s[0] as u64,
                    correct_top5: s[1] as u64,
                    loss_sum: s[2],
                }
            }
        }
    }
}

/// The tallies of single batches, kept on their device until all are read at once: a replica of
/// data-parallel training counts its shards without waiting for its device at every step.
#[derive(Debug, Default)]
pub struct BatchTallies {
    /// Per batch: its images, and its top-1 hits, top-5 hits and loss sum on the device (`None`:
    /// a batch that counts nothing).
    batches: Vec<(u64, Option<Tensor>)>,
}

impl BatchTallies {
    /// Adds a batch as [`DeviceTally::add`] does.
    pub fn add(&mut self, logits: &Tensor, labels: &Tensor, loss: &Tensor) {
        self.batches.push((labels.size()[0] as u64, Some(batch_sums(logits, labels, loss))));
    }

    /// Adds a batch that counts nothing (a replica's empty shard).
    pub fn add_nothing(&mut self) {
        self.batches.push((0, None));
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.batches.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    /// Every batch's tally, in the order added (one wait for the device), and forgets them.
    pub fn take(&mut self) -> Vec<Tally> {
        let batches = std::mem::take(&mut self.batches);
        // Joined where they are, then copied to the host at once.
        let counted: Vec<&Tensor> = batches.iter().filter_map(|(_, sums)| sums.as_ref()).collect();
        let values = if counted.is_empty() {
            Vec::new()
        } else {
            Vec::<f64>::try_from(&Tensor::cat(&counted, 0).to_device(Device::Cpu))
                .expect("three sums per batch")
        };
        let mut sums = values.chunks_exact(3);
        batches
            .iter()
            .map(|(images, counted)| match counted {
                None => Tally::default(),
                Some(_) => {
                    let s = sums.next().expect("three sums per counted batch");
                    Tally {
                        images: *images,
                        correct_top1: s[0] as u64,
                        correct_top5: s[1] as u64,
                        loss_sum: s[2],
                    }
                }
            })
            .collect()
    }
}

/// One batch's top-1 hits, top-5 hits and loss sum (f64, on the logits' device); `loss` is the
/// batch's mean loss.
fn batch_sums(logits: &Tensor, labels: &Tensor, loss: &Tensor) -> Tensor {
    let n = labels.size()[0];
    Tensor::cat(
        &[
            hit_counts(logits, labels).to_kind(Kind::Double),
            (loss.to_kind(Kind::Double) * n as f64).reshape([1]),
        ],
        0,
    )
}

/// A tally's sums as a [`DeviceTally`] keeps them: top-1 hits, top-5 hits, loss sum (on the CPU).
fn sums_of(tally: &Tally) -> Tensor {
    Tensor::from_slice(&[tally.correct_top1 as f64, tally.correct_top5 as f64, tally.loss_sum])
}

/// The batch's top-1 and top-5 hits, as a tensor of 2 on the logits' device.
fn hit_counts(logits: &Tensor, labels: &Tensor) -> Tensor {
    let k = logits.size()[1].min(5);
    let (_, top) = logits.topk(k, 1, true, true);
    let hits = top.eq_tensor(&labels.unsqueeze(1));
    Tensor::stack(&[hits.narrow(1, 0, 1).sum(Kind::Int64), hits.sum(Kind::Int64)], 0)
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

    #[test]
    fn device_tally_reads_what_host_tallies_add_up_to() {
        tch::manual_seed(7);
        let base = Tally { images: 5, correct_top1: 2, correct_top5: 4, loss_sum: 11.375 };
        let mut host = base;
        let mut device = DeviceTally::starting_at(base);
        for batch in 0..4 {
            let logits = Tensor::randn([6, 10], (Kind::Float, Device::Cpu));
            let labels = Tensor::randint(10, [6], (Kind::Int64, Device::Cpu));
            let loss = logits.cross_entropy_for_logits(&labels);
            if batch == 2 {
                // A batch counted elsewhere (another replica's), added as a host tally.
                let mut other = Tally::default();
                other.add(&logits, &labels, loss.double_value(&[]));
                host.merge(&other);
                device.add_tally(&other);
            } else {
                let mut one = Tally::default();
                one.add(&logits, &labels, loss.double_value(&[]));
                host.merge(&one);
                device.add(&logits, &labels, &loss);
            }
        }
        let read = device.read();
        assert_eq!(read, host);
        assert_eq!(read.loss_sum.to_bits(), host.loss_sum.to_bits());
        assert_eq!(DeviceTally::starting_at(base).read(), base);
    }

    /// Batch tallies read at once equal each batch's host tally, bit for bit, in order; a batch
    /// that counts nothing reads as an empty tally.
    #[test]
    fn batch_tallies_read_each_batch_as_a_host_tally() {
        tch::manual_seed(8);
        let mut kept = BatchTallies::default();
        let mut host = Vec::new();
        for batch in 0..4 {
            if batch == 1 {
                kept.add_nothing();
                host.push(Tally::default());
                continue;
            }
            let logits = Tensor::randn([5, 10], (Kind::Float, Device::Cpu));
            let labels = Tensor::randint(10, [5], (Kind::Int64, Device::Cpu));
            let loss = logits.cross_entropy_for_logits(&labels);
            let mut one = Tally::default();
            one.add(&logits, &labels, loss.double_value(&[]));
            host.push(one);
            kept.add(&logits, &labels, &loss);
        }
        assert_eq!(kept.len(), 4);
        let read = kept.take();
        assert_eq!(read, host);
        for (a, b) in read.iter().zip(&host) {
            assert_eq!(a.loss_sum.to_bits(), b.loss_sum.to_bits());
        }
        assert!(kept.is_empty() && kept.take().is_empty());
    }
}
