//! Fitness measured by another process of a job: a fitness evaluator of rank 0 whose model lives
//! on rank r. Each such pair meets in a Gloo group of its own (rank 0 = member 0, rank r =
//! member 1), formed when a training session opens, so that its messages never mix with the
//! control group's. Rank 0 sends the generation's weights once, then per individual its
//! architecture and the validation batches (rank 0 holds the data, augmentation included); rank
//! r answers with the tally. Results equal those of rank 0's own evaluators: the same forward on
//! the same numbers.

use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use super::accuracy::Tally;
use super::fitness::{evaluate_individual, EvalBatch};
use super::TrainError;
use crate::distributed::{DistributedError, GlooBind, ProcessGroup, Store, CONTROL_TIMEOUT, FORM_TIMEOUT};
use crate::model::{ArchWeights, OneShotModel};
use crate::stop::StopFlag;

/// f64s in a header: a word, then room for 2 cells' shapes or a batch's dimensions.
const HEADER: usize = 16;
const LOAD: f64 = 1.0;
const MEASURE: f64 = 2.0;
const BATCH: f64 = 3.0;
const END: f64 = 4.0;
const ABORT: f64 = 5.0;
const CLOSE: f64 = 6.0;

/// Joins the pair of rank 0 (`member` 0) and another rank (`member` 1) meeting in `store` (each
/// waiting [`FORM_TIMEOUT`] for the other). Its exchanges then wait as long as the job's control group does: rank r waits for the next
/// generation's weights through a whole training phase.
pub fn join_pair(store: &Store, member: usize, bind: &GlooBind) -> Result<ProcessGroup, DistributedError> {
    let group = ProcessGroup::gloo(store, member, 2, bind, FORM_TIMEOUT)?.marked_spanning_processes();
    group.set_timeout(CONTROL_TIMEOUT)?;
    Ok(group)
}

/// Rank 0's end of a pair: measures on rank `rank`'s model.
pub struct FitnessLink {
    group: ProcessGroup,
    rank: usize,
}

impl FitnessLink {
    pub fn new(group: ProcessGroup, rank: usize) -> Self {
        Self { group, rank }
    }

    /// The job rank whose model this link measures on.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Makes rank r's model hold `tensors` (every variable, sorted by name).
    pub fn load(&self, tensors: &[(String, Tensor)]) -> Result<(), TrainError> {
        let values: i64 = tensors.iter().map(|(_, t)| t.numel() as i64).sum();
        self.send_header(&[LOAD, values as f64])?;
        let parts: Vec<Tensor> = tensors
            .iter()
            .map(|(_, t)| t.reshape([-1]).to_kind(Kind::Float).to_device(Device::Cpu))
            .collect();
        let mut flat = Tensor::cat(&parts, 0);
        self.group.broadcast(&mut flat, 0)?;
        Ok(())
    }

    /// The tally of `architecture` over `batches` on rank r's model with the weights last
    /// loaded; stopped by `stop` between batches.
    pub fn measure<E: std::fmt::Display>(
        &self,
        architecture: &ArchWeights,
        batches: impl IntoIterator<Item = Result<EvalBatch, E>>,
        stop: &StopFlag,
    ) -> Result<Tally, TrainError> {
        let shapes = architecture.shapes();
        let mut header = vec![MEASURE, shapes.len() as f64];
        header.extend(shapes.iter().flat_map(|&(edges, ops)| [edges as f64, ops as f64]));
        self.send_header(&header)?;
        self.group.broadcast(&mut Tensor::from_slice(&architecture.flat_values()), 0)?;
        for batch in batches {
            let batch = match (stop.is_stopped(), batch) {
                (true, _) => Err(TrainError::Interrupted),
                (false, Err(e)) => Err(TrainError::Data { reason: e.to_string() }),
                (false, Ok(batch)) => Ok(batch),
            };
            let batch = match batch {
                Ok(batch) => batch,
                Err(e) => {
                    self.send_header(&[ABORT])?;
                    return Err(e);
                }
            };
            let images = batch.images.to_device(Device::Cpu).to_kind(Kind::Float).contiguous();
            let mut labels = batch.labels.to_device(Device::Cpu).to_kind(Kind::Int64).contiguous();
            let mut dims = vec![BATCH, images.dim() as f64];
            dims.extend(images.size().iter().map(|&d| d as f64));
            self.send_header(&dims)?;
            let mut images = images;
            self.group.broadcast(&mut images, 0)?;
            self.group.broadcast(&mut labels, 0)?;
        }
        self.send_header(&[END])?;
        let mut answer = Tensor::zeros([5], (Kind::Double, Device::Cpu));
        self.group.broadcast(&mut answer, 1)?;
        let a = Vec::<f64>::try_from(&answer).map_err(|e| self.failed(e.to_string()))?;
        if a[4] != 0.0 {
            return Err(self.failed("its fitness measurement failed (its log says why)".into()));
        }
        Ok(Tally {
            images: a[0] as u64,
            correct_top1: a[1] as u64,
            correct_top5: a[2] as u64,
            loss_sum: a[3],
        })
    }

