//! The subcommands' arguments, each checked against its range when parsed: a value outside
//! it is a usage error (exit code 2) naming the flag and the range.

use std::path::PathBuf;
use std::time::Duration;

use baobab::jobs::Job;
use baobab::script::Limits;
use clap::Args;

/// The most worker processes a runner may have.
pub(crate) const MAX_WORKERS: u64 = 1024;
/// The most jobs one worker may run at once.
pub(crate) const MAX_CONCURRENCY: u64 = 64;
/// The most jobs one runner may run at once (workers × concurrency).
pub(crate) const MAX_RUNNING: usize = 1024;
/// The longest job timeout, in seconds (a day).
const MAX_TIMEOUT: u64 = 86_400;
/// The longest shutdown grace, in seconds (an hour).
const MAX_GRACE: u64 = 3_600;
/// The largest script, in bytes.
const MAX_SCRIPT_SIZE: usize = 64 * 1024 * 1024;

/// Where the Redis is and how it speaks.
#[derive(Args, Debug, Clone)]
pub(crate) struct RedisArgs {
    /// The Redis URL (`redis://[:password@]host:port/db`, `redis+unix:///path.sock`).
    #[arg(long)]
    pub(crate) redis: Option<String>,
    /// The wire format: `hero` or `rhailib`.
    #[arg(long, default_value = "hero")]
    pub(crate) profile: baobab::bridge::Profile,
}

#[derive(Args, Debug)]
pub(crate) struct SubmitArgs {
    /// `.rhai` files, or directories to search for them.
    #[arg(required = true)]
    pub(crate) paths: Vec<PathBuf>,
    #[command(flatten)]
    pub(crate) redis: RedisArgs,
    /// The actor (queue) to submit to.
    #[arg(long, default_value = "rhai", value_parser = parse_actor)]
    pub(crate) actor: String,
    /// Each job's timeout, in seconds (1 to 86400).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=MAX_TIMEOUT))]
    pub(crate) timeout: u64,
    /// Largest script, in bytes (1 to 64MiB; a size may end in K, M or G).
    #[arg(long, default_value = "1MiB", value_parser = parse_script_size)]
    pub(crate) max_script_size: usize,
    /// Wait for the results and print them.
    #[arg(long)]
    pub(crate) wait: bool,
    /// Print results as JSON lines instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
    /// With `--wait`: under each job's row, the lines its script printed.
    #[arg(long)]
    pub(crate) show_log: bool,
    /// A constant the scripts see, as `NAME=VALUE` (repeatable).
    #[arg(long = "env", value_parser = parse_env)]
    pub(crate) env: Vec<(String, String)>,
    /// How many times each job is run again after a failed run (a script error, a timeout,
    /// its runner's death while it ran; 0 to 1000).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=1000))]
    pub(crate) retries: u32,
    /// Seconds (0 to 31536000) to wait before each run again; default: Sidekiq's schedule,
    /// attempts⁴ + 15 s plus jitter.
    #[arg(long, value_parser = parse_delay)]
    pub(crate) backoff: Option<Duration>,
    /// How soon the jobs are served: `high`, `normal` or `low`.
    #[arg(long, default_value = "normal", value_parser = parse_priority)]
    pub(crate) priority: baobab::jobs::Priority,
    /// A job that must finish first (repeatable, up to 64): the job waits, and ends in error
    /// without running if that one fails.
    #[arg(long = "prerequisite", value_parser = parse_job_id)]
    pub(crate) prerequisites: Vec<String>,
    /// The job's id (one file only; default: a fresh UUID).
    #[arg(long, value_parser = parse_job_id)]
    pub(crate) id: Option<String>,
    /// Run no sooner than this many seconds from now (0 to 31536000).
    #[arg(long, value_parser = parse_delay, conflicts_with = "at")]
    pub(crate) delay: Option<Duration>,
    /// Run no sooner than this time (ISO 8601 UTC, `2026-12-01T10:00:00Z`).
    #[arg(long, value_parser = parse_at)]
    pub(crate) at: Option<std::time::SystemTime>,
}

