//! The Redis bridge against a real, private redis-server: round trips in both profiles,
//! reliable fetch and the reaper, malformed input, a client that only follows
//! `docs/wire-format.md`.
#![cfg(feature = "redis")]

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use baobab::bridge::{Profile, RedisConfig, RedisStore, Runner, RunnerConfig, StopRoute};
use baobab::jobs::{Job, JobActor, JobStatus, JobStore, PoolConfig, WorkerPool};
use baobab::script::RhaiActor;
use baobab::script::SandboxConfig;
use common::redis_server::{TestRedis, unique};
use common::{SAFETY, runtime};
use redis::Commands;

fn store(redis: &TestRedis, profile: Profile) -> Arc<RedisStore> {
    let mut config = RedisConfig::new(&redis.url);
    config.profile = profile;
    Arc::new(RedisStore::new(config).unwrap())
}

fn rhai_pool(
    rt: &baobab::Runtime,
    store: Arc<RedisStore>,
    actor: &str,
    workers: usize,
) -> WorkerPool {
    let mut config = PoolConfig::new(actor);
    config.workers = workers;
    config.requeue_on_shutdown = true;
    let actor_id = actor.to_string();
    let factory: baobab::jobs::ActorFactory = Arc::new(move || {
        Arc::new(RhaiActor::new(actor_id.clone(), SandboxConfig::default())) as Arc<dyn JobActor>
    });
    WorkerPool::start(rt.handle(), store, factory, config).unwrap()
}

/// A `Runner` (pool and bridge, Hero profile) serving `actor` with `workers` workers;
/// `tune` adjusts its pool, `heartbeat_ttl` (if given) its heartbeat.
fn start_runner(
    rt: &baobab::Runtime,
    redis: &TestRedis,
    actor: &str,
    workers: usize,
    tune: impl FnOnce(&mut PoolConfig),
    heartbeat_ttl: Option<Duration>,
) -> Runner {
    let mut pool = PoolConfig::new(actor);
    pool.workers = workers;
    tune(&mut pool);
    let mut redis_config = RedisConfig::new(&redis.url);
    if let Some(ttl) = heartbeat_ttl {
        redis_config.heartbeat_ttl = ttl;
    }
    let config = RunnerConfig {
        redis: redis_config,
        actor: actor.to_string(),
        pool,
        sandbox: SandboxConfig::default(),
        actors: None,
    };
    Runner::start(rt.handle(), config).unwrap()
}