    fn send_header(&self, numbers: &[f64]) -> Result<(), DistributedError> {
        let mut header = vec![0.0; HEADER];
        header[..numbers.len()].copy_from_slice(numbers);
        self.group.broadcast(&mut Tensor::from_slice(&header), 0)
    }

    fn failed(&self, reason: String) -> TrainError {
        TrainError::Rank { rank: self.rank, reason }
    }
}

impl Drop for FitnessLink {
    fn drop(&mut self) {
        let _ = self.send_header(&[CLOSE]);
    }
}

/// Rank r's end of a pair: measures on `model` (its variables in `vs`) what rank 0 sends,
/// until rank 0 closes the link. An error here is the pair's end: the rank then fails the job.
pub fn serve_fitness(
    group: &ProcessGroup,
    vs: &VarStore,
    model: &dyn OneShotModel,
    train_mode_bn: bool,
) -> Result<(), TrainError> {
    let mut variables: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    variables.sort_by(|a, b| a.0.cmp(&b.0));
    loop {
        let header = receive_header(group)?;
        match header[0] {
            LOAD => {
                let mut flat = Tensor::zeros([header[1] as i64], (Kind::Float, Device::Cpu));
                group.broadcast(&mut flat, 0)?;
                tch::no_grad(|| {
                    let mut offset = 0;
                    for (_, t) in &variables {
                        let n = t.numel() as i64;
                        let mut target = t.shallow_clone();
                        let part = flat.narrow(0, offset, n).view(t.size().as_slice());
                        target.copy_(&part.to_kind(t.kind()).to_device(t.device()));
                        offset += n;
                    }
                });
            }
            MEASURE => measure_for_rank_0(group, &header, model, vs.device(), train_mode_bn)?,
            CLOSE => return Ok(()),
            other => {
                return Err(TrainError::Rank {
                    rank: 0,
                    reason: format!("sent an unknown fitness word {other}"),
                })
            }
        }
    }
}

fn measure_for_rank_0(
    group: &ProcessGroup,
    header: &[f64],
    model: &dyn OneShotModel,
    device: Device,
    train_mode_bn: bool,
) -> Result<(), TrainError> {
    let cells = header[1] as usize;
    let shapes: Vec<(usize, usize)> =
        (0..cells).map(|c| (header[2 + 2 * c] as usize, header[3 + 2 * c] as usize)).collect();
    let values: usize = shapes.iter().map(|(e, o)| e * o).sum();
    let mut flat = Tensor::zeros([values as i64], (Kind::Float, Device::Cpu));
    group.broadcast(&mut flat, 0)?;
    let flat =
        Vec::<f32>::try_from(&flat).map_err(|e| TrainError::Rank { rank: 0, reason: e.to_string() })?;
    let architecture = ArchWeights::from_flat(&shapes, &flat)?;
    // Batches as rank 0 sends them, until END (answer) or ABORT (rank 0 stopped: no answer).
    let mut ended = None;
    let mut link_error = None;
    let batches = std::iter::from_fn(|| {
        if ended.is_some() {
            return None;
        }
        match receive_batch(group, device) {
            Ok(batch) => Some(Ok::<_, String>(batch)),
            Err(Received::End(word)) => {
                ended = Some(word);
                None
            }
            Err(Received::Lost(e)) => {
                link_error = Some(e);
                ended = Some(ABORT);
                None
            }
        }
    });
    let measured = evaluate_individual(model, &architecture, batches, train_mode_bn, &StopFlag::new());
    if let Some(e) = link_error {
        return Err(e.into());
    }
    // A forward that failed leaves batches unread: read them to the end to stay in step.
    let mut word = ended;
    while word.is_none() {
        match receive_batch(group, device) {
            Ok(_) => {}
            Err(Received::End(w)) => word = Some(w),
            Err(Received::Lost(e)) => return Err(e.into()),
        }
    }
    if word == Some(ABORT) {
        return Ok(());
    }
    let answer = match &measured {
        Ok(t) => [t.images as f64, t.correct_top1 as f64, t.correct_top5 as f64, t.loss_sum, 0.0],
        Err(_) => [0.0, 0.0, 0.0, 0.0, 1.0],
    };
    group.broadcast(&mut Tensor::from_slice(&answer), 1)?;
    measured.map(|_| ())
}

