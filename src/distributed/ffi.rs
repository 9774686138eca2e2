//! The C interface of src/distributed/c10d_shim.cpp. Every function that can fail returns null
//! or -1 and sets `*error` to a message the caller frees with [`evnas_c10d_free_error`].

use std::ffi::{c_char, c_int, c_void};

extern "C" {
    pub fn evnas_c10d_free_error(error: *mut c_char);
    /// Frees a buffer the shim allocated (a store's value).
    pub fn evnas_c10d_free(buffer: *mut c_void);

    pub fn evnas_c10d_tcp_store(
        host: *const c_char,
        port: u16,
        is_server: c_int,
        world_size: i64,
        timeout_ms: i64,
        error: *mut *mut c_char,
    ) -> *mut c_void;
    pub fn evnas_c10d_hash_store(error: *mut *mut c_char) -> *mut c_void;
    pub fn evnas_c10d_tcp_store_port(store: *mut c_void, port: *mut u16, error: *mut *mut c_char) -> c_int;
    pub fn evnas_c10d_prefix_store(
        store: *mut c_void,
        prefix: *const c_char,
        error: *mut *mut c_char,
    ) -> *mut c_void;
    pub fn evnas_c10d_store_free(store: *mut c_void);
    pub fn evnas_c10d_store_set(
        store: *mut c_void,
        key: *const c_char,
        value: *const u8,
        length: usize,
        error: *mut *mut c_char,
    ) -> c_int;
    pub fn evnas_c10d_store_add(
        store: *mut c_void,
        key: *const c_char,
        amount: i64,
        total: *mut i64,
        error: *mut *mut c_char,
    ) -> c_int;
    pub fn evnas_c10d_store_check(
        store: *mut c_void,
        key: *const c_char,
        present: *mut c_int,
        error: *mut *mut c_char,
    ) -> c_int;
    /// Sets `*value` to a buffer the caller frees with [`evnas_c10d_free`].
    pub fn evnas_c10d_store_get(
        store: *mut c_void,
        key: *const c_char,
        value: *mut *mut u8,
        length: *mut usize,
        error: *mut *mut c_char,
    ) -> c_int;
    /// Sets `*value` to a buffer the caller frees with [`evnas_c10d_free`].
    #[allow(clippy::too_many_arguments)]
    pub fn evnas_c10d_store_compare_set(
        store: *mut c_void,
        key: *const c_char,
        expected: *const u8,
        expected_length: usize,
        desired: *const u8,
        desired_length: usize,
        value: *mut *mut u8,
        length: *mut usize,
        error: *mut *mut c_char,
    ) -> c_int;

    pub fn evnas_c10d_gloo_group(
        store: *mut c_void,
        rank: c_int,
        size: c_int,
        interface: *const c_char,
        hostname: *const c_char,
        timeout_ms: i64,
        error: *mut *mut c_char,
    ) -> *mut c_void;
    #[cfg(evnas_nccl)]
    pub fn evnas_c10d_nccl_group(
        store: *mut c_void,
        rank: c_int,
        size: c_int,
        timeout_ms: i64,
        error: *mut *mut c_char,
    ) -> *mut c_void;
    /// Sets `*version` to a string the caller frees with [`evnas_c10d_free_error`].
    #[cfg(evnas_nccl)]
    pub fn evnas_c10d_nccl_version(version: *mut *mut c_char, error: *mut *mut c_char) -> c_int;
    pub fn evnas_c10d_group_set_timeout(
        group: *mut c_void,
        timeout_ms: i64,
        error: *mut *mut c_char,
    ) -> c_int;
    pub fn evnas_c10d_group_free(group: *mut c_void);
    pub fn evnas_c10d_all_reduce_sum(
        group: *mut c_void,
        tensor: *mut c_void,
        error: *mut *mut c_char,
    ) -> c_int;
    pub fn evnas_c10d_all_reduce_sum_unless(
        group: *mut c_void,
        tensor: *mut c_void,
        stop: *const u8,
        slice_ms: i64,
        error: *mut *mut c_char,
    ) -> c_int;
    pub fn evnas_c10d_broadcast(
        group: *mut c_void,
        tensor: *mut c_void,
        root: c_int,
        error: *mut *mut c_char,
    ) -> c_int;
    pub fn evnas_c10d_barrier(group: *mut c_void, error: *mut *mut c_char) -> c_int;
}

/// Calls `f` with an error slot; `Err(message)` when `failed(result)`.
pub fn checked<T>(failed: impl Fn(&T) -> bool, f: impl FnOnce(*mut *mut c_char) -> T) -> Result<T, String> {
    let mut error: *mut c_char = std::ptr::null_mut();
    let result = f(&mut error);
    if !failed(&result) {
        return Ok(result);
    }
    if error.is_null() {
        return Err("c10d failed without a message".into());
    }
    // SAFETY: the shim set `error` to a NUL-terminated string from strdup; freed once here.
    let message = unsafe { std::ffi::CStr::from_ptr(error) }.to_string_lossy().into_owned();
    unsafe { evnas_c10d_free_error(error) };
    Err(message)
}
