//! Jobs per second through Redis: trivial jobs pre-loaded in a private redis-server (unix
//! socket), one runner with two workers, until every job has ended; and, in the same run, a
//! baseline that consumes the same kind of jobs one command at a time on one connection
//! (BLPOP, HGETALL, run, HSET, LPUSH), as a simple single-connection runner does. Then the
//! latency of one job at a time through a runner, from the submit to the reply (p50, p99,
//! max).
//!
//! ```text
//! cargo bench --bench redis
//! BAOBAB_BENCH_REDIS_JOBS=100000 BAOBAB_BENCH_RUNS=3 cargo bench --bench redis
//! ```

use std::collections::HashMap;
use std::time::{Duration, Instant};

use baobab::Runtime;
use baobab::bridge::{RedisConfig, Runner, RunnerConfig};
use baobab::jobs::{Job, PoolConfig};
use baobab::script::{CountingAllocator, Limits, Sandbox, SandboxConfig};
use redis::Commands;

/// As the `baobab` binary runs: allocations counted for the sandbox's memory limit.
#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

mod common;

use common::{env, summary};

/// The tests' private redis-server (never the one `BAOBAB_REDIS_URL` names: the bench
/// empties its database).
#[allow(dead_code)]
#[path = "../tests/common/redis_server.rs"]
mod redis_server;

/// The Hero job hash a client stores, as the wire format spells it.
#[path = "../tests/common/hero.rs"]
mod hero;

use redis_server::TestRedis as Server;

/// Empties the database, then queues `n` jobs of `40 + 2` for `actor`, pipelined.
fn preload(server: &Server, actor: &str, n: usize) -> Vec<String> {
    let mut conn = server.conn();
    let _: () = redis::cmd("FLUSHALL").query(&mut conn).unwrap();
    let mut ids = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let mut pipe = redis::pipe();
        for _ in chunk {
            let job = Job::builder("40 + 2").actor_id(actor).build().unwrap();
            pipe.hset_multiple(format!("hero:job:{}", job.id), &hero::hero_fields(&job))
                .ignore()
                .lpush(format!("hero:job:actor_queue:{actor}"), &job.id)
                .ignore();
            ids.push(job.id);
        }
        pipe.query::<()>(&mut conn).unwrap();
    }
    ids
}

/// Redis's CPU seconds so far (user + system), from `INFO cpu`.
fn redis_cpu(server: &Server) -> f64 {
    let info: String = redis::cmd("INFO")
        .arg("cpu")
        .query(&mut server.conn())
        .unwrap();
    info.lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| *k == "used_cpu_user" || *k == "used_cpu_sys")
        .filter_map(|(_, v)| v.trim().parse::<f64>().ok())
        .sum()
}

/// Redis's commands since its statistics were last reset (`INFO commandstats`): per command,
/// its calls and the microseconds Redis spent in them, most time first.
fn redis_commands(server: &Server) -> Vec<(String, u64, u64)> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut server.conn())
        .unwrap();
    let mut rows: Vec<(String, u64, u64)> = info
        .lines()
        .filter_map(|l| l.strip_prefix("cmdstat_"))
        .filter_map(|l| l.split_once(':'))
        .map(|(name, stats)| {
            let field = |key: &str| {
                stats
                    .split(',')
                    .filter_map(|kv| kv.split_once('='))
                    .find(|(k, _)| *k == key)
                    .and_then(|(_, v)| v.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            (name.to_string(), field("calls"), field("usec"))
        })
        .collect();
    rows.sort_by_key(|row| std::cmp::Reverse(row.2));
    rows
}

/// This process's CPU seconds so far (user + system), from `/proc/self/stat`.
fn own_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, r)| r)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// As the `baobab` binary runs: blocking threads with the stack the limits need.
fn runtime() -> Runtime {
    Runtime::builder()
        .blocking_stack_size(Sandbox::stack_size(&Limits::default()))
        .build()
}

/// A runner with two workers serving `actor`.
fn start_runner(rt: &Runtime, server: &Server, actor: &str) -> Runner {
    let mut pool = PoolConfig::new(actor);
    pool.workers = 2;
    pool.max_batch = env("BAOBAB_BENCH_REDIS_BATCH", 256);
    let config = RunnerConfig {
        redis: RedisConfig::new(&server.url),
        actor: actor.to_string(),
        pool,
        sandbox: SandboxConfig::default(),
        actors: None,
    };
    Runner::start(rt.handle(), config).expect("runner")
}

