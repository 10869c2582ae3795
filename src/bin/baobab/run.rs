//! `baobab run DIR|FILE...`: runs `.rhai` files as jobs on the embedded store.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use baobab::Runtime;
use baobab::jobs::{
    Job, JobActor, JobStatus, JobStore, MemoryStore, PoolConfig, RhaiActor, StoreError, WorkerPool,
};
use baobab::script::SandboxConfig;
use indicatif::{ProgressBar, ProgressStyle};
use tracing::{info, warn};

use crate::args::{RunArgs, limits};
use crate::files::collect;
use crate::interrupt_flag;
use crate::table::{Row, fill, print_table};

pub(crate) fn run(args: RunArgs) -> ExitCode {
    if args.paths.is_empty() {
        eprintln!("baobab: give .rhai files or directories to run (or --redis URL to serve)");
        return ExitCode::from(2);
    }
    let files = match collect(&args.paths) {
        Ok(files) if files.is_empty() => {
            eprintln!("baobab: no .rhai files in {:?}", args.paths);
            return ExitCode::from(2);
        }
        Ok(files) => files,
        Err(error) => {
            eprintln!("baobab: {error}");
            return ExitCode::from(2);
        }
    };
    let interrupted = interrupt_flag();
    let workers = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let rt = Runtime::new();
    let store = Arc::new(MemoryStore::new());
    let sandbox = SandboxConfig {
        limits: limits(&args),
        db_path: args.db_path.clone(),
        module_dir: args.modules.clone(),
        ..SandboxConfig::default()
    };
    let mut config = PoolConfig::new("rhai");
    config.workers = workers;
    config.concurrency = args.concurrency.max(1);
    let factory: baobab::jobs::ActorFactory =
        Arc::new(move || Arc::new(RhaiActor::new("rhai", sandbox.clone())) as Arc<dyn JobActor>);
    let pool = match WorkerPool::start(rt.handle(), store.clone(), factory, config) {
        Ok(pool) => pool,
        Err(error) => {
            eprintln!("baobab: {error}");
            return ExitCode::from(2);
        }
    };
    info!(workers, jobs = files.len(), "running");

    let started = Instant::now();
    let mut rows: Vec<Row> = files
        .iter()
        .map(|file| submit(&*store, file, &args))
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
    let mut interrupted_at = None;
    for row in &mut rows {
        let Some(id) = row.id.clone() else {
            progress.inc(1);
            continue;
        };
        let job = loop {
            if interrupted_at.is_none() && interrupted.load(Ordering::Relaxed) {
                interrupted_at = Some(Instant::now());
                progress.suspend(|| {
                    eprintln!(
                        "baobab: interrupted; running jobs have {} s to finish",
                        args.grace
                    )
                });
                store.close();
                if let Err(error) = pool.shutdown(Duration::from_secs(args.grace)) {
                    warn!(%error, "shutting the pool down");
                }
            }
            match store.wait(&id, Duration::from_millis(100)) {
                Ok(job) => break Some(job),
                Err(StoreError::Timeout(_)) if interrupted_at.is_some() => {
                    // Never taken: it did not run.
                    break store
                        .get(&id)
                        .ok()
                        .flatten()
                        .filter(|j| j.status.is_final());
                }
                Err(StoreError::Timeout(_)) => continue,
                Err(error) => {
                    warn!(%error, "waiting for a job");
                    break None;
                }
            }
        };
        fill(row, job);
        progress.inc(1);
    }
    progress.finish_and_clear();
    let elapsed = started.elapsed();
    if interrupted_at.is_none() {
        let _ = pool.shutdown(Duration::from_secs(args.grace));
    }
    print_table(&rows);
    let failed = rows.iter().filter(|r| r.failed).count();
    println!(
        "{} jobs: {} finished, {} failed, in {:.2?}",
        rows.len(),
        rows.len() - failed,
        failed,
        elapsed
    );
    if interrupted_at.is_some() {
        ExitCode::from(130)
    } else if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Reads the file and submits its job; a file that cannot be read or a job that is invalid
/// becomes an `error` row at once.
fn submit(store: &dyn JobStore, file: &Path, args: &RunArgs) -> Row {
    let name = file.display().to_string();
    let refused = |text: String| Row {
        file: name.clone(),
        id: None,
        status: JobStatus::Error.to_string(),
        time: None,
        text,
        failed: true,
    };
    let script = match std::fs::read_to_string(file) {
        Ok(script) => script,
        Err(error) => return refused(format!("cannot read the file: {error}")),
    };
    let mut builder = Job::builder(script)
        .caller_id("baobab-cli")
        .timeout(Duration::from_secs(args.timeout))
        .max_script_bytes(args.max_script_size);
    for (name, value) in &args.env {
        builder = builder.env(name, value);
    }
    let job = match builder.build() {
        Ok(job) => job,
        Err(error) => return refused(error.to_string()),
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
        },
        Err(error) => refused(error.to_string()),
    }
}
