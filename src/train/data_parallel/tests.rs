use super::*;
use crate::model::{Supernet, SupernetConfig};
use crate::stop::StopFlag;
use crate::train::accuracy::DeviceTally;
use crate::train::fixed_start::{
    fixed_architectures, fixed_batches, fixed_supernet, small_supernet, trainable,
};
use crate::train::supernet_epoch::{
    continue_epoch_with, EpochEnd, EpochReport, EpochSettings, SingleReplica,
};

const SGD_PLAIN: SgdConfig = SgdConfig { momentum: 0.0, weight_decay: 0.0 };
const SGD_PAPER: SgdConfig = SgdConfig { momentum: 0.9, weight_decay: 3e-4 };

/// A supernet without BatchNorm: logits = x·W + b, scaled by the architecture's first weight,
/// so that the gradient of a batch's mean loss is exactly the mean of per-image gradients.
struct Linear {
    w: Tensor,
    b: Tensor,
}

impl Linear {
    fn new(vs: &VarStore) -> Self {
        let root = vs.root();
        Self { w: root.randn("w", &[12, 5], 0.0, 0.5), b: root.zeros("b", &[5]) }
    }
}

impl OneShotModel for Linear {
    fn forward_arch(
        &self,
        x: &Tensor,
        arch: &ArchWeights,
        _: bool,
    ) -> Result<Tensor, crate::model::ModelError> {
        let scale = f64::from(arch.cells()[0].edge(0)[0]);
        Ok((x.flatten(1, -1).matmul(&self.w) + &self.b) * scale)
    }
}

fn arch(edges: i64, ops: i64, cells: usize) -> ArchWeights {
    let alphas: Vec<Tensor> =
        (0..cells).map(|_| Tensor::randn([edges, ops], (Kind::Float, Device::Cpu))).collect();
    ArchWeights::from_alphas(&alphas).unwrap()
}

fn batch(images: i64, shape: &[i64], classes: i64) -> Batch {
    let mut size = vec![images];
    size.extend_from_slice(shape);
    Batch {
        images: Tensor::randn(size.as_slice(), (Kind::Float, Device::Cpu)),
        labels: Tensor::randint(classes, [images], (Kind::Int64, Device::Cpu)),
        index: 0,
    }
}

fn weights(vs: &VarStore) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> =
        vs.variables().into_iter().map(|(k, t)| (k, t.detach().copy())).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// One step of the same batch on one replica and on `replicas` replicas: the same update, up to
/// float rounding of the sum over shards (a module without BatchNorm).
fn averaged_gradient_is_the_full_batch_gradient(replicas: usize, images: i64) {
    tch::manual_seed(11);
    let single_vs = VarStore::new(Device::Cpu);
    let single = Linear::new(&single_vs);
    let mut parallel_vs = VarStore::new(Device::Cpu);
    let parallel = Linear::new(&parallel_vs);
    parallel_vs.copy(&single_vs).unwrap();
    let before = weights(&single_vs);

    let mut single_opt = Sgd::new(&single_vs, SGD_PLAIN);
    let mut parallel_opt = Sgd::new(&parallel_vs, SGD_PLAIN);
    let build: BuildReplica =
        Arc::new(|vs: &VarStore| Ok(Box::new(Linear::new(vs)) as Box<dyn OneShotModel>));
    let set = ReplicaSet::start(
        &parallel_vs,
        &mut parallel_opt,
        &vec![Device::Cpu; replicas],
        options(SGD_PLAIN, 2),
        build,
        None,
    )
    .unwrap();

    let (a, b) = (arch(2, 3, 1), batch(images, &[3, 2, 2], 5));
    let step = StepIndex { batch: 0, individual: 0 };
    let (mut t1, mut tn) = (DeviceTally::default(), DeviceTally::default());
    SingleReplica::new(&single, &mut single_opt).train_batch(&b, &a, step, 1.0, 1e9, &mut t1).unwrap();
    let mut dp = DataParallel::new(&parallel, &mut parallel_opt, &set);
    dp.train_batch(&b, &a, step, 1.0, 1e9, &mut tn).unwrap();
    // The replicas' counts join the tallies when the pass settles.
    assert_eq!(tn.read().images, 0);
    dp.settle(std::slice::from_mut(&mut tn)).unwrap();
    let (t1, tn) = (t1.read(), tn.read());

    assert_eq!(t1.images, tn.images);
    assert_eq!(t1.correct_top1, tn.correct_top1);
    assert!((t1.loss_sum - tn.loss_sum).abs() < 1e-4, "{} vs {}", t1.loss_sum, tn.loss_sum);
    for (((name, w0), (_, w1)), (_, wn)) in before.iter().zip(weights(&single_vs)).zip(weights(&parallel_vs))
    {
        let (d1, dn) = (&w1 - w0, &wn - w0);
        assert!(d1.abs().max().double_value(&[]) > 1e-3, "{name} did not move");
        let err = (&d1 - &dn).abs().max().double_value(&[]);
        assert!(err < 1e-6, "{name}: {replicas} replicas' update differs from one's by {err}");
    }
    set.check_in_step(&parallel_vs, &parallel_opt).unwrap();
}

