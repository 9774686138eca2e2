//! A search as a job of two processes on loopback, launched as torchrun launches them: the same
//! command line for both, told apart by RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and
//! MASTER_PORT. Rank 0 hosts the TCPStore and runs the search; rank 1's replica trains beside
//! rank 0's through a Gloo group across the processes. The job computes what two replicas in
//! one process compute (within rounding), and torchrun's own launch of it the very same bytes;
//! a rank killed in the middle of training fails the whole job (both processes exit non-zero,
//! the last checkpoint intact) and the launcher's restart of the same command lines resumes it
//! to the uninterrupted result.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::served::Served;

use common::search::{
    assert_checkpoints_intact, assert_same_search, history_text_without_timings, history_without_timings,
    run_ok, search_command, tiny_setup,
};

/// Each process trains one replica on one thread, as each of two replicas in one process does.
const ONE_THREAD: [&str; 2] = ["--set", "run.threads=1"];

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Runs `command(rank)` as ranks 0 and 1 of a job, with `faults[rank]` as its FAILPOINTS;
/// the outputs in rank order.
fn run_job(command: impl Fn() -> Command, faults: [Option<&str>; 2]) -> [Output; 2] {
    let port = free_port().to_string();
    let children: Vec<_> = (0..2)
        .map(|rank| {
            let mut cmd = command();
            cmd.env("RANK", rank.to_string())
                .env("WORLD_SIZE", "2")
                .env("LOCAL_RANK", rank.to_string())
                .env("LOCAL_WORLD_SIZE", "2")
                .env("MASTER_ADDR", "127.0.0.1")
                .env("MASTER_PORT", &port)
                .env_remove("FAILPOINTS")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            if let Some(fault) = faults[rank] {
                cmd.env("FAILPOINTS", fault);
            }
            cmd.spawn().expect("start evnas")
        })
        .collect();
    let outputs: Vec<Output> =
        children.into_iter().map(|c| c.wait_with_output().expect("wait for evnas")).collect();
    outputs.try_into().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_success(outputs: &[Output; 2]) {
    for (rank, out) in outputs.iter().enumerate() {
        assert!(out.status.success(), "rank {rank} failed ({}):\n{}", out.status, stderr(out));
    }
}

#[test]
fn two_processes_train_as_two_replicas_and_fail_and_resume_together() {
    let tmp = tempfile::tempdir().unwrap();
    // 3 generations of 4 individuals; 96 training images in batches of 16 (8 per replica).
    let (config, _) = tiny_setup(tmp.path(), 3);
    let threads = tmp.path().join("threads");
    run_ok(&mut search_command(
        &config,
        &threads,
        &["--set", "run.devices=[cpu, cpu]", "--set", "run.threads=2"],
    ));

    // A SIGHUP to rank 1 (a reload sent to every process of the job) is ignored there.
    let job = tmp.path().join("job");
    let outputs = run_job(
        || search_command(&config, &job, &ONE_THREAD),
        [None, Some("replica.step=2*off->return(sighup)")],
    );
    assert_success(&outputs);
    assert!(stderr(&outputs[1]).contains("rank 1: SIGHUP ignored"), "{}", stderr(&outputs[1]));
    assert!(stderr(&outputs[0]).contains("rank 0 of a job of 2 processes"), "{}", stderr(&outputs[0]));
    assert!(
        stderr(&outputs[1]).contains("rank 1: 1 replica on [Cpu] with 1 thread"),
        "{}",
        stderr(&outputs[1])
    );
    assert_trains_as(&job, &threads, 3);

    // PyTorch's own launcher (its agent hosts the store; every rank is a client) runs the same
    // job, byte for byte.
    let torchrun = tmp.path().join("torchrun");
    let out = Command::new("python3")
        .env("PYTHONPATH", common::python_site_dir())
        .args(["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "--no-python"])
        .arg(env!("CARGO_BIN_EXE_evnas"))
        .args(["search", "--quiet", "--config"])
        .arg(&config)
        .arg("--run-dir")
        .arg(&torchrun)
        .args(ONE_THREAD)
        .env_remove("FAILPOINTS")
        .output()
        .expect("run torchrun");
    assert!(out.status.success(), "torchrun failed ({}):\n{}", out.status, stderr(&out));
    assert!(stderr(&out).contains("rank 1: 1 replica on [Cpu]"), "{}", stderr(&out));
    assert_eq!(history_text_without_timings(&torchrun), history_text_without_timings(&job));
    assert_same_search(&torchrun, &job);

    // Rank 1 killed at its 9th step (generation 2's third batch): the job fails, rank 0 with
    // an error naming what it lost, generation 1's checkpoint intact.
    let killed = tmp.path().join("killed");
    let outputs = run_job(
        || search_command(&config, &killed, &ONE_THREAD),
        [None, Some("replica.step=8*off->return(kill)")],
    );
    assert_eq!(outputs[1].status.signal(), Some(libc::SIGKILL), "{}", stderr(&outputs[1]));
    assert_eq!(outputs[0].status.code(), Some(1), "{}", stderr(&outputs[0]));
    assert!(stderr(&outputs[0]).contains("a process of the job is gone"), "{}", stderr(&outputs[0]));
    assert!(!stderr(&outputs[0]).contains("own error"), "{}", stderr(&outputs[0]));
    assert_checkpoints_intact(&killed);
    assert_eq!(generations_done(&killed), 1);
    // The launcher's restart (torchrun --max-restarts, counted in TORCHELASTIC_RESTART_COUNT):
    // the very same command lines again continue the run in --run-dir.
    let outputs = relaunch_ends_as(&config, &killed, &job, ("TORCHELASTIC_RESTART_COUNT", "1"));
    assert!(
        stderr(&outputs[0]).contains("restarted by the launcher (TORCHELASTIC_RESTART_COUNT = 1)"),
        "{}",
        stderr(&outputs[0])
    );
    assert!(stderr(&outputs[0]).contains("resuming"), "{}", stderr(&outputs[0]));
    assert_checkpoints_intact(&killed);

    // SIGTERM to rank 1 alone (its machine evicted, its node's agent stopped): rank 0 is told,
    // stops the whole job at a checkpoint (its batches slowed so that it is still training),
    // and every process exits 130, for the launcher to restart the job; the restart continues
    // it to the uninterrupted result. (Rank 1's first two all-reduces are held: rank 0 waits
    // for them, time the generation's record keeps across the stop.)
    // (Launched as torchrun names a job, --rdzv-id: its restart below is counted nowhere.)
    let evicted = tmp.path().join("evicted");
    let of_elastic_job = |job: &str| {
        let mut cmd = search_command(&config, &evicted, &ONE_THREAD);
        cmd.env("TORCHELASTIC_RUN_ID", job);
        cmd
    };
    let outputs = run_job(
        || of_elastic_job("elastic-1"),
        [
            Some("train.batch=sleep(200)"),
            Some("replica.reduce=2*sleep(700);replica.step=2*off->1*return(sigterm)"),
        ],
    );
    for (rank, out) in outputs.iter().enumerate() {
        assert_eq!(out.status.code(), Some(130), "rank {rank}: {}", stderr(out));
    }
    assert!(
        stderr(&outputs[1]).contains("rank 1: asking rank 0 to stop the search"),
        "{}",
        stderr(&outputs[1])
    );
    assert!(
        stderr(&outputs[0]).contains("rank 1 got SIGTERM: stopping the job after the current batch"),
        "{}",
        stderr(&outputs[0])
    );
    assert!(
        stderr(&outputs[0]).contains("stopped; the launcher's restart of job elastic-1 continues it"),
        "{}",
        stderr(&outputs[0])
    );
    assert!(
        stderr(&outputs[1]).contains("rank 1: rank 0 stopped the job (exit 130)"),
        "{}",
        stderr(&outputs[1])
    );
    // torchrun's elastic agent restarts the workers when a node joins without counting a
    // restart: the same job's command lines continue the run all the same.
    let outputs = relaunch_ends_as(&config, &evicted, &job, ("TORCHELASTIC_RUN_ID", "elastic-1"));
    assert!(
        stderr(&outputs[0]).contains("started again in job elastic-1, which started this search"),
        "{}",
        stderr(&outputs[0])
    );
    // From the stop checkpoint, in the middle of a generation.
    assert!(stderr(&outputs[0]).contains(", stopped "), "{}", stderr(&outputs[0]));
    let history = std::fs::read_to_string(evicted.join("generations.jsonl")).unwrap();
    let first: serde_json::Value = serde_json::from_str(history.lines().next().unwrap()).unwrap();
    let communication = first["train"]["communication_seconds"].as_f64().unwrap();
    assert!(communication >= 0.8, "{communication} s of all-reduce in generation 1: {}", first["train"]);
    // Another job's first launch does not take the run over.
    let outputs = run_job(|| of_elastic_job("elastic-2"), [None, None]);
    assert_ne!(outputs[0].status.code(), Some(0), "{}", stderr(&outputs[0]));
    assert!(stderr(&outputs[0]).contains("already holds a run"), "{}", stderr(&outputs[0]));
    assert_eq!(history_text_without_timings(&evicted), history_text_without_timings(&job));

    // A rank that fails on its own leaves its error for rank 0, whose log names it; a rank
    // killed leaves none (above).
    let failed = tmp.path().join("failed");
    let outputs = run_job(
        || search_command(&config, &failed, &ONE_THREAD),
        [None, Some("replica.step=8*off->return(error)")],
    );
    assert_eq!(outputs[1].status.code(), Some(1), "{}", stderr(&outputs[1]));
    assert_eq!(outputs[0].status.code(), Some(1), "{}", stderr(&outputs[0]));
    assert!(
        stderr(&outputs[0]).contains("rank 1's own error: rank 1 stopped: fault injected at replica.step"),
        "{}",
        stderr(&outputs[0])
    );

    // Rank 0 killed in training: rank 1 notices and exits non-zero too.
    let lost_leader = tmp.path().join("lost-leader");
    let outputs = run_job(
        || search_command(&config, &lost_leader, &ONE_THREAD),
        [Some("train.batch=8*off->return(kill)"), None],
    );
    assert_eq!(outputs[0].status.signal(), Some(libc::SIGKILL), "{}", stderr(&outputs[0]));
    assert_eq!(outputs[1].status.code(), Some(1), "{}", stderr(&outputs[1]));
    assert!(stderr(&outputs[1]).contains("error: rank 1 stopped"), "{}", stderr(&outputs[1]));
}

/// A search started as a job of one process (torchrun `--nnodes 1:2` before the second node
/// came) and stopped when the job grew (torchrun stops its workers with SIGTERM and starts them
/// again, two now, without counting a restart) is continued by the grown job.
#[test]
fn a_job_of_one_process_grown_to_two_continues_its_run() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, _) = tiny_setup(tmp.path(), 2);
    let run = tmp.path().join("run");
    let of_job = || {
        let mut cmd = search_command(&config, &run, &ONE_THREAD);
        cmd.env("TORCHELASTIC_RUN_ID", "grown").env("TORCHELASTIC_RESTART_COUNT", "0");
        cmd
    };
    let alone = of_job()
        .env("RANK", "0")
        .env("WORLD_SIZE", "1")
        .env("FAILPOINTS", "train.batch=7*off->1*return(sigterm)")
        .output()
        .unwrap();
    assert_eq!(alone.status.code(), Some(130), "{}", stderr(&alone));
    assert_eq!(generations_done(&run), 1);
    let outputs = run_job(of_job, [None, None]);
    assert_success(&outputs);
    assert!(
        stderr(&outputs[0]).contains("started again in job grown, which started this search"),
        "{}",
        stderr(&outputs[0])
    );
    assert_eq!(generations_done(&run), 2);
}

/// A replica failing its step before its all-reduce, in either process: both processes end at
/// once (the others' replicas waited out the 10-minute collective timeout), rank 0 naming the
/// cause.
#[test]
fn a_replica_failing_before_its_all_reduce_ends_the_job_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, _) = tiny_setup(tmp.path(), 2);
    let two_each = ["--set", "run.devices=[cpu, cpu]", "--set", "run.threads=2"];
    let fault = Some("replica.reduce=3*off->return(error)");
    for (rank, faults) in [(0, [fault, None]), (1, [None, fault])] {
        let started = std::time::Instant::now();
        let run = tmp.path().join(format!("fault-on-{rank}"));
        let outputs = run_job(|| search_command(&config, &run, &two_each), faults);
        for out in &outputs {
            assert_eq!(out.status.code(), Some(1), "fault on rank {rank}: {}", stderr(out));
        }
        assert!(
            stderr(&outputs[0]).contains("fault injected at replica.reduce"),
            "fault on rank {rank}: {}",
            stderr(&outputs[0])
        );
        assert!(started.elapsed() < Duration::from_secs(60), "fault on rank {rank}: {:?}", started.elapsed());
    }
}

