//! Chaos against a real, private Redis and the real runner binary: runners killed with
//! SIGKILL at random moments and restarted, one of three runners killed, Redis paused with
//! SIGSTOP and its client connections killed. Every job must end in a terminal status; none
//! may be lost. Jobs that ran more than once are counted and reported (delivery is
//! at-least-once).
#![cfg(feature = "cli")]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use baobab::jobs::Job;
use common::cli::RunnerProcess;
use common::hero::hero_fields;
use common::redis_server::{TestRedis, unique};
use redis::Commands;

fn runner(redis: &TestRedis, actor: &str) -> RunnerProcess {
    runner_with(redis, actor, "1")
}

/// A runner process with two workers and a heartbeat of `heartbeat_ttl` seconds.
fn runner_with(redis: &TestRedis, actor: &str, heartbeat_ttl: &str) -> RunnerProcess {
    Command::new(env!("CARGO_BIN_EXE_baobab"))
        .args([
            "run",
            "--redis",
            &redis.url,
            "--actor",
            actor,
            "--workers",
            "2",
        ])
        .args(["--heartbeat-ttl", heartbeat_ttl])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(RunnerProcess)
        .unwrap()
}

fn sigkill(runner: &mut RunnerProcess) {
    let _ = runner.0.kill();
    let _ = runner.0.wait();
}

/// Stops the runner with SIGTERM and waits for it.
fn sigterm(mut runner: RunnerProcess) {
    let _ = Command::new("kill")
        .args(["-TERM", &runner.0.id().to_string()])
        .status();
    let _ = runner.0.wait();
}

/// A pseudo-random delay in `[min, min + spread)`.
fn random_delay(min: u64, spread: u64) -> Duration {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    Duration::from_millis(min + nanos % spread)
}

/// Queues `n` jobs (each a small loop), allowing `retries` requeues; returns their ids.
fn preload(redis: &TestRedis, actor: &str, n: usize, retries: u32) -> Vec<String> {
    let mut conn = redis.conn();
    let mut ids = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let mut pipe = redis::pipe();
        for i in chunk {
            let job = Job::builder(format!("let x = 0; for i in 0..200 {{ x += i; }} x + {i}"))
                .actor_id(actor)
                .retries(retries)
                .build()
                .unwrap();
            pipe.hset_multiple(format!("hero:job:{}", job.id), &hero_fields(&job))
                .ignore()
                .lpush(format!("hero:job:actor_queue:{actor}"), &job.id)
                .ignore();
            ids.push(job.id);
        }
        pipe.query::<()>(&mut conn).unwrap();
    }
    ids
}

