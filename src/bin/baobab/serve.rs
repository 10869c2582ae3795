//! `baobab run --redis URL`: serves an actor's queue in Redis.

use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::Duration;

use baobab::bridge::Runner;
use baobab::jobs::PoolConfig;
use tracing::error;

use crate::args::RunArgs;
use crate::interrupt_flag;
use crate::run::RUNNER_FAILED;

/// `baobab run --redis URL`: serves the actor's queue until Ctrl-C or SIGTERM (exit 0), or
/// until the runner fails (exit 3: its pool kept crashing; what it held goes back to the
/// queue, and a process supervisor should restart it).
pub(crate) fn serve(args: RunArgs) -> ExitCode {
    use baobab::bridge::{RedisConfig, Runner, RunnerConfig};
    if !args.paths.is_empty() {
        eprintln!("baobab: with --redis, jobs come from Redis: submit files with `baobab submit`");
        return ExitCode::from(2);
    }
    let (workers, concurrency) = match args.workers() {
        Ok(sizes) => sizes,
        Err(error) => {
            eprintln!("baobab: {error}");
            return ExitCode::from(2);
        }
    };
    let interrupted = interrupt_flag();
    let url = args.redis.redis.clone().expect("checked by the caller");
    let mut redis = RedisConfig::new(url);
    redis.profile = args.redis.profile;
    redis.heartbeat_ttl = args.heartbeat_ttl;
    redis.result_ttl = args.result_ttl;
    redis.dead_ttl = args.dead_ttl;
    redis.max_script_bytes = args.max_script_size;
    if let Some(timeout) = args.timeout {
        redis.max_timeout = Duration::from_secs(timeout);
    }
    let mut pool = PoolConfig::new(&args.actor);
    pool.workers = workers;
    pool.concurrency = concurrency;
    let sandbox = args.sandbox();
    let rt = crate::runtime_for(&sandbox, workers * concurrency);
    let config = RunnerConfig {
        redis,
        actor: args.actor.clone(),
        pool,
        sandbox,
        actors: None,
    };
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
    let grace = Duration::from_secs(args.grace);
    while !interrupted.load(Ordering::Relaxed) {
        if let Some(reason) = runner.exited() {
            error!(%reason, "the runner failed: its jobs go back to the queue");
            eprintln!("baobab: the runner failed: {reason}");
            stop_runner_within(runner, grace);
            return ExitCode::from(RUNNER_FAILED);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "baobab: stopping; running jobs have {} s to finish",
        args.grace
    );
    match stop_runner_within(runner, grace) {
        Some(Ok(stats)) => {
            eprintln!(
                "baobab: stopped: {} finished, {} failed, {} worker crashes",
                stats.finished, stats.failed, stats.crashes
            );
            ExitCode::SUCCESS
        }
        Some(Err(error)) => {
            eprintln!("baobab: {error}");
            ExitCode::from(1)
        }
        None => {
            eprintln!("baobab: the runner did not stop in time; exiting");
            ExitCode::from(1)
        }
    }
}

/// Shuts the runner down (running jobs get `grace`, Redis writes stop being retried 5 s
/// after it), and returns by then plus half a second whatever happens.
fn stop_runner_within(
    runner: Runner,
    grace: Duration,
) -> Option<Result<baobab::jobs::PoolStats, baobab::jobs::PoolError>> {
    let (done, stopped) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(runner.shutdown(grace));
    });
    stopped
        .recv_timeout(grace + baobab::bridge::WIND_DOWN_MARGIN + Duration::from_millis(500))
        .ok()
}