/// A job that runs until it is stopped (or for a minute).
fn long_job(actor: &str) -> Job {
    Job::builder("loop {}")
        .actor_id(actor)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// Waits until job `id` is taken and marked started.
fn wait_started(store: &RedisStore, id: &str) {
    let start = std::time::Instant::now();
    while store.status(id).unwrap() != Some(JobStatus::Started) {
        assert!(start.elapsed() < SAFETY, "job {id} did not start");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn jobs_round_trip_through_redis_in_the_hero_profile() {
    let redis = TestRedis::start();
    let rt = runtime();
    let actor = unique("actor");
    let store = store(&redis, Profile::Hero);
    let pool = rhai_pool(&rt, store.clone(), &actor, 2);
    let ids: Vec<String> = (0..200)
        .map(|i| {
            let job = Job::builder(format!("{i} + 1"))
                .actor_id(&actor)
                .build()
                .unwrap();
            let id = job.id.clone();
            store.submit(job).unwrap();
            id
        })
        .collect();
    for (i, id) in ids.iter().enumerate() {
        let job = store.wait(id, SAFETY).unwrap();
        assert_eq!(job.status, JobStatus::Finished);
        assert_eq!(job.output, Some((i + 1).to_string()));
    }
    // The hash as other clients read it.
    let mut conn = redis.conn();
    let hash: HashMap<String, String> = conn.hgetall(format!("hero:job:{}", ids[0])).unwrap();
    assert_eq!(hash["status"], "finished");
    assert_eq!(hash["output"], "1");
    assert_eq!(hash["result"], "1");
    assert!(hash["finished_at"].ends_with('Z'));
    let reply: Vec<String> = conn
        .lrange(format!("hero:reply:{}", ids[0]), 0, -1)
        .unwrap();
    assert_eq!(reply, ["finished"]);
    // Nothing left in the processing list.
    let processing: usize = conn
        .llen(format!("hero:processing:{actor}:{}", store.runner_id()))
        .unwrap();
    assert_eq!(processing, 0);
    pool.shutdown(Duration::from_secs(1)).unwrap();
}

#[test]
fn jobs_round_trip_in_the_rhailib_profile() {
    let redis = TestRedis::start();
    let rt = runtime();
    let circle = unique("circle");
    let store = store(&redis, Profile::Rhailib);
    let pool = rhai_pool(&rt, store.clone(), &circle, 1);
    // Submitted the way a rhailib client does it, by hand.
    let mut conn = redis.conn();
    let task = unique("task");
    let reply_queue = unique("reply");
    let _: () = conn
        .hset_multiple(
            format!("rhai_task_details:{task}"),
            &[
                ("script", "`${CALLER_ID} in ${CONTEXT_ID}`"),
                ("status", "pending"),
                ("caller_id", "bob"),
                ("context_id", "circle-9"),
                ("reply_queue_name", reply_queue.as_str()),
                ("created_at", "1795742788"),
            ],
        )
        .unwrap();
    let _: () = conn.lpush(format!("rhai_tasks:{circle}"), &task).unwrap();
    let (_, reply): (String, String) = redis::cmd("BLPOP")
        .arg(&reply_queue)
        .arg(10)
        .query(&mut conn)
        .unwrap();
    let reply: serde_json::Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(reply["status"], "completed");
    assert_eq!(reply["output"], "bob in circle-9");
    let status: String = conn
        .hget(format!("rhai_task_details:{task}"), "status")
        .unwrap();
    assert_eq!(status, "completed");
    pool.shutdown(Duration::from_secs(1)).unwrap();
}

#[test]
fn a_dead_runners_jobs_are_requeued_by_the_reaper() {
    let redis = TestRedis::start();
    let actor = unique("actor");
    let mut conn = redis.conn();
    // A runner that took three jobs, started two of them, and died: its heartbeat is gone,
    // its processing list not.
    let dead = store(&redis, Profile::Hero);
    dead.heartbeat(&actor).unwrap();
    let ids: Vec<String> = (0..3)
        .map(|i| {
            let job = Job::builder(format!("{i}"))
                .actor_id(&actor)
                .retries(1)
                .backoff(Duration::ZERO)
                .build()
                .unwrap();
            let id = job.id.clone();
            dead.submit(job).unwrap();
            id
        })
        .collect();
    let start = |store: &RedisStore, job: &mut Job| {
        job.attempts += 1;
        job.status = JobStatus::Started;
        job.started_at = Some(std::time::SystemTime::now());
        store.start(job).unwrap();
    };
    let mut taken = dead.take(&actor, 10, Duration::from_secs(1)).unwrap();
    assert_eq!(taken.len(), 3);
    assert!(taken.iter().all(|job| job.attempts == 0));
    start(&dead, &mut taken[0]);
    start(&dead, &mut taken[1]);
    let hash: HashMap<String, String> = conn.hgetall(format!("hero:job:{}", ids[0])).unwrap();
    assert_eq!(
        (hash["status"].as_str(), hash["attempts"].as_str()),
        ("started", "1")
    );
    let _: () = conn
        .del(format!("hero:runner:{}:heartbeat", dead.runner_id()))
        .unwrap();
    // Another runner reaps: the job never started goes straight back to the queue, using no
    // retry; the two that were running failed a run: they wait their backoff (none here) in
    // the delayed set, their error noted.
    let alive = store(&redis, Profile::Hero);
    alive.heartbeat(&actor).unwrap();
    assert_eq!(alive.reap(&actor).unwrap(), (3, 0));
    assert_eq!(alive.queued(&actor).unwrap(), 1);
    let delayed: usize = conn.zcard(format!("hero:job:delayed:{actor}")).unwrap();
    assert_eq!(delayed, 2);
    let job = alive.get(&ids[0]).unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Dispatched);
    assert_eq!(job.attempts, 1);
    assert_eq!(job.errors.len(), 1, "{job:?}");
    assert!(
        job.errors[0]
            .error
            .contains("its runner died while running it"),
        "{job:?}"
    );
    assert!(alive.get(&ids[2]).unwrap().unwrap().errors.is_empty());
    let mut retaken = alive.take(&actor, 10, Duration::from_secs(1)).unwrap();
    while retaken.len() < 3 {
        retaken.extend(alive.take(&actor, 10, Duration::from_secs(1)).unwrap());
    }
    let mut got: Vec<String> = retaken.iter().map(|j| j.id.clone()).collect();
    got.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(got, want);
    for job in &mut retaken {
        start(&alive, job);
    }
    // It dies too, all three running: the two on their second run have no retry left and
    // fail for good (listed dead); the third, on its first, waits for another run.
    let _: () = conn
        .del(format!("hero:runner:{}:heartbeat", alive.runner_id()))
        .unwrap();
    let third = store(&redis, Profile::Hero);
    third.heartbeat(&actor).unwrap();
    assert_eq!(third.reap(&actor).unwrap(), (1, 2));
    let job = third.get(&ids[0]).unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Error);
    assert_eq!(job.attempts, 2);
    assert_eq!(job.errors.len(), 2, "{job:?}");
    assert!(job.error.unwrap().contains("no retries left"));
    let reply: Vec<String> = conn
        .lrange(format!("hero:reply:{}", ids[0]), 0, -1)
        .unwrap();
    assert_eq!(reply, ["error"]);
    let mut dead_ids: Vec<String> = conn
        .zrange(format!("hero:job:dead:{actor}"), 0, -1)
        .unwrap();
    dead_ids.sort();
    let mut want = vec![ids[0].clone(), ids[1].clone()];
    want.sort();
    assert_eq!(dead_ids, want);
    let ttl: i64 = conn.ttl(format!("hero:job:dead:{actor}")).unwrap();
    assert!(ttl > 0, "the dead set expires: {ttl}");
    assert_eq!(
        third.get(&ids[2]).unwrap().unwrap().status,
        JobStatus::Dispatched
    );
    // A live runner's jobs are left alone.
    assert_eq!(third.reap(&actor).unwrap(), (0, 0));
}

#[test]
fn the_reaper_answers_a_failed_rhailib_task_with_json_on_its_reply_queue() {
    let redis = TestRedis::start();
    let circle = unique("circle");
    let mut conn = redis.conn();
    let dead = store(&redis, Profile::Rhailib);
    dead.heartbeat(&circle).unwrap();
    let task = Job::builder("1").actor_id(&circle).build().unwrap();
    let id = task.id.clone();
    dead.submit(task).unwrap();
    let mut taken = dead.take(&circle, 1, Duration::from_secs(1)).unwrap();
    assert_eq!(taken.len(), 1);
    // It was running when its runner died.
    taken[0].attempts = 1;
    dead.start(&taken[0]).unwrap();
    let _: () = conn
        .del(format!("rhai:runner:{}:heartbeat", dead.runner_id()))
        .unwrap();
    // No retries: the reaper ends it, and answers as a runner would.
    let alive = store(&redis, Profile::Rhailib);
    assert_eq!(alive.reap(&circle).unwrap(), (0, 1));
    // Kept as long as any reply (a day by default), not for ever.
    let ttl: i64 = conn.ttl(format!("rhai_reply:{id}")).unwrap();
    assert!((86_000..=86_400).contains(&ttl), "{ttl}");
    let reply: String = conn.lpop(format!("rhai_reply:{id}"), None).unwrap();
    let reply: serde_json::Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(reply["task_id"], id.as_str());
    assert_eq!(reply["status"], "error");
    assert_eq!(reply["output"], serde_json::Value::Null);
    // Listed dead in the circle's own dead set.
    let dead_ids: Vec<String> = conn.zrange(format!("rhai_dead:{circle}"), 0, -1).unwrap();
    assert_eq!(dead_ids, std::slice::from_ref(&id));
    assert!(
        reply["error"]
            .as_str()
            .unwrap()
            .contains("its runner died while running it"),
        "{reply}"
    );
}

#[test]
fn malformed_jobs_end_in_error_or_are_skipped_and_the_runner_goes_on() {
    let redis = TestRedis::start();
    let rt = runtime();
    let actor = unique("actor");
    let store = store(&redis, Profile::Hero);
    let pool = rhai_pool(&rt, store.clone(), &actor, 1);
    let mut conn = redis.conn();
    let queue = format!("hero:job:actor_queue:{actor}");
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Option<&'a str>);
    let cases: Vec<Case> = vec![
        (
            "no-script",
            vec![("status", "dispatched")],
            Some("field `script`: missing"),
        ),
        (
            "bad-timeout",
            vec![("script", "1"), ("timeout", "soon")],
            Some("field `timeout`"),
        ),
        (
            "bad-env",
            vec![("script", "1"), ("env_vars", "[1,2]")],
            Some("field `env_vars`"),
        ),
        (
            "bad-status",
            vec![("script", "1"), ("status", "paused")],
            Some("unknown status"),
        ),
        (
            "zero-timeout",
            vec![("script", "1"), ("timeout", "0")],
            Some("field `timeout`"),
        ),
    ];
    for (name, fields, _) in &cases {
        let id = format!("{name}-{actor}");
        let _: () = conn
            .hset_multiple(format!("hero:job:{id}"), fields)
            .unwrap();
        let _: () = conn.lpush(&queue, &id).unwrap();
    }
    // An id with no hash, and a key of the wrong type.
    let _: () = conn.lpush(&queue, format!("gone-{actor}")).unwrap();
    let _: () = conn
        .set(format!("hero:job:wrongtype-{actor}"), "a string")
        .unwrap();
    let _: () = conn.lpush(&queue, format!("wrongtype-{actor}")).unwrap();
    // And a good job after them all.
    let good = Job::builder("6 * 7").actor_id(&actor).build().unwrap();
    let good_id = good.id.clone();
    store.submit(good).unwrap();
    assert_eq!(
        store.wait(&good_id, SAFETY).unwrap().output.as_deref(),
        Some("42")
    );
    for (name, _, message) in &cases {
        let hash: HashMap<String, String> =
            conn.hgetall(format!("hero:job:{name}-{actor}")).unwrap();
        assert_eq!(hash["status"], "error", "{name}");
        assert!(
            hash["error"].contains(message.unwrap()),
            "{name}: {}",
            hash["error"]
        );
    }
    // Skipped ones left nothing behind in the processing list.
    let processing: usize = conn
        .llen(format!("hero:processing:{actor}:{}", store.runner_id()))
        .unwrap();
    assert_eq!(processing, 0);
    let value: String = conn.get(format!("hero:job:wrongtype-{actor}")).unwrap();
    assert_eq!(
        value, "a string",
        "a key of the wrong type is not overwritten"
    );
    pool.shutdown(Duration::from_secs(1)).unwrap();
}

#[test]
fn next_stop_pops_the_stop_queue_and_cancel_ends_the_running_job() {
    let redis = TestRedis::start();
    let rt = runtime();
    let actor = unique("actor");
    let store = store(&redis, Profile::Hero);
    let pool = rhai_pool(&rt, store.clone(), &actor, 1);
    let job = long_job(&actor);
    let id = job.id.clone();
    store.submit(job).unwrap();
    wait_started(&store, &id);
    let mut conn = redis.conn();
    let _: () = conn.lpush(format!("hero:stop_queue:{actor}"), &id).unwrap();
    let stop = store.next_stop(&actor, Duration::from_secs(1)).unwrap();
    assert_eq!(stop.as_deref(), Some(id.as_str()));
    pool.cancel(&id);
    let job = store.wait(&id, SAFETY).unwrap();
    assert_eq!(job.status, JobStatus::Error);
    assert_eq!(job.error.as_deref(), Some("cancelled"));
    pool.shutdown(Duration::from_secs(1)).unwrap();
}

#[test]
fn a_stop_popped_by_another_runner_is_passed_on_to_the_runner_running_the_job() {
    let redis = TestRedis::start();
    let rt = runtime();
    let actor = unique("actor");
    let runner = start_runner(&rt, &redis, &actor, 1, |_| {}, None);
    let job = long_job(&actor);
    let id = job.id.clone();
    runner.store().submit(job).unwrap();
    wait_started(runner.store(), &id);
    // The runner is listed among the actor's runners once its first heartbeat is written.
    let mut conn = redis.conn();
    let start = std::time::Instant::now();
    while !conn
        .sismember::<_, _, bool>(format!("hero:runners:{actor}"), runner.store().runner_id())
        .unwrap()
    {
        assert!(start.elapsed() < SAFETY);
        std::thread::sleep(Duration::from_millis(5));
    }
    // Another runner (it holds nothing) pops the stop.
    let other = store(&redis, Profile::Hero);
    assert_eq!(
        other.route_stop(&actor, &id).unwrap(),
        StopRoute::Forwarded {
            runner: runner.store().runner_id().to_string()
        }
    );
    let job = other.wait(&id, SAFETY).unwrap();
    assert_eq!(job.status, JobStatus::Error);
    assert_eq!(job.error.as_deref(), Some("cancelled"));
    assert_eq!(other.route_stop(&actor, &id).unwrap(), StopRoute::Ended);
    runner.shutdown(Duration::from_secs(1)).unwrap();
}

#[test]
fn a_stop_for_a_queued_job_cancels_it_before_it_runs() {
    let redis = TestRedis::start();
    let actor = unique("actor");
    let store = store(&redis, Profile::Hero);
    let job = Job::builder("40 + 2").actor_id(&actor).build().unwrap();
    let id = job.id.clone();
    store.submit(job).unwrap();
    assert_eq!(
        store.route_stop(&actor, &id).unwrap(),
        StopRoute::Cancelled { dead_runner: None }
    );
    let job = store.get(&id).unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Error);
    assert_eq!(job.error.as_deref(), Some("cancelled"));
    assert_eq!(job.output, None);
    let mut conn = redis.conn();
    let queued: usize = conn.llen(format!("hero:job:actor_queue:{actor}")).unwrap();
    let held: usize = conn
        .llen(format!("hero:processing:{actor}:{}", store.runner_id()))
        .unwrap();
    assert_eq!((queued, held), (0, 0));
    let reply: Vec<String> = conn.lrange(format!("hero:reply:{id}"), 0, -1).unwrap();
    assert_eq!(reply, ["error"]);
    // A second stop finds it ended; an id with no job is unknown.
    assert_eq!(store.route_stop(&actor, &id).unwrap(), StopRoute::Ended);
    assert_eq!(
        store.route_stop(&actor, "no-such-job").unwrap(),
        StopRoute::Unknown
    );
    // A job queued for another actor is not this actor's to cancel.
    let elsewhere = Job::builder("1").actor_id(unique("other")).build().unwrap();
    let elsewhere_id = elsewhere.id.clone();
    store.submit(elsewhere).unwrap();
    assert_eq!(
        store.route_stop(&actor, &elsewhere_id).unwrap(),
        StopRoute::NotFound
    );
    assert_eq!(
        store.status(&elsewhere_id).unwrap(),
        Some(JobStatus::Dispatched)
    );
    // The same in the rhailib profile: its reply is JSON on the task's reply queue.
    let rhailib = self::store(&redis, Profile::Rhailib);
    let task = Job::builder("1").actor_id(&actor).build().unwrap();
    let task_id = task.id.clone();
    rhailib.submit(task).unwrap();
    assert_eq!(
        rhailib.route_stop(&actor, &task_id).unwrap(),
        StopRoute::Cancelled { dead_runner: None }
    );
    let reply: String = conn.lpop(format!("rhai_reply:{task_id}"), None).unwrap();
    let reply: serde_json::Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(reply["status"], "error");
    assert_eq!(reply["error"], "cancelled");
}