/// Waits until every job has a terminal status; returns (finished, errors, ran more than
/// once).
fn settle(redis: &TestRedis, ids: &[String], limit: Duration) -> (usize, Vec<String>, usize) {
    let mut conn = redis.conn();
    let start = Instant::now();
    loop {
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("HMGET")
                .arg(format!("hero:job:{id}"))
                .arg("status")
                .arg("error")
                .arg("requeues");
        }
        let rows: Vec<(Option<String>, Option<String>, Option<u32>)> =
            pipe.query(&mut conn).unwrap();
        let open = rows
            .iter()
            .filter(|(status, _, _)| !matches!(status.as_deref(), Some("finished" | "error")))
            .count();
        if open == 0 {
            let finished = rows
                .iter()
                .filter(|r| r.0.as_deref() == Some("finished"))
                .count();
            let errors = rows.iter().filter_map(|r| r.1.clone()).collect();
            let again = rows.iter().filter(|r| r.2.unwrap_or(0) > 0).count();
            return (finished, errors, again);
        }
        if start.elapsed() >= limit {
            // Where the open jobs are, to tell a lost id from a slow runner.
            let mut lists = Vec::new();
            for pattern in [
                "hero:processing:*",
                "hero:job:actor_queue*",
                "hero:job:delayed:*",
            ] {
                for key in conn.keys::<_, Vec<String>>(pattern).unwrap() {
                    let len: usize = redis::cmd("TYPE")
                        .arg(&key)
                        .query::<String>(&mut conn)
                        .map(|t| if t == "zset" { "ZCARD" } else { "LLEN" })
                        .and_then(|len| redis::cmd(len).arg(&key).query(&mut conn))
                        .unwrap_or(0);
                    lists.push(format!("{key}: {len}"));
                }
            }
            // The first open job as its hash has it.
            let first = ids
                .iter()
                .zip(&rows)
                .find(|(_, (status, _, _))| {
                    !matches!(status.as_deref(), Some("finished" | "error"))
                })
                .map(|(id, _)| {
                    let hash: std::collections::HashMap<String, String> =
                        conn.hgetall(format!("hero:job:{id}")).unwrap();
                    format!("{id}: {hash:?}")
                });
            panic!(
                "{open} of {} jobs still open after {limit:?}; lists: {lists:?}; first: {first:?}",
                ids.len()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn outputs_are_right(redis: &TestRedis, ids: &[String]) {
    let mut conn = redis.conn();
    let mut pipe = redis::pipe();
    for id in ids {
        pipe.hget(format!("hero:job:{id}"), "output");
    }
    let outputs: Vec<Option<String>> = pipe.query(&mut conn).unwrap();
    for (i, output) in outputs.iter().enumerate() {
        assert_eq!(
            output.as_deref(),
            Some((19_900 + i).to_string().as_str()),
            "job {i}"
        );
    }
}

#[test]
fn ten_thousand_jobs_survive_a_runner_killed_at_random_and_restarted() {
    let redis = TestRedis::start();
    let actor = unique("chaos");
    let ids = preload(&redis, &actor, 10_000, 3);
    let mut first = runner(&redis, &actor);
    std::thread::sleep(random_delay(300, 1500));
    sigkill(&mut first);
    let second = runner(&redis, &actor);
    let (finished, errors, again) = settle(&redis, &ids, Duration::from_secs(240));
    sigterm(second);
    assert_eq!(
        finished,
        10_000,
        "errors: {:?}",
        &errors[..errors.len().min(5)]
    );
    outputs_are_right(&redis, &ids);
    eprintln!(
        "chaos: 10,000 jobs, runner killed once: {again} requeued (so may have run twice), none lost"
    );
    let mut conn = redis.conn();
    let left: usize = conn.llen(format!("hero:job:actor_queue:{actor}")).unwrap();
    assert_eq!(left, 0);
}

#[test]
fn of_three_runners_one_killed_the_other_two_recover_its_jobs() {
    let redis = TestRedis::start();
    let actor = unique("three");
    let ids = preload(&redis, &actor, 3_000, 3);
    let mut runners: Vec<RunnerProcess> = (0..3).map(|_| runner(&redis, &actor)).collect();
    std::thread::sleep(random_delay(200, 500));
    sigkill(&mut runners[0]);
    let (finished, errors, again) = settle(&redis, &ids, Duration::from_secs(240));
    for child in runners.drain(1..) {
        sigterm(child);
    }
    assert_eq!(
        finished,
        3_000,
        "errors: {:?}",
        &errors[..errors.len().min(5)]
    );
    outputs_are_right(&redis, &ids);
    eprintln!(
        "three runners, one killed: {again} jobs requeued (so may have run twice), none lost"
    );
    // The dead runner left nothing in its processing list.
    let mut conn = redis.conn();
    let lists: Vec<String> = conn.keys(format!("hero:processing:{actor}:*")).unwrap();
    for list in lists {
        let len: usize = conn.llen(&list).unwrap();
        assert_eq!(len, 0, "{list}");
    }
}

#[test]
fn redis_paused_and_connections_killed_lose_nothing() {
    let redis = TestRedis::start();
    let Some(pid) = redis.pid() else {
        eprintln!("BAOBAB_REDIS_URL is set: this test needs a server it can pause; skipped");
        return;
    };
    let actor = unique("pause");
    let ids = preload(&redis, &actor, 3_000, 3);
    let child = runner(&redis, &actor);
    std::thread::sleep(Duration::from_millis(300));
    let _ = Command::new("kill")
        .args(["-STOP", &pid.to_string()])
        .status();
    std::thread::sleep(Duration::from_secs(5));
    let _ = Command::new("kill")
        .args(["-CONT", &pid.to_string()])
        .status();
    // And every client connection cut.
    let mut conn = redis.conn();
    let _: redis::RedisResult<i64> = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .arg("SKIPME")
        .arg("yes")
        .query(&mut conn);
    let (finished, errors, again) = settle(&redis, &ids, Duration::from_secs(240));
    sigterm(child);
    // The pause outlasts the heartbeat, but a runner never reaps its own id: every job
    // finishes, none twice.
    assert_eq!(
        finished,
        3_000,
        "errors: {:?}",
        &errors[..errors.len().min(5)]
    );
    outputs_are_right(&redis, &ids);
    eprintln!("redis paused 5 s and connections killed: {again} jobs requeued, none lost");
}

/// A mix of jobs: plain ones of each priority (a third delayed by up to 1.5 s), chains of
/// three dependent jobs, and jobs that always fail; all with 2 retries.
struct Mixed {
    plain: Vec<(usize, String)>,
    chains: Vec<[(usize, String); 3]>,
    failing: Vec<String>,
}

fn work(i: usize) -> String {
    format!("let x = 0; for i in 0..2000 {{ x += i; }} x + {i}")
}

fn worked(i: usize) -> String {
    (1_999_000 + i).to_string()
}

fn submit_mixed(store: &baobab::bridge::RedisStore, actor: &str) -> Mixed {
    use baobab::jobs::{JobStore, Priority};
    let submit = |job: Job| {
        let id = job.id.clone();
        store.submit(job).unwrap();
        id
    };
    let now = SystemTime::now();
    let mut plain = Vec::new();
    for i in 0..300 {
        let priority = [Priority::High, Priority::Normal, Priority::Low][i % 3];
        let job = Job::builder(work(i))
            .actor_id(actor)
            .retries(2)
            .priority(priority);
        let job = if i % 3 == 0 {
            job.run_at(now + Duration::from_millis(300 + (i as u64 * 4)))
        } else {
            job
        };
        plain.push((i, submit(job.build().unwrap())));
    }
    let mut chains = Vec::new();
    for i in 0..40 {
        let a = Job::builder(work(i))
            .actor_id(actor)
            .retries(2)
            .build()
            .unwrap();
        let b = Job::builder(work(i + 1))
            .actor_id(actor)
            .retries(2)
            .prerequisite(&a.id)
            .build()
            .unwrap();
        let c = Job::builder(work(i + 2))
            .actor_id(actor)
            .retries(2)
            .prerequisite(&b.id)
            .build()
            .unwrap();
        chains.push([(i, submit(a)), (i + 1, submit(b)), (i + 2, submit(c))]);
    }
    let failing = (0..40)
        .map(|_| {
            submit(
                Job::builder(r#"throw "always""#)
                    .actor_id(actor)
                    .retries(2)
                    .backoff(Duration::from_millis(50))
                    .build()
                    .unwrap(),
            )
        })
        .collect();
    Mixed {
        plain,
        chains,
        failing,
    }
}

impl Mixed {
    fn all(&self) -> Vec<String> {
        let mut all: Vec<String> = self.plain.iter().map(|(_, id)| id.clone()).collect();
        all.extend(self.chains.iter().flatten().map(|(_, id)| id.clone()));
        all.extend(self.failing.iter().cloned());
        all
    }

    /// Every job ended as it should; returns how many runs a runner's death cut short.
    /// `slack`: runs that may go uncounted beyond the retries (a start not yet written when
    /// Redis went away).
    fn check(
        &self,
        redis: &TestRedis,
        store: &baobab::bridge::RedisStore,
        actor: &str,
        slack: u32,
    ) -> usize {
        use baobab::jobs::JobStore;
        let get = |id: &str| store.get(id).unwrap().unwrap();
        for (i, id) in &self.plain {
            let job = get(id);
            assert_eq!(job.output.as_deref(), Some(worked(*i).as_str()), "{job:?}");
            assert!(job.attempts <= 3 + slack, "{job:?}");
            if let Some(at) = job.run_at {
                assert!(
                    job.started_at.unwrap() >= at,
                    "a delayed job ran early: {job:?}"
                );
            }
        }
        for chain in &self.chains {
            let jobs: Vec<Job> = chain.iter().map(|(_, id)| get(id)).collect();
            for (job, (i, _)) in jobs.iter().zip(chain) {
                assert_eq!(job.output.as_deref(), Some(worked(*i).as_str()), "{job:?}");
            }
            for pair in jobs.windows(2) {
                assert!(
                    pair[1].started_at.unwrap() >= pair[0].finished_at.unwrap(),
                    "a dependent started before its prerequisite ended: {pair:?}"
                );
            }
        }
        for id in &self.failing {
            let job = get(id);
            assert_eq!(job.status, baobab::jobs::JobStatus::Error);
            assert!(
                (1..=3 + slack).contains(&job.attempts) && !job.errors.is_empty(),
                "runs are attempts, at most retries + 1: {job:?}"
            );
        }
        let mut conn = redis.conn();
        let mut dead: Vec<String> = conn
            .zrange(format!("hero:job:dead:{actor}"), 0, -1)
            .unwrap();
        dead.sort();
        let mut failing = self.failing.clone();
        failing.sort();
        assert_eq!(dead, failing);
        self.all()
            .iter()
            .filter(|id| {
                get(id)
                    .errors
                    .iter()
                    .any(|e| e.error.contains("runner died"))
            })
            .count()
    }
}

/// Retries, delayed jobs, dependency chains and priorities, with one of two runners killed
/// mid-run and Redis paused: every job ends as it should, none is lost, no job runs more
/// often than its retries allow (each run, failed or cut short by the kill, is an attempt),
/// a dependent never starts before its prerequisite ended, a delayed job never before its
/// time.
#[test]
fn retries_delays_and_dependencies_survive_a_killed_runner_and_a_paused_redis() {
    use baobab::bridge::{Profile, RedisConfig, RedisStore};

    let redis = TestRedis::start();
    let actor = unique("mixed");
    let store = RedisStore::new({
        let mut config = RedisConfig::new(&redis.url);
        config.profile = Profile::Hero;
        config
    })
    .unwrap();
    let mixed = submit_mixed(&store, &actor);
    let mut first = runner(&redis, &actor);
    let second = runner(&redis, &actor);
    std::thread::sleep(random_delay(200, 600));
    sigkill(&mut first);
    if let Some(pid) = redis.pid() {
        let _ = Command::new("kill")
            .args(["-STOP", &pid.to_string()])
            .status();
        std::thread::sleep(Duration::from_secs(2));
        let _ = Command::new("kill")
            .args(["-CONT", &pid.to_string()])
            .status();
    }
    let third = runner(&redis, &actor);
    let all = mixed.all();
    let (finished, errors, _) = settle(&redis, &all, Duration::from_secs(240));
    sigterm(second);
    sigterm(third);
    assert_eq!(
        finished,
        all.len() - mixed.failing.len(),
        "errors: {:?}",
        &errors[..errors.len().min(5)]
    );
    let deaths = mixed.check(&redis, &store, &actor, 0);
    eprintln!(
        "mixed chaos: {} jobs, a runner killed, Redis paused 2 s: none lost, {deaths} runs cut short by the kill",
        all.len()
    );
}

/// The same mix through a Redis killed (SIGKILL) and restarted mid-run, on its append-only
/// file: the runners wait it out, load their scripts again, and every job ends as it should.
#[test]
fn retries_delays_and_dependencies_survive_a_redis_restart() {
    use baobab::bridge::{Profile, RedisConfig, RedisStore};

    if std::env::var("BAOBAB_REDIS_URL").is_ok() {
        eprintln!(
            "BAOBAB_REDIS_URL is set: this test needs a server it can restart; it starts its own"
        );
    }
    let mut redis = TestRedis::durable();
    let actor = unique("restart");
    let store = RedisStore::new({
        let mut config = RedisConfig::new(&redis.url);
        config.profile = Profile::Hero;
        config
    })
    .unwrap();
    let mixed = submit_mixed(&store, &actor);
    // Heartbeats outlive the outage, so no live runner's jobs are taken back meanwhile.
    let spawn = || runner_with(&redis, &actor, "10");
    let runners = [spawn(), spawn()];
    std::thread::sleep(random_delay(200, 400));
    redis.restart(Duration::from_millis(500));
    let all = mixed.all();
    let (finished, errors, _) = settle(&redis, &all, Duration::from_secs(240));
    for runner in runners {
        sigterm(runner);
    }
    assert_eq!(
        finished,
        all.len() - mixed.failing.len(),
        "errors: {:?}",
        &errors[..errors.len().min(5)]
    );
    // A start written by a pipeline Redis never answered may be lost with the connection:
    // one run more than counted, at most.
    mixed.check(&redis, &store, &actor, 1);
    eprintln!(
        "mixed jobs through a Redis restart: {} jobs, none lost",
        all.len()
    );
}