#[test]
fn two_replicas_average_to_the_full_batch_gradient() {
    averaged_gradient_is_the_full_batch_gradient(2, 6);
}

#[test]
fn three_replicas_of_unequal_shards_average_to_the_full_batch_gradient() {
    averaged_gradient_is_the_full_batch_gradient(3, 7);
}

/// The DARTS supernet (BatchNorm, momentum, weight decay, clipping) on 3 replicas: after several
/// steps every replica's weights and momentum are bit-identical to the leader's; the
/// leader had momentum before the replicas started (a resumed search), and they received it.
#[test]
fn darts_replicas_stay_bit_identical_over_steps() {
    tch::manual_seed(5);
    let config = SupernetConfig::new(4, 3, 3, 10);
    let vs = VarStore::new(Device::Cpu);
    let model = Supernet::new(&vs.root(), config);
    let mut opt = Sgd::new(&vs, SGD_PAPER);
    let archs = [arch(14, 8, 2), arch(14, 8, 2)];
    let first = batch(4, &[3, 8, 8], 10);
    let step = |i| StepIndex { batch: i, individual: i % 2 };
    SingleReplica::new(&model, &mut opt)
        .train_batch(&first, &archs[0], step(0), 0.05, 5.0, &mut DeviceTally::default())
        .unwrap();
    assert!(!opt.momentum_buffers().is_empty());

    let build: BuildReplica = Arc::new(move |vs: &VarStore| {
        Ok(Box::new(Supernet::new(&vs.root(), config)) as Box<dyn OneShotModel>)
    });
    let set =
        ReplicaSet::start(&vs, &mut opt, &[Device::Cpu; 3], options(SGD_PAPER, 3), build, None).unwrap();
    assert_eq!(set.replicas(), 3);
    assert_eq!(set.collectives(), "gloo");
    assert_eq!(set.threads_per_replica(), 1);
    set.check_in_step(&vs, &opt).unwrap();
    let start = set.fingerprints(&vs, &opt).unwrap()[0].clone();
    let mut dp = DataParallel::new(&model, &mut opt, &set);
    let mut tallies: Vec<DeviceTally> = (0..2).map(|_| DeviceTally::default()).collect();
    for i in 1..4 {
        let b = batch(7, &[3, 8, 8], 10);
        dp.train_batch(&b, &archs[i % 2], step(i), 0.05, 5.0, &mut tallies[i % 2]).unwrap();
    }
    dp.settle(&mut tallies).unwrap();
    assert_eq!([tallies[0].read().images, tallies[1].read().images], [7, 14]);
    let prints = set.fingerprints(&vs, &opt).unwrap();
    assert_ne!(prints[0], start, "the steps changed nothing");
    assert!(prints.iter().all(|p| *p == prints[0]), "{prints:?}");
}

/// A batch of fewer images than replicas (an epoch's last, say): the replicas left without an
/// image contribute nothing, and the update is still the full batch's.
#[test]
fn a_batch_smaller_than_the_replicas_is_the_full_batch_update() {
    averaged_gradient_is_the_full_batch_gradient(3, 2);
    averaged_gradient_is_the_full_batch_gradient(3, 1);
}