/// Two processes of two replicas each, as two machines of two GPUs: each process forms the
/// session group from two threads while rank 1's fitness pair forms from a third, and the job
/// trains as four replicas in one process do.
#[test]
fn two_processes_of_two_replicas_each_train_as_four_replicas() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, _) = tiny_setup(tmp.path(), 2);
    let threads = tmp.path().join("threads");
    run_ok(&mut search_command(
        &config,
        &threads,
        &["--set", "run.devices=[cpu, cpu, cpu, cpu]", "--set", "run.threads=4"],
    ));
    let job = tmp.path().join("job");
    let two_each = ["--set", "run.devices=[cpu, cpu]", "--set", "run.threads=2"];
    let outputs = run_job(|| search_command(&config, &job, &two_each), [None, None]);
    assert_success(&outputs);
    assert!(
        stderr(&outputs[1]).contains("rank 1: 2 replicas on [Cpu, Cpu] with 2 threads"),
        "{}",
        stderr(&outputs[1])
    );
    assert_trains_as(&job, &threads, 2);
}

/// The job of `run` started again by its launcher (the same command lines, with `launcher`'s
/// variable set) ends as the uninterrupted job `uninterrupted`; its outputs.
fn relaunch_ends_as(config: &Path, run: &Path, uninterrupted: &Path, launcher: (&str, &str)) -> [Output; 2] {
    let relaunch = || {
        let mut cmd = search_command(config, run, &ONE_THREAD);
        cmd.env(launcher.0, launcher.1);
        cmd
    };
    let outputs = run_job(relaunch, [None, None]);
    assert_success(&outputs);
    assert_eq!(history_text_without_timings(run), history_text_without_timings(uninterrupted));
    assert_same_search(run, uninterrupted);
    outputs
}

