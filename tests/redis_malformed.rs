//! Bad data in Redis is bad data, not a lost connection: job hash fields and queued ids that
//! are not UTF-8 (or no valid id) end their job `error` or are dropped, and the queue goes
//! on; reading such a hash fails or reads lossily at once, never retries.
#![cfg(feature = "redis")]

mod common;

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use baobab::bridge::{Client, Profile, RedisConfig, RedisStore, Runner, RunnerConfig};
use baobab::jobs::{Job, JobStatus, JobStore, PoolConfig};
use baobab::script::SandboxConfig;
use common::redis_server::{TestRedis, unique};
use common::{SAFETY, runtime};
use redis::Commands;

/// A runner (two workers) serving `actor` in `profile`.
fn start_runner(rt: &baobab::Runtime, redis: &TestRedis, actor: &str, profile: Profile) -> Runner {
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

/// `HSET key` with fields of any bytes.
fn hset(conn: &mut redis::Connection, key: &[u8], fields: &[(&str, &[u8])]) {
    let mut cmd = redis::cmd("HSET");
    cmd.arg(key);
    for (field, value) in fields {
        cmd.arg(*field).arg(*value);
    }
    let _: () = cmd.query(conn).unwrap();
}

/// Queues a good job behind whatever is queued and waits for its reply: the queue went on.
fn good_job_finishes(store: &RedisStore, redis: &TestRedis, actor: &str) {
    let good = Job::builder("6 * 7").actor_id(actor).build().unwrap();
    let id = good.id.clone();
    store.submit(good).unwrap();
    let keys = store.keys();
    let (_, reply): (String, String) = redis::cmd("BLPOP")
        .arg(keys.reply(&id))
        .arg(SAFETY.as_secs())
        .query(&mut redis.conn())
        .expect("the good job's reply");
    let output: Option<String> = redis.conn().hget(keys.job(&id), "output").unwrap();
    assert_eq!(output.as_deref(), Some("42"), "{reply}");
}

/// Runs `f` on a thread and returns its result, or fails the test if it takes longer than
/// `limit` (an operation retrying forever).
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, result) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(f());
    });
    result
        .recv_timeout(limit)
        .unwrap_or_else(|_| panic!("did not return within {limit:?}"))
}

