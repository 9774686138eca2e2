//! A c10d process group, Gloo's or NCCL's: the collectives replicas use to stay identical
//! (gradients summed every step, state broadcast from rank 0).

use std::ffi::{c_void, CString};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tch::{Device, Tensor};

use super::error::DistributedError;
use super::ffi;
use super::store::{timeout_ms, Store};

/// Where this rank's Gloo device listens for its peers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum GlooBind {
    /// The machine's address, as PyTorch picks it (its hostname, else loopback).
    #[default]
    Default,
    /// A network interface by name (GLOO_SOCKET_IFNAME).
    Interface(String),
    /// An address or host name (loopback for replicas of one machine).
    Host(String),
}

pub struct ProcessGroup {
    raw: *mut c_void,
    rank: usize,
    size: usize,
    /// "gloo" or "nccl", as `run.collectives` names them.
    backend: &'static str,
    /// Its ranks are in several processes: a failed collective is most likely one of them gone.
    spans_processes: bool,
    /// A collective was left in flight ([`Self::all_reduce_sum_unless`]): the group is not
    /// freed, as c10d's destructor would wait for it (up to the collective's timeout).
    left_in_flight: AtomicBool,
}

/// How an all-reduce that may be given up ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reduced {
    Done,
    /// Given up while it waited for the others: the group cannot be used again.
    GivenUp,
}

/// How often a waiting all-reduce looks whether it is to give up.
const GIVE_UP_CHECK_MS: i64 = 100;

// SAFETY: c10d's groups serialise their work internally; a group is used by one replica thread
// at a time and freed once, on drop.
unsafe impl Send for ProcessGroup {}

impl ProcessGroup {
    /// The shim's group `raw`, as it formed: within one process, with nothing left in flight.
    fn formed(raw: *mut c_void, rank: usize, size: usize, backend: &'static str) -> Self {
        let left_in_flight = AtomicBool::new(false);
        Self { raw, rank, size, backend, spans_processes: false, left_in_flight }
    }

    /// Joins the Gloo group of `size` ranks meeting in `store` as `rank`; returns once all
    /// ranks joined (or fails after `timeout`, which also bounds every collective).
    pub fn gloo(
        store: &Store,
        rank: usize,
        size: usize,
        bind: &GlooBind,
        timeout: Duration,
    ) -> Result<Self, DistributedError> {
        let fail = |reason: String| DistributedError::Group { backend: "Gloo", rank, size, reason };
        let (interface, host) = match bind {
            GlooBind::Default => ("", ""),
            GlooBind::Interface(name) => (name.as_str(), ""),
            GlooBind::Host(name) => ("", name.as_str()),
        };
        let c_interface =
            CString::new(interface).map_err(|_| fail("interface name holds a NUL byte".into()))?;
        let c_host = CString::new(host).map_err(|_| fail("host name holds a NUL byte".into()))?;
        let (c_rank, c_size) = (to_c_int(rank).map_err(fail)?, to_c_int(size).map_err(fail)?);
        // SAFETY: `store` is live for the call and the group keeps its own reference.
        let raw = ffi::checked(
            |p: &*mut c_void| p.is_null(),
            |error| unsafe {
                ffi::evnas_c10d_gloo_group(
                    store.raw(),
                    c_rank,
                    c_size,
                    c_interface.as_ptr(),
                    c_host.as_ptr(),
                    timeout_ms(timeout),
                    error,
                )
            },
        )
        .map_err(fail)?;
        Ok(Self::formed(raw, rank, size, "gloo"))
    }

    /// Joins the NCCL group of `size` ranks meeting in `store` as `rank`. NCCL's communicator
    /// is made at the first collective, which waits for every rank; each rank's GPU is that of
    /// the tensors it passes (one GPU per rank: NCCL refuses two ranks on one).
    #[cfg(evnas_nccl)]
    pub fn nccl(
        store: &Store,
        rank: usize,
        size: usize,
        timeout: Duration,
    ) -> Result<Self, DistributedError> {
        let fail = |reason: String| DistributedError::Group { backend: "NCCL", rank, size, reason };
        let (c_rank, c_size) = (to_c_int(rank).map_err(fail)?, to_c_int(size).map_err(fail)?);
        // SAFETY: `store` is live for the call and the group keeps its own reference.
        let raw = ffi::checked(
            |p: &*mut c_void| p.is_null(),
            |error| unsafe {
                ffi::evnas_c10d_nccl_group(store.raw(), c_rank, c_size, timeout_ms(timeout), error)
            },
        )
        .map_err(fail)?;
        Ok(Self::formed(raw, rank, size, "nccl"))
    }

    /// Without NCCL in the build, no group forms.
    #[cfg(not(evnas_nccl))]
    pub fn nccl(
        _store: &Store,
        rank: usize,
        size: usize,
        _timeout: Duration,
    ) -> Result<Self, DistributedError> {
        let reason = super::collectives::nccl_not_built().to_string();
        Err(DistributedError::Group { backend: "NCCL", rank, size, reason })
    }

    /// Marks the group as joining ranks of several processes: its failed collectives then say
    /// "a process of the job is gone" ([`DistributedError::ProcessLost`]), which they most
    /// likely are, rather than a bare failure.
    pub fn marked_spanning_processes(mut self) -> Self {
        self.spans_processes = true;
        self
    }

    /// Where this group's collectives take their tensors: `device` (the rank's GPU) for NCCL,
    /// the host for Gloo.
    pub fn buffer_device(&self, device: Device) -> Device {
        if self.backend == "nccl" {
            device
        } else {
            Device::Cpu
        }
    }

