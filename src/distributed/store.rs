//! c10d's key-value stores, where the replicas of a job meet: a TCPStore across processes
//! (hosted by rank 0, or by torchrun's agent), a HashStore within one process.

use std::ffi::{c_void, CString};
use std::time::Duration;

use super::error::DistributedError;
use super::ffi;

pub struct Store {
    raw: *mut c_void,
    address: String,
}

// SAFETY: c10d's stores lock their own state (TCPStore serialises its client operations);
// the handle is only freed once, on drop.
unsafe impl Send for Store {}
unsafe impl Sync for Store {}

/// Who hosts a TCPStore.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreRole {
    /// This process listens (port 0: any free port, see [`Store::port`]).
    Server,
    Client,
}

impl Store {
    /// The TCPStore at `host:port`. A client retries until `timeout` for the server to appear.
    pub fn tcp(host: &str, port: u16, role: StoreRole, timeout: Duration) -> Result<Self, DistributedError> {
        let address = format!("{host}:{port}");
        let fail = |reason: String| DistributedError::Store { address: address.clone(), reason };
        let c_host = CString::new(host).map_err(|_| fail("host name holds a NUL byte".into()))?;
        let server = i32::from(role == StoreRole::Server);
        // SAFETY: valid C string; the shim copies it.
        let raw = ffi::checked(
            |p: &*mut c_void| p.is_null(),
            |error| unsafe {
                ffi::evnas_c10d_tcp_store(c_host.as_ptr(), port, server, 0, timeout_ms(timeout), error)
            },
        )
        .map_err(fail)?;
        Ok(Self { raw, address })
    }

    /// A store within this process, for replicas that are its threads.
    pub fn in_process() -> Result<Self, DistributedError> {
        let address = "in-process".to_string();
        // SAFETY: no arguments besides the error slot.
        let raw =
            ffi::checked(|p: &*mut c_void| p.is_null(), |error| unsafe { ffi::evnas_c10d_hash_store(error) })
                .map_err(|reason| DistributedError::Store { address: address.clone(), reason })?;
        Ok(Self { raw, address })
    }

    /// The keys of this store under `prefix/`: a fresh namespace for a new group.
    pub fn prefixed(&self, prefix: &str) -> Result<Self, DistributedError> {
        let address = format!("{}/{prefix}", self.address);
        let fail = |reason: String| DistributedError::Store { address: address.clone(), reason };
        let c_prefix = CString::new(prefix).map_err(|_| fail("prefix holds a NUL byte".into()))?;
        // SAFETY: `self.raw` is a live store; the prefix store holds its own reference to it.
        let raw = ffi::checked(
            |p: &*mut c_void| p.is_null(),
            |error| unsafe { ffi::evnas_c10d_prefix_store(self.raw, c_prefix.as_ptr(), error) },
        )
        .map_err(fail)?;
        Ok(Self { raw, address })
    }

    /// The port of a TCPStore (the one chosen when asked for port 0).
    pub fn port(&self) -> Result<u16, DistributedError> {
        let mut port = 0u16;
        // SAFETY: `self.raw` is a live store; `port` outlives the call.
        ffi::checked(
            |rc: &i32| *rc != 0,
            |error| unsafe { ffi::evnas_c10d_tcp_store_port(self.raw, &mut port, error) },
        )
        .map_err(|reason| DistributedError::Store { address: self.address.clone(), reason })?;
        Ok(port)
    }

    /// Sets `key` to `value`.
    pub fn set(&self, key: &str, value: &[u8]) -> Result<(), DistributedError> {
        let c_key = self.key(key)?;
        // SAFETY: `self.raw` is a live store; the shim copies the key and the bytes.
        ffi::checked(
            |rc: &i32| *rc != 0,
            |error| unsafe {
                ffi::evnas_c10d_store_set(self.raw, c_key.as_ptr(), value.as_ptr(), value.len(), error)
            },
        )
        .map_err(|reason| self.failed("set", key, reason))?;
        Ok(())
    }

    /// Adds `amount` to the number at `key` (0 where unset), atomically for every client of the
    /// store; returns the sum.
    pub fn add(&self, key: &str, amount: i64) -> Result<i64, DistributedError> {
        let c_key = self.key(key)?;
        let mut total = 0i64;
        // SAFETY: `self.raw` is a live store; `total` outlives the call.
        ffi::checked(
            |rc: &i32| *rc != 0,
            |error| unsafe { ffi::evnas_c10d_store_add(self.raw, c_key.as_ptr(), amount, &mut total, error) },
        )
        .map_err(|reason| self.failed("add to", key, reason))?;
        Ok(total)
    }

