//! Keys of the wrong type where the reaper and the stop routing write (a reply list that is
//! a hash, a processing or control list that is a string) are skipped: they never stop the
//! other jobs being reaped or routed.
#![cfg(feature = "redis")]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use baobab::bridge::{Profile, RedisConfig, RedisStore, StopRoute};
use baobab::jobs::{Job, JobStatus, JobStore};
use common::redis_server::{TestRedis, unique};
use redis::Commands;

fn store(redis: &TestRedis) -> RedisStore {
    let mut config = RedisConfig::new(&redis.url);
    config.profile = Profile::Hero;
    RedisStore::new(config).unwrap()
}

fn submit(store: &RedisStore, actor: &str, retries: u32) -> String {
    let job = Job::builder("1")
        .actor_id(actor)
        .retries(retries)
        .build()
        .unwrap();
    let id = job.id.clone();
    store.submit(job).unwrap();
    id
}

#[test]
fn a_poison_entry_does_not_stop_the_reaper() {
    let redis = TestRedis::start();
    let actor = unique("actor");
    let mut conn = redis.conn();
    // A dead runner holding two jobs: one to fail (no retries) whose reply key is a hash,
    // one to requeue.
    let dead = store(&redis);
    dead.heartbeat(&actor).unwrap();
    let failing = submit(&dead, &actor, 0);
    let requeued = submit(&dead, &actor, 1);
    let mut taken = dead.take(&actor, 10, Duration::from_secs(1)).unwrap();
    assert_eq!(taken.len(), 2);
    // The first was running when its runner died (no retries: it fails); the second had
    // not started (it goes back to the queue).
    let running = taken.iter_mut().find(|job| job.id == failing).unwrap();
    running.attempts = 1;
    dead.start(running).unwrap();
    let _: () = conn
        .del(format!("hero:runner:{}:heartbeat", dead.runner_id()))
        .unwrap();
    let _: () = conn
        .hset(format!("hero:reply:{failing}"), "not", "a list")
        .unwrap();
    // And a dead runner whose processing list is a string.
    let _: () = conn.sadd(format!("hero:runners:{actor}"), "ghost").unwrap();
    let _: () = conn
        .set(format!("hero:processing:{actor}:ghost"), "not a list")
        .unwrap();
    let alive = store(&redis);
    assert_eq!(alive.reap(&actor).unwrap(), (1, 1));
    let queued: Vec<String> = conn
        .lrange(format!("hero:job:actor_queue:{actor}"), 0, -1)
        .unwrap();
    assert_eq!(queued, [requeued]);
    let hash: HashMap<String, String> = conn.hgetall(format!("hero:job:{failing}")).unwrap();
    assert_eq!(hash["status"], "error");
    assert!(
        hash["error"].contains("its runner died while running it"),
        "{hash:?}"
    );
    assert!(
        hash["updated_at"].ends_with('Z'),
        "a time: {}",
        hash["updated_at"]
    );
    let reply: HashMap<String, String> = conn.hgetall(format!("hero:reply:{failing}")).unwrap();
    assert_eq!(reply["not"], "a list", "left as it was");
    // Both dead runners are done with: the next reap finds nothing.
    assert_eq!(alive.reap(&actor).unwrap(), (0, 0));
}

#[test]
fn a_poison_key_does_not_stop_the_routing_of_stops() {
    let redis = TestRedis::start();
    let actor = unique("actor");
    let mut conn = redis.conn();
    let here = store(&redis);
    // A runner listed for the actor whose processing list is a string.
    let _: () = conn.sadd(format!("hero:runners:{actor}"), "ghost").unwrap();
    let _: () = conn
        .set(format!("hero:processing:{actor}:ghost"), "not a list")
        .unwrap();
    // A queued job whose reply key is a string: cancelled all the same.
    let queued = submit(&here, &actor, 0);
    let _: () = conn
        .set(format!("hero:reply:{queued}"), "not a list")
        .unwrap();
    assert_eq!(
        here.route_stop(&actor, &queued).unwrap(),
        StopRoute::Cancelled { dead_runner: None }
    );
    let job = here.get(&queued).unwrap().unwrap();
    assert_eq!(
        (job.status, job.error.as_deref()),
        (JobStatus::Error, Some("cancelled"))
    );
    let reply: String = conn.get(format!("hero:reply:{queued}")).unwrap();
    assert_eq!(reply, "not a list");
    // A job held by a live runner whose control list is a hash: the stop cannot be passed
    // on; it is reported, not an error that stops the routing.
    let holder = store(&redis);
    holder.heartbeat(&actor).unwrap();
    let held = submit(&holder, &actor, 0);
    assert_eq!(
        holder
            .take(&actor, 1, Duration::from_secs(1))
            .unwrap()
            .len(),
        1
    );
    let _: () = conn
        .hset(
            format!("hero:runner:{}:control", holder.runner_id()),
            "not",
            "a list",
        )
        .unwrap();
    assert_eq!(here.route_stop(&actor, &held).unwrap(), StopRoute::NotFound);
    // Other stops are routed as ever.
    let other = submit(&here, &actor, 0);
    assert_eq!(
        here.route_stop(&actor, &other).unwrap(),
        StopRoute::Cancelled { dead_runner: None }
    );
}