/// The job's run trained all 96 images in each of its `generations`, generation 1 to the loss
/// of as many replicas in one process (`threads`' run): libtorch's kernels round differently
/// under another thread setup, so within 1e-5, not bit for bit, and the GA may then rank other
/// fitnesses.
fn assert_trains_as(job: &Path, threads: &Path, generations: usize) {
    let (job_history, threads_history) = (history_without_timings(job), history_without_timings(threads));
    assert_eq!(job_history.len(), generations);
    for record in &job_history {
        assert_eq!(record["train"]["images"], 96, "{}", record["train"]);
    }
    let loss = |h: &[serde_json::Value]| h[0]["train"]["loss"].as_f64().unwrap();
    assert!((loss(&job_history) - loss(&threads_history)).abs() < 1e-5, "{job_history:?}");
}

/// A launch environment that does not add up is refused before anything runs.
#[test]
fn a_broken_launch_environment_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, _) = tiny_setup(tmp.path(), 1);
    let out = search_command(&config, &tmp.path().join("run"), &[])
        .env("WORLD_SIZE", "2")
        .env("RANK", "2")
        .env("MASTER_ADDR", "127.0.0.1")
        .env("MASTER_PORT", "29500")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("RANK: 2 is not below WORLD_SIZE = 2"), "{}", stderr(&out));
    assert!(!tmp.path().join("run").exists());
}

