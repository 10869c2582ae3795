//! `baobab run DIR|FILE...`: runs `.rhai` files as jobs on the embedded store.
//!
//! It exits:
//! - 0 when every job finished, 1 when any failed;
//! - 2 on a usage error;
//! - 3 when the runner itself failed: its worker pool stopped (its workers crashed more often
//!   than the restart intensity allows); every job not ended by then ends `error` with why;
//! - 130 when interrupted (Ctrl-C, SIGTERM): running jobs get `--grace` seconds, and the
//!   command returns within that grace plus a second, however many jobs are still queued.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use baobab::ExitReason;
use baobab::jobs::{
    Job, JobActor, JobStatus, JobStore, MemoryStore, PoolConfig, StoreError, WorkerPool,
};
use indicatif::{ProgressBar, ProgressStyle};
use tracing::{info, warn};

use crate::args::RunArgs;
use baobab::script::{RhaiActor, read_source};

use crate::files::{Found, collect};
use crate::interrupt_flag;
use crate::table::{Row, fill, print_table, row_json};

/// Exit code: the runner itself failed.
pub(crate) const RUNNER_FAILED: u8 = 3;

/// How often the wait for results looks at the interrupt flag and the pool.
const POLL: Duration = Duration::from_millis(50);

pub(crate) fn run(args: RunArgs) -> ExitCode {
    if args.paths.is_empty() {
        eprintln!("baobab: give .rhai files or directories to run (or --redis URL to serve)");
        return ExitCode::from(2);
    }
    let (workers, concurrency) = match args.workers() {
        Ok(sizes) => sizes,
        Err(error) => {
            eprintln!("baobab: {error}");
            return ExitCode::from(2);
        }
    };
    let found = match collect(&args.paths) {
        Ok(found) if found.is_empty() => {
            eprintln!("baobab: no .rhai files in {:?}", args.paths);
            return ExitCode::from(2);
        }
        Ok(found) => found,
        Err(error) => {
            eprintln!("baobab: {error}");
            return ExitCode::from(2);
        }
    };
    let interrupted = interrupt_flag();
    let sandbox = args.sandbox();
    let rt = crate::runtime_for(&sandbox, workers * concurrency);
    let store = Arc::new(MemoryStore::new());
    let mut config = PoolConfig::new("rhai");
    config.workers = workers;
    config.concurrency = concurrency;
    let factory: baobab::jobs::ActorFactory =
        Arc::new(move || Arc::new(RhaiActor::new("rhai", sandbox.clone())) as Arc<dyn JobActor>);
    let pool = match WorkerPool::start(rt.handle(), store.clone(), factory, config) {
        Ok(pool) => pool,
        Err(error) => {
            eprintln!("baobab: {error}");
            return ExitCode::from(2);
        }
    };
    info!(workers, jobs = found.len(), "running");

    let started = Instant::now();
    // Reading and queueing every file can take a while: an interrupt stops it too.
    let mut rows: Vec<Row> = found
        .iter()
        .map(|found| {
            if interrupted.load(Ordering::Relaxed) {
                Row::not_run(found.path().display().to_string())
            } else {
                submit(&*store, found, &args)
            }
        })
        .collect();
    let progress = if args.no_progress || rows.len() < 20 {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::new(rows.len() as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{bar:40} {pos}/{len} jobs, {elapsed} elapsed, {eta} left",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    };
    let end = wait_for_rows(&mut rows, &store, &pool, &interrupted, &progress);
    progress.finish_and_clear();
    let elapsed = started.elapsed();
    match &end {
        End::Done => {
            let _ = pool.shutdown(Duration::from_secs(args.grace));
        }
        End::Interrupted => {
            progress.suspend(|| {
                eprintln!(
                    "baobab: interrupted; running jobs have {} s to finish",
                    args.grace
                )
            });
            store.close();
            shut_down_within(&pool, Duration::from_secs(args.grace));
        }
        End::PoolStopped(reason) => {
            eprintln!("baobab: the worker pool stopped: {reason}");
        }
    }
    // What each job became, without waiting: a job not ended by now did not run.
    for row in rows.iter_mut().filter(|row| row.pending()) {
        let id = row.id.clone().expect("pending rows have a job");
        let job = store.get(&id).ok().flatten();
        match (job, &end) {
            (Some(job), _) if job.status.is_final() => fill(row, Some(job)),
            (_, End::PoolStopped(reason)) => row.fail(format!("worker pool stopped: {reason}")),
            _ => fill(row, None),
        }
    }
    if args.json {
        for row in &rows {
            println!("{}", row_json(row));
        }
    } else {
        print_table(&rows, args.show_log);
    }
    let failed = rows.iter().filter(|r| r.failed).count();
    let skipped = rows.iter().filter(|r| r.skipped_row()).count();
    let finished = rows.len() - failed - skipped;
    let skipped = if skipped > 0 {
        format!(", {skipped} skipped")
    } else {
        String::new()
    };
    if !args.json {
        println!(
            "{} jobs: {finished} finished, {failed} failed{skipped}, in {elapsed:.2?}",
            rows.len(),
        );
    }
    match end {
        End::Interrupted => ExitCode::from(130),
        End::PoolStopped(_) => ExitCode::from(RUNNER_FAILED),
        End::Done if failed > 0 => ExitCode::from(1),
        End::Done => ExitCode::SUCCESS,
    }
}

/// Why the wait for results ended.
enum End {
    /// Every job ended.
    Done,
    /// Ctrl-C or SIGTERM.
    Interrupted,
    /// The pool stopped on its own.
    PoolStopped(ExitReason),
}

/// Fills the rows as their jobs end, in order, until all have ended, an interrupt comes, or
/// the pool stops.
fn wait_for_rows(
    rows: &mut [Row],
    store: &MemoryStore,
    pool: &WorkerPool,
    interrupted: &AtomicBool,
    progress: &ProgressBar,
) -> End {
    for row in rows.iter_mut() {
        let Some(id) = row.id.clone() else {
            progress.inc(1);
            continue;
        };
        loop {
            if interrupted.load(Ordering::Relaxed) {
                return End::Interrupted;
            }
            match store.wait(&id, POLL) {
                Ok(job) => {
                    fill(row, Some(job));
                    break;
                }
                Err(StoreError::Timeout(_)) => {
                    if let Some(reason) = pool.exited() {
                        return End::PoolStopped(reason);
                    }
                }
                Err(error) => {
                    warn!(%error, "waiting for a job");
                    fill(row, None);
                    break;
                }
            }
        }
        progress.inc(1);
    }
    End::Done
}

/// Shuts the pool down, giving its running jobs `grace`, and returns by `grace` plus half a
/// second whatever the pool does (the process then exits, ending what is left).
fn shut_down_within(pool: &WorkerPool, grace: Duration) {
    let (done, finished) = std::sync::mpsc::channel();
    let pool = pool.clone();
    std::thread::spawn(move || {
        if let Err(error) = pool.shutdown(grace) {
            warn!(%error, "shutting the pool down");
        }
        let _ = done.send(());
    });
    if finished
        .recv_timeout(grace + Duration::from_millis(500))
        .is_err()
    {
        warn!("the worker pool did not stop within the grace period; exiting anyway");
    }
}

/// Reads the file and submits its job; a file that cannot be read or a job that is invalid
/// becomes an `error` row at once, and what is not a regular file a `skipped` row.
fn submit(store: &dyn JobStore, found: &Found, args: &RunArgs) -> Row {
    let (path, why) = match found {
        Found::File(path) => (path, None),
        Found::Skipped(path, why) => (path, Some(why)),
    };
    let name = path.display().to_string();
    if let Some(why) = why {
        return Row::skipped(name, why.clone());
    }
    let script = match read_source(path, args.max_script_size) {
        Ok(script) => script,
        Err(error) => return Row::refused(name, error.to_string()),
    };
    let job = Job::builder(script)
        .caller_id("baobab-cli")
        .timeout(Duration::from_secs(
            args.timeout.unwrap_or(crate::args::DEFAULT_TIMEOUT),
        ))
        .max_script_bytes(args.max_script_size)
        .build();
    let job = match job {
        Ok(job) => job,
        Err(error) => return Row::refused(name, error.to_string()),
    };
    let id = job.id.clone();
    match store.submit(job) {
        Ok(()) => Row {
            file: name,
            id: Some(id),
            status: JobStatus::Dispatched.to_string(),
            time: None,
            text: String::new(),
            failed: false,
            log: Vec::new(),
        },
        Err(error) => Row::refused(name, error.to_string()),
    }
}
