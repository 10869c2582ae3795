//! `baobab run --redis URL`: serves an actor's queue in Redis.

use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::Duration;

use baobab::Runtime;
use baobab::jobs::PoolConfig;
use baobab::script::SandboxConfig;

use crate::args::{RunArgs, limits};
use crate::interrupt_flag;

/// `baobab run --redis URL`: serves the actor's queue until Ctrl-C or SIGTERM.
pub(crate) fn serve(args: RunArgs) -> ExitCode {
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