#[test]
fn a_replica_that_cannot_build_its_supernet_is_named() {
    let vs = VarStore::new(Device::Cpu);
    let _model = Linear::new(&vs);
    let mut opt = Sgd::new(&vs, SGD_PLAIN);
    let build: BuildReplica = Arc::new(|_: &VarStore| Err("no memory left".to_string()));
    let err = ReplicaSet::start(&vs, &mut opt, &[Device::Cpu; 2], options(SGD_PLAIN, 2), build, None)
        .err()
        .unwrap();
    assert!(err.to_string().contains("replica 1") && err.to_string().contains("no memory left"), "{err}");
}

/// NCCL asked for CPU replicas: refused before any replica is built.
#[test]
fn nccl_for_cpu_replicas_is_refused_before_they_start() {
    let vs = VarStore::new(Device::Cpu);
    let _model = Linear::new(&vs);
    let mut opt = Sgd::new(&vs, SGD_PLAIN);
    let built = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = built.clone();
    let build: BuildReplica = Arc::new(move |vs: &VarStore| {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(Box::new(Linear::new(vs)) as Box<dyn OneShotModel>)
    });
    let nccl = ReplicaOptions { collectives: CollectivesSetting::Nccl, ..options(SGD_PLAIN, 2) };
    let err = ReplicaSet::start(&vs, &mut opt, &[Device::Cpu; 2], nccl, build, None).err().unwrap();
    assert!(err.to_string().contains("NCCL cannot be used"), "{err}");
    assert_eq!(built.load(std::sync::atomic::Ordering::SeqCst), 0);
}

/// A DARTS supernet on `replicas` CPU replicas, and the architectures of a population of 3.
struct Replicated {
    vs: VarStore,
    model: Supernet,
    opt: Sgd,
    set: ReplicaSet,
    architectures: Vec<ArchWeights>,
}

impl Replicated {
    fn new(replicas: usize) -> Self {
        Self::in_precision(replicas, Precision::Fp32)
    }

    /// Weights and architectures from a fixed formula
    /// ([`fixed_start`](crate::train::fixed_start)), not libtorch's global generator.
    fn in_precision(replicas: usize, precision: Precision) -> Self {
        let config = small_supernet();
        let (vs, model) = fixed_supernet();
        let mut opt = Sgd::new(&vs, SGD_PAPER);
        let architectures = fixed_architectures(3);
        let build: BuildReplica = Arc::new(move |vs: &VarStore| {
            Ok(Box::new(Supernet::new(&vs.root(), config)) as Box<dyn OneShotModel>)
        });
        let devices = vec![Device::Cpu; replicas];
        let options = ReplicaOptions { precision, ..options(SGD_PAPER, replicas) };
        let set = ReplicaSet::start(&vs, &mut opt, &devices, options, build, None).unwrap();
        Self { vs, model, opt, set, architectures }
    }

    /// Trains over `batches`, continuing `done`, every replica checking its summed losses every
    /// `check_every` steps.
    fn pass(
        &mut self,
        check_every: usize,
        batches: Vec<Result<Batch, String>>,
        done: EpochReport,
    ) -> Result<EpochEnd, TrainError> {
        let stop = StopFlag::new();
        let settings =
            EpochSettings { lr: 0.05, grad_clip: 5.0, architectures: &self.architectures, stop: &stop };
        let mut dp = DataParallel::checking_every(&self.model, &mut self.opt, &self.set, check_every);
        continue_epoch_with(&mut dp, &settings, batches, done, |_| {})
    }

    /// The leader's trainable weights, after checking every replica holds the same.
    fn weights(&self) -> Vec<Tensor> {
        self.set.check_in_step(&self.vs, &self.opt).unwrap();
        trainable(&self.vs).iter().map(|t| t.detach().copy()).collect()
    }
}

/// `count` batches of 5 images (odd: the replicas' shards differ in size); batch `nan_at`'s
/// images are NaN.
fn batches(count: usize, nan_at: Option<usize>) -> Vec<Result<Batch, String>> {
    fixed_batches(count, 5, nan_at)
}

fn finished(end: Result<EpochEnd, TrainError>) -> EpochReport {
    match end {
        Ok(EpochEnd::Finished(report)) => report,
        other => panic!("the pass did not finish: {other:?}"),
    }
}

fn assert_same_weights(a: &[Tensor], b: &[Tensor]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert!(x.equal(y));
    }
}

