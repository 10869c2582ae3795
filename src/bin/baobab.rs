//! `baobab`: runs Rhai jobs through a supervised, sandboxed worker pool.
//!
//! ```text
//! baobab run examples/jobs            # every .rhai file under the directory
//! baobab run a.rhai b.rhai --workers 4 --timeout 10
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use baobab::Runtime;
use baobab::jobs::{
    DEFAULT_MAX_SCRIPT_BYTES, Job, JobActor, JobStatus, JobStore, MemoryStore, PoolConfig,
    RhaiActor, StoreError, WorkerPool,
};
use baobab::script::{Limits, SandboxConfig};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use tracing::{info, warn};

/// Runs Rhai jobs through baobab's supervised, sandboxed worker pool.
#[derive(Parser, Debug)]
#[command(name = "baobab", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log level: error, warn, info, debug or trace (or a tracing filter such as
    /// `baobab=debug`). Logs go to stderr.
    #[arg(long, global = true, default_value = "warn")]
    log_level: String,
    /// Logs as JSON lines instead of human-readable text.
    #[arg(long, global = true)]
    log_json: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Runs the `.rhai` files given (a directory: every `.rhai` file under it) as jobs on the
    /// embedded job store and prints a table of their results. Exits 1 if any job failed, 130
    /// if interrupted.
    Run(RunArgs),
}

#[derive(Args, Debug)]
struct RunArgs {
    /// `.rhai` files, or directories to search for them.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Worker processes (default: one per core).
    #[arg(long)]
    workers: Option<usize>,
    /// Jobs each worker runs at once (1: one at a time).
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Each job's timeout, in seconds (wall clock).
    #[arg(long, default_value_t = 30)]
    timeout: u64,
    /// Most Rhai operations a job may perform (0: no limit).
    #[arg(long, default_value_t = Limits::default().max_operations)]
    max_operations: u64,
    /// Deepest nesting of function calls.
    #[arg(long, default_value_t = Limits::default().max_call_depth)]
    max_call_depth: usize,
    /// Deepest nesting of expressions.
    #[arg(long, default_value_t = Limits::default().max_expr_depth)]
    max_expr_depth: usize,
    /// Largest string, in bytes.
    #[arg(long, default_value_t = Limits::default().max_string_size)]
    max_string_size: usize,
    /// Largest array, in elements.
    #[arg(long, default_value_t = Limits::default().max_array_size)]
    max_array_size: usize,
    /// Largest map, in entries.
    #[arg(long, default_value_t = Limits::default().max_map_size)]
    max_map_size: usize,
    /// Largest script, in bytes.
    #[arg(long, default_value_t = DEFAULT_MAX_SCRIPT_BYTES)]
    max_script_size: usize,
    /// What scripts see as `DB_PATH`.
    #[arg(long, default_value = "")]
    db_path: String,
    /// A directory scripts may `import` modules from (without it, `import` fails).
    #[arg(long)]
    modules: Option<PathBuf>,
    /// `NAME=VALUE`, seen by every script as the constant `NAME` (repeatable).
    #[arg(long = "env", value_parser = parse_env)]
    env: Vec<(String, String)>,
    /// On Ctrl-C or SIGTERM: how long running jobs may go on before they are cancelled, in
    /// seconds.
    #[arg(long, default_value_t = 10)]
    grace: u64,
    /// Never show the progress bar.
    #[arg(long)]
    no_progress: bool,
}

fn parse_env(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not NAME=VALUE"))?;
    Ok((name.to_string(), value.to_string()))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log_level, cli.log_json);
    match cli.command {
        Command::Run(args) => run(args),
    }
}

fn init_logging(level: &str, json: bool) {
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

/// One row of the table: the file and what became of its job.
struct Row {
    file: String,
    id: Option<String>,
    status: String,
    time: Option<Duration>,
    text: String,
    failed: bool,
}

fn run(args: RunArgs) -> ExitCode {
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
    let interrupted = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(error) = signal_hook::flag::register(signal, Arc::clone(&interrupted)) {
            warn!(%error, "could not handle a signal");
        }
    }
    let workers = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let rt = Runtime::new();
    let store = Arc::new(MemoryStore::new());
    let sandbox = SandboxConfig {
        limits: Limits {
            max_operations: args.max_operations,
            max_call_depth: args.max_call_depth,
            max_expr_depth: args.max_expr_depth,
            max_string_size: args.max_string_size,
            max_array_size: args.max_array_size,
            max_map_size: args.max_map_size,
        },
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

/// Every `.rhai` file named, or found (recursively, sorted) under a directory named.
fn collect(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            walk(path, &mut files).map_err(|e| format!("{}: {e}", path.display()))?;
        } else if path.is_file() {
            files.push(path.clone());
        } else {
            return Err(format!("{}: no such file or directory", path.display()));
        }
    }
    Ok(files)
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for path in entries {
        if path.is_dir() {
            walk(&path, files)?;
        } else if path.extension().is_some_and(|e| e == "rhai") {
            files.push(path);
        }
    }
    Ok(())
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

fn fill(row: &mut Row, job: Option<Job>) {
    match job {
        Some(job) => {
            row.status = job.status.to_string();
            row.time = job.run_time();
            row.failed = job.status != JobStatus::Finished;
            row.text = match job.status {
                JobStatus::Finished => job.output.unwrap_or_default(),
                _ => job.error.unwrap_or_default(),
            };
        }
        None => {
            row.status = "not run".into();
            row.failed = true;
            row.text = "interrupted before it started".into();
        }
    }
}

fn one_line(text: &str, width: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() <= width {
        flat
    } else {
        let cut: String = flat.chars().take(width.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

fn print_table(rows: &[Row]) {
    let file_width = rows
        .iter()
        .map(|r| r.file.chars().count())
        .max()
        .unwrap_or(4)
        .clamp(4, 48);
    println!(
        "{:<file_width$}  {:<10}  {:>9}  OUTPUT / ERROR",
        "FILE", "STATUS", "TIME"
    );
    for row in rows {
        let time = row
            .time
            .map_or_else(|| "-".to_string(), |t| format!("{:.1?}", t));
        println!(
            "{:<file_width$}  {:<10}  {:>9}  {}",
            one_line(&row.file, file_width),
            row.status,
            time,
            one_line(&row.text, 80)
        );
    }
}
