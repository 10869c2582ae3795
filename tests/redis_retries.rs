//! Retries: a job whose run fails (a script error, a timeout, its runner's death while it
//! runs) runs again after its backoff while it has retries left, each failed run kept in
//! `errors`; one whose retries are used ends `error` and is listed in its actor's dead set. A
//! job counts as started when a worker starts it, so a dead runner's jobs that never started
//! run again whatever `retries` says.
#![cfg(feature = "redis")]

mod common;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use baobab::bridge::{Profile, RedisConfig, RedisStore, Runner, RunnerConfig};
use baobab::jobs::{Job, JobStatus, JobStore, PoolConfig};
use baobab::script::SandboxConfig;
use common::cli::RunnerProcess;
use common::redis_server::{TestRedis, unique};
use common::{SAFETY, runtime};
use redis::Commands;

fn runner(rt: &baobab::Runtime, redis: &TestRedis, actor: &str, profile: Profile) -> Runner {
    let mut pool = PoolConfig::new(actor);
    pool.workers = 2;
    let mut redis_config = RedisConfig::new(&redis.url);
    redis_config.profile = profile;
    let config = RunnerConfig {
        redis: redis_config,
        actor: actor.to_string(),
        pool,
        sandbox: SandboxConfig::default(),
        actors: None,
    };
    Runner::start(rt.handle(), config).unwrap()
}

fn hash(conn: &mut redis::Connection, key: &str) -> HashMap<String, String> {
    conn.hgetall(key).unwrap()
}