#[test]
fn hero_fields_that_are_not_utf8_end_the_job_in_error_naming_the_field() {
    let redis = TestRedis::start();
    let rt = runtime();
    let actor = unique("actor");
    let runner = start_runner(&rt, &redis, &actor, Profile::Hero);
    let mut conn = redis.conn();
    let fields = [
        "script",
        "status",
        "timeout",
        "retries",
        "env_vars",
        "created_at",
        "caller_id",
        "context_id",
        "actor_id",
    ];
    let ids: Vec<String> = fields
        .iter()
        .map(|bad| {
            let id = unique(&format!("bad-{bad}"));
            let good: [(&str, &[u8]); 9] = [
                ("script", b"1"),
                ("status", b"dispatched"),
                ("timeout", b"10"),
                ("retries", b"0"),
                ("env_vars", b"{}"),
                ("created_at", b"2026-01-01T00:00:00Z"),
                ("caller_id", b"alice"),
                ("context_id", b"c1"),
                ("actor_id", actor.as_bytes()),
            ];
            let hash: Vec<(&str, &[u8])> = good
                .iter()
                .map(|&(field, value)| {
                    if field == *bad {
                        (field, &b"x\xff\xfey"[..])
                    } else {
                        (field, value)
                    }
                })
                .collect();
            hset(&mut conn, format!("hero:job:{id}").as_bytes(), &hash);
            let _: () = conn
                .lpush(format!("hero:job:actor_queue:{actor}"), &id)
                .unwrap();
            id
        })
        .collect();
    good_job_finishes(runner.store(), &redis, &actor);
    for (field, id) in fields.iter().zip(&ids) {
        let start = std::time::Instant::now();
        loop {
            let status: Option<String> = conn.hget(format!("hero:job:{id}"), "status").unwrap();
            if status.as_deref() == Some("error") {
                break;
            }
            assert!(start.elapsed() < SAFETY, "{field}: {status:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
        let error: String = conn.hget(format!("hero:job:{id}"), "error").unwrap();
        assert_eq!(
            error,
            format!("malformed job hash: field `{field}`: not valid UTF-8")
        );
        let reply: Vec<String> = conn.lrange(format!("hero:reply:{id}"), 0, -1).unwrap();
        assert_eq!(reply, ["error"], "{field}");
    }
    let held: usize = conn
        .llen(format!(
            "hero:processing:{actor}:{}",
            runner.store().runner_id()
        ))
        .unwrap();
    assert_eq!(held, 0);
    runner.shutdown(Duration::from_secs(1)).unwrap();
}

#[test]
fn rhailib_fields_that_are_not_utf8_end_the_task_in_error_with_its_json_reply() {
    let redis = TestRedis::start();
    let rt = runtime();
    let circle = unique("circle");
    let runner = start_runner(&rt, &redis, &circle, Profile::Rhailib);
    let mut conn = redis.conn();
    // The reply queue's name itself is not UTF-8: the reply goes there all the same.
    let bad_queue = [b"reply-\xff-".as_slice(), circle.as_bytes()].concat();
    let named_bad = unique("task");
    hset(
        &mut conn,
        format!("rhai_task_details:{named_bad}").as_bytes(),
        &[
            ("script", b"1"),
            ("status", b"pending"),
            ("reply_queue_name", &bad_queue),
        ],
    );
    let script_bad = unique("task");
    let good_queue = unique("reply");
    hset(
        &mut conn,
        format!("rhai_task_details:{script_bad}").as_bytes(),
        &[
            ("script", b"\xc3\x28"),
            ("status", b"pending"),
            ("reply_queue_name", good_queue.as_bytes()),
        ],
    );
    for task in [&named_bad, &script_bad] {
        let _: () = conn.lpush(format!("rhai_tasks:{circle}"), task).unwrap();
    }
    good_job_finishes(runner.store(), &redis, &circle);
    let reply_on = |conn: &mut redis::Connection, queue: &[u8]| -> serde_json::Value {
        let (_, reply): (Vec<u8>, Vec<u8>) =
            redis::cmd("BLPOP").arg(queue).arg(10).query(conn).unwrap();
        serde_json::from_slice(&reply).unwrap()
    };
    let reply = reply_on(&mut conn, &bad_queue);
    assert_eq!(reply["task_id"], named_bad.as_str());
    assert_eq!(reply["status"], "error");
    assert_eq!(
        reply["error"],
        "malformed job hash: field `reply_queue_name`: not valid UTF-8"
    );
    let reply = reply_on(&mut conn, good_queue.as_bytes());
    assert_eq!(reply["task_id"], script_bad.as_str());
    assert_eq!(
        reply["error"],
        "malformed job hash: field `script`: not valid UTF-8"
    );
    let status: String = conn
        .hget(format!("rhai_task_details:{script_bad}"), "status")
        .unwrap();
    assert_eq!(status, "error");
    runner.shutdown(Duration::from_secs(1)).unwrap();
}

#[test]
fn queued_ids_that_are_no_job_ids_are_dropped_and_the_queue_goes_on() {
    let redis = TestRedis::start();
    let rt = runtime();
    let actor = unique("actor");
    let runner = start_runner(&rt, &redis, &actor, Profile::Hero);
    let mut conn = redis.conn();
    let tag = unique("id");
    let long = format!("{tag}-{}", "x".repeat(300));
    // (id, whether a hash is there)
    let ids: Vec<(Vec<u8>, bool)> = vec![
        ([tag.as_bytes(), b"-\xff\xfe"].concat(), false),
        ([tag.as_bytes(), b"-\xc3\x28-hashed"].concat(), true),
        (long.into_bytes(), true),
        (format!("{tag} with space").into_bytes(), true),
        (format!("{tag}-control\u{7}").into_bytes(), false),
        (Vec::new(), false),
    ];
    let queue = format!("hero:job:actor_queue:{actor}");
    for (id, hashed) in &ids {
        if *hashed {
            let key = [b"hero:job:".as_slice(), id].concat();
            hset(
                &mut conn,
                &key,
                &[("script", b"1"), ("status", b"dispatched")],
            );
        }
        let _: () = redis::cmd("LPUSH")
            .arg(&queue)
            .arg(id.as_slice())
            .query(&mut conn)
            .unwrap();
    }
    good_job_finishes(runner.store(), &redis, &actor);
    // Nothing left behind: not in the queue, not in the processing list.
    let queued: usize = conn.llen(&queue).unwrap();
    let held: usize = conn
        .llen(format!(
            "hero:processing:{actor}:{}",
            runner.store().runner_id()
        ))
        .unwrap();
    assert_eq!((queued, held), (0, 0));
    // A hash under such an id ended `error`, saying why.
    for (id, hashed) in ids.iter().filter(|(_, hashed)| *hashed) {
        let key = [b"hero:job:".as_slice(), id].concat();
        let (status, error): (Option<String>, Option<String>) = redis::cmd("HMGET")
            .arg(&key)
            .arg("status")
            .arg("error")
            .query(&mut conn)
            .unwrap();
        assert_eq!(status.as_deref(), Some("error"), "{hashed}");
        assert!(
            error
                .as_deref()
                .unwrap_or("")
                .starts_with("malformed job id: "),
            "{error:?}"
        );
    }
    runner.shutdown(Duration::from_secs(1)).unwrap();
}

#[test]
fn a_job_whose_hash_names_another_actor_still_leaves_the_processing_list() {
    let redis = TestRedis::start();
    let rt = runtime();
    let actor = unique("actor");
    let runner = start_runner(&rt, &redis, &actor, Profile::Hero);
    let mut conn = redis.conn();
    let id = unique("elsewhere");
    hset(
        &mut conn,
        format!("hero:job:{id}").as_bytes(),
        &[
            ("script", b"40 + 2"),
            ("status", b"dispatched"),
            ("actor_id", b"some-other-actor"),
        ],
    );
    let _: () = conn
        .lpush(format!("hero:job:actor_queue:{actor}"), &id)
        .unwrap();
    let job = runner.store().wait(&id, SAFETY).unwrap();
    assert_eq!(job.output.as_deref(), Some("42"));
    good_job_finishes(runner.store(), &redis, &actor);
    let held: usize = conn
        .llen(format!(
            "hero:processing:{actor}:{}",
            runner.store().runner_id()
        ))
        .unwrap();
    assert_eq!(held, 0, "its id was taken from this actor's queue");
    runner.shutdown(Duration::from_secs(1)).unwrap();
}

#[test]
fn reading_a_hash_with_fields_not_utf8_reads_lossily_or_fails_at_once() {
    let redis = TestRedis::start();
    let mut conn = redis.conn();
    let mut config = RedisConfig::new(&redis.url);
    config.profile = Profile::Hero;
    let store = Arc::new(RedisStore::new(config).unwrap());
    let client = Arc::new(Client::new(&redis.url, Profile::Hero).unwrap());
    // An ended job whose output is not UTF-8: read with U+FFFD in its place.
    let ended = unique("ended");
    hset(
        &mut conn,
        format!("hero:job:{ended}").as_bytes(),
        &[
            ("script", b"1"),
            ("status", b"finished"),
            ("output", b"4\xff2"),
        ],
    );
    let _: () = conn
        .lpush(format!("hero:reply:{ended}"), "finished")
        .unwrap();
    let (s, id) = (store.clone(), ended.clone());
    let job = within(SAFETY, move || s.get(&id)).unwrap().unwrap();
    assert_eq!(job.output.as_deref(), Some("4\u{fffd}2"));
    let (s, id) = (store.clone(), ended.clone());
    let job = within(SAFETY, move || s.wait(&id, SAFETY)).unwrap();
    assert_eq!(job.status, JobStatus::Finished);
    let (c, id) = (client.clone(), ended.clone());
    let job = within(SAFETY, move || c.await_result(&id, SAFETY)).unwrap();
    assert_eq!(job.output.as_deref(), Some("4\u{fffd}2"));
    // A status that is not UTF-8 is no status: an error at once, from every reader.
    let broken = unique("broken");
    hset(
        &mut conn,
        format!("hero:job:{broken}").as_bytes(),
        &[("script", b"1"), ("status", b"fini\xffshed")],
    );
    let (s, id) = (store.clone(), broken.clone());
    assert!(within(SAFETY, move || s.get(&id)).is_err());
    let (s, id) = (store.clone(), broken.clone());
    assert!(within(SAFETY, move || s.status(&id)).is_err());
    let (s, id) = (store.clone(), broken.clone());
    assert!(within(SAFETY, move || s.wait(&id, SAFETY)).is_err());
    let (c, id) = (client.clone(), broken.clone());
    assert!(within(SAFETY, move || c.get(&id)).is_err());
    let (c, id) = (client.clone(), broken.clone());
    assert!(
        within(SAFETY, move || c
            .await_result(&id, Duration::from_millis(100)))
        .is_err()
    );
    // A reply that is not UTF-8 is put back as it was.
    let replied = unique("replied");
    hset(
        &mut conn,
        format!("hero:job:{replied}").as_bytes(),
        &[("script", b"1"), ("status", b"error")],
    );
    let _: () = redis::cmd("LPUSH")
        .arg(format!("hero:reply:{replied}"))
        .arg(&b"err\xffor"[..])
        .query(&mut conn)
        .unwrap();
    let (c, id) = (client.clone(), replied.clone());
    let job = within(SAFETY, move || c.await_result(&id, SAFETY)).unwrap();
    assert_eq!(job.status, JobStatus::Error);
    let reply: Vec<Vec<u8>> = conn.lrange(format!("hero:reply:{replied}"), 0, -1).unwrap();
    assert_eq!(reply, [b"err\xffor".to_vec()]);
    // A rhailib task names no actor: it is read all the same.
    let mut config = RedisConfig::new(&redis.url);
    config.profile = Profile::Rhailib;
    let rhailib = RedisStore::new(config).unwrap();
    let task = unique("task");
    hset(
        &mut conn,
        format!("rhai_task_details:{task}").as_bytes(),
        &[("script", b"1"), ("status", b"completed"), ("output", b"1")],
    );
    let task = within(SAFETY, move || rhailib.get(&task)).unwrap().unwrap();
    assert_eq!(task.status, JobStatus::Finished);
}
