//! An NCCL all-reduce across GPUs of this machine, one rank per GPU on a thread of its own, each
//! rank's result checked: what `evnas doctor` runs to show that NCCL works here.

use std::sync::Arc;
use std::time::Duration;

use tch::{Device, Kind, Tensor};

use super::error::DistributedError;
use super::process_group::ProcessGroup;
use super::store::Store;

/// Elements summed: enough to take NCCL's pipelined path, small enough to take no time.
const ELEMENTS: i64 = 1 << 20;

/// Sums `rank + 1` over one rank per device of `devices` (CUDA devices, each once) and checks
/// that every rank holds `n (n + 1) / 2` in every element.
pub fn nccl_all_reduce_check(devices: &[Device], timeout: Duration) -> Result<(), DistributedError> {
    let store = Arc::new(Store::in_process()?);
    let size = devices.len();
    std::thread::scope(|scope| {
        let ranks: Vec<_> = devices
            .iter()
            .enumerate()
            .map(|(rank, &device)| {
                let store = store.clone();
                scope.spawn(move || all_reduce_on(&store, rank, size, device, timeout))
            })
            .collect();
        // The scope joins every rank's thread, also after an early error.
        ranks.into_iter().enumerate().try_for_each(|(rank, handle)| {
            handle.join().unwrap_or_else(|_| {
                Err(DistributedError::Collective {
                    operation: "NCCL all-reduce check",
                    rank,
                    size,
                    reason: "its thread panicked".into(),
                })
            })
        })
    })
}

fn all_reduce_on(
    store: &Store,
    rank: usize,
    size: usize,
    device: Device,
    timeout: Duration,
) -> Result<(), DistributedError> {
    let group = ProcessGroup::nccl(store, rank, size, timeout)?;
    let mut tensor = Tensor::full([ELEMENTS], (rank + 1) as f64, (Kind::Float, device));
    group.all_reduce_sum(&mut tensor)?;
    let expected = (size * (size + 1) / 2) as f64;
    let wrong = tensor.ne(expected).sum(Kind::Int64).int64_value(&[]);
    if wrong == 0 {
        Ok(())
    } else {
        Err(DistributedError::Collective {
            operation: "NCCL all-reduce check",
            rank,
            size,
            reason: format!("{wrong} of {ELEMENTS} elements differ from the sum {expected}"),
        })
    }
}