/// Waits until `check` holds of job `key`'s hash.
fn wait_for(
    conn: &mut redis::Connection,
    key: &str,
    check: impl Fn(&HashMap<String, String>) -> bool,
) -> HashMap<String, String> {
    let start = Instant::now();
    loop {
        let fields = hash(conn, key);
        if check(&fields) {
            return fields;
        }
        assert!(start.elapsed() < SAFETY, "{key}: {fields:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn errors(fields: &HashMap<String, String>) -> Vec<serde_json::Value> {
    serde_json::from_str(fields.get("errors").map_or("[]", String::as_str)).unwrap()
}

#[test]
fn a_failing_job_runs_again_after_its_backoff_and_is_dead_once_its_retries_are_used() {
    let redis = TestRedis::start();
    let rt = runtime();
    let mut conn = redis.conn();
    for (profile, failed, job_key, dead_key) in [
        (Profile::Hero, "error", "hero:job:", "hero:job:dead:"),
        (
            Profile::Rhailib,
            "error",
            "rhai_task_details:",
            "rhai_dead:",
        ),
    ] {
        let actor = unique("actor");
        let runner = runner(&rt, &redis, &actor, profile);
        // A script error, and a timeout: both failed runs (rhailib tasks have no timeout
        // field: two script errors there).
        let backoff = Duration::from_millis(300);
        let second = match profile {
            Profile::Hero => Job::builder("loop {}").timeout(Duration::from_secs(1)),
            Profile::Rhailib => Job::builder("let x = 1 / 0; x"),
        };
        let jobs = [Job::builder(r#"throw "boom""#), second].map(|builder| {
            builder
                .actor_id(&actor)
                .retries(2)
                .backoff(backoff)
                .build()
                .unwrap()
        });
        let submitted = Instant::now();
        for job in &jobs {
            runner.store().submit(job.clone()).unwrap();
        }
        for job in &jobs {
            let ended = runner.store().wait(&job.id, SAFETY).unwrap();
            assert_eq!(ended.status, JobStatus::Error, "{ended:?}");
            assert_eq!(ended.attempts, 3, "{ended:?}");
            assert_eq!(ended.errors.len(), 3, "{ended:?}");
            assert_eq!(
                ended.errors.iter().map(|e| e.attempt).collect::<Vec<_>>(),
                [1, 2, 3]
            );
            assert!(ended.errors.iter().all(|e| e.at.ends_with('Z')));
            let fields = hash(&mut conn, &format!("{job_key}{}", job.id));
            assert_eq!(fields["status"], failed);
            assert_eq!(fields["attempts"], "3");
            assert_eq!(errors(&fields).len(), 3, "{fields:?}");
        }
        // Two waits of the backoff at least, spaced by Redis's clock.
        assert!(
            submitted.elapsed() >= 2 * backoff,
            "{:?}",
            submitted.elapsed()
        );
        let boom = runner.store().get(&jobs[0].id).unwrap().unwrap();
        assert!(
            boom.errors.iter().all(|e| e.error.contains("boom")),
            "{boom:?}"
        );
        let slow = runner.store().get(&jobs[1].id).unwrap().unwrap();
        if profile == Profile::Hero {
            assert!(
                slow.errors
                    .iter()
                    .all(|e| e.error.contains("timed out") || e.error.contains("timeout")),
                "{slow:?}"
            );
        }
        // Both listed dead; one reply each, for the final ending only.
        let mut dead: Vec<String> = conn.zrange(format!("{dead_key}{actor}"), 0, -1).unwrap();
        dead.sort();
        let mut want: Vec<String> = jobs.iter().map(|j| j.id.clone()).collect();
        want.sort();
        assert_eq!(dead, want);
        let reply_key = match profile {
            Profile::Hero => format!("hero:reply:{}", jobs[0].id),
            Profile::Rhailib => format!("rhai_reply:{}", jobs[0].id),
        };
        let replies: usize = conn.llen(&reply_key).unwrap();
        assert_eq!(replies, 1);
        runner.shutdown(Duration::from_secs(1)).unwrap();
    }
}

#[test]
fn a_job_that_fails_once_then_succeeds_finishes_with_its_failure_kept_and_is_not_dead() {
    let redis = TestRedis::start();
    let rt = runtime();
    let mut conn = redis.conn();
    let actor = unique("actor");
    let runner = runner(&rt, &redis, &actor, Profile::Hero);
    let job = Job::builder(r#"throw "not yet""#)
        .actor_id(&actor)
        .retries(3)
        .backoff(Duration::from_millis(500))
        .build()
        .unwrap();
    runner.store().submit(job.clone()).unwrap();
    let key = format!("hero:job:{}", job.id);
    // Between runs: `dispatched` again, its failure noted, its next run due.
    let waiting = wait_for(&mut conn, &key, |f| !errors(f).is_empty());
    assert_eq!(waiting["status"], "dispatched", "{waiting:?}");
    assert_eq!(waiting["attempts"], "1");
    assert!(waiting["error"].contains("not yet"), "{waiting:?}");
    assert!(waiting["run_at"].ends_with('Z'), "{waiting:?}");
    let delayed: Option<f64> = conn
        .zscore(format!("hero:job:delayed:{actor}"), &job.id)
        .unwrap();
    assert!(delayed.is_some(), "waits in the delayed set");
    // The cause is fixed before its next run (the runner reads the hash again each run).
    let _: () = conn.hset(&key, "script", "40 + 2").unwrap();
    let ended = runner.store().wait(&job.id, SAFETY).unwrap();
    assert_eq!(ended.status, JobStatus::Finished, "{ended:?}");
    assert_eq!(ended.output.as_deref(), Some("42"));
    assert_eq!(ended.attempts, 2);
    assert_eq!(ended.errors.len(), 1);
    assert_eq!(ended.errors[0].attempt, 1);
    let dead: usize = conn.zcard(format!("hero:job:dead:{actor}")).unwrap();
    assert_eq!(dead, 0);
    runner.shutdown(Duration::from_secs(1)).unwrap();
}

#[test]
fn a_job_without_retries_is_dead_after_one_run_and_the_dead_set_is_bounded_by_time() {
    let redis = TestRedis::start();
    let rt = runtime();
    let mut conn = redis.conn();
    let actor = unique("actor");
    let mut pool = PoolConfig::new(&actor);
    pool.workers = 1;
    let mut redis_config = RedisConfig::new(&redis.url);
    redis_config.dead_ttl = Duration::from_secs(2);
    let runner = Runner::start(
        rt.handle(),
        RunnerConfig {
            redis: redis_config,
            actor: actor.clone(),
            pool,
            sandbox: SandboxConfig::default(),
            actors: None,
        },
    )
    .unwrap();
    let job = |script: &str| Job::builder(script).actor_id(&actor).build().unwrap();
    let first = job("1 / 0");
    runner.store().submit(first.clone()).unwrap();
    let ended = runner.store().wait(&first.id, SAFETY).unwrap();
    assert_eq!((ended.status, ended.attempts), (JobStatus::Error, 1));
    assert_eq!(ended.errors.len(), 1);
    let dead_key = format!("hero:job:dead:{actor}");
    let ttl: i64 = conn.ttl(&dead_key).unwrap();
    assert!((1..=2).contains(&ttl), "{ttl}");
    // A later death drops the entries older than the dead jobs' time to live.
    std::thread::sleep(Duration::from_millis(2200));
    let second = job(r#"throw "again""#);
    runner.store().submit(second.clone()).unwrap();
    runner.store().wait(&second.id, SAFETY).unwrap();
    let dead: Vec<String> = conn.zrange(&dead_key, 0, -1).unwrap();
    assert_eq!(dead, std::slice::from_ref(&second.id));
    // A finished job is not dead.
    let fine = job("7");
    runner.store().submit(fine.clone()).unwrap();
    assert_eq!(
        runner.store().wait(&fine.id, SAFETY).unwrap().status,
        JobStatus::Finished
    );
    let dead: Vec<String> = conn.zrange(&dead_key, 0, -1).unwrap();
    assert_eq!(dead, [second.id]);
    runner.shutdown(Duration::from_secs(1)).unwrap();
}

/// A runner process with one worker that takes up to 64 jobs ahead.
fn runner_process(redis: &TestRedis, actor: &str) -> RunnerProcess {
    Command::new(env!("CARGO_BIN_EXE_baobab"))
        .args(["run", "--redis", &redis.url, "--actor", actor])
        .args(["--workers", "1", "--heartbeat-ttl", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(RunnerProcess)
        .unwrap()
}

#[test]
fn a_killed_runners_jobs_that_never_started_run_again_without_retries_and_the_running_one_fails() {
    let redis = TestRedis::start();
    let mut conn = redis.conn();
    let actor = unique("actor");
    let store = {
        let mut config = RedisConfig::new(&redis.url);
        config.profile = Profile::Hero;
        RedisStore::new(config).unwrap()
    };
    // No retries anywhere. The first job runs until its runner dies; the others wait in the
    // runner behind it, taken and never started.
    let long = Job::builder("loop {}")
        .actor_id(&actor)
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    store.submit(long.clone()).unwrap();
    let mut victim = runner_process(&redis, &actor);
    let long_key = format!("hero:job:{}", long.id);
    wait_for(&mut conn, &long_key, |f| f["status"] == "started");
    let quick: Vec<Job> = (0..20)
        .map(|i| {
            Job::builder(format!("{i} * 2"))
                .actor_id(&actor)
                .build()
                .unwrap()
        })
        .collect();
    for job in &quick {
        store.submit(job.clone()).unwrap();
    }
    // Taken by the busy runner (out of the queue), not started.
    let queue = format!("hero:job:actor_queue:{actor}");
    let start = Instant::now();
    while conn.llen::<_, usize>(&queue).unwrap() > 0 {
        assert!(start.elapsed() < SAFETY, "the runner took nothing ahead");
        std::thread::sleep(Duration::from_millis(10));
    }
    for job in &quick {
        let status: String = conn.hget(format!("hero:job:{}", job.id), "status").unwrap();
        assert_eq!(status, "dispatched", "taken, not started");
    }
    let _ = victim.0.kill();
    let _ = victim.0.wait();
    // Another runner reaps them once the heartbeat expires and runs them.
    let _heir = runner_process(&redis, &actor);
    for (i, job) in quick.iter().enumerate() {
        let ended = store.wait(&job.id, SAFETY).unwrap();
        assert_eq!(ended.status, JobStatus::Finished, "{ended:?}");
        assert_eq!(ended.output, Some((i * 2).to_string()));
        assert_eq!(ended.attempts, 1, "run once: {ended:?}");
        assert!(ended.errors.is_empty());
    }
    // The one that was running used its run: no retries, so it failed for good, dead.
    let ended = store.wait(&long.id, SAFETY).unwrap();
    assert_eq!(ended.status, JobStatus::Error);
    assert!(
        ended
            .error
            .as_deref()
            .unwrap()
            .contains("its runner died while running it"),
        "{ended:?}"
    );
    assert_eq!(ended.errors.len(), 1);
    let dead: Vec<String> = conn
        .zrange(format!("hero:job:dead:{actor}"), 0, -1)
        .unwrap();
    assert_eq!(dead, std::slice::from_ref(&long.id));
}