#[test]
fn a_stop_for_a_job_held_by_a_dead_runner_cancels_it_instead_of_letting_it_run_again() {
    let redis = TestRedis::start();
    let actor = unique("actor");
    // A runner that took a job, listed among the actor's runners, whose heartbeat is gone.
    let dead = store(&redis, Profile::Hero);
    let job = Job::builder("40 + 2")
        .actor_id(&actor)
        .retries(3)
        .build()
        .unwrap();
    let id = job.id.clone();
    dead.submit(job).unwrap();
    let taken = dead.take(&actor, 1, Duration::from_secs(1)).unwrap();
    assert_eq!(taken.len(), 1);
    let mut conn = redis.conn();
    let _: () = conn
        .sadd(format!("hero:runners:{actor}"), dead.runner_id())
        .unwrap();
    let other = store(&redis, Profile::Hero);
    assert_eq!(
        other.route_stop(&actor, &id).unwrap(),
        StopRoute::Cancelled {
            dead_runner: Some(dead.runner_id().to_string())
        }
    );
    let job = other.get(&id).unwrap().unwrap();
    assert_eq!(job.error.as_deref(), Some("cancelled"));
    // Nothing is left for the reaper to run again, and the runner is told, should it be
    // alive after all.
    let held: usize = conn
        .llen(format!("hero:processing:{actor}:{}", dead.runner_id()))
        .unwrap();
    assert_eq!(held, 0);
    let told: Vec<String> = conn
        .lrange(format!("hero:runner:{}:control", dead.runner_id()), 0, -1)
        .unwrap();
    assert_eq!(told, [format!("stop {id}")]);
    assert_eq!(other.reap(&actor).unwrap(), (0, 0));
}