#[derive(Args, Debug)]
pub(crate) struct QueuesArgs {
    #[command(flatten)]
    pub(crate) redis: RedisArgs,
    /// One JSON object per actor instead of the table.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Args, Debug)]
pub(crate) struct RetryArgs {
    /// The job to run again (it must have ended in error).
    #[arg(required_unless_present = "dead", conflicts_with = "dead", value_parser = parse_job_id)]
    pub(crate) job_id: Option<String>,
    #[command(flatten)]
    pub(crate) redis: RedisArgs,
    /// Run every job in the actor's dead set again.
    #[arg(long, requires = "actor")]
    pub(crate) dead: bool,
    /// The actor (default for one job: the hash's `actor_id`; a rhailib task's circle must
    /// be given).
    #[arg(long, value_parser = parse_actor)]
    pub(crate) actor: Option<String>,
    /// Print as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Args, Debug)]
pub(crate) struct PurgeArgs {
    #[command(flatten)]
    pub(crate) redis: RedisArgs,
    /// Delete the actor's dead jobs (needs `--actor`).
    #[arg(long, requires = "actor", required_unless_present = "finished")]
    pub(crate) dead: bool,
    /// Delete every job that ended `finished` (with `--actor`: that actor's only).
    #[arg(long)]
    pub(crate) finished: bool,
    /// The actor.
    #[arg(long, value_parser = parse_actor)]
    pub(crate) actor: Option<String>,
    /// Print as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Args, Debug)]
pub(crate) struct JobsArgs {
    #[command(flatten)]
    pub(crate) redis: RedisArgs,
    /// Only this actor's jobs.
    #[arg(long, value_parser = parse_actor)]
    pub(crate) actor: Option<String>,
    /// Only jobs with this status, as the profile spells it (`dispatched`, `started`,
    /// `finished`, `error`; rhailib: `pending`, `processing`, `completed`, `error`).
    #[arg(long)]
    pub(crate) status: Option<String>,
    /// Only jobs last changed at least this many seconds ago.
    #[arg(long, value_parser = parse_delay)]
    pub(crate) older_than: Option<Duration>,
    /// Only jobs last changed at most this many seconds ago.
    #[arg(long, value_parser = parse_delay)]
    pub(crate) newer_than: Option<Duration>,
    /// About how many keys one page looks at (1 to 100000).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub(crate) limit: u64,
    /// Where to go on: the cursor a previous page printed (0: from the start).
    #[arg(long, default_value_t = 0)]
    pub(crate) cursor: u64,
    /// Every page, not only the first.
    #[arg(long)]
    pub(crate) all: bool,
    /// One JSON object per job, and a last line `{"cursor": N}`.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Args, Debug)]
pub(crate) struct RunnersArgs {
    #[command(flatten)]
    pub(crate) redis: RedisArgs,
    /// One JSON object per runner instead of the table.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Args, Debug)]
pub(crate) struct StatusArgs {
    /// The job id.
    pub(crate) job_id: String,
    #[command(flatten)]
    pub(crate) redis: RedisArgs,
    /// Print as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Args, Debug)]
pub(crate) struct StopArgs {
    /// The job id.
    pub(crate) job_id: String,
    #[command(flatten)]
    pub(crate) redis: RedisArgs,
    /// The actor whose runners run the job (default: the job hash's `actor_id`; a rhailib
    /// task's circle must be given).
    #[arg(long, value_parser = parse_actor)]
    pub(crate) actor: Option<String>,
    /// Wait up to this many seconds (0 to 86400) for the job to end, and print its status.
    #[arg(long, value_parser = parse_wait)]
    pub(crate) wait: Option<Duration>,
}

#[derive(Args, Debug)]
pub(crate) struct RunArgs {
    /// `.rhai` files, or directories to search for them (not with `--redis`).
    pub(crate) paths: Vec<PathBuf>,
    #[command(flatten)]
    pub(crate) redis: RedisArgs,
    /// With `--redis`: the actor (queue) to serve.
    #[arg(long, default_value = "rhai", value_parser = parse_actor)]
    pub(crate) actor: String,
    /// With `--redis`: seconds (0.5 to 3600) this runner's heartbeat lives; other runners take
    /// its jobs back this long after it dies.
    #[arg(long, default_value = "10", value_parser = parse_heartbeat_ttl)]
    pub(crate) heartbeat_ttl: Duration,
    /// With `--redis`: seconds (1 to 315360000) the hash of a job that ended `finished` is
    /// kept before Redis expires it.
    #[arg(long, default_value = "86400", value_parser = parse_keep)]
    pub(crate) result_ttl: Duration,
    /// With `--redis`: seconds (1 to 315360000) the hash of a job that ended in `error` is
    /// kept before Redis expires it.
    #[arg(long, default_value = "604800", value_parser = parse_keep)]
    pub(crate) dead_ttl: Duration,
    /// Worker processes (1 to 1024; default: one per core).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=MAX_WORKERS))]
    pub(crate) workers: Option<u64>,
    /// Jobs each worker runs at once (1 to 64; 1: one at a time). Workers × concurrency may
    /// be at most 1024.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=MAX_CONCURRENCY))]
    pub(crate) concurrency: u64,
    /// Each job's timeout, in seconds (1 to 86400, wall clock; default 30). With `--redis`: the
    /// longest a job may run, whatever timeout it asks for (default: a day).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=MAX_TIMEOUT))]
    pub(crate) timeout: Option<u64>,
    /// Most Rhai operations a job may perform (0: no limit; the timeout still ends it).
    #[arg(long, default_value_t = Limits::default().max_operations)]
    pub(crate) max_operations: u64,
    /// Deepest nesting of function calls (1 to 256).
    #[arg(long, default_value_t = Limits::default().max_call_depth, value_parser = parse_depth)]
    pub(crate) max_call_depth: usize,
    /// Deepest nesting of expressions (1 to 256).
    #[arg(long, default_value_t = Limits::default().max_expr_depth, value_parser = parse_depth)]
    pub(crate) max_expr_depth: usize,
    /// Largest string, in bytes, every string a value holds counted (1 to 256MiB).
    #[arg(long, default_value = "10MiB", value_parser = parse_string_size)]
    pub(crate) max_string_size: usize,
    /// Largest array (or blob), in elements, nested arrays counted (1 to 1048576).
    #[arg(long, default_value_t = Limits::default().max_array_size, value_parser = parse_container_size)]
    pub(crate) max_array_size: usize,
    /// Largest map, in entries, nested maps counted (1 to 1048576).
    #[arg(long, default_value_t = Limits::default().max_map_size, value_parser = parse_container_size)]
    pub(crate) max_map_size: usize,
    /// Most memory a running job may hold, in bytes (0: no limit).
    #[arg(long, default_value = "256MiB", value_parser = parse_size)]
    pub(crate) max_memory: usize,
    /// Largest output, in bytes, as stored (1 to 512MiB).
    #[arg(long, default_value = "10MiB", value_parser = parse_output_size)]
    pub(crate) max_output_size: usize,
    /// Most bytes of `print`/`debug` lines kept per job (0: keep none); past it, lines are
    /// dropped and a last line says how many.
    #[arg(long, default_value = "1MiB", value_parser = parse_size)]
    pub(crate) max_log_size: usize,
    /// Largest script, in bytes (1 to 64MiB); a larger file is not read past the limit. With
    /// `--redis`: a job whose `script` or `env_vars` is larger is not read and ends `error`.
    #[arg(long, default_value = "1MiB", value_parser = parse_script_size)]
    pub(crate) max_script_size: usize,
    /// Bytes of compiled scripts each worker keeps for reuse (0: none).
    #[arg(long, default_value = "32MiB", value_parser = parse_size)]
    pub(crate) cache_size: usize,
    /// What scripts see as `DB_PATH`.
    #[arg(long, default_value = "")]
    pub(crate) db_path: String,
    /// A directory scripts may `import` modules from (without it, `import` fails).
    #[arg(long, value_parser = parse_dir)]
    pub(crate) modules: Option<PathBuf>,
    /// `NAME=VALUE`, seen by every script as the constant `NAME` (repeatable; with `--redis`
    /// too, over a job's own env var of that name).
    #[arg(long = "env", value_parser = parse_env)]
    pub(crate) env: Vec<(String, String)>,
    /// On Ctrl-C or SIGTERM: how long running jobs may go on before they are cancelled, in
    /// seconds (0 to 3600).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=MAX_GRACE))]
    pub(crate) grace: u64,
    /// Never show the progress bar.
    #[arg(long)]
    pub(crate) no_progress: bool,
    /// Under each job's row, the lines its script printed (`print`, `debug`).
    #[arg(long)]
    pub(crate) show_log: bool,
    /// One JSON object per job on stdout (file, id, status, time_ms, failed, text, log)
    /// instead of the table and the summary line.
    #[arg(long)]
    pub(crate) json: bool,
}

/// A job's timeout when neither it nor the flag says.
pub(crate) const DEFAULT_TIMEOUT: u64 = 30;

impl RunArgs {
    /// The sandbox limits the flags set.
    pub(crate) fn limits(&self) -> Limits {
        Limits {
            max_operations: self.max_operations,
            max_call_depth: self.max_call_depth,
            max_expr_depth: self.max_expr_depth,
            max_string_size: self.max_string_size,
            max_array_size: self.max_array_size,
            max_map_size: self.max_map_size,
            max_memory: self.max_memory,
            max_output_size: self.max_output_size,
            max_log_size: self.max_log_size,
        }
    }