/// Replicas that check their summed losses in groups (as on GPUs) and keep their counts on
/// their devices until the pass settles train the same weights and count the same tallies, bit
/// for bit, as replicas checking every step; and a pass continued after a stop counts what one
/// uninterrupted pass does.
#[test]
fn grouped_checks_and_kept_counts_change_no_number_on_replicas() {
    let mut every_step = Replicated::new(2);
    let a = finished(every_step.pass(1, batches(7, None), EpochReport::default()));
    let mut grouped = Replicated::new(2);
    let b = finished(grouped.pass(4, batches(7, None), EpochReport::default()));
    assert_eq!(a.batches, 7);
    assert_eq!(a.total().images, 35);
    assert_eq!(a.per_individual, b.per_individual);
    assert_same_weights(&every_step.weights(), &grouped.weights());

    let mut continued = Replicated::new(2);
    let mut all = batches(7, None);
    let rest = all.split_off(3);
    let first = finished(continued.pass(4, all, EpochReport::default()));
    let whole = finished(continued.pass(4, rest, first));
    assert_eq!(whole.per_individual, a.per_individual);
    for (x, y) in whole.per_individual.iter().zip(&a.per_individual) {
        assert_eq!(x.loss_sum.to_bits(), y.loss_sum.to_bits());
    }
    assert_same_weights(&continued.weights(), &every_step.weights());
}

/// A non-finite loss on replicas is named by its batch and individual whether checked at once
/// or with its group; checked at every step, it never reaches any replica's weights.
#[test]
fn a_non_finite_loss_on_replicas_is_named_exactly_in_any_grouping() {
    for check_every in [1, 4] {
        let end = Replicated::new(2).pass(check_every, batches(7, Some(5)), EpochReport::default());
        assert!(
            matches!(end, Err(TrainError::NonFiniteLoss { batch: 5, individual: 2 })),
            "checking every {check_every}: {end:?}"
        );
    }
    let mut clean = Replicated::new(2);
    finished(clean.pass(1, batches(5, None), EpochReport::default()));
    let mut stopped = Replicated::new(2);
    assert!(stopped.pass(1, batches(7, Some(5)), EpochReport::default()).is_err());
    assert_same_weights(&stopped.weights(), &clean.weights());
}

/// Replicas training in bf16 (each thread under autocast of its own) stay bit-identical, and
/// train other weights than in fp32.
#[test]
fn bf16_replicas_stay_bit_identical() {
    let mut fp32 = Replicated::new(2);
    finished(fp32.pass(1, batches(4, None), EpochReport::default()));
    let mut bf16 = Replicated::in_precision(2, Precision::Bf16);
    finished(bf16.pass(1, batches(4, None), EpochReport::default()));
    let (a, b) = (fp32.weights(), bf16.weights());
    assert!(a.iter().zip(&b).any(|(x, y)| !x.equal(y)), "bf16 changed no weight");
}

#[test]
fn shards_are_as_equal_as_possible() {
    assert_eq!(shard_sizes(7, 3), Some(vec![3, 2, 2]));
    assert_eq!(shard_sizes(64, 2), Some(vec![32, 32]));
    assert_eq!(shard_sizes(2, 3), Some(vec![1, 1, 0]));
    assert_eq!(shard_sizes(0, 3), None);
}

/// CPU replicas sharing `threads`, with the default collectives (Gloo on the CPU).
fn options(sgd: SgdConfig, threads: usize) -> ReplicaOptions {
    ReplicaOptions { sgd, threads, collectives: CollectivesSetting::Auto, precision: Precision::Fp32 }
}

/// A replica's failed collective reaches its caller typed, so that a rank of a job that only
/// saw another process fail does not report that as its own failure; other failures do not.
#[test]
fn a_replicas_failed_collective_stays_a_collective_failure() {
    let lost = DistributedError::ProcessLost {
        operation: "all-reduce",
        rank: 1,
        size: 3,
        reason: "Connection closed by peer".into(),
    };
    let from_collective = ReplicaFailure::from(TrainError::Distributed(lost)).into_error(1);
    assert!(from_collective.is_collective(), "{from_collective}");
    assert!(from_collective.to_string().starts_with("supernet replica 1: all-reduce as rank 1 of 3 failed"));
    let own = ReplicaFailure::from(TrainError::NonFiniteLoss { batch: 3, individual: 0 }).into_error(1);
    assert!(!own.is_collective(), "{own}");
    assert!(own.to_string().contains("loss is not finite at batch 3"), "{own}");
}