/// Two processes given one rank (RANK=$SLURM_NODEID with two tasks a node, say) end the whole
/// job at once with exit 1, each naming the rank; Gloo's group waited out 15 minutes.
#[test]
fn a_rank_given_to_two_processes_ends_the_job_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, _) = tiny_setup(tmp.path(), 1);
    let run = tmp.path().join("run");
    let port = free_port().to_string();
    let started = std::time::Instant::now();
    // Ranks 0, 1 and 1 again of a job of 3: rank 2 never comes.
    let children: Vec<_> = ["0", "1", "1"]
        .into_iter()
        .map(|rank| {
            let child = rank_of_3(search_command(&config, &run, &[]), rank, &port).spawn().unwrap();
            // Rank 0 first, as it hosts the store.
            std::thread::sleep(Duration::from_millis(300));
            child
        })
        .collect();
    let outputs: Vec<Output> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    assert!(started.elapsed() < Duration::from_secs(60), "{:?}", started.elapsed());
    for out in &outputs {
        assert_eq!(out.status.code(), Some(1), "{}", stderr(out));
    }
    assert!(stderr(&outputs[0]).contains("rank 1 was started by two processes"), "{}", stderr(&outputs[0]));
    // Whichever rank 1 answered second is the one refused; the other ends with the job.
    let refused: Vec<&Output> =
        outputs[1..].iter().filter(|o| stderr(o).contains("rank 1 is in the job already")).collect();
    assert_eq!(refused.len(), 1, "{}\n---\n{}", stderr(&outputs[1]), stderr(&outputs[2]));
    assert!(stderr(refused[0]).contains("the job ends"), "{}", stderr(refused[0]));
    assert!(!run.exists());
}

