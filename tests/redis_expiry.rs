//! Ended jobs expire: every way a job ends in Redis (a result, a failure, a result Redis
//! refused, a malformed job, runners that died too often, a cancel) sets its hash's time to
//! live, `result_ttl` for a `finished` job and `dead_ttl` for one that ended in `error`; a
//! queued or running job never expires.
#![cfg(feature = "redis")]

mod common;

use std::sync::Arc;
use std::time::Duration;

use baobab::bridge::{Profile, RedisConfig, RedisStore, StopRoute};
use baobab::jobs::{Job, JobStatus, JobStore};
use common::redis_server::{TestRedis, unique};
use redis::Commands;

const RESULT_TTL: u64 = 600;
const DEAD_TTL: u64 = 6000;

fn store(redis: &TestRedis, profile: Profile) -> Arc<RedisStore> {
    let mut config = RedisConfig::new(&redis.url);
    config.profile = profile;
    config.result_ttl = Duration::from_secs(RESULT_TTL);
    config.dead_ttl = Duration::from_secs(DEAD_TTL);
    Arc::new(RedisStore::new(config).unwrap())
}

/// The time to live of `key`, in seconds (-1: none; -2: no key).
fn ttl(conn: &mut redis::Connection, key: &str) -> i64 {
    conn.ttl(key).unwrap()
}

/// Whether `ttl` is that of a key just given `secs`.
fn fresh(ttl: i64, secs: u64) -> bool {
    ttl > secs as i64 - 30 && ttl <= secs as i64
}

fn submitted(store: &RedisStore, actor: &str, retries: u32) -> String {
    let job = Job::builder("40 + 2")
        .actor_id(actor)
        .retries(retries)
        .build()
        .unwrap();
    let id = job.id.clone();
    store.submit(job).unwrap();
    id
}

#[test]
fn finished_jobs_keep_for_the_result_ttl_and_failed_ones_for_the_dead_ttl() {
    let redis = TestRedis::start();
    let mut conn = redis.conn();
    for profile in [Profile::Hero, Profile::Rhailib] {
        let store = store(&redis, profile);
        let keys = store.keys();
        let actor = unique("actor");
        let ids = [submitted(&store, &actor, 0), submitted(&store, &actor, 0)];
        // Queued: no time to live.
        assert_eq!(ttl(&mut conn, &keys.job(&ids[0])), -1, "{profile:?}");
        let mut taken = store.take(&actor, 2, Duration::from_secs(1)).unwrap();
        assert_eq!(taken.len(), 2);
        // Running: none either.
        assert_eq!(ttl(&mut conn, &keys.job(&ids[0])), -1, "{profile:?}");
        let mut failed = taken.pop().unwrap();
        let mut done = taken.pop().unwrap();
        done.status = JobStatus::Finished;
        done.output = Some("42".into());
        failed.status = JobStatus::Error;
        failed.error = Some("boom".into());
        store.complete(&done).unwrap();
        store.complete(&failed).unwrap();
        let (done_ttl, failed_ttl) = (
            ttl(&mut conn, &keys.job(&done.id)),
            ttl(&mut conn, &keys.job(&failed.id)),
        );
        assert!(fresh(done_ttl, RESULT_TTL), "{profile:?}: {done_ttl}");
        assert!(fresh(failed_ttl, DEAD_TTL), "{profile:?}: {failed_ttl}");
    }
}

#[test]
fn a_job_whose_result_redis_refuses_ends_in_error_and_expires_as_dead() {
    let redis = TestRedis::start();
    let mut conn = redis.conn();
    let store = store(&redis, Profile::Hero);
    let actor = unique("actor");
    let id = submitted(&store, &actor, 0);
    let mut job = store
        .take(&actor, 1, Duration::from_secs(1))
        .unwrap()
        .remove(0);
    // Its reply key holds another type: the result is refused, the job ends `error`.
    let _: () = conn.set(format!("hero:reply:{id}"), "not a list").unwrap();
    job.status = JobStatus::Finished;
    job.output = Some("42".into());
    store.complete(&job).unwrap();
    assert_eq!(store.get(&id).unwrap().unwrap().status, JobStatus::Error);
    let left = ttl(&mut conn, &format!("hero:job:{id}"));
    assert!(fresh(left, DEAD_TTL), "{left}");
}

#[test]
fn malformed_jobs_ended_at_take_expire_as_dead() {
    let redis = TestRedis::start();
    let mut conn = redis.conn();
    let store = store(&redis, Profile::Hero);
    let actor = unique("actor");
    let id = format!("bad-{actor}");
    let _: () = conn
        .hset_multiple(
            format!("hero:job:{id}"),
            &[("script", "1"), ("timeout", "soon")],
        )
        .unwrap();
    let _: () = conn
        .lpush(format!("hero:job:actor_queue:{actor}"), &id)
        .unwrap();
    assert!(
        store
            .take(&actor, 1, Duration::from_secs(1))
            .unwrap()
            .is_empty()
    );
    let status: String = conn.hget(format!("hero:job:{id}"), "status").unwrap();
    assert_eq!(status, "error");
    let left = ttl(&mut conn, &format!("hero:job:{id}"));
    assert!(fresh(left, DEAD_TTL), "{left}");
}

#[test]
fn jobs_whose_runners_died_too_often_and_cancelled_jobs_expire_as_dead() {
    let redis = TestRedis::start();
    let mut conn = redis.conn();
    let actor = unique("actor");
    // A runner takes a job that allows no retry, starts it, then dies.
    let dead = store(&redis, Profile::Hero);
    dead.heartbeat(&actor).unwrap();
    let id = submitted(&dead, &actor, 0);
    let mut taken = dead.take(&actor, 1, Duration::from_secs(1)).unwrap();
    assert_eq!(taken.len(), 1);
    taken[0].attempts = 1;
    dead.start(&taken[0]).unwrap();
    let _: () = conn
        .del(format!("hero:runner:{}:heartbeat", dead.runner_id()))
        .unwrap();
    let alive = store(&redis, Profile::Hero);
    alive.heartbeat(&actor).unwrap();
    assert_eq!(alive.reap(&actor).unwrap(), (0, 1));
    let left = ttl(&mut conn, &format!("hero:job:{id}"));
    assert!(fresh(left, DEAD_TTL), "{left}");
    // Its actor's dead set lists it, and expires as dead jobs do.
    let left = ttl(&mut conn, &format!("hero:job:dead:{actor}"));
    assert!(fresh(left, DEAD_TTL), "{left}");

    // A queued job is cancelled by a stop.
    let queued = submitted(&alive, &actor, 0);
    assert_eq!(
        alive.route_stop(&actor, &queued).unwrap(),
        StopRoute::Cancelled { dead_runner: None }
    );
    let left = ttl(&mut conn, &format!("hero:job:{queued}"));
    assert!(fresh(left, DEAD_TTL), "{left}");
}
