//! The producer (plain and behind the kameo actor) delivers every batch of an epoch exactly once, in
//! plan order, identical to batches made synchronously; it stops on its stop flag, on a dropped stream,
//! and after the first error, which arrives as a message.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use evnas::actors::prefetch::{BatchOrder, PrefetchActor, StartEpoch, StopAll};
use evnas::data::{
    make_batch, BatchSource, CifarAugment, DataError, DatasetKind, EpochPlan, InMemoryDataset,
    InMemorySource, PrefetchConfig, Producer, StopFlag,
};
use kameo::actor::Spawn;

/// Image `i` has label `i`, so labels identify items.
fn identity_dataset(n: usize) -> Arc<InMemoryDataset> {
    let pixels = (0..n * 3 * 4 * 4).map(|i| (i % 256) as u8).collect();
    Arc::new(InMemoryDataset::new(pixels, (0..n as i64).collect(), [3, 4, 4], n).unwrap())
}

fn augmenting_source(n: usize) -> Arc<InMemorySource> {
    let augment = CifarAugment { padding: 2, flip: true, cutout: None };
    Arc::new(
        InMemorySource::new(identity_dataset(n), &DatasetKind::Cifar10.normalization(), Some(augment))
            .unwrap(),
    )
}

/// Counts the batches built, and fails at `fail_at` if set.
struct CountingSource {
    inner: Arc<InMemorySource>,
    built: Arc<AtomicUsize>,
    fail_at: Option<usize>,
}

impl BatchSource for CountingSource {
    fn image_shape(&self) -> [usize; 3] {
        self.inner.image_shape()
    }
    fn len(&self) -> usize {
        self.inner.len()
    }
    fn num_classes(&self) -> usize {
        self.inner.num_classes()
    }
    fn fill(
        &self,
        items: &[usize],
        seed: u64,
        images: &mut [f32],
        labels: &mut [i64],
    ) -> Result<(), DataError> {
        let built = self.built.fetch_add(1, Ordering::SeqCst);
        if Some(built) == self.fail_at {
            return Err(DataError::InvalidSetting { reason: format!("injected failure at batch {built}") });
        }
        self.inner.fill(items, seed, images, labels)
    }
}

fn config(depth: usize) -> PrefetchConfig {
    PrefetchConfig { depth, threads: 2, pin_memory: false }
}

#[test]
fn every_batch_arrives_once_in_plan_order_and_equals_the_synchronous_batch() {
    let source = augmenting_source(103);
    let producer = Producer::new(source.clone(), config(2)).unwrap();
    let indices: Vec<usize> = (0..103).collect();
    let plan = EpochPlan::shuffled(&indices, 10, 5, 2).unwrap();
    let stream = producer.start_epoch(plan.clone(), StopFlag::new()).unwrap();
    assert_eq!(stream.remaining(), 11);
    let batches: Vec<_> = stream.collect::<Result<_, _>>().unwrap();
    assert_eq!(batches.iter().map(|b| b.index).collect::<Vec<_>>(), (0..11).collect::<Vec<_>>());
    let mut seen = Vec::new();
    for batch in &batches {
        let labels = Vec::<i64>::try_from(&batch.labels).unwrap();
        assert_eq!(labels, plan.batch(batch.index).iter().map(|&i| i as i64).collect::<Vec<_>>());
        seen.extend(labels);
        let expected = make_batch(source.as_ref(), &plan, batch.index, false).unwrap();
        assert!(batch.images.equal(&expected.images), "batch {}", batch.index);
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..103).collect::<Vec<i64>>());
}

#[test]
fn resuming_mid_epoch_delivers_the_remaining_batches_unchanged() {
    let source = augmenting_source(50);
    let producer = Producer::new(source.clone(), config(3)).unwrap();
    let plan = EpochPlan::shuffled(&(0..50).collect::<Vec<_>>(), 8, 1, 0).unwrap();
    let full: Vec<_> =
        producer.start_epoch(plan.clone(), StopFlag::new()).unwrap().map(Result::unwrap).collect();
    let tail: Vec<_> =
        producer.start_epoch(plan.starting_at(4), StopFlag::new()).unwrap().map(Result::unwrap).collect();
    assert_eq!(tail.len(), 3);
    for (resumed, original) in tail.iter().zip(&full[4..]) {
        assert_eq!(resumed.index, original.index);
        assert!(resumed.images.equal(&original.images));
    }
}

