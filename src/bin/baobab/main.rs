//! `baobab`: runs Rhai jobs through a supervised, sandboxed worker pool.
//!
//! ```text
//! baobab run examples/jobs            # every .rhai file under the directory
//! baobab run a.rhai b.rhai --workers 4 --timeout 10
//! ```

mod admin;
mod args;
mod files;
mod run;
mod serve;
mod status;
mod stop;
mod submit;
mod table;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use baobab::script::CountingAllocator;
use clap::{Parser, Subcommand};
use tracing::warn;

use args::{
    JobsArgs, PurgeArgs, QueuesArgs, RetryArgs, RunArgs, RunnersArgs, StatusArgs, StopArgs,
    SubmitArgs,
};

/// Allocations are counted per thread, so the sandbox can hold each job to `--max-memory`.
#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Runs Rhai jobs through baobab's supervised, sandboxed worker pool.
#[derive(Parser, Debug)]
#[command(name = "baobab", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log level: error, warn, info, debug or trace (or a tracing filter such as
    /// `baobab=debug`). Logs go to stderr.
    #[arg(long, global = true, default_value = "warn", value_parser = args::parse_log_level)]
    log_level: String,
    /// Logs as JSON lines instead of human-readable text.
    #[arg(long, global = true)]
    log_json: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Runs the `.rhai` files given (a directory: every `.rhai` file under it) as jobs on the
    /// embedded job store and prints a table of their results. Exits 1 if any job failed, 2 on
    /// a usage error, 3 if the runner itself failed (its worker pool stopped), 130 if
    /// interrupted. With `--redis`, serves the actor's queue in Redis instead, until Ctrl-C or
    /// SIGTERM (exit 0), or until the runner fails (exit 3).
    Run(Box<RunArgs>),
    /// Submits `.rhai` files as jobs to a Redis-fed runner; with `--wait`, waits for their
    /// results and prints them.
    Submit(SubmitArgs),
    /// Prints a job's status, output, error and log.
    Status(StatusArgs),
    /// Lists the actors with jobs in Redis: queued, delayed, running, dead, and their
    /// runners.
    Queues(QueuesArgs),
    /// Lists jobs in Redis, filtered by actor, status and age, a page at a time (`SCAN`).
    Jobs(JobsArgs),
    /// Lists the runners serving from Redis: host, pid, heartbeat age, workers, running jobs,
    /// jobs per second.
    Runners(RunnersArgs),
    /// Runs a job that ended in error again (or, with `--dead`, every dead job of an actor).
    Retry(RetryArgs),
    /// Deletes ended jobs: an actor's dead jobs (`--dead`), or finished ones (`--finished`).
    Purge(PurgeArgs),
    /// Stops a job: a running one ends `error: cancelled`, a queued one is cancelled before
    /// it runs.
    Stop(StopArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log_level, cli.log_json);
    match cli.command {
        Command::Run(args) if args.redis.redis.is_some() => serve::serve(*args),
        Command::Run(args) => run::run(*args),
        Command::Submit(args) => submit::submit(args),
        Command::Status(args) => status::status(args),
        Command::Queues(args) => status::queues(args),
        Command::Jobs(args) => admin::jobs(args),
        Command::Runners(args) => admin::runners(args),
        Command::Retry(args) => admin::retry(args),
        Command::Purge(args) => admin::purge(args),
        Command::Stop(args) => stop::stop(args),
    }
}

fn init_logging(level: &str, json: bool) {
    // Checked when the flag was parsed.
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// A runtime for `running` jobs at once with `sandbox`'s limits: a blocking thread for each
/// (and some for the pool's own I/O), each with the stack the limits need.
pub(crate) fn runtime_for(
    sandbox: &baobab::script::SandboxConfig,
    running: usize,
) -> baobab::Runtime {
    baobab::Runtime::builder()
        .blocking_threads(running + 16)
        .blocking_stack_size(baobab::script::Sandbox::stack_size(&sandbox.limits))
        .build()
}

pub(crate) fn interrupt_flag() -> Arc<AtomicBool> {
    let interrupted = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(error) = signal_hook::flag::register(signal, Arc::clone(&interrupted)) {
            warn!(%error, "could not handle a signal");
        }
    }
    interrupted
}
