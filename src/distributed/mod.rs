//! Several replicas of the supernet, as threads of one process and as processes on several
//! machines, kept identical through PyTorch's c10d (the Gloo and NCCL process groups and the
//! TCPStore inside the libtorch evnas links), reached through small C++ shims (c10d_shim.cpp,
//! and nccl_shim.cpp where libtorch has CUDA; built by build.rs).

mod collectives;
mod error;
mod ffi;
mod job;
mod launch_env;
mod nccl_check;
mod notices;
mod process_group;
mod roll_call;
mod store;

pub use collectives::{nccl_version, Collectives, CollectivesSetting};
pub use error::DistributedError;
pub use job::{joined, withdraw_from_roll_call, Job, CONTROL_TIMEOUT, FORM_TIMEOUT, JOIN_TIMEOUT};
pub use launch_env::{elastic_run_id, launcher_job_id, launcher_restart, LaunchEnv};
pub use nccl_check::nccl_all_reduce_check;
pub use notices::StopRequest;
pub use process_group::{GlooBind, ProcessGroup, Reduced};
pub use roll_call::{ranks_listed, Absent, Heard};
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

    /// Many groups of one process take their first collective at the same moment, as replica
    /// threads do. c10d's flight recorder (on by default in PyTorch 2.11) files a group the
    /// first time it records one of its collectives, in a map it does not lock: side by side,
    /// those first records corrupted the map and crashed the process (about once in 40 runs of
    /// these tests) or left its threads spinning. evnas turns the recorder off (c10d_shim.cpp);
    /// with it on, this crashes or times out.
    #[test]
    fn groups_take_their_first_collectives_side_by_side() {
        const THREADS: usize = 2;
        const ROUNDS: usize = 200;
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let store = Store::in_process().unwrap();
            let start = std::sync::Barrier::new(THREADS);
            std::thread::scope(|s| {
                for thread in 0..THREADS {
                    let (store, start) = (&store, &start);
                    s.spawn(move || {
                        for round in 0..ROUNDS {
                            let keys = store.prefixed(&format!("{thread}/{round}")).unwrap();
                            let bind = GlooBind::Host("127.0.0.1".into());
                            let group = ProcessGroup::gloo(&keys, 0, 1, &bind, TIMEOUT).unwrap();
                            let mut t = Tensor::from_slice(&[1.0f32]);
                            start.wait();
                            group.all_reduce_sum(&mut t).unwrap();
                            assert_eq!(t.double_value(&[0]), 1.0);
                        }
                    });
                }
            });
            let _ = done.send(());
        });
        // A spinning recorder never returns: fail the test instead of hanging the suite.
        finished
            .recv_timeout(Duration::from_secs(120))
            .expect("the groups' first collectives failed or did not end in 2 minutes");
    }

    /// The build links NCCL wherever its libtorch has CUDA (the PyPI wheel CI uses has), unless
    /// told not to, and the shim reaches the library.
    #[test]
    fn nccl_is_there_when_libtorch_has_cuda() {
        let lib_dir = crate::runtime::TorchRuntime::detect().lib_dir.expect("libtorch is loaded");
        // EVNAS_NO_NCCL at build time leaves NCCL out on purpose.
        let has_cuda = lib_dir.join("libtorch_cuda.so").exists() && option_env!("EVNAS_NO_NCCL").is_none();
        let version = nccl_version();
        assert_eq!(
            version.is_some(),
            has_cuda,
            "NCCL {version:?}, libtorch_cuda in {}: {has_cuda}",
            lib_dir.display()
        );
        if let Some(version) = version {
            assert!(version.starts_with("2."), "NCCL {version}");
        }
    }

    /// Across the GPUs present, every rank gets the sum; without a GPU, forming the group fails
    /// with c10d's reason, and nothing crashes.
    #[test]
    fn nccl_all_reduces_across_the_gpus_or_says_why_not() {
        let gpus = tch::Cuda::device_count().max(0) as usize;
        let devices: Vec<tch::Device> =
            if gpus > 0 { (0..gpus).map(tch::Device::Cuda).collect() } else { vec![tch::Device::Cuda(0)] };
        let result = nccl_all_reduce_check(&devices, TIMEOUT);
        if gpus > 0 && nccl_version().is_some() {
            result.unwrap();
        } else {
            let message = result.unwrap_err().to_string();
            assert!(message.contains("cannot form the NCCL group as rank 0 of 1"), "{message}");
            let why = if nccl_version().is_some() { "no GPUs found" } else { "built without NCCL" };
            assert!(message.contains(why), "{message}");
        }
    }

    #[test]
    fn collectives_are_nccl_between_gpus_and_gloo_elsewhere() {
        use tch::Device::{Cpu, Cuda};
        let loopback = || GlooBind::Host("127.0.0.1".into());
        let choose = |setting, devices: &[tch::Device]| Collectives::choose(setting, devices, loopback());
        let gloo = Collectives::Gloo(loopback());
        assert_eq!(choose(CollectivesSetting::Auto, &[Cpu, Cpu]).unwrap(), gloo);
        assert_eq!(choose(CollectivesSetting::Gloo, &[Cuda(0), Cuda(1)]).unwrap(), gloo);
        let on_gpus = choose(CollectivesSetting::Auto, &[Cuda(0), Cuda(1)]).unwrap();
        let nccl_built = nccl_version().is_some();
        assert_eq!(on_gpus, if nccl_built { Collectives::Nccl } else { gloo.clone() });
        let refused = choose(CollectivesSetting::Nccl, &[Cpu, Cpu]).unwrap_err().to_string();
        let why = if nccl_built { "a replica is on the CPU" } else { "built without NCCL" };
        assert!(refused.contains(why) && refused.contains("run.collectives"), "{refused}");
        assert_eq!(choose(CollectivesSetting::Nccl, &[Cuda(0), Cuda(1)]).is_ok(), nccl_built);
    }

    /// A Gloo all-reduce that may be given up returns once told to, its group left in flight
    /// (and not freed); one whose peer's group goes away fails.
    #[test]
    fn an_all_reduce_is_given_up_when_told() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let store = std::sync::Arc::new(Store::in_process().unwrap());
        let loopback = GlooBind::Host("127.0.0.1".into());
        let give_up = AtomicBool::new(false);
        std::thread::scope(|s| {
            let peer = s.spawn(|| {
                let group = ProcessGroup::gloo(&store, 1, 2, &loopback, TIMEOUT).unwrap();
                // Never joins the all-reduce; goes away after a while.
                std::thread::sleep(Duration::from_millis(1500));
                drop(group);
            });
            let group = ProcessGroup::gloo(&store, 0, 2, &loopback, TIMEOUT).unwrap();
            let started = std::time::Instant::now();
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(500));
                give_up.store(true, Ordering::Release);
            });
            let mut t = Tensor::from_slice(&[1.0f32]);
            assert_eq!(group.all_reduce_sum_unless(&mut t, &give_up).unwrap(), Reduced::GivenUp);
            let waited = started.elapsed();
            assert!(waited >= Duration::from_millis(500) && waited < Duration::from_secs(2), "{waited:?}");
            peer.join().unwrap();
        });
        let store = std::sync::Arc::new(Store::in_process().unwrap());
        let never = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                let group = ProcessGroup::gloo(&store, 1, 2, &loopback, TIMEOUT).unwrap();
                std::thread::sleep(Duration::from_millis(500));
                drop(group);
            });
            let group = ProcessGroup::gloo(&store, 0, 2, &loopback, TIMEOUT).unwrap();
            let started = std::time::Instant::now();
            let mut t = Tensor::from_slice(&[1.0f32]);
            let err = group.all_reduce_sum_unless(&mut t, &never).unwrap_err();
            assert!(started.elapsed() < Duration::from_secs(10), "{:?}: {err}", started.elapsed());
        });
    }

    fn env(rank: usize, port: u16) -> LaunchEnv {
        LaunchEnv {
            rank,
            rank_variable: "RANK",
            world_size: 2,
            local_rank: rank,
            local_world_size: 2,
            master_addr: "127.0.0.1".into(),
            master_port: port,
            agent_store: false,
            attempt: 0,
            job_id: None,
        }
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    }

    /// Two processes' worth of jobs (on threads here) meet at rank 0's TCPStore: rank 0's
    /// broadcast reaches rank 1, sums include both, and a second session's keys are fresh.
    #[test]
    fn jobs_meet_through_the_tcp_store() {
        let port = free_port();
        let results: Vec<(f64, f64, usize)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..2)
                .map(|rank| {
                    s.spawn(move || {
                        let job = Job::join(env(rank, port), TIMEOUT, &mut |_| {}).unwrap();
                        let mut b = Tensor::from_slice(&[rank as f64 + 5.0]);
                        job.broadcast(&mut b).unwrap();
                        let mut sum = Tensor::from_slice(&[rank as f64 + 1.0]);
                        job.all_reduce_sum(&mut sum).unwrap();
                        let group = ProcessGroup::gloo(
                            &job.session_store(job.next_session()).unwrap(),
                            rank,
                            2,
                            &job.gloo_bind(),
                            TIMEOUT,
                        )
                        .unwrap();
                        group.barrier().unwrap();
                        (b.double_value(&[0]), sum.double_value(&[0]), group.size())
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(results, vec![(5.0, 3.0, 2), (5.0, 3.0, 2)]);
    }

    /// Groups formed side by side in one process do not wait on each other: rank 1 starts
    /// forming the fitness pair (waiting for rank 0's key) before its replica joins the session
    /// group, which rank 0 forms first. Through one shared TCPStore client, the pair's wait held
    /// the client's lock and the session group could not form (a deadlock until the timeout).
    #[test]
    fn groups_formed_side_by_side_in_a_process_do_not_wait_on_each_other() {
        let port = free_port();
        let form = |job: &Job, prefix: &str, rank: usize| -> Result<usize, DistributedError> {
            let store = job.session_store(0)?.prefixed(prefix)?;
            let group = ProcessGroup::gloo(&store, rank, 2, &job.gloo_bind(), TIMEOUT)?;
            group.barrier()?;
            Ok(group.size())
        };
        let started = std::time::Instant::now();
        std::thread::scope(|s| {
            let rank0 = s.spawn(|| {
                let job = Job::join(env(0, port), TIMEOUT, &mut |_| {}).unwrap();
                (form(&job, "session", 0).unwrap(), form(&job, "pair", 0).unwrap())
            });
            let rank1 = s.spawn(|| {
                let job = Job::join(env(1, port), TIMEOUT, &mut |_| {}).unwrap();
                std::thread::scope(|inner| {
                    let pair = inner.spawn(|| form(&job, "pair", 1).unwrap());
                    // The pair is waiting for rank 0's key by now.
                    std::thread::sleep(Duration::from_millis(500));
                    (form(&job, "session", 1).unwrap(), pair.join().unwrap())
                })
            });
            assert_eq!(rank0.join().unwrap(), (2, 2));
            assert_eq!(rank1.join().unwrap(), (2, 2));
        });
        assert!(started.elapsed() < TIMEOUT, "{:?}", started.elapsed());
    }

    /// What rank 1 leaves in the job's store reaches rank 0: a stop asked for by a signal (to
    /// rank 0's watch) and why it failed; a watch that saw nothing ends when told.
    #[test]
    fn rank_0_learns_of_the_other_ranks_stops_and_failures() {
        let port = free_port();
        let (rank0, rank1) = std::thread::scope(|s| {
            let rank1 = s.spawn(|| Job::join(env(1, port), TIMEOUT, &mut |_| {}).unwrap());
            (Job::join(env(0, port), TIMEOUT, &mut |_| {}).unwrap(), rank1.join().unwrap())
        });
        let rank0: &'static Job = Box::leak(Box::new(rank0));
        assert!(rank0.failures_left(Duration::ZERO).is_empty());

        rank0.watch_stop_requests(|request| panic!("no rank asked yet: {request:?}"));
        std::thread::sleep(Duration::from_millis(700));
        let started = std::time::Instant::now();
        rank0.stop_watching();
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());

        let (send, receive) = std::sync::mpsc::channel();
        rank0.watch_stop_requests(move |request| send.send(request).unwrap());
        rank1.ask_rank_0_to_stop("SIGTERM").unwrap();
        let request = receive.recv_timeout(TIMEOUT).expect("rank 0 sees the request");
        assert_eq!(request, StopRequest { rank: Some(1), signal: "SIGTERM".into() });
        assert_eq!(request.to_string(), "rank 1 got SIGTERM");
        rank0.stop_watching();

        rank1.leave_failure("cannot build its replicas: out of memory");
        let failures = rank0.failures_left(Duration::ZERO);
        assert_eq!(failures, vec![(1, "cannot build its replicas: out of memory".to_string())]);
    }

    /// A process of another job given the same address and port fails at once, naming both
    /// jobs (it waited out the join timeout); the job's own process still joins.
    #[test]
    fn a_process_of_another_job_is_refused_at_once() {
        let port = free_port();
        let of_job = |rank, id: &str| LaunchEnv { job_id: Some(id.into()), ..env(rank, port) };
        std::thread::scope(|s| {
            let rank0 = s.spawn(|| Job::join(of_job(0, "100"), TIMEOUT, &mut |_| {}).map(|_| ()));
            let started = std::time::Instant::now();
            let err = Job::join(of_job(1, "200"), TIMEOUT, &mut |_| {}).err().expect("another job's store");
            assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
            assert!(matches!(err, DistributedError::OtherJob { .. }), "{err}");
            assert!(err.to_string().contains("belongs to job 100, this process to job 200"), "{err}");
            // A rank of the next launch attempt, while this one's rank 0 holds the port.
            let err = Job::join(LaunchEnv { attempt: 1, ..of_job(1, "100") }, TIMEOUT, &mut |_| {})
                .err()
                .expect("attempt 0's");
            assert!(matches!(err, DistributedError::OtherAttempt { theirs: 0, ours: 1, .. }), "{err}");
            Job::join(of_job(1, "100"), TIMEOUT, &mut |_| {}).unwrap();
            rank0.join().unwrap().unwrap();
        });
    }

    /// A second rank 0 on the machine of the first is told that its port is taken.
    #[test]
    fn a_second_rank_0_is_told_its_port_is_taken() {
        let port = free_port();
        let _first = Store::tcp("127.0.0.1", port, StoreRole::Server, TIMEOUT).unwrap();
        let err = Job::join(env(0, port), TIMEOUT, &mut |_| {}).err().expect("the port is taken");
        assert!(matches!(err, DistributedError::PortTaken { .. }), "{err}");
        assert!(err.to_string().contains("another process given rank 0"), "{err}");
    }

    /// A rank whose peers never come gives up after the join timeout, naming the job.
    #[test]
    fn a_job_whose_peers_never_come_fails_in_time() {
        let started = std::time::Instant::now();
        let err =
            Job::join(env(0, free_port()), Duration::from_secs(2), &mut |_| {}).err().expect("no peer came");
        assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
        assert!(err.to_string().contains("rank(s) 1 of the 2 never came (rank 0 waited 2 s"), "{err}");
    }

    /// A rank that answered the roll call and then never joins the group (its process ended,
    /// or its Gloo port cannot be reached) fails the others' join after the group's own
    /// timeout, saying so, not after the join timeout for starts.
    #[test]
    fn a_rank_gone_after_the_roll_call_fails_the_join_in_time() {
        let port = free_port();
        let started = std::time::Instant::now();
        std::thread::scope(|s| {
            let rank0 = s.spawn(|| Job::join(env(0, port), Duration::from_secs(3), &mut |_| {}).map(|_| ()));
            // Rank 1 answers, and goes.
            let tcp = Store::tcp("127.0.0.1", port, StoreRole::Client, TIMEOUT).unwrap();
            let store = std::sync::Arc::new(tcp.prefixed(&job::attempt_prefix(&env(1, port))).unwrap());
            let roll_call = roll_call::RollCall {
                rank: 1,
                variable: "RANK",
                size: 2,
                hosts_store: false,
                timeout: TIMEOUT,
                report_every: TIMEOUT,
                withdrawal: None,
            };
            roll_call.answer(&store, &mut |_| {}).unwrap();
            let err = rank0.join().unwrap().expect_err("rank 1 never joined the group");
            assert!(matches!(err, DistributedError::GroupNotFormed { size: 2, seconds: 3, .. }), "{err}");
            assert!(err.to_string().contains("GLOO_SOCKET_IFNAME"), "{err}");
        });
        assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
    }

    #[test]
    fn a_client_without_a_server_fails_with_the_address() {
        let err = Store::tcp("127.0.0.1", 1, StoreRole::Client, Duration::from_millis(300)).err().unwrap();
        assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
    }
}
