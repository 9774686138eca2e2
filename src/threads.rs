//! libtorch's CPU threads: the process-wide intra-op count, set once at start, and a per-thread
//! count for threads that run whole individuals side by side.
//!
//! Why not `tch::set_num_threads` on a worker: besides the calling thread's OpenMP team size it
//! stores a process-global default that every thread started later picks up, so one worker
//! asking for one thread would quietly make the trainer single-threaded.

use std::ffi::{c_int, CStr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

/// libtorch's own count, from before [`lower_process_threads`] changed it.
static LIBTORCH_DEFAULT: OnceLock<usize> = OnceLock::new();
static LOWERED: AtomicBool = AtomicBool::new(false);

/// Sets the process's intra-op thread count (`threads > 0`; 0 keeps libtorch's default, one per
/// core, or restores it after [`lower_process_threads`]). Call from the thread that sets a
/// search or training up, before its libtorch work: libtorch's setter also clears oneDNN's
/// primitive cache, under any other thread using it.
pub fn set_process_threads(threads: usize) {
    let default = *LIBTORCH_DEFAULT.get_or_init(current_threads);
    let lowered = LOWERED.swap(false, Ordering::SeqCst);
    if threads > 0 {
        tch::set_num_threads(threads as i32);
    } else if lowered {
        tch::set_num_threads(default as i32);
    }
}

/// Makes the process's count one, for the threads that libtorch has not seen yet (a search on
/// CPU replicas, for Gloo's); the next [`set_process_threads`] of 0 restores the default.
pub fn lower_process_threads() {
    let _ = LIBTORCH_DEFAULT.get_or_init(current_threads);
    LOWERED.store(true, Ordering::SeqCst);
    tch::set_num_threads(1);
}

/// The intra-op thread count of the calling thread.
pub fn current_threads() -> usize {
    tch::get_num_threads().max(1) as usize
}

/// Makes libtorch run the calling thread's ops on `threads` intra-op threads, leaving every
/// other thread and the process default as they are. Returns false when libtorch's OpenMP
/// runtime is not found (then the thread keeps the process count).
pub fn set_this_thread_threads(threads: usize) -> bool {
    let Some(set) = omp_set_num_threads() else { return false };
    // Let libtorch initialise this thread's count from the process default first, so that its
    // lazy initialisation cannot overwrite ours on the first parallel op.
    let _ = tch::get_num_threads();
    // SAFETY: omp_set_num_threads only sets the calling thread's OpenMP team size.
    unsafe { set(threads.max(1) as c_int) };
    true
}

/// Runs `work` on a thread that ends with it (named `name`), and returns what it returns.
///
/// Why: libgomp keeps a thread's OpenMP team for as long as the thread lives, and once the
/// process holds more OpenMP threads than there are CPUs, every team stops spinning between
/// parallel regions and sleeps instead, so that each op waits for its threads to wake. The
/// trainer and an evaluator on all threads each kept a team on their actor threads: the search
/// trained and measured 1.5-1.8x slower than one thread doing both (measured here, 2 cores,
/// C=16). A phase's libtorch work goes on a thread of its own: one team at a time.
/// A panic of `work` goes on in the caller.
pub fn on_phase_thread<T: Send>(name: &str, work: impl FnOnce() -> T + Send) -> std::io::Result<T> {
    std::thread::scope(|scope| {
        let thread = std::thread::Builder::new().name(name.to_string()).spawn_scoped(scope, work)?;
        Ok(thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
    })
}

/// Runs `work` with the calling thread's intra-op count at one, then restores the count.
///
/// For small libtorch work on threads that otherwise run none (the controller's softmax of α
/// on a runtime thread): at two or more threads, an op that libtorch splits starts an OpenMP
/// team, which libgomp then keeps for as long as that thread lives, one more team making
/// every other team sleep between parallel regions ([`on_phase_thread`]). Measured here (2
/// cores, C=16): one such team left on a runtime thread made the search's training and fitness
/// 1.3-1.5x slower, with 200 times the context switches.
pub fn on_this_thread_alone<T>(work: impl FnOnce() -> T) -> T {
    let threads = current_threads();
    let alone = threads > 1 && set_this_thread_threads(1);
    let result = work();
    if alone {
        set_this_thread_threads(threads);
    }
    result
}

type OmpSetNumThreads = unsafe extern "C" fn(c_int);

/// libtorch's OpenMP runtime (libgomp, loaded with libtorch_cpu) entry point, looked up once.
fn omp_set_num_threads() -> Option<OmpSetNumThreads> {
    static SYMBOL: OnceLock<Option<usize>> = OnceLock::new();
    let address = *SYMBOL.get_or_init(|| {
        const NAME: &CStr = c"omp_set_num_threads";
        // SAFETY: dlsym with RTLD_DEFAULT searches the libraries already loaded; the name is a
        // valid C string.
        let ptr = unsafe { libc::dlsym(libc::RTLD_DEFAULT, NAME.as_ptr()) };
        (!ptr.is_null()).then_some(ptr as usize)
    });
    // SAFETY: the symbol is OpenMP's `void omp_set_num_threads(int)`.
    address.map(|a| unsafe { std::mem::transmute::<usize, OmpSetNumThreads>(a) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_count_of_its_own_leaves_other_threads_alone() {
        let process = current_threads();
        let (own, later) = std::thread::spawn(|| {
            assert!(set_this_thread_threads(1), "libtorch's OpenMP runtime not found");
            let own = current_threads();
            let later = std::thread::spawn(current_threads).join().unwrap();
            (own, later)
        })
        .join()
        .unwrap();
        assert_eq!(own, 1);
        assert_eq!(later, process, "a thread started afterwards must get the process count");
        assert_eq!(current_threads(), process);
    }
}
