//! The Prometheus exporter: metrics-exporter-prometheus's HTTP listener on `metrics.listen`,
//! with explicit histogram buckets, on a thread of its own (so it answers while a generation
//! trains), plus a sampler that keeps the process gauges (RSS, CUDA memory) fresh.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

use super::names;
use super::process::{resident_bytes, CudaMemory};

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("cannot serve metrics on {addr}: {reason}")]
    Listen { addr: SocketAddr, reason: String },
    #[error("cannot start the metrics exporter: {reason}")]
    Start { reason: String },
}

/// The running exporter; metrics are served until the process ends.
pub struct MetricsExporter {
    pub addr: SocketAddr,
}

/// How often the process gauges are sampled.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

impl MetricsExporter {
    /// Installs the global recorder and serves `/metrics` on `addr`, from a thread of its own
    /// (with a runtime of its own, so that it may start from anywhere, async code included).
    pub fn start(addr: SocketAddr, libtorch: &str) -> Result<Self, MetricsError> {
        let mut builder = PrometheusBuilder::new().with_http_listener(addr);
        for (name, buckets) in names::histogram_buckets() {
            builder = builder
                .set_buckets_for_metric(Matcher::Full(name.to_string()), buckets)
                .map_err(|e| MetricsError::Start { reason: e.to_string() })?;
        }
        let (started_in, started) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("evnas-metrics".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        return drop(started_in.send(Err(MetricsError::Start { reason: e.to_string() })))
                    }
                };
                let built = {
                    let _entered = runtime.enter();
                    builder.build()
                };
                let (recorder, exporter) = match built {
                    Ok(built) => built,
                    Err(e) => {
                        return drop(
                            started_in.send(Err(MetricsError::Listen { addr, reason: e.to_string() })),
                        )
                    }
                };
                if let Err(e) = metrics::set_global_recorder(recorder) {
                    return drop(started_in.send(Err(MetricsError::Start { reason: e.to_string() })));
                }
                let _ = started_in.send(Ok(()));
                runtime.block_on(async move {
                    tokio::spawn(sample_process());
                    if let Err(e) = exporter.await {
                        tracing::error!("the metrics exporter stopped: {e:?}");
                    }
                })
            })
            .map_err(|e| MetricsError::Start { reason: e.to_string() })?;
        started.recv().map_err(|_| MetricsError::Start { reason: "its thread ended".into() })??;
        names::describe();
        super::events::Started { libtorch }.emit();
        tracing::info!(%addr, "serving metrics on http://{addr}/metrics");
        Ok(Self { addr })
    }
}

/// The CUDA devices a search runs on, whose memory the sampler reports. Only these: querying a
/// device creates a CUDA context on it, which a device the search does not use must not get.
static CUDA_DEVICES: Mutex<Vec<usize>> = Mutex::new(Vec::new());

/// Reports the memory of the CUDA devices among `devices` from now on.
pub fn watch_cuda_devices(devices: &[tch::Device]) {
    let cuda = devices.iter().filter_map(|d| if let tch::Device::Cuda(i) = d { Some(*i) } else { None });
    if let Ok(mut watched) = CUDA_DEVICES.lock() {
        *watched = cuda.collect();
        watched.dedup();
    }
}

async fn sample_process() {
    let mut cuda: Option<CudaMemory> = None;
    loop {
        if let Some(bytes) = resident_bytes() {
            metrics::gauge!(names::PROCESS_RESIDENT_MEMORY_BYTES).set(bytes as f64);
        }
        let devices = CUDA_DEVICES.lock().map(|d| d.clone()).unwrap_or_default();
        if !devices.is_empty() && cuda.is_none() {
            cuda = CudaMemory::find();
        }
        if let Some(cuda) = &cuda {
            for (device, bytes) in cuda.used(&devices) {
                metrics::gauge!(names::CUDA_MEMORY_USED_BYTES, "device" => format!("cuda:{device}"))
                    .set(bytes as f64);
            }
        }
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
}