/// A rank stopped while it waits for the others (a Ctrl-C) takes back its answer to the roll
/// call; one killed (SIGKILL) cannot, and a new process for its rank takes the place of the
/// silent one. Started again, both join the job, which forms and runs (a second live answer for
/// a rank would have ended it).
#[test]
fn a_rank_stopped_or_killed_while_waiting_can_be_started_again() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, _) = tiny_setup(tmp.path(), 1);
    let run = tmp.path().join("run");
    let port = free_port().to_string();
    let rank =
        |rank: &str| rank_of_3(search_command(&config, &run, &ONE_THREAD), rank, &port).spawn().unwrap();
    let rank_0 = rank("0");
    std::thread::sleep(Duration::from_millis(500));
    // Rank `r` started and sent `signal` once its answer is in (a moment after it says where it
    // meets): its exit status and the rest of its stderr.
    let ended_while_waiting = |r: &str, signal: i32| {
        let mut child = rank(r);
        let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stderr.take().unwrap()))
            .map(Result::unwrap);
        assert!(lines.by_ref().any(|l| l.contains("meeting at")));
        std::thread::sleep(Duration::from_secs(2));
        // SAFETY: kill has no preconditions; the child is ours and has not been reaped.
        unsafe { libc::kill(child.id() as i32, signal) };
        let rest: Vec<String> = lines.collect();
        (child.wait().unwrap(), rest)
    };
    let (stopped, rest) = ended_while_waiting("2", libc::SIGINT);
    assert_eq!(stopped.code(), Some(130), "{rest:?}");
    let (killed, rest) = ended_while_waiting("1", libc::SIGKILL);
    assert_eq!(killed.signal(), Some(libc::SIGKILL), "{rest:?}");
    let others = [rank("1"), rank("2")];
    let outputs: Vec<Output> =
        std::iter::once(rank_0).chain(others).map(|c| c.wait_with_output().unwrap()).collect();
    for out in &outputs {
        assert!(out.status.success(), "{}", stderr(out));
    }
    assert!(
        stderr(&outputs[1]).contains("rank 1: the process that had answered for rank 1 went silent"),
        "{}",
        stderr(&outputs[1])
    );
    assert_eq!(generations_done(&run), 1);
}

