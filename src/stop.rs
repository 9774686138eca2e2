//! The one stop signal of evnas: raised by a signal handler or a controller, cloned into every
//! worker (training, fitness, batch producers), checked once per batch.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A cooperative stop signal; clones share it.
#[derive(Debug, Clone, Default)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn stop(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}
