//! Names of the data pipeline's metrics, in one place (a telemetry module may re-export them).

/// Counter: images produced by the prefetcher (rate = images/s).
pub const PREFETCH_IMAGES_TOTAL: &str = "evnas_prefetch_images_total";
/// Gauge: ready batches waiting in the prefetch queue.
pub const PREFETCH_QUEUE_DEPTH: &str = "evnas_prefetch_queue_depth";
/// Monotone gauge (metrics 0.24 counters hold integers only): seconds the trainer spent waiting for a batch (zero when data loading is invisible).
pub const TRAINER_DATA_WAIT_SECONDS_TOTAL: &str = "evnas_trainer_data_wait_seconds_total";