#[test]
fn stops_in_the_shared_stop_queue_reach_their_jobs_whichever_runner_pops_them() {
    let redis = TestRedis::start();
    let rt = runtime();
    let actor = unique("actor");
    let runners: Vec<Runner> = (0..2)
        .map(|_| {
            // One job per batch: each runner runs two and takes two ahead (its default
            // prefetch), so two of the ten stay in the queue.
            let tune = |pool: &mut PoolConfig| pool.max_batch = 1;
            start_runner(&rt, &redis, &actor, 2, tune, None)
        })
        .collect();
    let ids: Vec<String> = (0..10)
        .map(|_| {
            let job = long_job(&actor);
            let id = job.id.clone();
            runners[0].store().submit(job).unwrap();
            id
        })
        .collect();
    // Four run (one per worker: `started`), four wait in the runners (taken, not started:
    // still `dispatched`), two in the queue.
    let mut conn = redis.conn();
    let queue = format!("hero:job:actor_queue:{actor}");
    let start = std::time::Instant::now();
    loop {
        let running = ids
            .iter()
            .filter(|id| runners[0].store().status(id).unwrap() == Some(JobStatus::Started))
            .count();
        let waiting: usize = conn.llen(&queue).unwrap();
        if running == 4 && waiting == 2 {
            break;
        }
        assert!(
            start.elapsed() < SAFETY,
            "{running} running, {waiting} queued"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let queued: Vec<String> = conn.lrange(&queue, 0, -1).unwrap();
    assert_eq!(queued.len(), 2);
    let queued: Vec<&String> = queued.iter().collect();
    let stop_queue = format!("hero:stop_queue:{actor}");
    let ended = |id: &String| {
        let job = runners[0].store().wait(id, SAFETY).unwrap();
        assert_eq!(job.status, JobStatus::Error, "{job:?}");
        assert_eq!(job.error.as_deref(), Some("cancelled"), "{job:?}");
    };
    // The queued ones first (a worker freed by a stop would take them): they never run.
    for id in &queued {
        let _: () = conn.lpush(&stop_queue, *id).unwrap();
    }
    for id in &queued {
        ended(id);
        let started: Option<String> = conn.hget(format!("hero:job:{id}"), "started_at").unwrap();
        assert_eq!(started, None, "{id}");
    }
    // Then the rest: the runners pop them in turn, whatever runner holds each job.
    for id in ids.iter().rev() {
        let _: () = conn.lpush(&stop_queue, id).unwrap();
    }
    for id in &ids {
        ended(id);
    }
    for runner in &runners {
        runner.shutdown(Duration::from_secs(1)).unwrap();
    }
}

#[test]
fn a_shutdown_gives_unfinished_jobs_back_to_the_queue() {
    let redis = TestRedis::start();
    let rt = runtime();
    let actor = unique("actor");
    let store = store(&redis, Profile::Hero);
    let pool = rhai_pool(&rt, store.clone(), &actor, 1);
    let long = long_job(&actor);
    let id = long.id.clone();
    store.submit(long).unwrap();
    wait_started(&store, &id);
    pool.shutdown(Duration::from_millis(200)).unwrap();
    assert_eq!(store.status(&id).unwrap(), Some(JobStatus::Dispatched));
    assert_eq!(store.queued(&actor).unwrap(), 1);
}

#[test]
fn redis_urls_with_a_password_work() {
    let redis = TestRedis::start();
    let mut conn = redis.conn();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg("s3cret")
        .query(&mut conn)
        .unwrap();
    let url = if let Some(path) = redis.url.strip_prefix("redis+unix://") {
        format!("redis+unix://{path}?pass=s3cret")
    } else {
        redis.url.replacen("redis://", "redis://:s3cret@", 1)
    };
    let mut config = RedisConfig::new(url);
    config.profile = Profile::Hero;
    let store = RedisStore::new(config).unwrap();
    let job = Job::builder("1").actor_id(unique("actor")).build().unwrap();
    store.submit(job.clone()).unwrap();
    assert_eq!(store.get(&job.id).unwrap().unwrap().script, "1");
}

#[test]
fn a_runner_resizes_its_pool_on_a_control_command_and_heartbeats() {
    let redis = TestRedis::start();
    let rt = runtime();
    let actor = unique("actor");
    let runner = start_runner(
        &rt,
        &redis,
        &actor,
        1,
        |_| {},
        Some(Duration::from_millis(600)),
    );
    let mut conn = redis.conn();
    let me = runner.store().runner_id().to_string();
    let start = std::time::Instant::now();
    // The bridge keeps the heartbeat alive and lists the runner.
    loop {
        let alive: bool = conn.exists(format!("hero:runner:{me}:heartbeat")).unwrap();
        let listed: bool = conn
            .sismember(format!("hero:runners:{actor}"), &me)
            .unwrap();
        if alive && listed {
            break;
        }
        assert!(start.elapsed() < SAFETY);
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let alive: bool = conn.exists(format!("hero:runner:{me}:heartbeat")).unwrap();
    assert!(alive, "refreshed beyond its time to live");
    let _: () = conn
        .lpush(format!("hero:runner:{me}:control"), "workers 3")
        .unwrap();
    while runner.pool().workers().unwrap().len() != 3 {
        assert!(start.elapsed() < SAFETY);
        std::thread::sleep(Duration::from_millis(10));
    }
    let _: () = conn
        .lpush(format!("hero:runner:{me}:control"), "workers 1")
        .unwrap();
    while runner.pool().workers().unwrap().len() != 1 {
        assert!(start.elapsed() < SAFETY);
        std::thread::sleep(Duration::from_millis(10));
    }
    runner.shutdown(Duration::from_secs(1)).unwrap();
}

#[test]
fn a_crashed_pool_is_restarted_and_gives_back_what_it_held() {
    let redis = TestRedis::start();
    let rt = runtime();
    let actor = unique("actor");
    let runner = start_runner(&rt, &redis, &actor, 2, |pool| pool.max_batch = 8, None);
    let store = runner.store().clone();
    let ids: Vec<String> = (0..300)
        .map(|i| {
            let script = format!("let x = 0; for i in 0..300 {{ x += i; }} x + {i}");
            let job = Job::builder(script)
                .actor_id(&actor)
                .retries(3)
                .build()
                .unwrap();
            let id = job.id.clone();
            store.submit(job).unwrap();
            id
        })
        .collect();
    let first = runner.pool().pid().unwrap();
    std::thread::sleep(Duration::from_millis(30));
    rt.handle().exit(first, baobab::ExitReason::Kill);
    for (i, id) in ids.iter().enumerate() {
        let job = store.wait(id, SAFETY).unwrap();
        assert_eq!(job.status, JobStatus::Finished, "{job:?}");
        assert_eq!(job.output, Some((44_850 + i).to_string()));
    }
    // The jobs may all have ended before the restart did: wait for the new dispatcher.
    let start = Instant::now();
    let second = loop {
        if let Some(pid) = runner.pool().pid()
            && pid != first
        {
            break pid;
        }
        assert!(start.elapsed() < SAFETY, "no new dispatcher");
        std::thread::sleep(Duration::from_millis(1));
    };
    assert_ne!(first, second, "the supervisor started a new dispatcher");
    runner.shutdown(Duration::from_secs(1)).unwrap();
}

#[test]
fn a_runner_shutting_down_keeps_its_heartbeat_so_its_running_jobs_are_not_reaped() {
    let redis = TestRedis::start();
    let rt = runtime();
    let actor = unique("actor");
    let runner = start_runner(
        &rt,
        &redis,
        &actor,
        1,
        |_| {},
        Some(Duration::from_millis(500)),
    );
    let job = long_job(&actor);
    let id = job.id.clone();
    runner.store().submit(job).unwrap();
    wait_started(runner.store(), &id);
    // Another runner reaps all through the shutdown's grace period, which outlasts the
    // heartbeat's time to live several times.
    let other = store(&redis, Profile::Hero);
    let reaper_actor = actor.clone();
    let reaper = std::thread::spawn(move || {
        let mut reaped = (0, 0);
        let until = std::time::Instant::now() + Duration::from_millis(2500);
        while std::time::Instant::now() < until {
            let (moved, failed) = other.reap(&reaper_actor).unwrap();
            reaped = (reaped.0 + moved, reaped.1 + failed);
            std::thread::sleep(Duration::from_millis(50));
        }
        reaped
    });
    runner.shutdown(Duration::from_secs(2)).unwrap();
    assert_eq!(
        reaper.join().unwrap(),
        (0, 0),
        "nothing reaped from a live runner"
    );
    // Not finished within the grace: given back, untouched by any reaper.
    let mut conn = redis.conn();
    let hash: HashMap<String, String> = conn.hgetall(format!("hero:job:{id}")).unwrap();
    assert_eq!(hash["status"], "dispatched");
    assert!(!hash.contains_key("requeues"));
    let queued: Vec<String> = conn
        .lrange(format!("hero:job:actor_queue:{actor}"), 0, -1)
        .unwrap();
    assert_eq!(queued, [id]);
}

/// A TCP proxy to a unix-socket Redis that, on the `drop_at`-th `EXEC` it forwards, lets the
/// server run it but cuts the client's connection before the reply: a write whose reply is
/// lost. Returns the proxy's `redis://` URL.
fn reply_losing_proxy(socket: std::path::PathBuf, drop_at: usize) -> String {
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpListener};
    use std::os::unix::net::UnixStream;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://{}", listener.local_addr().unwrap());
    let execs = Arc::new(AtomicUsize::new(0));
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            let Ok(server) = UnixStream::connect(&socket) else {
                return;
            };
            let (mut from_client, mut to_client) = (client.try_clone().unwrap(), client);
            let (mut to_server, mut from_server) = (server.try_clone().unwrap(), server);
            let execs = Arc::clone(&execs);
            let cut = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let cut_replies = Arc::clone(&cut);
            std::thread::spawn(move || {
                let mut buf = [0u8; 16 * 1024];
                while let Ok(n) = from_client.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let text = String::from_utf8_lossy(&buf[..n]);
                    let seen = text.matches("EXEC\r\n").count();
                    let last =
                        seen > 0 && execs.fetch_add(seen, Ordering::SeqCst) + seen == drop_at;
                    if last {
                        // No reply reaches the client from here on.
                        cut.store(true, Ordering::SeqCst);
                    }
                    if to_server.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    if last {
                        // Let the server run it, then cut the client off.
                        std::thread::sleep(Duration::from_millis(100));
                        let _ = from_client.shutdown(Shutdown::Both);
                        let _ = to_server.shutdown(Shutdown::Both);
                        break;
                    }
                }
            });
            std::thread::spawn(move || {
                let mut buf = [0u8; 16 * 1024];
                while let Ok(n) = from_server.read(&mut buf) {
                    if n == 0
                        || cut_replies.load(Ordering::SeqCst)
                        || to_client.write_all(&buf[..n]).is_err()
                    {
                        break;
                    }
                }
            });
        }
    });
    url
}

