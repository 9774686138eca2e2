//! Names of the data pipeline's metrics, in one place (a telemetry module may re-export them).

/// Counter: images produced by the prefetcher (rate = images/s).
pub const PREFETCH_IMAGES_TOTAL: &str = "evnas_prefetch_images_total";
/// Gauge: ready batches waiting in the prefetch queue.
pub const PREFETCH_QUEUE_DEPTH: &str = "evnas_prefetch_queue_depth";