fn counting(n: usize, fail_at: Option<usize>) -> (Arc<CountingSource>, Arc<AtomicUsize>) {
    let built = Arc::new(AtomicUsize::new(0));
    (Arc::new(CountingSource { inner: augmenting_source(n), built: built.clone(), fail_at }), built)
}

#[test]
fn stop_flag_ends_production_early() {
    let (source, built) = counting(2000, None);
    let producer = Producer::new(source, config(1)).unwrap();
    let plan = EpochPlan::sequential(&(0..2000).collect::<Vec<_>>(), 1, 0, 0).unwrap();
    let stop = StopFlag::new();
    let mut stream = producer.start_epoch(plan, stop.clone()).unwrap();
    assert!(stream.next().unwrap().is_ok());
    stop.stop();
    // At most the queued batch and the one in flight remain.
    let rest = stream.by_ref().count();
    assert!(rest <= 2, "{rest} batches after stop");
    assert!(built.load(Ordering::SeqCst) < 10);
}

#[test]
fn dropping_the_stream_stops_the_producer() {
    let (source, built) = counting(2000, None);
    let producer = Producer::new(source, config(2)).unwrap();
    let plan = EpochPlan::sequential(&(0..2000).collect::<Vec<_>>(), 1, 0, 0).unwrap();
    let mut stream = producer.start_epoch(plan, StopFlag::new()).unwrap();
    assert!(stream.next().unwrap().is_ok());
    // Drop joins the producer thread, so the count below is final.
    drop(stream);
    let after_drop = built.load(Ordering::SeqCst);
    assert!(after_drop < 10, "{after_drop} batches built for 1 consumed");
}

#[test]
fn an_error_arrives_as_a_message_and_ends_the_epoch() {
    let (source, built) = counting(100, Some(3));
    let producer = Producer::new(source, config(4)).unwrap();
    let plan = EpochPlan::sequential(&(0..100).collect::<Vec<_>>(), 10, 0, 0).unwrap();
    let items: Vec<_> = producer.start_epoch(plan, StopFlag::new()).unwrap().collect();
    assert_eq!(items.len(), 4);
    assert!(items[..3].iter().all(Result::is_ok));
    assert!(matches!(items[3], Err(DataError::InvalidSetting { .. })));
    assert_eq!(built.load(Ordering::SeqCst), 4);
}

#[test]
fn the_actor_hands_out_an_epoch_stream_and_stops_it() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    runtime.block_on(async {
        let source = augmenting_source(30);
        let producer = Producer::new(source.clone(), config(2)).unwrap();
        let actor =
            PrefetchActor::spawn(PrefetchActor::new(producer, (0..30).collect(), 7, 9, BatchOrder::Shuffled));
        let stream = actor.ask(StartEpoch { epoch: 1, first_batch: 0 }).await.unwrap();
        // The consumer blocks on the channel, so it runs off the runtime's workers.
        let batches = tokio::task::spawn_blocking(move || stream.map(Result::unwrap).collect::<Vec<_>>())
            .await
            .unwrap();
        let plan = EpochPlan::shuffled(&(0..30).collect::<Vec<_>>(), 7, 9, 1).unwrap();
        assert_eq!(batches.len(), 5);
        for batch in &batches {
            assert!(batch
                .images
                .equal(&make_batch(source.as_ref(), &plan, batch.index, false).unwrap().images));
        }

        let (slow, _) = counting(5000, None);
        let producer = Producer::new(slow, config(1)).unwrap();
        let actor = PrefetchActor::spawn(PrefetchActor::new(
            producer,
            (0..5000).collect(),
            1,
            0,
            BatchOrder::Sequential,
        ));
        let mut stream = actor.ask(StartEpoch { epoch: 0, first_batch: 0 }).await.unwrap();
        actor.ask(StopAll).await.unwrap();
        let delivered = tokio::task::spawn_blocking(move || stream.by_ref().count()).await.unwrap();
        assert!(delivered < 5000, "{delivered}");
    });
}