/// Why no batch came.
enum Received {
    /// END or ABORT.
    End(f64),
    Lost(DistributedError),
}

fn receive_batch(group: &ProcessGroup, device: Device) -> Result<EvalBatch, Received> {
    let header = receive_header(group).map_err(|e| match e {
        TrainError::Distributed(e) => Received::Lost(e),
        other => Received::Lost(DistributedError::Collective {
            operation: "broadcast",
            rank: group.rank(),
            size: group.size(),
            reason: other.to_string(),
        }),
    })?;
    if header[0] != BATCH {
        return Err(Received::End(header[0]));
    }
    let dims = header[1] as usize;
    let size: Vec<i64> = header[2..2 + dims].iter().map(|&d| d as i64).collect();
    let mut images = Tensor::zeros(size.as_slice(), (Kind::Float, Device::Cpu));
    let mut labels = Tensor::zeros([size[0]], (Kind::Int64, Device::Cpu));
    group.broadcast(&mut images, 0).map_err(Received::Lost)?;
    group.broadcast(&mut labels, 0).map_err(Received::Lost)?;
    Ok(EvalBatch { images: images.to_device(device), labels: labels.to_device(device) })
}

fn receive_header(group: &ProcessGroup) -> Result<Vec<f64>, TrainError> {
    let mut header = Tensor::zeros([HEADER as i64], (Kind::Double, Device::Cpu));
    group.broadcast(&mut header, 0)?;
    Vec::<f64>::try_from(&header).map_err(|e| TrainError::Rank { rank: 0, reason: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Supernet, SupernetConfig};

    fn supernet() -> (VarStore, Supernet) {
        let vs = VarStore::new(Device::Cpu);
        let net = Supernet::new(&vs.root(), SupernetConfig::new(4, 3, 1, 10));
        (vs, net)
    }

    fn owned(batches: &[EvalBatch]) -> impl Iterator<Item = Result<EvalBatch, String>> + '_ {
        batches.iter().map(|b| Ok(b.shallow_clone()))
    }

    /// A model on the other end of a pair, loaded with this one's weights, measures exactly what
    /// this one does (both BatchNorm modes); a stopped measurement leaves the pair usable.
    #[test]
    fn a_remote_model_measures_what_a_local_one_does() {
        tch::manual_seed(3);
        let (vs, model) = supernet();
        let alphas: Vec<Tensor> =
            (0..2).map(|_| Tensor::randn([14, 8], (Kind::Float, Device::Cpu))).collect();
        let arch = ArchWeights::from_alphas(&alphas).unwrap();
        let batches: Vec<EvalBatch> = (0..3)
            .map(|_| EvalBatch {
                images: Tensor::randn([6, 1, 28, 28], (Kind::Float, Device::Cpu)),
                labels: Tensor::randint(10, [6], (Kind::Int64, Device::Cpu)),
            })
            .collect();
        let local = |bn| {
            evaluate_individual(&model, &arch, batches.iter().map(Ok::<_, String>), bn, &StopFlag::new())
        };
        let expected = [local(true).unwrap(), local(false).unwrap()];
        let mut sorted: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));

        let store = Store::in_process().unwrap();
        let bind = GlooBind::Host("127.0.0.1".into());
        for train_mode_bn in [true, false] {
            let pair = store.prefixed(&format!("bn-{train_mode_bn}")).unwrap();
            std::thread::scope(|s| {
                let server = s.spawn(|| {
                    // Other initial weights: the link's load must replace them all.
                    tch::manual_seed(99);
                    let (remote_vs, remote_model) = supernet();
                    let group = join_pair(&pair, 1, &bind).unwrap();
                    serve_fitness(&group, &remote_vs, &remote_model, train_mode_bn)
                });
                let link = FitnessLink::new(join_pair(&pair, 0, &bind).unwrap(), 1);
                link.load(&sorted).unwrap();
                let want = expected[usize::from(!train_mode_bn)];
                assert_eq!(link.measure(&arch, owned(&batches), &StopFlag::new()).unwrap(), want);
                let stopped = StopFlag::new();
                stopped.stop();
                assert!(matches!(
                    link.measure(&arch, owned(&batches), &stopped),
                    Err(TrainError::Interrupted)
                ));
                assert_eq!(link.measure(&arch, owned(&batches), &StopFlag::new()).unwrap(), want);
                drop(link);
                server.join().unwrap().unwrap();
            });
        }
    }
}