/// A rank waiting for the others when the store's host (rank 0) ends says so in a sentence,
/// without the C++ stack that c10d's own warning carries (libtorch's C++ log shows errors only
/// unless TORCH_CPP_LOG_LEVEL asks for more).
#[test]
fn a_store_whose_host_ends_is_named_without_a_cpp_stack() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut rank_0, mut rank_1, lines) = two_of_3_waiting(tmp.path());
    send_signal(&rank_0, libc::SIGINT);
    let rest = lines.collect::<Vec<String>>().join("\n");
    assert_eq!(rank_1.wait().unwrap().code(), Some(1), "{rest}");
    assert!(rest.contains("the job's store is gone"), "{rest}");
    assert!(!rest.contains("Exception raised from"), "{rest}");
    assert_eq!(rank_0.wait().unwrap().code(), Some(130));
}

/// A waiting rank stopped by a signal while the job's store does not answer (its host stopped,
/// a network cut) still exits promptly: taking back its answer gets a few seconds, not the
/// store's 15-minute timeout, and a second signal (a second or more after the first) ends it
/// at once.
#[test]
fn a_signal_while_the_store_does_not_answer_still_ends_the_process() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, waited, stderr) = interrupted_while_the_store_is_stopped(&tmp.path().join("one"), None);
    assert_eq!(code, Some(130), "after {waited:?}: {stderr}");
    // It did try: its answer was in (else it would have had nothing to take back, and ended at
    // once), and the store did not answer for the 5 s it got; it says so.
    assert!(waited >= Duration::from_secs(4) && waited < Duration::from_secs(15), "{waited:?}");
    assert!(stderr.contains("its answer to the roll call was not taken back"), "{stderr}");

    let second = Duration::from_millis(1500);
    let (code, waited, stderr) =
        interrupted_while_the_store_is_stopped(&tmp.path().join("two"), Some(second));
    assert_eq!(code, Some(130), "after {waited:?}: {stderr}");
    assert!(waited >= second && waited < Duration::from_secs(4), "{waited:?}");
    assert!(stderr.contains("its answer to the roll call was not taken back"), "{stderr}");
}

/// Rank 1 of [`two_of_3_waiting`] sent SIGINT while rank 0, the store's host, is stopped, and
/// SIGINT again `second_after` the first: its exit code (`None`: still running after 60 s,
/// then killed), how long it took, and its stderr since it met.
fn interrupted_while_the_store_is_stopped(
    dir: &Path,
    second_after: Option<Duration>,
) -> (Option<i32>, Duration, String) {
    std::fs::create_dir_all(dir).unwrap();
    let (mut rank_0, rank_1, stderr) = two_of_3_waiting(dir);
    send_signal(&rank_0, libc::SIGSTOP);
    let started = std::time::Instant::now();
    send_signal(&rank_1, libc::SIGINT);
    let pid = rank_1.id() as i32;
    let (send, ended) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || send.send(rank_1.wait_with_output().unwrap().status));
    if let Some(after) = second_after {
        std::thread::sleep(after);
        // SAFETY: kill has no preconditions; the child lives (its take-back waits on the
        // stopped store for 5 s).
        unsafe { libc::kill(pid, libc::SIGINT) };
    }
    let ended = ended.recv_timeout(Duration::from_secs(60)).ok();
    let waited = started.elapsed();
    if ended.is_none() {
        // SAFETY: kill has no preconditions; its waiter has not reaped it.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let _ = waiter.join();
    send_signal(&rank_0, libc::SIGCONT);
    send_signal(&rank_0, libc::SIGINT);
    rank_0.wait().unwrap();
    (ended.and_then(|status| status.code()), waited, stderr.collect::<Vec<String>>().join("\n"))
}