#[test]
fn split_loaders_train_on_one_part_and_evaluate_the_other_in_fixed_order() {
    use evnas::data::{LoaderConfig, SplitConfig, SplitLoaders};
    let dataset = identity_dataset(40);
    let split = SplitConfig { train_portion: 0.5, shuffle: true, seed: 3 }.split(40).unwrap();
    let norm = DatasetKind::Cifar10.normalization();
    let config = LoaderConfig {
        batch_size: 6,
        valid_batch_size: 8,
        augment_validation: false,
        prefetch: config(2),
        ..LoaderConfig::default()
    };
    let loaders = SplitLoaders::new(dataset.clone(), norm.clone(), split.clone(), config.clone()).unwrap();
    let labels_of = |stream: evnas::data::BatchStream| -> Vec<i64> {
        stream.flat_map(|b| Vec::<i64>::try_from(&b.unwrap().labels).unwrap()).collect()
    };
    let mut trained = labels_of(loaders.train_epoch(0, 0, StopFlag::new()).unwrap());
    trained.sort_unstable();
    let mut train_part: Vec<i64> = split.train.iter().map(|&i| i as i64).collect();
    train_part.sort_unstable();
    assert_eq!(trained, train_part);
    let valid: Vec<i64> = split.valid.iter().map(|&i| i as i64).collect();
    assert_eq!(labels_of(loaders.valid_epoch(0, StopFlag::new()).unwrap()), valid);

    // Clean validation on the device (the CPU here) equals the prefetched clean batches.
    let on_device = loaders.valid_on_device(tch::Device::Cpu).unwrap().unwrap();
    assert_eq!(on_device.len(), 20);
    let streamed: Vec<_> = loaders.valid_epoch(0, StopFlag::new()).unwrap().map(Result::unwrap).collect();
    for ((images, labels), batch) in on_device.batches(8).zip(&streamed) {
        assert!(labels.equal(&batch.labels));
        assert!(images.allclose(&batch.images, 1e-6, 1e-6, false));
    }

    // With the reference's augmented validation there is no device copy, and the batches differ from clean.
    let augmented =
        SplitLoaders::new(dataset, norm, split, LoaderConfig { augment_validation: true, ..config }).unwrap();
    assert!(augmented.valid_on_device(tch::Device::Cpu).unwrap().is_none());
    let first = augmented.valid_epoch(0, StopFlag::new()).unwrap().next().unwrap().unwrap();
    assert!(!first.images.allclose(&streamed[0].images, 1e-6, 1e-6, false));
}

/// Blocks every fill until the test releases it, so the consumer is certain to find the queue empty.
struct GatedSource {
    inner: Arc<InMemorySource>,
    gate: crossbeam_channel::Receiver<()>,
}

impl BatchSource for GatedSource {
    fn image_shape(&self) -> [usize; 3] {
        self.inner.image_shape()
    }
    fn len(&self) -> usize {
        self.inner.len()
    }
    fn num_classes(&self) -> usize {
        self.inner.num_classes()
    }
    fn fill(
        &self,
        items: &[usize],
        seed: u64,
        images: &mut [f32],
        labels: &mut [i64],
    ) -> Result<(), DataError> {
        self.gate.recv().map_err(|_| DataError::InvalidSetting { reason: "gate closed".into() })?;
        self.inner.fill(items, seed, images, labels)
    }
}

#[test]
fn the_consumer_records_the_time_it_waits_for_a_slow_producer() {
    let (open, gate) = crossbeam_channel::bounded(0);
    let source = Arc::new(GatedSource { inner: augmenting_source(10), gate });
    let producer = Producer::new(source, config(1)).unwrap();
    let plan = EpochPlan::sequential(&(0..10).collect::<Vec<_>>(), 5, 0, 0).unwrap();
    let mut stream = producer.start_epoch(plan, StopFlag::new()).unwrap();
    assert_eq!(stream.wait_time(), std::time::Duration::ZERO);
    let releaser = std::thread::spawn(move || {
        for _ in 0..2 {
            std::thread::sleep(std::time::Duration::from_millis(50));
            open.send(()).unwrap();
        }
    });
    assert_eq!(stream.by_ref().map(Result::unwrap).count(), 2);
    releaser.join().unwrap();
    assert!(stream.wait_time() > std::time::Duration::ZERO);
}