#[test]
fn the_reaper_takes_back_a_long_list_in_bounded_calls_and_stops_at_a_queue_that_takes_none() {
    // A server of its own: the test counts the script calls Redis runs.
    let redis = TestRedis::private();
    let actor = unique("actor");
    let mut conn = redis.conn();
    // A dead runner holding 2,500 ids (more than one call takes back) it had not started,
    // each with its hash, and ids with no hash among them.
    let ids: Vec<String> = (0..2_500).map(|n| format!("{actor}-{n}")).collect();
    let mut pipe = redis::pipe();
    for id in &ids {
        pipe.hset_multiple(
            format!("hero:job:{id}"),
            &[("status", "dispatched"), ("retries", "1")],
        )
        .ignore();
    }
    pipe.rpush(format!("hero:processing:{actor}:dead"), &ids)
        .ignore();
    pipe.lpush(
        format!("hero:processing:{actor}:dead"),
        &["gone-1", "gone-2"],
    )
    .ignore();
    pipe.sadd(format!("hero:runners:{actor}"), "dead").ignore();
    let _: () = pipe.query(&mut conn).unwrap();
    let alive = store(&redis);
    // Loads the script, so every call counted below runs it.
    assert_eq!(alive.reap(&unique("none")).unwrap(), (0, 0));
    let calls_before = script_calls(&mut conn);
    assert_eq!(alive.reap(&actor).unwrap(), (2_500, 0));
    // 2,502 ids in calls of at most 1,000 each: no call holds Redis long.
    assert_eq!(script_calls(&mut conn) - calls_before, 3);
    let queued: usize = conn.llen(format!("hero:job:actor_queue:{actor}")).unwrap();
    assert_eq!(queued, 2_500);
    let left: usize = conn.llen(format!("hero:processing:{actor}:dead")).unwrap();
    assert_eq!(left, 0);
    let runners: Vec<String> = conn.smembers(format!("hero:runners:{actor}")).unwrap();
    assert!(runners.is_empty(), "{runners:?}");

    // A queue that is no list takes no id: the reap ends at once, every id where it was,
    // however many dead runners hold ids (more than one call's budget of them here).
    let other = unique("actor");
    let _: () = conn
        .set(format!("hero:job:actor_queue:{other}"), "not a list")
        .unwrap();
    let mut pipe = redis::pipe();
    for (n, id) in ids[..1_500].iter().enumerate() {
        pipe.hset(format!("hero:job:{id}"), "retries", "10")
            .ignore()
            .rpush(format!("hero:processing:{other}:dead-{n}"), id)
            .ignore()
            .sadd(format!("hero:runners:{other}"), format!("dead-{n}"))
            .ignore();
    }
    let _: () = pipe.query(&mut conn).unwrap();
    for _ in 0..2 {
        let calls_before = script_calls(&mut conn);
        assert_eq!(alive.reap(&other).unwrap(), (0, 0));
        assert_eq!(script_calls(&mut conn) - calls_before, 1);
    }
    for (n, id) in ids[..1_500].iter().enumerate() {
        let held: Vec<String> = conn
            .lrange(format!("hero:processing:{other}:dead-{n}"), 0, -1)
            .unwrap();
        assert_eq!(held, std::slice::from_ref(id));
    }
}

/// How many script calls (`EVALSHA`) Redis has run so far, those refused for want of the
/// script not counted (`INFO commandstats`).
fn script_calls(conn: &mut redis::Connection) -> u64 {
    let info: String = redis::cmd("INFO").arg("commandstats").query(conn).unwrap();
    let stat = |name: &str| -> u64 {
        info.lines()
            .find_map(|line| line.strip_prefix("cmdstat_evalsha:"))
            .and_then(|stats| {
                stats
                    .split(',')
                    .find_map(|kv| kv.strip_prefix(name))
                    .and_then(|n| n.parse().ok())
            })
            .unwrap_or(0)
    };
    stat("calls=") - stat("failed_calls=")
}