/// Jobs/s through a runner with two workers.
fn runner(server: &Server, n: usize, run: usize) -> f64 {
    let actor = format!("bench-{run}");
    preload(server, &actor, n);
    let rt = runtime();
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query(&mut server.conn())
        .unwrap();
    let (redis_before, own_before) = (redis_cpu(server), own_cpu());
    let start = Instant::now();
    let runner = start_runner(&rt, server, &actor);
    loop {
        let stats = runner.pool().stats().expect("stats");
        if stats.finished + stats.failed >= n as u64 {
            assert_eq!(stats.failed, 0);
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    runner.store().flush();
    let elapsed = start.elapsed();
    println!(
        "#   run {run}: {:.2} s wall, Redis CPU {:.2} s, runner CPU {:.2} s",
        elapsed.as_secs_f64(),
        redis_cpu(server) - redis_before,
        own_cpu() - own_before
    );
    let per_job: Vec<String> = redis_commands(server)
        .iter()
        .filter(|(name, _, _)| name != "info" && name != "config|resetstat")
        .map(|(name, calls, usec)| {
            format!(
                "{name} {:.3} calls {:.2} µs",
                *calls as f64 / n as f64,
                *usec as f64 / n as f64
            )
        })
        .collect();
    println!("#   Redis per job: {}", per_job.join(", "));
    runner.shutdown(Duration::from_secs(1)).expect("shutdown");
    n as f64 / elapsed.as_secs_f64()
}

/// Jobs/s through four runners (each with two workers and a runner id of its own) sharing
/// one Redis; and how many jobs ran more than once (none should: no runner dies here).
fn four_runners(server: &Server, n: usize, run: usize) -> (f64, usize) {
    let actor = format!("four-{run}");
    let ids = preload(server, &actor, n);
    let rt = runtime();
    let start = Instant::now();
    let runners: Vec<Runner> = (0..4).map(|_| start_runner(&rt, server, &actor)).collect();
    loop {
        let ended: u64 = runners
            .iter()
            .map(|r| r.pool().stats().map_or(0, |s| s.finished + s.failed))
            .sum();
        if ended >= n as u64 {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    for runner in &runners {
        runner.store().flush();
    }
    let elapsed = start.elapsed();
    let mut conn = server.conn();
    let mut twice = 0;
    for chunk in ids.chunks(1000) {
        let mut pipe = redis::pipe();
        for id in chunk {
            pipe.hget(format!("hero:job:{id}"), "attempts");
        }
        let attempts: Vec<Option<u32>> = pipe.query(&mut conn).unwrap();
        twice += attempts.iter().filter(|a| a.unwrap_or(0) > 1).count();
    }
    for runner in &runners {
        runner.shutdown(Duration::from_secs(1)).expect("shutdown");
    }
    (n as f64 / elapsed.as_secs_f64(), twice)
}

/// Jobs/s consumed one command at a time on one connection (on a thread with the stack the
/// sandbox's limits need, as the runner's threads have).
fn baseline(server: &Server, n: usize, run: usize) -> f64 {
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .stack_size(Sandbox::stack_size(&Limits::default()))
            .spawn_scoped(scope, || one_at_a_time(server, n, run))
            .expect("a thread")
            .join()
            .expect("the baseline ran")
    })
}

fn one_at_a_time(server: &Server, n: usize, run: usize) -> f64 {
    let actor = format!("baseline-{run}");
    preload(server, &actor, n);
    let mut conn = server.conn();
    let sandbox = Sandbox::new(SandboxConfig::default());
    let queue = format!("hero:job:actor_queue:{actor}");
    let start = Instant::now();
    for _ in 0..n {
        let (_, id): (String, String) = redis::cmd("BLPOP")
            .arg(&queue)
            .arg(1)
            .query(&mut conn)
            .unwrap();
        let key = format!("hero:job:{id}");
        let hash: HashMap<String, String> = conn.hgetall(&key).unwrap();
        let job = Job::builder(hash["script"].as_str())
            .id(&id)
            .actor_id(&actor)
            .build()
            .unwrap();
        let output = sandbox.run(&job, None).unwrap().output;
        let _: () = conn
            .hset_multiple(
                &key,
                &[
                    ("status", "finished"),
                    ("output", &output),
                    ("result", &output),
                ],
            )
            .unwrap();
        let _: () = conn.lpush(format!("hero:reply:{id}"), "finished").unwrap();
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// Latency through a runner with two workers: one job at a time, submitted as a client does
/// (its hash, then its id on the queue) and waited for on its reply list (`BLPOP`); the time
/// from the submit to the reply, per job. Returns the latencies in microseconds.
fn latency(server: &Server, n: usize) -> Vec<f64> {
    let actor = "latency".to_string();
    let mut conn = server.conn();
    let _: () = redis::cmd("FLUSHALL").query(&mut conn).unwrap();
    let rt = runtime();
    let runner = start_runner(&rt, server, &actor);
    let mut micros = Vec::with_capacity(n);
    for i in 0..n + 100 {
        let job = Job::builder("40 + 2").actor_id(&actor).build().unwrap();
        let start = Instant::now();
        redis::pipe()
            .hset_multiple(format!("hero:job:{}", job.id), &hero::hero_fields(&job))
            .ignore()
            .lpush(format!("hero:job:actor_queue:{actor}"), &job.id)
            .ignore()
            .query::<()>(&mut conn)
            .unwrap();
        let (_, status): (String, String) = redis::cmd("BLPOP")
            .arg(format!("hero:reply:{}", job.id))
            .arg(5)
            .query(&mut conn)
            .expect("a reply within 5 s");
        assert_eq!(status, "finished");
        // The first 100 warm the runner up.
        if i >= 100 {
            micros.push(start.elapsed().as_nanos() as f64 / 1000.0);
        }
    }
    runner.shutdown(Duration::from_secs(1)).expect("shutdown");
    micros
}

fn main() {
    let runs = env("BAOBAB_BENCH_RUNS", 3).max(1);
    let n = env("BAOBAB_BENCH_REDIS_JOBS", 100_000);
    let n_baseline = env("BAOBAB_BENCH_REDIS_BASELINE_JOBS", 20_000);
    let server = Server::private();
    println!("# baobab through Redis (private redis-server, unix socket), median of {runs} runs");
    println!("# reproduce: cargo bench --bench redis   (env BAOBAB_BENCH_REDIS_JOBS, _RUNS)");
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for run in 0..runs {
        ours.push(runner(&server, n, run));
        theirs.push(baseline(&server, n_baseline, run));
    }
    let (median, min, max) = summary(ours.clone());
    println!(
        "{:<28} {median:>10.0} {min:>10.0} {max:>10.0}  jobs/s ({n} jobs)",
        "runner, 2 workers"
    );
    let (b_median, b_min, b_max) = summary(theirs);
    println!(
        "{:<28} {b_median:>10.0} {b_min:>10.0} {b_max:>10.0}  jobs/s ({n_baseline} jobs)",
        "baseline, one at a time"
    );
    println!("ratio (medians): {:.1}x", median / b_median);
    let mut four = Vec::new();
    let mut twice = 0;
    for run in 0..runs {
        let (rate, again) = four_runners(&server, n, run);
        four.push(rate);
        twice += again;
    }
    let (f_median, f_min, f_max) = summary(four);
    println!(
        "{:<28} {f_median:>10.0} {f_min:>10.0} {f_max:>10.0}  jobs/s ({n} jobs; {twice} run twice)",
        "four runners, 2 workers each"
    );
    println!("ratio four runners / one: {:.2}x", f_median / median);
    let n_latency = env("BAOBAB_BENCH_REDIS_LATENCY_JOBS", 2_000);
    let mut micros = latency(&server, n_latency);
    micros.sort_by(f64::total_cmp);
    let at = |q: usize| micros[(micros.len() * q / 100).min(micros.len() - 1)];
    println!(
        "{:<28} {:>10.0} {:>10.0} {:>10.0}  µs p50 / p99 / max, submit to reply ({n_latency} jobs, one at a time)",
        "latency, 2 workers",
        at(50),
        at(99),
        micros[micros.len() - 1]
    );
}