#[test]
fn a_submit_whose_reply_is_lost_is_retried_and_reported_done_not_duplicate() {
    let dir = std::env::temp_dir().join(unique("lost-reply"));
    std::fs::create_dir_all(&dir).unwrap();
    let redis = TestRedis::at(dir.clone());
    // The submit runs two transactions: the existence check, then the write. The write's
    // reply is the one lost.
    let url = reply_losing_proxy(TestRedis::socket_in(&dir), 2);
    let store = RedisStore::new(RedisConfig::new(&url)).unwrap();
    let actor = unique("actor");
    let job = Job::builder("40 + 2").actor_id(&actor).build().unwrap();
    let id = job.id.clone();
    store.submit(job).unwrap();
    // Written once: one hash, one queue entry.
    let mut conn = redis.conn();
    let queued: Vec<String> = conn
        .lrange(format!("hero:job:actor_queue:{actor}"), 0, -1)
        .unwrap();
    assert_eq!(queued, std::slice::from_ref(&id));
    // Another job under the same id is still a duplicate.
    let again = Job::builder("1 + 1")
        .id(&id)
        .actor_id(&actor)
        .build()
        .unwrap();
    assert!(matches!(
        store.submit(again),
        Err(baobab::jobs::StoreError::Duplicate(_))
    ));
}