    /// The value of `key`, or `None` while it is not set (without waiting for it).
    pub fn get_if_set(&self, key: &str) -> Result<Option<Vec<u8>>, DistributedError> {
        let c_key = self.key(key)?;
        let mut present = 0;
        // SAFETY: `self.raw` is a live store; `present` outlives the call.
        ffi::checked(
            |rc: &i32| *rc != 0,
            |error| unsafe { ffi::evnas_c10d_store_check(self.raw, c_key.as_ptr(), &mut present, error) },
        )
        .map_err(|reason| self.failed("check", key, reason))?;
        if present == 0 {
            return Ok(None);
        }
        let (mut value, mut length) = (std::ptr::null_mut::<u8>(), 0usize);
        // SAFETY: as above; the shim sets `value` to a malloc'd buffer of `length` bytes.
        ffi::checked(
            |rc: &i32| *rc != 0,
            |error| unsafe {
                ffi::evnas_c10d_store_get(self.raw, c_key.as_ptr(), &mut value, &mut length, error)
            },
        )
        .map_err(|reason| self.failed("read", key, reason))?;
        // SAFETY: the shim's buffer of `length` bytes.
        Ok(Some(unsafe { taken_bytes(value, length) }))
    }

    /// Sets `key` to `desired` where it holds `expected` (where it is unset, for an empty
    /// `expected`), atomically for every client of the store; returns what it holds then:
    /// `desired` where this call set it.
    pub fn compare_set(
        &self,
        key: &str,
        expected: &[u8],
        desired: &[u8],
    ) -> Result<Vec<u8>, DistributedError> {
        let c_key = self.key(key)?;
        let (mut value, mut length) = (std::ptr::null_mut::<u8>(), 0usize);
        // SAFETY: `self.raw` is a live store; the shim copies the key and both byte strings, and
        // sets `value` to a malloc'd buffer of `length` bytes.
        ffi::checked(
            |rc: &i32| *rc != 0,
            |error| unsafe {
                ffi::evnas_c10d_store_compare_set(
                    self.raw,
                    c_key.as_ptr(),
                    expected.as_ptr(),
                    expected.len(),
                    desired.as_ptr(),
                    desired.len(),
                    &mut value,
                    &mut length,
                    error,
                )
            },
        )
        .map_err(|reason| self.failed("compare and set", key, reason))?;
        // SAFETY: the shim's buffer of `length` bytes.
        Ok(unsafe { taken_bytes(value, length) })
    }

    fn key(&self, key: &str) -> Result<CString, DistributedError> {
        CString::new(key).map_err(|_| self.failed("name", key, "the key holds a NUL byte".into()))
    }

    fn failed(&self, operation: &'static str, key: &str, reason: String) -> DistributedError {
        DistributedError::StoreKey { operation, key: key.into(), address: self.address.clone(), reason }
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    pub(super) fn raw(&self) -> *mut c_void {
        self.raw
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        // SAFETY: created by the shim, freed once.
        unsafe { ffi::evnas_c10d_store_free(self.raw) }
    }
}

/// The `length` bytes of a buffer the shim allocated, which it frees.
///
/// # Safety
/// `value` is a buffer of at least `length` bytes from the shim (malloc), not used after.
unsafe fn taken_bytes(value: *mut u8, length: usize) -> Vec<u8> {
    let bytes = std::slice::from_raw_parts(value, length).to_vec();
    ffi::evnas_c10d_free(value.cast());
    bytes
}

pub(super) fn timeout_ms(timeout: Duration) -> i64 {
    i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distributed::StoreRole;

    /// The first of two claims on an unset key has it; a claim that expects what the key holds
    /// replaces it. The roll call relies on both, in either store.
    #[test]
    fn compare_set_lets_the_first_claim_win() {
        let server = Store::tcp("127.0.0.1", 0, StoreRole::Server, Duration::from_secs(10)).unwrap();
        let port = server.port().unwrap();
        let client = Store::tcp("127.0.0.1", port, StoreRole::Client, Duration::from_secs(10)).unwrap();
        let in_process = Store::in_process().unwrap();
        for store in [&client, &in_process] {
            assert_eq!(store.compare_set("place", b"", b"first").unwrap(), b"first");
            assert_eq!(store.compare_set("place", b"", b"second").unwrap(), b"first");
            assert_eq!(store.compare_set("place", b"first", b"back").unwrap(), b"back");
            assert_eq!(store.get_if_set("place").unwrap().unwrap(), b"back");
        }
    }
}
