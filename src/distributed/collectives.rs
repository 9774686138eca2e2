//! Which c10d backend a group of replicas uses: the `run.collectives` setting, the choice made for
//! the replicas' devices, and whether this build has NCCL at all.

use std::time::Duration;

use tch::Device;

use super::error::DistributedError;
use super::process_group::{GlooBind, ProcessGroup};
use super::store::Store;

/// Which c10d backend sums the replicas' gradients (`run.collectives`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CollectivesSetting {
    /// NCCL when every replica is on a GPU and this evnas was built with NCCL, else Gloo.
    #[default]
    Auto,
    /// Gloo, on host memory: a GPU's tensors go through the host.
    Gloo,
    /// NCCL between GPUs, on their memory.
    Nccl,
}

impl CollectivesSetting {
    pub fn is_auto(&self) -> bool {
        *self == Self::Auto
    }
}

/// The backend of a group, with what it needs to form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Collectives {
    Gloo(GlooBind),
    Nccl,
}

impl Collectives {
    /// `setting` for replicas on `devices` (this process's; the other ranks of a job follow
    /// rank 0's choice). Gloo's members bind `bind`.
    pub fn choose(
        setting: CollectivesSetting,
        devices: &[Device],
        bind: GlooBind,
    ) -> Result<Self, DistributedError> {
        let on_gpus = !devices.is_empty() && devices.iter().all(|d| d.is_cuda());
        match setting {
            CollectivesSetting::Gloo => Ok(Self::Gloo(bind)),
            CollectivesSetting::Auto if on_gpus && nccl_version().is_some() => Ok(Self::Nccl),
            CollectivesSetting::Auto => Ok(Self::Gloo(bind)),
            CollectivesSetting::Nccl => {
                Self::Nccl.usable_on(devices)?;
                Ok(Self::Nccl)
            }
        }
    }

    /// Fails unless replicas on `devices` can use this backend.
    pub fn usable_on(&self, devices: &[Device]) -> Result<(), DistributedError> {
        if matches!(self, Self::Gloo(_)) {
            return Ok(());
        }
        if nccl_version().is_none() {
            return Err(nccl_not_built());
        }
        match devices.iter().find(|d| !d.is_cuda()) {
            Some(Device::Cpu) => Err(DistributedError::NcclUnavailable {
                reason: "NCCL sums tensors on GPUs, and a replica is on the CPU".into(),
            }),
            Some(other) => Err(DistributedError::NcclUnavailable {
                reason: format!("NCCL sums tensors on GPUs, and a replica is on {other:?}"),
            }),
            None => Ok(()),
        }
    }

    /// Joins this backend's group of `size` ranks meeting in `store` as `rank`; `timeout`
    /// bounds the meeting and every collective.
    pub fn form(
        &self,
        store: &Store,
        rank: usize,
        size: usize,
        timeout: Duration,
    ) -> Result<ProcessGroup, DistributedError> {
        match self {
            Self::Gloo(bind) => ProcessGroup::gloo(store, rank, size, bind, timeout),
            Self::Nccl => ProcessGroup::nccl(store, rank, size, timeout),
        }
    }
}

/// Why NCCL cannot be used in a build without it.
pub(super) fn nccl_not_built() -> DistributedError {
    DistributedError::NcclUnavailable {
        reason: "this evnas was built without NCCL (its libtorch has no CUDA, or the headers were missing: see scripts/setup.sh)".into(),
    }
}

/// The version of the NCCL library this evnas uses ("2.28.9"); `None` when built without NCCL.
pub fn nccl_version() -> Option<String> {
    #[cfg(evnas_nccl)]
    {
        let mut version: *mut std::ffi::c_char = std::ptr::null_mut();
        // SAFETY: the shim sets `version` to a strdup'd string, freed once here.
        let rc = super::ffi::checked(
            |rc: &i32| *rc != 0,
            |error| unsafe { super::ffi::evnas_c10d_nccl_version(&mut version, error) },
        );
        if rc.is_err() || version.is_null() {
            return None;
        }
        // SAFETY: `version` is that NUL-terminated string, read then freed once.
        let text = unsafe { std::ffi::CStr::from_ptr(version) }.to_string_lossy().into_owned();
        unsafe { super::ffi::evnas_c10d_free_error(version) };
        Some(text)
    }
    #[cfg(not(evnas_nccl))]
    None
}
