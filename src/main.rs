//! The `evnas` command line: parse arguments, set up logging, hand over to the library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use evnas::runtime::Arenas;

mod cli;

#[derive(Parser)]
#[command(name = "evnas", about = "Evolve neural architectures with a one-shot supernet (EvNAS)")]
#[command(disable_version_flag = true)]
struct Cli {
    /// Print the evnas and libtorch versions and the CUDA devices seen, then exit.
    #[arg(short = 'V', long = "version")]
    version: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Check the environment: libtorch, CUDA devices, dataset paths. One line per problem.
    Doctor(cli::doctor::DoctorArgs),
    /// Show, draw or list genotypes (built-in names or files).
    Genotype(cli::genotype::GenotypeArgs),
    /// Parameters and multiply-accumulates of a genotype's evaluation network.
    Info(cli::info::InfoArgs),
    /// Test top-1/top-5 of an evaluation network from a genotype and trained weights.
    Eval(cli::eval::EvalArgs),
    /// Train a genotype's evaluation network from scratch (the paper's second stage).
    Train(cli::train::TrainArgs),
    /// Write an evaluation network with its weights as TorchScript or safetensors.
    Export(cli::export::ExportArgs),
    /// Compare the fitness history of several run directories (table and SVG plot).
    Compare(cli::compare::CompareArgs),
    /// Run one EvNAS search in the foreground (resumable with --resume RUN_DIR).
    Search(cli::search::SearchArgs),
    /// Run the configured search as a service: resumes it on start, stops at a checkpoint on
    /// SIGTERM, stays up once it is finished.
    Serve(cli::serve::ServeArgs),
    /// Check a config file as `evnas serve` would load it: exit 0, or 2 with every problem.
    Validate(cli::validate::ValidateArgs),
}

impl Command {
    /// The config a search command runs with here; `None` for the other commands.
    fn search_config(&self) -> Option<anyhow::Result<evnas::config::Config>> {
        match self {
            Command::Search(args) => Some(args.config_here()),
            Command::Serve(args) => Some(args.config_here()),
            _ => None,
        }
    }
}

/// How the command's threads share the heap ([`evnas::runtime::keep_freed_memory`]): an arena
/// per thread for a search whose libtorch work runs on several host threads at once (replicas,
/// or fitness evaluators side by side on the CPU); one when its config does not load (the
/// command then reports why). Per-thread arenas also make the search trim the heap where each
/// phase starts ([`evnas::runtime::release_freed_memory_between_phases`]).
///
/// GPU replicas count too: each has a host thread that launches its kernels and allocates
/// thousands of small tensor and autograd objects a step, which on one arena would queue on
/// its lock as CPU replicas did (measured on CPU only: no GPU has run this). Their tensors
/// live in GPU memory, so the arenas cost little host memory.
fn heap_arenas(search_config: Option<&anyhow::Result<evnas::config::Config>>) -> Arenas {
    match search_config {
        Some(Ok(cfg)) if cfg.replicas() > 1 || cfg.cpu_fitness_evaluators() > 1 => Arenas::PerThread,
        _ => Arenas::One,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A command that prints its answer ends quietly when the reader goes away (`evnas genotype
    // show X | head -1`), as any Unix tool, where Rust's ignored SIGPIPE made it panic. Not the
    // long-running ones: a daemon must not die of a log reader that went away.
    if !matches!(cli.command, Some(Command::Search(_) | Command::Serve(_) | Command::Train(_))) {
        // SAFETY: setting a signal's disposition before any other thread exists.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    // Read once: it decides the heap's arenas, under a launcher this rank's devices, and it is
    // the config that serve starts with.
    let search_config =
        if cli.version { None } else { cli.command.as_ref().and_then(Command::search_config) };
    // Before any thread exists: the heap's arenas are fixed once a second thread allocates.
    evnas::runtime::keep_freed_memory(heap_arenas(search_config.as_ref()));
    let _faults = evnas::fault::setup();
    evnas::daemon::logging::init();
    // Under a launcher (torchrun, srun), a search is one process of a job: rank 0 runs it, the
    // other ranks train it on their devices.
    // A signal while the processes meet: serve's start ends cleanly (0), a search as stopped.
    let interrupted = match cli.command {
        Some(Command::Serve(_)) => 0,
        _ => cli::failure::code::INTERRUPTED,
    };
    let job = match search_config.as_ref().map(|_| cli::job::join(interrupted)).transpose() {
        Ok(job) => job.flatten(),
        Err(err) => return fail(&err),
    };
    let search_config = match (job.filter(|j| j.rank() > 0), search_config) {
        (Some(job), Some(cfg)) => {
            let code = match cfg.and_then(|cfg| cli::job::follow(job, &cfg)) {
                Ok(code) => code,
                Err(err) => {
                    eprint_error(&err);
                    cli::job::leave_failure(job, &err);
                    cli::failure::exit_number(&err)
                }
            };
            cli::job::end_follower(code)
        }
        (_, search_config) => search_config,
    };
    let result = match (cli.version, cli.command) {
        (true, _) => cli::version::run(),
        (false, Some(Command::Doctor(args))) => cli::doctor::run(&args),
        (false, Some(Command::Genotype(args))) => cli::genotype::run(&args),
        (false, Some(Command::Info(args))) => cli::info::run(&args),
        (false, Some(Command::Eval(args))) => cli::eval::run(&args),
        (false, Some(Command::Export(args))) => {
            cli::interrupt::end_without_partial_files();
            cli::export::run(&args)
        }
        (false, Some(Command::Train(args))) => cli::train::run(&args),
        (false, Some(Command::Search(args))) => {
            cli::search::run(&args, search_config.expect("main reads search's config before it runs"))
        }
        (false, Some(Command::Serve(args))) => {
            cli::serve::run(&args, search_config.expect("main reads serve's config before it runs"))
        }
        (false, Some(Command::Validate(args))) => cli::validate::run(&args),
        (false, Some(Command::Compare(args))) => {
            cli::interrupt::end_without_partial_files();
            cli::compare::run(&args)
        }
        (false, None) => {
            use clap::CommandFactory;
            let _ = Cli::command().print_help();
            return ExitCode::from(cli::failure::code::USAGE);
        }
    };
    let code = match &result {
        Ok(code) => *code,
        Err(err) => fail(err),
    };
    if let Some(job) = job {
        cli::job::finish(job, &result);
    }
    code
}

fn fail(err: &anyhow::Error) -> ExitCode {
    eprint_error(err);
    cli::failure::exit_code(err)
}

/// `error: ...` on stderr, at the journal's error priority where stderr is its stream.
fn eprint_error(err: &anyhow::Error) {
    evnas::daemon::journal::eprint_at(
        tracing::Level::ERROR,
        format_args!("error: {}", cli::failure::describe(err)),
    );
}
