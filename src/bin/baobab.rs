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
    /// if interrupted. With `--redis`, serves the actor's queue in Redis instead, until Ctrl-C
    /// or SIGTERM.
    Run(RunArgs),
    /// Submits `.rhai` files as jobs to a Redis-fed runner; with `--wait`, waits for their
    /// results and prints them.
    Submit(SubmitArgs),
    /// Prints a job's status, output and error.
    Status(StatusArgs),
    /// Stops a job: a running one ends `error: cancelled`, a queued one is cancelled before
    /// it runs.
    Stop(StopArgs),
}

/// Where the Redis is and how it speaks.
#[derive(Args, Debug, Clone)]
struct RedisArgs {
    /// The Redis URL (`redis://[:password@]host:port/db`, `redis+unix:///path.sock`).
    #[arg(long)]
    redis: Option<String>,
    /// The wire format: `hero` or `rhailib`.
    #[arg(long, default_value = "hero")]
    profile: baobab::bridge::Profile,
}

#[derive(Args, Debug)]
struct SubmitArgs {
    /// `.rhai` files, or directories to search for them.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    #[command(flatten)]
    redis: RedisArgs,
    /// The actor (queue) to submit to.
    #[arg(long, default_value = "rhai")]
    actor: String,
    /// Each job's timeout, in seconds.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
    /// Wait for the results and print them.
    #[arg(long)]
    wait: bool,
    /// Print results as JSON lines instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct StatusArgs {
    /// The job id.
    job_id: String,
    #[command(flatten)]
    redis: RedisArgs,
    /// Print as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct StopArgs {
    /// The job id.
    job_id: String,
    #[command(flatten)]
    redis: RedisArgs,
    /// The actor whose runners run the job (default: the job hash's `actor_id`; a rhailib
    /// task's circle must be given).
    #[arg(long)]
    actor: Option<String>,
    /// Wait up to this many seconds for the job to end, and print its status.
    #[arg(long)]
    wait: Option<f64>,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// `.rhai` files, or directories to search for them (not with `--redis`).
    paths: Vec<PathBuf>,
    #[command(flatten)]
    redis: RedisArgs,
    /// With `--redis`: the actor (queue) to serve.
    #[arg(long, default_value = "rhai")]
    actor: String,
    /// With `--redis`: seconds this runner's heartbeat lives; other runners take its jobs
    /// back this long after it dies.
    #[arg(long, default_value_t = 10.0)]
    heartbeat_ttl: f64,
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
        Command::Run(args) if args.redis.redis.is_some() => serve(args),
        Command::Run(args) => run(args),
        Command::Submit(args) => submit_jobs(args),
        Command::Status(args) => status(args),
        Command::Stop(args) => stop(args),
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

fn limits(args: &RunArgs) -> Limits {
    Limits {
        max_operations: args.max_operations,
        max_call_depth: args.max_call_depth,
        max_expr_depth: args.max_expr_depth,
        max_string_size: args.max_string_size,
        max_array_size: args.max_array_size,
        max_map_size: args.max_map_size,
    }
}

fn interrupt_flag() -> Arc<AtomicBool> {
    let interrupted = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(error) = signal_hook::flag::register(signal, Arc::clone(&interrupted)) {
            warn!(%error, "could not handle a signal");
        }
    }
    interrupted
}

/// `baobab run --redis URL`: serves the actor's queue until Ctrl-C or SIGTERM.
fn serve(args: RunArgs) -> ExitCode {
    use baobab::bridge::{RedisConfig, Runner, RunnerConfig};
    if !args.paths.is_empty() {
        eprintln!("baobab: with --redis, jobs come from Redis: submit files with `baobab submit`");
        return ExitCode::from(2);
    }
    let interrupted = interrupt_flag();
    let url = args.redis.redis.clone().expect("checked by the caller");
    let mut redis = RedisConfig::new(url);
    redis.profile = args.redis.profile;
    redis.heartbeat_ttl = Duration::from_secs_f64(args.heartbeat_ttl.max(0.1));
    let mut pool = PoolConfig::new(&args.actor);
    if let Some(workers) = args.workers {
        pool.workers = workers.max(1);
    }
    pool.concurrency = args.concurrency.max(1);
    let config = RunnerConfig {
        redis,
        actor: args.actor.clone(),
        pool,
        sandbox: SandboxConfig {
            limits: limits(&args),
            db_path: args.db_path.clone(),
            module_dir: args.modules.clone(),
            ..SandboxConfig::default()
        },
    };
    let rt = Runtime::new();
    let runner = match Runner::start(rt.handle(), config) {
        Ok(runner) => runner,
        Err(error) => {
            eprintln!("baobab: {error}");
            return ExitCode::from(2);
        }
    };
    eprintln!(
        "baobab: serving actor {:?} ({} profile) as runner {}; Ctrl-C to stop",
        args.actor,
        args.redis.profile,
        runner.store().runner_id()
    );
    while !interrupted.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "baobab: stopping; running jobs have {} s to finish",
        args.grace
    );
    match runner.shutdown(Duration::from_secs(args.grace)) {
        Ok(stats) => {
            eprintln!(
                "baobab: stopped: {} finished, {} failed, {} worker crashes",
                stats.finished, stats.failed, stats.crashes
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("baobab: {error}");
            ExitCode::from(1)
        }
    }
}

