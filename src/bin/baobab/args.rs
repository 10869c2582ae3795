//! The subcommands' arguments.

use std::path::PathBuf;

use baobab::jobs::DEFAULT_MAX_SCRIPT_BYTES;
use baobab::script::Limits;
use clap::Args;

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
    #[arg(long, default_value = "rhai")]
    pub(crate) actor: String,
    /// Each job's timeout, in seconds.
    #[arg(long, default_value_t = 30)]
    pub(crate) timeout: u64,
    /// Wait for the results and print them.
    #[arg(long)]
    pub(crate) wait: bool,
    /// Print results as JSON lines instead of a table.
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
    #[arg(long)]
    pub(crate) actor: Option<String>,
    /// Wait up to this many seconds for the job to end, and print its status.
    #[arg(long)]
    pub(crate) wait: Option<f64>,
}

#[derive(Args, Debug)]
pub(crate) struct RunArgs {
    /// `.rhai` files, or directories to search for them (not with `--redis`).
    pub(crate) paths: Vec<PathBuf>,
    #[command(flatten)]
    pub(crate) redis: RedisArgs,
    /// With `--redis`: the actor (queue) to serve.
    #[arg(long, default_value = "rhai")]
    pub(crate) actor: String,
    /// With `--redis`: seconds this runner's heartbeat lives; other runners take its jobs
    /// back this long after it dies.
    #[arg(long, default_value_t = 10.0)]
    pub(crate) heartbeat_ttl: f64,
    /// Worker processes (default: one per core).
    #[arg(long)]
    pub(crate) workers: Option<usize>,
    /// Jobs each worker runs at once (1: one at a time).
    #[arg(long, default_value_t = 1)]
    pub(crate) concurrency: usize,
    /// Each job's timeout, in seconds (wall clock).
    #[arg(long, default_value_t = 30)]
    pub(crate) timeout: u64,
    /// Most Rhai operations a job may perform (0: no limit).
    #[arg(long, default_value_t = Limits::default().max_operations)]
    pub(crate) max_operations: u64,
    /// Deepest nesting of function calls.
    #[arg(long, default_value_t = Limits::default().max_call_depth)]
    pub(crate) max_call_depth: usize,
    /// Deepest nesting of expressions.
    #[arg(long, default_value_t = Limits::default().max_expr_depth)]
    pub(crate) max_expr_depth: usize,
    /// Largest string, in bytes.
    #[arg(long, default_value_t = Limits::default().max_string_size)]
    pub(crate) max_string_size: usize,
    /// Largest array, in elements.
    #[arg(long, default_value_t = Limits::default().max_array_size)]
    pub(crate) max_array_size: usize,
    /// Largest map, in entries.
    #[arg(long, default_value_t = Limits::default().max_map_size)]
    pub(crate) max_map_size: usize,
    /// Largest script, in bytes.
    #[arg(long, default_value_t = DEFAULT_MAX_SCRIPT_BYTES)]
    pub(crate) max_script_size: usize,
    /// What scripts see as `DB_PATH`.
    #[arg(long, default_value = "")]
    pub(crate) db_path: String,
    /// A directory scripts may `import` modules from (without it, `import` fails).
    #[arg(long)]
    pub(crate) modules: Option<PathBuf>,
    /// `NAME=VALUE`, seen by every script as the constant `NAME` (repeatable).
    #[arg(long = "env", value_parser = parse_env)]
    pub(crate) env: Vec<(String, String)>,
    /// On Ctrl-C or SIGTERM: how long running jobs may go on before they are cancelled, in
    /// seconds.
    #[arg(long, default_value_t = 10)]
    pub(crate) grace: u64,
    /// Never show the progress bar.
    #[arg(long)]
    pub(crate) no_progress: bool,
}

pub(crate) fn parse_env(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not NAME=VALUE"))?;
    Ok((name.to_string(), value.to_string()))
}

pub(crate) fn limits(args: &RunArgs) -> Limits {
    Limits {
        max_operations: args.max_operations,
        max_call_depth: args.max_call_depth,
        max_expr_depth: args.max_expr_depth,
        max_string_size: args.max_string_size,
        max_array_size: args.max_array_size,
        max_map_size: args.max_map_size,
    }
}
