//! Several replicas of the supernet, as threads of one process and as processes on several
//! machines, kept identical through PyTorch's c10d (the Gloo process group and TCPStore inside
//! the libtorch evnas links), reached through a small C++ shim (c10d_shim.cpp, built by build.rs).

mod error;
mod ffi;
mod process_group;
mod store;

pub use error::DistributedError;
pub use process_group::{GlooBind, ProcessGroup};
pub use store::{Store, StoreRole};

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tch::{Kind, Tensor};

    const TIMEOUT: Duration = Duration::from_secs(30);

    /// Three ranks as threads of this process: the sum and rank 0's broadcast reach every rank.
    #[test]
    fn threads_all_reduce_and_broadcast_through_gloo() {
        let store = std::sync::Arc::new(Store::in_process().unwrap());
        let results: Vec<(Vec<f32>, Vec<f32>)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..3)
                .map(|rank| {
                    let store = store.clone();
                    s.spawn(move || {
                        let group =
                            ProcessGroup::gloo(&store, rank, 3, &GlooBind::Host("127.0.0.1".into()), TIMEOUT)
                                .unwrap();
                        let mut t = Tensor::from_slice(&[rank as f32, 1.0]);
                        group.all_reduce_sum(&mut t).unwrap();
                        let mut b = Tensor::full([2], rank as f64 + 10.0, (Kind::Float, tch::Device::Cpu));
                        group.broadcast(&mut b, 0).unwrap();
                        group.barrier().unwrap();
                        (Vec::<f32>::try_from(&t).unwrap(), Vec::<f32>::try_from(&b).unwrap())
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (sum, broadcast) in results {
            assert_eq!(sum, vec![3.0, 3.0]);
            assert_eq!(broadcast, vec![10.0, 10.0]);
        }
    }

    #[test]
    fn a_client_without_a_server_fails_with_the_address() {
        let err = Store::tcp("127.0.0.1", 1, StoreRole::Client, Duration::from_millis(300)).err().unwrap();
        assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
    }
}
