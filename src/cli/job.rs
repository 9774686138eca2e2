//! `evnas search` and `evnas serve` started as one process of a job of several (torchrun,
//! Slurm's srun, a PyTorchJob: every process with the same command line): rank 0 runs the
//! search; every other rank lends it the devices of its own config until rank 0 ends the job.

use std::process::ExitCode;

use anyhow::Context;
use evnas::config::Config;
use evnas::distributed::{ranks_listed, DistributedError, Heard, Job, LaunchEnv, JOIN_TIMEOUT};
use evnas::train::TrainError;

use super::failure::code;

/// Joins the job the launcher's environment describes; `None` when this process runs alone.
/// A SIGINT/SIGTERM while it waits for the other processes ends it at once with `interrupted`
/// (nothing has started yet).
pub fn join(interrupted: u8) -> anyhow::Result<Option<&'static Job>> {
    let Some(env) = LaunchEnv::from_env().context("cannot read the launcher's environment")? else {
        return Ok(None);
    };
    let (rank, world, addr, port) = (env.rank, env.world_size, env.master_addr.clone(), env.master_port);
    // In force before the line that says it waits.
    // Its rank may be started again: it takes back its answer to the roll call.
    let _waiting = super::interrupt::exit_while(
        format!("evnas: rank {rank}: waiting for the job's other processes"),
        interrupted,
        evnas::distributed::withdraw_from_roll_call,
        format!(
            "its answer to the roll call was not taken back in time: a new process for rank {rank} takes its place once it has been silent for 5 s"
        ),
    );
    eprintln!(
        "evnas: rank {rank} of a job of {world} processes, meeting at {addr}:{port} (waiting up to {} minutes for the others)",
        JOIN_TIMEOUT.as_secs() / 60
    );
    // c10d retries an address that does not resolve until its timeout, saying only that it
    // found no IPv6 address: say what is wrong first.
    if let Err(e) = std::net::ToSocketAddrs::to_socket_addrs(&(addr.as_str(), port)) {
        evnas::daemon::journal::eprint_at(tracing::Level::WARN, format_args!(
            "evnas: rank {rank}: warning: MASTER_ADDR {addr} does not resolve ({e}): c10d tries again until the wait is over"
        ));
    }
    let mut report = |heard: &Heard| eprintln!("evnas: rank {rank}: {}", heard_line(rank, world, heard));
    let job = Job::join(env, JOIN_TIMEOUT, &mut report)
        .with_context(|| format!("rank {rank} cannot join the job of {world} processes at {addr}:{port}"))?;
    Ok(Some(Job::install(job)))
}

/// What this process (`rank` of `world`) heard in the roll call, for its log.
fn heard_line(rank: usize, world: usize, heard: &Heard) -> String {
    match heard {
        Heard::Waiting { absent, waited } => {
            let silent = match absent.silent.as_slice() {
                [] => String::new(),
                silent => format!(
                    "; rank(s) {} answered, then went silent (killed while waiting?): start it again",
                    ranks_listed(silent, 16)
                ),
            };
            let all = ranks_listed(&absent.all(), 16);
            format!("still waiting for rank(s) {all} of the {world} ({} s so far){silent}", waited.as_secs())
        }
        Heard::TookPlace { silent } => format!(
            "the process that had answered for rank {rank} went silent {} s ago (killed while it waited?): this one takes its place",
            silent.as_secs()
        ),
    }
}

