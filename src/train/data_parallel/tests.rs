use super::*;
use crate::model::{Supernet, SupernetConfig};
use crate::train::accuracy::DeviceTally;
use crate::train::supernet_epoch::SingleReplica;

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
    let mut dp = DataParallel { model: &parallel, opt: &mut parallel_opt, replicas: &set };
    dp.train_batch(&b, &a, step, 1.0, 1e9, &mut tn).unwrap();
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
    for i in 1..4 {
        let b = batch(7, &[3, 8, 8], 10);
        let mut dp = DataParallel { model: &model, opt: &mut opt, replicas: &set };
        let mut tally = DeviceTally::default();
        dp.train_batch(&b, &archs[i % 2], step(i), 0.05, 5.0, &mut tally).unwrap();
        assert_eq!(tally.read().images, 7);
    }
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

#[test]
fn shards_are_as_equal_as_possible() {
    assert_eq!(shard_sizes(7, 3), Some(vec![3, 2, 2]));
    assert_eq!(shard_sizes(64, 2), Some(vec![32, 32]));
    assert_eq!(shard_sizes(2, 3), Some(vec![1, 1, 0]));
    assert_eq!(shard_sizes(0, 3), None);
}

/// CPU replicas sharing `threads`, with the default collectives (Gloo on the CPU).
fn options(sgd: SgdConfig, threads: usize) -> ReplicaOptions {
    ReplicaOptions { sgd, threads, collectives: CollectivesSetting::Auto }
}
