//! The daemon's telemetry: one struct per notable event, each emitting its log line and its
//! metrics together ([`events`]); metric names in one place ([`names`]); the Prometheus
//! exporter and the process sampler ([`exporter`]); and the sink that turns the pipeline's
//! events into telemetry ([`sink`]).
//!
//! Without an installed recorder (no exporter started) every metric is a no-op, so the core
//! and the actors emit freely.

pub mod events;
pub mod exporter;
pub mod names;
mod process;
pub mod sink;
pub mod training;

pub use events::*;
pub use exporter::{MetricsError, MetricsExporter};
pub use sink::Telemetry;
pub use training::TrainingTelemetry;