fn client(args: &RedisArgs) -> Result<baobab::bridge::Client, ExitCode> {
    let Some(url) = &args.redis else {
        eprintln!("baobab: --redis URL is required");
        return Err(ExitCode::from(2));
    };
    baobab::bridge::Client::new(url, args.profile).map_err(|error| {
        eprintln!("baobab: {error}");
        ExitCode::from(2)
    })
}

fn job_json(file: Option<&str>, job: &Job) -> serde_json::Value {
    serde_json::json!({
        "file": file,
        "id": job.id,
        "status": job.status.as_str(),
        "output": job.output,
        "error": job.error,
    })
}

/// `baobab submit FILE... --redis URL --actor ID [--wait]`.
fn submit_jobs(args: SubmitArgs) -> ExitCode {
    let client = match client(&args.redis) {
        Ok(client) => client,
        Err(code) => return code,
    };
    let files = match collect(&args.paths) {
        Ok(files) => files,
        Err(error) => {
            eprintln!("baobab: {error}");
            return ExitCode::from(2);
        }
    };
    let mut submitted = Vec::new();
    let mut failed = 0;
    for file in &files {
        let name = file.display().to_string();
        let job = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read the file: {e}"))
            .and_then(|script| {
                Job::builder(script)
                    .caller_id("baobab-cli")
                    .actor_id(&args.actor)
                    .timeout(Duration::from_secs(args.timeout))
                    .build()
                    .map_err(|e| e.to_string())
            });
        match job.and_then(|job| client.submit(job).map_err(|e| e.to_string())) {
            Ok(id) => submitted.push((name, id)),
            Err(error) => {
                failed += 1;
                eprintln!("baobab: {name}: {error}");
            }
        }
    }
    if !args.wait {
        for (name, id) in &submitted {
            if args.json {
                println!("{}", serde_json::json!({"file": name, "id": id}));
            } else {
                println!("{id}  {name}");
            }
        }
        return if failed > 0 {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        };
    }
    let progress = if submitted.len() >= 20 {
        ProgressBar::new(submitted.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    let mut rows = Vec::new();
    for (name, id) in &submitted {
        let wait = Duration::from_secs(args.timeout + 60);
        let row = match client.await_result(id, wait) {
            Ok(job) => {
                if args.json {
                    progress.suspend(|| println!("{}", job_json(Some(name), &job)));
                }
                let mut row = Row {
                    file: name.clone(),
                    id: Some(id.clone()),
                    status: String::new(),
                    time: None,
                    text: String::new(),
                    failed: false,
                };
                fill(&mut row, Some(job));
                row
            }
            Err(error) => Row {
                file: name.clone(),
                id: Some(id.clone()),
                status: "unknown".into(),
                time: None,
                text: error.to_string(),
                failed: true,
            },
        };
        failed += usize::from(row.failed);
        rows.push(row);
        progress.inc(1);
    }
    progress.finish_and_clear();
    if !args.json {
        print_table(&rows);
    }
    if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// `baobab status JOB_ID --redis URL`.
fn status(args: StatusArgs) -> ExitCode {
    let client = match client(&args.redis) {
        Ok(client) => client,
        Err(code) => return code,
    };
    match client.get(&args.job_id) {
        Ok(Some(job)) => {
            if args.json {
                println!("{}", job_json(None, &job));
            } else {
                println!("id:     {}", job.id);
                println!("status: {}", job.status);
                if let Some(output) = &job.output {
                    println!("output: {output}");
                }
                if let Some(error) = &job.error {
                    println!("error:  {error}");
                }
            }
            ExitCode::SUCCESS
        }
        Ok(None) => {
            eprintln!("baobab: no job {}", args.job_id);
            ExitCode::from(1)
        }
        Err(error) => {
            eprintln!("baobab: {error}");
            ExitCode::from(2)
        }
    }
}

/// `baobab stop JOB_ID --redis URL [--actor ID] [--wait SECS]`.
fn stop(args: StopArgs) -> ExitCode {
    let client = match client(&args.redis) {
        Ok(client) => client,
        Err(code) => return code,
    };
    match client.stop(&args.job_id, args.actor.as_deref()) {
        Ok(true) => {}
        Ok(false) => {
            eprintln!("baobab: no job {}", args.job_id);
            return ExitCode::from(1);
        }
        Err(error) => {
            eprintln!("baobab: {error}");
            return ExitCode::from(2);
        }
    }
    let Some(secs) = args.wait else {
        println!("stop requested for {}", args.job_id);
        return ExitCode::SUCCESS;
    };
    match client.await_result(&args.job_id, Duration::from_secs_f64(secs.max(0.0))) {
        Ok(job) => {
            match &job.error {
                Some(error) => println!("{}: {} ({error})", job.id, job.status),
                None => println!("{}: {}", job.id, job.status),
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("baobab: {error}");
            ExitCode::from(1)
        }
    }
}

fn run(args: RunArgs) -> ExitCode {
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
