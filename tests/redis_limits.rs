//! What a client stores is read within limits: a job hash's field over its size limit is not
//! read (its job ends `error` naming the field and its size, and the queue goes on), a value
//! at the limit is read, and a job's own timeout is cut to the runner's longest.
#![cfg(feature = "redis")]

mod common;

use std::time::{Duration, Instant};

use baobab::bridge::{MAX_FIELD_BYTES, Profile, RedisConfig, Runner, RunnerConfig};
use baobab::jobs::PoolConfig;
use baobab::script::SandboxConfig;
use common::redis_server::{TestRedis, unique};
use common::{SAFETY, runtime};
use redis::Commands;

/// The script limit the runners here are given (small, so tests stay light).
const SCRIPT_LIMIT: usize = 64 * 1024;

/// A runner (two workers) serving `actor` in `profile` with `SCRIPT_LIMIT` and `max_timeout`.
fn start_runner(
    rt: &baobab::Runtime,
    redis: &TestRedis,
    actor: &str,
    profile: Profile,
    max_timeout: Duration,
) -> Runner {
    let mut pool = PoolConfig::new(actor);
    pool.workers = 2;
    let mut redis_config = RedisConfig::new(&redis.url);
    redis_config.profile = profile;
    redis_config.max_script_bytes = SCRIPT_LIMIT;
    redis_config.max_timeout = max_timeout;
    let config = RunnerConfig {
        redis: redis_config,
        actor: actor.to_string(),
        pool,
        sandbox: SandboxConfig::default(),
        actors: None,
    };
    Runner::start(rt.handle(), config).unwrap()
}

/// A good Hero job hash, as field and value, with `field` set to `value`.
fn hero_hash(actor: &str, field: &str, value: Vec<u8>) -> Vec<(String, Vec<u8>)> {
    let mut hash: Vec<(String, Vec<u8>)> = [
        ("script", &b"40 + 2"[..]),
        ("status", b"dispatched"),
        ("timeout", b"10"),
        ("retries", b"0"),
        ("env_vars", b"{}"),
        ("created_at", b"2026-01-01T00:00:00Z"),
        ("caller_id", b"alice"),
        ("context_id", b"c1"),
        ("actor_id", actor.as_bytes()),
    ]
    .into_iter()
    .map(|(f, v)| (f.to_string(), v.to_vec()))
    .collect();
    for (f, v) in &mut hash {
        if f == field {
            *v = value.clone();
        }
    }
    hash
}

/// Stores `hash` under a fresh id and queues the id for `actor` (Hero keys).
fn queue_hero(conn: &mut redis::Connection, actor: &str, hash: &[(String, Vec<u8>)]) -> String {
    let id = unique("job");
    let mut cmd = redis::cmd("HSET");
    cmd.arg(format!("hero:job:{id}"));
    for (field, value) in hash {
        cmd.arg(field).arg(value);
    }
    let _: () = cmd.query(conn).unwrap();
    let _: () = conn
        .lpush(format!("hero:job:actor_queue:{actor}"), &id)
        .unwrap();
    id
}

