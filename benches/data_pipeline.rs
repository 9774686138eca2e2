//! Throughput of the CIFAR training pipeline in images/s: the fused augmentation of one batch of 64
//! (crop 32 with padding 4, flip, normalise; as train_search.py's train_transform), and the prefetcher end
//! to end (one epoch of a 25,000-image split, the paper's train part, consumed as fast as possible).
//! Synthetic CIFAR-format data; compare with scripts/bench/reference_pipeline.py via
//! scripts/bench/data_pipeline.sh.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use evnas::data::{
    make_batch, CifarAugment, DatasetKind, EpochPlan, InMemoryDataset, InMemorySource, PrefetchConfig,
    Producer, StopFlag,
};

const IMAGES: usize = 25_000;
const BATCH: usize = 64;

fn synthetic_cifar() -> Arc<InMemoryDataset> {
    // A cheap deterministic generator: the pixel values do not affect the work done.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let pixels = (0..IMAGES * 3072)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let labels = (0..IMAGES as i64).map(|i| i % 10).collect();
    Arc::new(InMemoryDataset::new(pixels, labels, [3, 32, 32], 10).expect("synthetic dataset"))
}

fn benches(c: &mut Criterion) {
    let dataset = synthetic_cifar();
    let source = Arc::new(
        InMemorySource::new(dataset, &DatasetKind::Cifar10.normalization(), Some(CifarAugment::default()))
            .expect("source"),
    );
    let indices: Vec<usize> = (0..IMAGES).collect();
    let plan = EpochPlan::shuffled(&indices, BATCH, 0, 0).expect("plan");

    let mut group = c.benchmark_group("cifar_train_transform");
    group.throughput(Throughput::Elements(BATCH as u64));
    let mut next = 0;
    group.bench_function("batch64", |b| {
        b.iter(|| {
            next = (next + 1) % plan.num_batches();
            make_batch(source.as_ref(), &plan, next, false).expect("batch")
        })
    });
    group.finish();

    let producer = Producer::new(source.clone(), PrefetchConfig { depth: 8, threads: 0, pin_memory: false })
        .expect("producer");
    let mut group = c.benchmark_group("prefetcher_epoch");
    group.sample_size(10);
    group.throughput(Throughput::Elements(IMAGES as u64));
    let mut epoch = 0;
    group.bench_function("cifar25k_batch64", |b| {
        b.iter(|| {
            epoch += 1;
            let plan = EpochPlan::shuffled(&indices, BATCH, 0, epoch).expect("plan");
            let stream = producer.start_epoch(plan, StopFlag::new()).expect("stream");
            stream.map(|batch| batch.expect("batch").len()).sum::<usize>()
        })
    });
    group.finish();
}

criterion_group! {
    name = data_pipeline;
    config = Criterion::default().warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(4));
    targets = benches
}
criterion_main!(data_pipeline);