/// A rank other than 0: trains rank 0's search on the devices of `cfg` (run.devices, run.device,
/// run.threads; the search itself is rank 0's), then exits with rank 0's exit code.
pub fn follow(job: &'static Job, cfg: &Config) -> anyhow::Result<u8> {
    let rank = job.rank();
    let devices =
        evnas::launch::devices(cfg).with_context(|| format!("rank {rank} cannot use its devices"))?;
    evnas::threads::set_process_threads(cfg.run.threads);
    // Rank 0's search computes reproducibly; its replicas here must as well.
    evnas::cudnn::set_mode(evnas::cudnn::CudnnMode::Reproducible);
    let threads = evnas::threads::current_threads();
    eprintln!(
        "evnas: rank {rank}: {} on {devices:?} with {}, training rank 0's search",
        counted(devices.len(), "replica"),
        counted(threads, "thread")
    );
    leave_stopping_to_rank_0(job);
    super::interrupt::ignore_hangups(format!(
        "evnas: rank {rank}: SIGHUP ignored: reloads are rank 0's (it reads its config file and tells this rank)"
    ));
    let code =
        evnas::train::data_parallel::serve_job(job, &devices, threads, &evnas::search::replica_builder)
            .with_context(|| format!("rank {rank} stopped"))?;
    // Its own log has nothing more to say why.
    match code {
        0 => {}
        code::INTERRUPTED => eprintln!("evnas: rank {rank}: rank 0 stopped the job (exit {code})"),
        code => eprintln!("evnas: rank {rank}: rank 0 ended the job with exit {code} (its log says why)"),
    }
    Ok(code)
}

/// A rank other than 0 failed with `err`: it leaves the reason for rank 0 to name, unless it
/// only lost another process of the job (rank 0 knows that).
pub fn leave_failure(job: &Job, err: &anyhow::Error) {
    let lost = err.chain().any(|cause| {
        cause.downcast_ref::<DistributedError>().is_some_and(DistributedError::is_collective)
            || cause.downcast_ref::<TrainError>().is_some_and(TrainError::is_collective)
    });
    if !lost {
        job.leave_failure(&super::failure::describe(err));
    }
}

/// Ends a rank other than 0 with `code` at once: threads of the job (a fitness server, Gloo's
/// workers) may still be at work after a failure, and libtorch's static destructors must not
/// run under them (that crashed the process).
pub fn end_follower(code: u8) -> ! {
    evnas::daemon::exit_now(code.into())
}

fn counted(n: usize, thing: &str) -> String {
    match n {
        1 => format!("1 {thing}"),
        n => format!("{n} {thing}s"),
    }
}

/// Tells the other ranks that the job is over, with rank 0's exit code for them (`result`:
/// what rank 0's command returned, its error printed). A failed job names what the other ranks
/// said of their own failures.
pub fn finish(job: &Job, result: &anyhow::Result<ExitCode>) {
    job.stop_watching();
    // A config problem (exit 2) is rank 0's own.
    let failed_running = result.as_ref().is_err_and(|e| super::failure::exit_number(e) != code::USAGE);
    if failed_running {
        for (rank, reason) in job.failures_left(std::time::Duration::from_secs(2)) {
            evnas::daemon::journal::eprint_at(
                tracing::Level::ERROR,
                format_args!("evnas: rank {rank}'s own error: {reason}"),
            );
        }
    }
    let number = match result {
        Ok(c) if *c == ExitCode::SUCCESS => 0,
        Ok(c) if *c == ExitCode::from(code::INTERRUPTED) => code::INTERRUPTED,
        Ok(_) => code::RUNTIME,
        Err(e) => super::failure::exit_number(e),
    };
    evnas::train::data_parallel::shutdown_job(job, number);
}

/// Launchers signal every process of a job at once (torchrun, scancel): rank 0 stops the search
/// at a checkpoint and then ends the others, so a follower waits for that. Some stop one
/// machine alone (a Kubernetes eviction, one node's agent): rank 0 is asked to stop the job as
/// well. A second signal ends the follower at once.
fn leave_stopping_to_rank_0(job: &'static Job) {
    let rank = job.rank();
    let message =
        format!("evnas: rank {rank}: asking rank 0 to stop the search after its current batch (signal again to quit now)");
    super::interrupt::on_signals(message, move |signal| {
        // Off the signal thread: a store that does not answer must not delay a second signal.
        std::thread::spawn(move || {
            if let Err(e) = job.ask_rank_0_to_stop(signal) {
                evnas::daemon::journal::eprint_at(tracing::Level::WARN, format_args!("evnas: rank {rank}: cannot ask rank 0 to stop ({e}): the job goes on until it is stopped"));
            }
        });
    });
}