/// Waits for the job hash at `key` to reach a final status; returns its status and error.
fn ended(conn: &mut redis::Connection, key: &str, done: &[&str]) -> (String, Option<String>) {
    let start = Instant::now();
    loop {
        let status: Option<String> = conn.hget(key, "status").unwrap();
        if let Some(status) = status.as_deref().filter(|s| done.contains(s)) {
            let error: Option<String> = conn.hget(key, "error").unwrap();
            return (status.to_string(), error);
        }
        assert!(start.elapsed() < SAFETY, "{key}: {status:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A script of exactly `size` bytes whose output is 42.
fn script_of(size: usize) -> Vec<u8> {
    let mut script = b"40 + 2".to_vec();
    script.resize(size, b' ');
    script
}

/// `env_vars` of exactly `size` bytes: one variable padded to fit.
fn env_of(size: usize) -> Vec<u8> {
    let head = br#"{"PAD":""#;
    let mut env = head.to_vec();
    env.resize(size - 2, b'x');
    env.extend_from_slice(br#""}"#);
    env
}

#[test]
fn hero_fields_over_their_limit_end_the_job_in_error_naming_field_and_size() {
    let redis = TestRedis::start();
    let rt = runtime();
    let actor = unique("actor");
    let runner = start_runner(&rt, &redis, &actor, Profile::Hero, Duration::from_secs(60));
    let mut conn = redis.conn();
    // Every field the runner reads, one byte over its limit; the script also far over it.
    let over = |field: &str| match field {
        "script" | "env_vars" => SCRIPT_LIMIT + 1,
        _ => MAX_FIELD_BYTES + 1,
    };
    let mut cases: Vec<(&str, usize)> = [
        "script",
        "env_vars",
        "status",
        "timeout",
        "retries",
        "created_at",
        "caller_id",
        "context_id",
        "actor_id",
    ]
    .into_iter()
    .map(|field| (field, over(field)))
    .collect();
    cases.push(("script", 32 << 20));
    let sent_before = sent_bytes(&mut conn);
    let ids: Vec<String> = cases
        .iter()
        .map(|&(field, size)| {
            let hash = hero_hash(&actor, field, vec![b'7'; size]);
            queue_hero(&mut conn, &actor, &hash)
        })
        .collect();
    // Values at the limit are read: such a job runs.
    let mut with_large_other_field = hero_hash(&actor, "context_id", vec![b'c'; 200]);
    with_large_other_field.push(("notes".to_string(), vec![b'n'; 1 << 20]));
    // A hash of many fields is checked field by field.
    let mut with_many_fields = hero_hash(&actor, "caller_id", b"bob".to_vec());
    for n in 0..200 {
        with_many_fields.push((format!("extra-{n}"), b"x".to_vec()));
    }
    let at_limit = [
        with_many_fields,
        hero_hash(&actor, "script", script_of(SCRIPT_LIMIT)),
        hero_hash(&actor, "env_vars", env_of(SCRIPT_LIMIT)),
        hero_hash(&actor, "caller_id", vec![b'a'; 200]),
        with_large_other_field,
    ];
    let good: Vec<String> = at_limit
        .iter()
        .map(|hash| queue_hero(&mut conn, &actor, hash))
        .collect();
    for ((field, size), id) in cases.iter().zip(&ids) {
        let (status, error) = ended(&mut conn, &format!("hero:job:{id}"), &["error", "finished"]);
        let limit = if matches!(*field, "script" | "env_vars") {
            SCRIPT_LIMIT
        } else {
            MAX_FIELD_BYTES
        };
        assert_eq!(status, "error", "{field}");
        assert_eq!(
            error.as_deref(),
            Some(
                format!(
                    "malformed job hash: field `{field}`: {size} bytes is over the limit of {limit} bytes"
                )
                .as_str()
            ),
        );
        let reply: Vec<String> = conn.lrange(format!("hero:reply:{id}"), 0, -1).unwrap();
        assert_eq!(reply, ["error"], "{field}");
    }
    for id in &good {
        let (status, error) = ended(&mut conn, &format!("hero:job:{id}"), &["error", "finished"]);
        assert_eq!((status.as_str(), error), ("finished", None), "{id}");
        let output: String = conn.hget(format!("hero:job:{id}"), "output").unwrap();
        assert_eq!(output, "42");
    }
    let held: usize = conn
        .llen(format!(
            "hero:processing:{actor}:{}",
            runner.store().runner_id()
        ))
        .unwrap();
    assert_eq!(held, 0);
    // Redis sent far less than the 33 MiB over the limits: those values were not read.
    let sent = sent_bytes(&mut conn) - sent_before;
    assert!(sent < 4 << 20, "Redis sent {sent} bytes");
    runner.shutdown(Duration::from_secs(1)).unwrap();
}

/// The bytes Redis has sent its clients so far (`INFO stats`).
fn sent_bytes(conn: &mut redis::Connection) -> u64 {
    let info: String = redis::cmd("INFO").arg("stats").query(conn).unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix("total_net_output_bytes:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("total_net_output_bytes in INFO stats")
}

#[test]
fn rhailib_fields_over_their_limit_end_the_task_in_error() {
    let redis = TestRedis::start();
    let rt = runtime();
    let actor = unique("actor");
    let runner = start_runner(
        &rt,
        &redis,
        &actor,
        Profile::Rhailib,
        Duration::from_secs(60),
    );
    let mut conn = redis.conn();
    let cases = [
        ("reply_queue_name", MAX_FIELD_BYTES + 1),
        ("script", SCRIPT_LIMIT + 1),
        ("caller_id", 1 << 20),
    ];
    for (field, size) in cases {
        let id = unique("task");
        let key = format!("rhai_task_details:{id}");
        let mut fields: Vec<(&str, Vec<u8>)> = vec![
            ("script", b"40 + 2".to_vec()),
            ("status", b"pending".to_vec()),
            ("caller_id", b"alice".to_vec()),
            ("context_id", b"c1".to_vec()),
        ];
        fields.retain(|(f, _)| *f != field);
        fields.push((field, vec![b'q'; size]));
        let mut cmd = redis::cmd("HSET");
        cmd.arg(&key);
        for (f, v) in &fields {
            cmd.arg(*f).arg(v);
        }
        let _: () = cmd.query(&mut conn).unwrap();
        let _: () = conn.lpush(format!("rhai_tasks:{actor}"), &id).unwrap();
        let (status, error) = ended(&mut conn, &key, &["error", "completed"]);
        assert_eq!(status, "error", "{field}");
        let error = error.unwrap_or_default();
        assert!(
            error.starts_with(&format!(
                "malformed job hash: field `{field}`: {size} bytes"
            )),
            "{field}: {error}"
        );
    }
    runner.shutdown(Duration::from_secs(1)).unwrap();
}

#[test]
fn a_jobs_own_timeout_is_cut_to_the_runners_longest() {
    let redis = TestRedis::start();
    let rt = runtime();
    let actor = unique("actor");
    let runner = start_runner(&rt, &redis, &actor, Profile::Hero, Duration::from_secs(2));
    let mut conn = redis.conn();
    // Asking for more gets the runner's longest; asking for less keeps its own.
    let cases = [("3600", "2s"), ("18446744073709551615", "2s"), ("1", "1s")];
    let ids: Vec<String> = cases
        .iter()
        .map(|(timeout, _)| {
            let mut hash = hero_hash(&actor, "script", b"loop {}".to_vec());
            for (f, v) in &mut hash {
                if f == "timeout" {
                    *v = timeout.as_bytes().to_vec();
                }
            }
            queue_hero(&mut conn, &actor, &hash)
        })
        .collect();
    for ((timeout, after), id) in cases.iter().zip(&ids) {
        let (status, error) = ended(&mut conn, &format!("hero:job:{id}"), &["error", "finished"]);
        assert_eq!(status, "error", "{timeout}");
        assert_eq!(
            error,
            Some(format!("timeout: still running after {after}")),
            "{timeout}"
        );
    }
    runner.shutdown(Duration::from_secs(1)).unwrap();
}

#[test]
fn a_read_redis_refuses_to_run_fails_no_job_and_the_jobs_run_once_it_may() {
    // The runner's user may not run `MEMORY` (an ACL of single commands): its reads fail
    // for a reason no job is at fault for, so every job waits, none ends `error`.
    let redis = TestRedis::private();
    let mut conn = redis.conn();
    let _: () = redis::cmd("ACL")
        .arg(
            &[
                "SETUSER", "runner", "on", ">secret", "~*", "&*", "+@all", "-memory",
            ][..],
        )
        .query(&mut conn)
        .unwrap();
    let rt = runtime();
    let actor = unique("actor");
    let mut pool = PoolConfig::new(&actor);
    pool.workers = 1;
    let mut redis_config = RedisConfig::new(format!("{}?user=runner&pass=secret", redis.url));
    redis_config.profile = Profile::Hero;
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
    let ids: Vec<String> = (0..3)
        .map(|_| {
            queue_hero(
                &mut conn,
                &actor,
                &hero_hash(&actor, "script", b"40 + 2".to_vec()),
            )
        })
        .collect();
    std::thread::sleep(Duration::from_millis(2500));
    for id in &ids {
        let status: String = conn.hget(format!("hero:job:{id}"), "status").unwrap();
        assert_eq!(status, "dispatched", "{id}");
    }
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "runner", "+memory"][..])
        .query(&mut conn)
        .unwrap();
    for id in &ids {
        let (status, error) = ended(&mut conn, &format!("hero:job:{id}"), &["error", "finished"]);
        assert_eq!((status.as_str(), error), ("finished", None), "{id}");
    }
    runner.shutdown(Duration::from_secs(1)).unwrap();
}