/// Ranks 0 and 1 of a job of 3 (rank 2 never comes) on a tiny search in `dir`, both waiting,
/// rank 1's answer in (a moment after it says where it meets, as in the tests above): the two
/// processes and the rest of rank 1's stderr.
fn two_of_3_waiting(dir: &Path) -> (std::process::Child, std::process::Child, impl Iterator<Item = String>) {
    let (config, _) = tiny_setup(dir, 1);
    let run = dir.join("run");
    let port = free_port().to_string();
    let rank = |rank: &str| rank_of_3(search_command(&config, &run, &[]), rank, &port).spawn().unwrap();
    let rank_0 = rank("0");
    std::thread::sleep(Duration::from_millis(500));
    let mut rank_1 = rank("1");
    let mut lines =
        std::io::BufRead::lines(std::io::BufReader::new(rank_1.stderr.take().unwrap())).map(Result::unwrap);
    assert!(lines.by_ref().any(|l| l.contains("meeting at")));
    std::thread::sleep(Duration::from_secs(2));
    (rank_0, rank_1, lines)
}

fn send_signal(child: &std::process::Child, signal: i32) {
    // SAFETY: kill has no preconditions; the child is ours and has not been reaped.
    unsafe { libc::kill(child.id() as i32, signal) };
}

/// `cmd` as rank `rank` of a job of 3 meeting on loopback at `port`, its output piped.
fn rank_of_3(mut cmd: Command, rank: &str, port: &str) -> Command {
    cmd.env("RANK", rank)
        .env("WORLD_SIZE", "3")
        .env("MASTER_ADDR", "127.0.0.1")
        .env("MASTER_PORT", port)
        .env_remove("FAILPOINTS")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// A process waiting for the rest of its job ends at once on SIGTERM, saying so (no search has
/// started: nothing to stop cleanly); an address that does not resolve is named first.
#[test]
fn a_signal_while_waiting_for_the_other_processes_ends_the_process() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, _) = tiny_setup(tmp.path(), 1);
    let run = tmp.path().join("run");
    // Rank `rank` of a job of 2 meeting at `addr`, alone: its stderr up to the first line
    // holding `seen`, then SIGTERM; that line, the rest of stderr and the exit code.
    let terminated_while_waiting = |rank: &str, addr: &str, seen: &str| {
        let mut child = search_command(&config, &run, &[])
            .env("WORLD_SIZE", "2")
            .env("RANK", rank)
            .env("MASTER_ADDR", addr)
            .env("MASTER_PORT", free_port().to_string())
            .env_remove("FAILPOINTS")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stderr.take().unwrap()))
            .map(Result::unwrap);
        let line = lines.by_ref().find(|l| l.contains(seen)).unwrap_or_default();
        // SAFETY: kill has no preconditions; the child is ours and has not been reaped.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let rest: Vec<String> = lines.collect();
        (line, rest, child.wait().unwrap().code())
    };

    let (waiting, rest, code) = terminated_while_waiting("0", "127.0.0.1", "meeting at");
    assert!(waiting.contains("waiting up to 15 minutes for the others"), "{waiting}");
    assert_eq!(code, Some(130), "{rest:?}");
    assert!(
        rest.iter().any(|l| l.contains("waiting for the job's other processes: SIGTERM: exiting")),
        "{rest:?}"
    );
    assert!(!run.exists());

    let (warning, rest, code) = terminated_while_waiting("1", "no-such-host.invalid", "MASTER_ADDR");
    assert!(warning.contains("no-such-host.invalid does not resolve"), "{warning}: {rest:?}");
    assert_eq!(code, Some(130), "{rest:?}");
}

/// `evnas serve` as a job: a process that dies while the search is paused is noticed when a
/// reload runs it again, and rank 0 then exits 1 for the launcher to restart the job (no
/// reload could bring the process back).
#[test]
fn serve_as_a_job_exits_when_a_process_died_while_its_search_was_paused() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, paused, mut rank_0, mut rank_1) = serve_job(tmp.path(), "paused", None);
    rank_1.child.kill().unwrap();
    rank_1.child.wait().unwrap();

    let edited = tmp.path().join("edited.toml");
    std::fs::write(&edited, paused.replace("state = \"paused\"", "state = \"running\"")).unwrap();
    std::fs::rename(&edited, &config).unwrap();
    let (status, log) = rank_0.wait(WITHIN).expect("rank 0 exits once its search cannot run");
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(log.contains("a process of the job is gone"), "{log}");
}