/// A pool whose dispatcher is killed may leave a take running on the blocking pool; the new
/// dispatcher's `recover` must wait for it, or the ids that take moves stay in the processing
/// list, counted in flight, with no one to run them.
#[test]
fn recover_waits_for_a_take_still_running_and_gives_back_what_it_took() {
    let redis = TestRedis::start();
    let actor = unique("actor");
    let store = store(&redis, Profile::Hero);
    store.heartbeat(&actor).unwrap();
    // The killed dispatcher's take: waiting on an empty queue.
    let taker = {
        let (store, actor) = (Arc::clone(&store), actor.clone());
        std::thread::spawn(move || store.take(&actor, 10, Duration::from_secs(5)).unwrap())
    };
    std::thread::sleep(Duration::from_millis(200));
    // The new dispatcher's recover starts while that take waits.
    let recovering = {
        let (store, actor) = (Arc::clone(&store), actor.clone());
        std::thread::spawn(move || store.recover(&actor).unwrap())
    };
    std::thread::sleep(Duration::from_millis(200));
    let job = Job::builder("1 + 1").actor_id(&actor).build().unwrap();
    let id = job.id.clone();
    store.submit(job).unwrap();
    // The take gets the job; its dispatcher is dead, so nobody receives it.
    let taken = taker.join().unwrap();
    assert_eq!(taken.len(), 1);
    drop(taken);
    assert_eq!(
        recovering.join().unwrap(),
        1,
        "recover gave the taken job back"
    );
    let mut conn = redis.conn();
    let processing: Vec<String> = conn
        .lrange(store.keys().processing(&actor, store.runner_id()), 0, -1)
        .unwrap();
    assert!(processing.is_empty(), "left in processing: {processing:?}");
    let again = store.take(&actor, 10, Duration::from_secs(1)).unwrap();
    assert_eq!(
        again.iter().map(|j| j.id.clone()).collect::<Vec<_>>(),
        vec![id]
    );
}
