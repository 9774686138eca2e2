//! Telemetry of a network trained from scratch: the metrics of every step and epoch, a log line
//! per epoch where the caller wants one (the daemon; `evnas train` prints its own), and a
//! progress callback (the daemon's watchdog).

use crate::final_training::epoch::Step;
use crate::final_training::{EpochRecord, TrainingObserver};

use super::events::{
    FinalTrainingEnded, FinalTrainingEpochFinished, FinalTrainingEpochStarted, FinalTrainingStep,
};

type OnEpoch = Box<dyn FnMut(&EpochRecord) + Send>;

pub struct TrainingTelemetry {
    epochs: usize,
    log: bool,
    on_progress: Option<Box<dyn FnMut() + Send>>,
    on_epoch: Option<OnEpoch>,
}

impl TrainingTelemetry {
    pub fn new(epochs: usize, log: bool) -> Self {
        Self { epochs, log, on_progress: None, on_epoch: None }
    }

    /// Called after every training step and test batch.
    pub fn on_progress(mut self, f: impl FnMut() + Send + 'static) -> Self {
        self.on_progress = Some(Box::new(f));
        self
    }

    /// Called with every epoch's record.
    pub fn on_epoch(mut self, f: impl FnMut(&EpochRecord) + Send + 'static) -> Self {
        self.on_epoch = Some(Box::new(f));
        self
    }
}

/// However the training ends (finished, stopped, failed), nothing trains any more: an alert on
/// a training that stalls looks at this, not at epoch gauges that stay where it stopped.
impl Drop for TrainingTelemetry {
    fn drop(&mut self) {
        FinalTrainingEnded.emit();
    }
}

impl TrainingObserver for TrainingTelemetry {
    fn epoch_started(&mut self, epoch: usize, _batches: usize, learning_rate: f64) {
        FinalTrainingEpochStarted { epoch, epochs: self.epochs, learning_rate }.emit();
    }

    fn step(&mut self, step: &Step<'_>) {
        FinalTrainingStep { images: step.images, seconds: step.compute.as_secs_f64() }.emit();
        if let Some(f) = &mut self.on_progress {
            f();
        }
    }

    fn tested_batch(&mut self) {
        if let Some(f) = &mut self.on_progress {
            f();
        }
    }

    fn epoch_finished(&mut self, record: &EpochRecord) {
        FinalTrainingEpochFinished(record).emit();
        if self.log {
            tracing::info!("final training epoch {}/{}: {}", record.epoch, self.epochs, record.summary());
        }
        if let Some(f) = &mut self.on_epoch {
            f(record);
        }
    }

    fn checkpoint_written(&mut self, epochs_done: usize, bytes: u64, seconds: f64) {
        tracing::debug!(epochs_done, bytes, seconds, "final training checkpoint written");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics_exporter_prometheus::PrometheusBuilder;

    /// `evnas_final_training_running` is 1 from the first epoch on and 0 once the telemetry is
    /// dropped, however the training ended.
    #[test]
    fn running_while_epochs_run_and_not_after() {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let running = || {
            handle
                .render()
                .lines()
                .find_map(|l| l.strip_prefix("evnas_final_training_running ").map(str::to_string))
        };
        metrics::with_local_recorder(&recorder, || {
            let mut telemetry = TrainingTelemetry::new(3, false);
            telemetry.epoch_started(0, 10, 0.025);
            assert_eq!(running().as_deref(), Some("1"));
            drop(telemetry);
            assert_eq!(running().as_deref(), Some("0"));
        });
    }
}