/// `evnas serve` as a job: a SIGTERM to rank 1 alone stops rank 0 as well, which exits 130
/// (not 0: the job is to be restarted, not done), and so does rank 1. Rank 0 signalled itself
/// while it stops for rank 1 goes on stopping at the checkpoint, and exits as for its own signal.
#[test]
fn serve_as_a_job_stops_when_another_rank_is_told_to_stop() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, _, mut rank_0, mut rank_1) = serve_job(&tmp.path().join("paused"), "paused", None);
    sigterm(&rank_1);
    let log = exits_with(&mut rank_0, 130);
    assert!(log.contains("rank 1 got SIGTERM: exiting"), "{log}");
    assert!(log.contains("exiting 130, not 0, for the launcher to restart the job"), "{log}");
    let log = exits_with(&mut rank_1, 130);
    assert!(log.contains("asking rank 0 to stop"), "{log}");

    // Training, each of rank 0's batches 2 s long.
    let (_, _, mut rank_0, mut rank_1) =
        serve_job(&tmp.path().join("running"), "running", Some("train.batch=sleep(2000)"));
    rank_0.wait_for_log("generation 1/2", WITHIN);
    sigterm(&rank_1);
    rank_0.wait_for_log("rank 1 got SIGTERM: stopping after the current batch", WITHIN);
    sigterm(&rank_0);
    let log = exits_with(&mut rank_0, 0);
    assert!(log.contains("SIGTERM: already stopping"), "{log}");
    assert!(log.contains("search stopped; the next start continues it"), "{log}");
    exits_with(&mut rank_1, 0);
}

/// Waits for `served` to exit with `code`; its log.
fn exits_with(served: &mut Served, code: i32) -> String {
    let (status, log) = served.wait(WITHIN).expect("the rank exits");
    assert_eq!(status.code(), Some(code), "{log}");
    log
}

fn sigterm(served: &Served) {
    // SAFETY: kill has no preconditions; the child is ours and has not been reaped.
    unsafe { libc::kill(served.child.id() as i32, libc::SIGTERM) };
}

const WITHIN: Duration = Duration::from_secs(120);

/// `evnas serve` as ranks 0 and 1 of a job on a tiny search in `dir` in `state`, rank 0 with
/// `faults`, both up: its config file and what it holds.
fn serve_job(dir: &Path, state: &str, faults: Option<&str>) -> (PathBuf, String, Served, Served) {
    std::fs::create_dir_all(dir).unwrap();
    let (config, _) = tiny_setup(dir, 2);
    let text = std::fs::read_to_string(&config).unwrap();
    let served = text.replace("[search]\n", &format!("[search]\nid = \"job\"\nstate = \"{state}\"\n"));
    assert_ne!(served, text);
    std::fs::write(&config, &served).unwrap();
    let port = free_port().to_string();
    let env = |rank: &'static str| {
        [
            ("RANK", rank),
            ("LOCAL_RANK", rank),
            ("WORLD_SIZE", "2"),
            ("LOCAL_WORLD_SIZE", "2"),
            ("MASTER_ADDR", "127.0.0.1"),
            ("MASTER_PORT", port.as_str()),
        ]
    };
    let mut rank_0 = Served::start_with(&config, faults, &env("0"));
    let mut rank_1 = Served::start_with(&config, None, &env("1"));
    rank_1.wait_for_log("training rank 0's search", WITHIN);
    rank_0.wait_for_log("evnas serve starting", WITHIN);
    (config, served, rank_0, rank_1)
}

fn generations_done(run: &Path) -> usize {
    std::fs::read_to_string(run.join("generations.jsonl")).map_or(0, |t| t.lines().count())
}