    /// "gloo" or "nccl".
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    pub fn rank(&self) -> usize {
        self.rank
    }

    pub fn size(&self) -> usize {
        self.size
    }

    /// Sums `tensor` (dense, contiguous) over all ranks, in place: every rank ends with the same
    /// bits.
    pub fn all_reduce_sum(&self, tensor: &mut Tensor) -> Result<(), DistributedError> {
        let raw = tensor.as_mut_ptr() as *mut c_void;
        // SAFETY: `raw` is tch's at::Tensor handle, alive for the call.
        self.collective("all-reduce", |error| unsafe { ffi::evnas_c10d_all_reduce_sum(self.raw, raw, error) })
    }

    /// As [`Self::all_reduce_sum`], but a Gloo group's wait for the others gives up once
    /// `give_up` is set (another replica of this process failed its step before its own
    /// all-reduce, and the others would wait out the timeout for it). NCCL's all-reduce only
    /// queues GPU work, and is not given up.
    pub fn all_reduce_sum_unless(
        &self,
        tensor: &mut Tensor,
        give_up: &AtomicBool,
    ) -> Result<Reduced, DistributedError> {
        if self.backend != "gloo" {
            return self.all_reduce_sum(tensor).map(|()| Reduced::Done);
        }
        let raw = tensor.as_mut_ptr() as *mut c_void;
        let stop = give_up.as_ptr() as *const u8;
        // SAFETY: `raw` is tch's at::Tensor handle, alive for the call; `stop` is an AtomicBool's
        // byte, alive for the call, which the shim reads atomically.
        let rc = ffi::checked(
            |rc: &i32| *rc < 0,
            |error| unsafe {
                ffi::evnas_c10d_all_reduce_sum_unless(self.raw, raw, stop, GIVE_UP_CHECK_MS, error)
            },
        )
        .map_err(|reason| self.collective_error("all-reduce", reason))?;
        if rc == 0 {
            return Ok(Reduced::Done);
        }
        self.left_in_flight.store(true, Ordering::Relaxed);
        Ok(Reduced::GivenUp)
    }

    /// Overwrites `tensor` on every rank with rank `root`'s.
    pub fn broadcast(&self, tensor: &mut Tensor, root: usize) -> Result<(), DistributedError> {
        let raw = tensor.as_mut_ptr() as *mut c_void;
        let root = to_c_int(root).map_err(|reason| self.collective_error("broadcast", reason))?;
        // SAFETY: as in all_reduce_sum.
        self.collective("broadcast", |error| unsafe { ffi::evnas_c10d_broadcast(self.raw, raw, root, error) })
    }

    /// Bounds every later collective by `timeout` (the one given at the start bounded joining).
    pub fn set_timeout(&self, timeout: Duration) -> Result<(), DistributedError> {
        // SAFETY: `self.raw` is a live group.
        self.collective("setting the timeout", |error| unsafe {
            ffi::evnas_c10d_group_set_timeout(self.raw, timeout_ms(timeout), error)
        })
    }

    /// Returns once every rank reached it. Not as an NCCL group's first call: ProcessGroupNCCL
    /// guesses that barrier's GPU from the rank of the process's first NCCL group, the same for
    /// every replica thread, so they would all meet on one GPU.
    pub fn barrier(&self) -> Result<(), DistributedError> {
        // SAFETY: `self.raw` is a live group.
        self.collective("barrier", |error| unsafe { ffi::evnas_c10d_barrier(self.raw, error) })
    }

    fn collective(
        &self,
        operation: &'static str,
        call: impl FnOnce(*mut *mut std::ffi::c_char) -> i32,
    ) -> Result<(), DistributedError> {
        ffi::checked(|rc: &i32| *rc != 0, call)
            .map(|_| ())
            .map_err(|reason| self.collective_error(operation, reason))
    }

    fn collective_error(&self, operation: &'static str, reason: String) -> DistributedError {
        let reason = without_source_location(&reason).to_string();
        let (rank, size) = (self.rank, self.size);
        if self.spans_processes {
            DistributedError::ProcessLost { operation, rank, size, reason }
        } else {
            DistributedError::Collective { operation, rank, size, reason }
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        // Left to the process's end: its in-flight collective holds a thread of its own.
        if self.left_in_flight.load(Ordering::Relaxed) {
            return;
        }
        // SAFETY: created by the shim, freed once.
        unsafe { ffi::evnas_c10d_group_free(self.raw) }
    }
}

fn to_c_int(n: usize) -> Result<i32, String> {
    i32::try_from(n).map_err(|_| format!("{n} does not fit a C int"))
}

/// Gloo's messages start with the C++ source line that raised them, which tells a user nothing:
/// `[/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:538] Read error …` → `Read error …`.
fn without_source_location(message: &str) -> &str {
    match message.strip_prefix('[').and_then(|rest| rest.split_once("] ")) {
        Some((location, rest)) if location.contains(".cc:") || location.contains(".h:") => rest,
        _ => message,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn gloo_source_locations_are_dropped() {
        let gloo = "[/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:538] Read error [127.0.0.1]:2971: Connection reset by peer";
        assert_eq!(
            super::without_source_location(gloo),
            "Read error [127.0.0.1]:2971: Connection reset by peer"
        );
        assert_eq!(super::without_source_location("[x] y"), "[x] y");
    }
}