    /// Workers (default: one per core) and jobs per worker, checked together.
    pub(crate) fn workers(&self) -> Result<(usize, usize), String> {
        let workers = self.workers.map_or_else(
            || std::thread::available_parallelism().map_or(1, |n| n.get()),
            |n| n as usize,
        );
        let concurrency = self.concurrency as usize;
        if workers * concurrency > MAX_RUNNING {
            return Err(format!(
                "--workers {workers} × --concurrency {concurrency} is {} jobs at once: at most \
                 {MAX_RUNNING}",
                workers * concurrency
            ));
        }
        Ok((workers, concurrency))
    }

    /// The sandbox's settings.
    pub(crate) fn sandbox(&self) -> baobab::script::SandboxConfig {
        baobab::script::SandboxConfig {
            limits: self.limits(),
            db_path: self.db_path.clone(),
            env: self.env.clone(),
            module_dir: self.modules.clone(),
            cache_bytes: self.cache_size,
            ..baobab::script::SandboxConfig::default()
        }
    }
}

/// `NAME=VALUE`, with a name a script can see (checked as a job checks it).
pub(crate) fn parse_env(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not NAME=VALUE"))?;
    Job::builder("1")
        .env(name, value)
        .build()
        .map_err(|e| e.to_string())?;
    Ok((name.to_string(), value.to_string()))
}

/// A delay before a job may run: up to a year.
fn parse_delay(text: &str) -> Result<Duration, String> {
    parse_seconds(text, 0.0, 31_536_000.0)
}

/// A time as ISO 8601 UTC.
fn parse_at(text: &str) -> Result<std::time::SystemTime, String> {
    baobab::bridge::parse_iso8601(text)
        .ok_or_else(|| format!("{text:?} is not an ISO 8601 UTC time such as 2026-12-01T10:00:00Z"))
}

/// `high`, `normal` or `low`.
fn parse_priority(text: &str) -> Result<baobab::jobs::Priority, String> {
    text.parse()
        .map_err(|e: baobab::jobs::JobError| e.to_string())
}

/// A job id, checked as a job checks it.
fn parse_job_id(text: &str) -> Result<String, String> {
    Job::builder("1")
        .id(text)
        .build()
        .map(|_| text.to_string())
        .map_err(|e| e.to_string())
}

/// An actor id, checked as a job checks it.
fn parse_actor(text: &str) -> Result<String, String> {
    Job::builder("1")
        .actor_id(text)
        .build()
        .map_err(|e| e.to_string())?;
    Ok(text.to_string())
}

/// A byte count: digits, optionally followed by `K`, `M` or `G` (binary multiples; `KiB`,
/// `KB` and lower case are read the same way).
pub(crate) fn parse_size(text: &str) -> Result<usize, String> {
    let trimmed = text.trim();
    let digits_end = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (digits, unit) = trimmed.split_at(digits_end);
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size (a number of bytes, e.g. 1048576 or 1MiB)"))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (use K, M or G)")),
    };
    number
        .checked_mul(factor)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| format!("{text:?} is too large"))
}

fn parse_size_in(text: &str, min: usize, max: usize, what: &str) -> Result<usize, String> {
    let size = parse_size(text)?;
    if size < min || size > max {
        return Err(format!("{size} is not in {min}..={max} ({what})"));
    }
    Ok(size)
}

fn parse_script_size(text: &str) -> Result<usize, String> {
    parse_size_in(text, 1, MAX_SCRIPT_SIZE, "bytes")
}

fn parse_string_size(text: &str) -> Result<usize, String> {
    parse_size_in(text, 1, Limits::MAX_STRING_SIZE, "bytes")
}

fn parse_output_size(text: &str) -> Result<usize, String> {
    parse_size_in(text, 1, Limits::MAX_OUTPUT_SIZE, "bytes")
}

fn parse_container_size(text: &str) -> Result<usize, String> {
    parse_size_in(
        text,
        1,
        Limits::MAX_CONTAINER_SIZE,
        "it bounds how deeply values nest",
    )
}

fn parse_depth(text: &str) -> Result<usize, String> {
    let depth: usize = text
        .parse()
        .map_err(|_| format!("{text:?} is not a whole number"))?;
    if depth == 0 || depth > Limits::MAX_DEPTH {
        return Err(format!(
            "{depth} is not in 1..={} (0 would mean no limit)",
            Limits::MAX_DEPTH
        ));
    }
    Ok(depth)
}

fn parse_seconds(text: &str, min: f64, max: f64) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !(min..=max).contains(&secs) {
        return Err(format!("{secs} is not in {min}..={max} (seconds)"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn parse_heartbeat_ttl(text: &str) -> Result<Duration, String> {
    parse_seconds(text, 0.5, 3600.0)
}

/// How long an ended job is kept: a second to ten years.
fn parse_keep(text: &str) -> Result<Duration, String> {
    parse_seconds(text, 1.0, 315_360_000.0)
}

fn parse_wait(text: &str) -> Result<Duration, String> {
    parse_seconds(text, 0.0, MAX_TIMEOUT as f64)
}

/// A directory that exists.
fn parse_dir(text: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(text);
    match std::fs::metadata(&path) {
        Ok(meta) if meta.is_dir() => Ok(path),
        Ok(_) => Err(format!("{text:?} is not a directory")),
        Err(error) => Err(format!("{text:?}: {error}")),
    }
}

/// A log level (`error`, `warn`, `info`, `debug`, `trace`, `off`) or a tracing filter of
/// comma-separated `target=level` directives (a bare level among them sets the default).
pub(crate) fn parse_log_level(text: &str) -> Result<String, String> {
    use std::str::FromStr;
    use tracing::level_filters::LevelFilter;
    let level = |word: &str| {
        LevelFilter::from_str(word.trim()).map_err(|_| {
            format!("{text:?}: {word:?} is not a level (error, warn, info, debug, trace, off)")
        })
    };
    for directive in text.split(',') {
        match directive.split_once('=') {
            Some((target, word)) if !target.trim().is_empty() => {
                level(word)?;
            }
            Some(_) => return Err(format!("{text:?}: a directive without a target")),
            None => {
                level(directive)?;
            }
        }
    }
    tracing_subscriber::EnvFilter::builder()
        .parse(text)
        .map(|_| text.to_string())
        .map_err(|error| format!("{text:?} is not a log level or filter: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_units() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("1536"), Ok(1536));
        assert_eq!(parse_size("1K"), Ok(1024));
        assert_eq!(parse_size("10MiB"), Ok(10 << 20));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert!(parse_size("").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("1T").is_err());
        assert!(parse_size("99999999999999999999").is_err());
        assert!(parse_size("18446744073709551615G").is_err());
    }

    #[test]
    fn ranges_are_checked() {
        assert!(parse_depth("0").is_err());
        assert!(parse_depth("257").is_err());
        assert_eq!(parse_depth("256"), Ok(256));
        assert!(parse_script_size("0").is_err());
        assert!(parse_output_size("513MiB").is_err());
        assert!(parse_heartbeat_ttl("0").is_err());
        assert!(parse_keep("0").is_err());
        assert!(parse_keep("315360001").is_err());
        assert_eq!(parse_keep("60").unwrap(), Duration::from_secs(60));
        assert!(parse_heartbeat_ttl("nan").is_err());
        assert!(parse_wait("-1").is_err());
        assert!(parse_log_level("garbage").is_err());
        assert!(parse_log_level("baobab=garbage").is_err());
        assert!(parse_log_level("=debug").is_err());
        assert_eq!(parse_log_level("warn"), Ok("warn".into()));
        assert_eq!(
            parse_log_level("info,baobab::jobs=trace"),
            Ok("info,baobab::jobs=trace".into())
        );
        assert!(parse_env("1BAD=x").is_err());
        assert!(parse_env("JOB_ID=x").is_err());
        assert!(parse_actor("has space").is_err());
    }
}
