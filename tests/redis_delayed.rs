//! Delayed jobs: a job with `run_at` waits in the actor's delayed set (scored by the
//! millisecond it may run from) and reaches the queue when Redis's clock says it is due,
//! moved by whichever runner looks first; a client can delay a job with `ZADD` alone.
#![cfg(feature = "redis")]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use baobab::bridge::{Profile, RedisConfig, RedisStore};
use baobab::jobs::{Job, JobStore};
use common::redis_server::{TestRedis, unique};
use redis::Commands;

fn store(redis: &TestRedis, profile: Profile) -> Arc<RedisStore> {
    let mut config = RedisConfig::new(&redis.url);
    config.profile = profile;
    Arc::new(RedisStore::new(config).unwrap())
}

#[test]
fn a_delayed_job_is_taken_only_once_it_is_due_in_both_profiles() {
    let redis = TestRedis::start();
    let mut conn = redis.conn();
    for profile in [Profile::Hero, Profile::Rhailib] {
        let store = store(&redis, profile);
        let actor = unique("actor");
        let delay = Duration::from_millis(600);
        let submitted = Instant::now();
        let job = Job::builder("40 + 2")
            .actor_id(&actor)
            .run_at(SystemTime::now() + delay)
            .build()
            .unwrap();
        let id = job.id.clone();
        store.submit(job).unwrap();
        // Waiting in the delayed set, not in the queue.
        let keys = store.keys();
        let score: Option<f64> = conn.zscore(keys.delayed(&actor), &id).unwrap();
        assert!(score.is_some(), "{profile:?}");
        assert_eq!(store.queued(&actor).unwrap(), 0);
        let run_at: String = conn.hget(keys.job(&id), "run_at").unwrap();
        assert!(run_at.ends_with('Z'), "{run_at}");
        // Not before it is due, even to a take that waits.
        assert!(
            store
                .take(&actor, 1, Duration::from_millis(300))
                .unwrap()
                .is_empty()
        );
        // Then taken, within the move interval of its time.
        let mut taken = Vec::new();
        while taken.is_empty() {
            assert!(submitted.elapsed() < delay + Duration::from_secs(5));
            taken = store.take(&actor, 1, Duration::from_secs(1)).unwrap();
        }
        let waited = submitted.elapsed();
        assert_eq!(taken[0].id, id);
        assert!(waited >= delay, "{profile:?}: taken after {waited:?}");
        assert!(
            waited < delay + Duration::from_millis(500),
            "{profile:?}: taken after {waited:?}"
        );
        let left: usize = conn.zcard(keys.delayed(&actor)).unwrap();
        assert_eq!(left, 0);
    }
}

#[test]
fn a_job_whose_time_has_passed_goes_straight_to_the_queue() {
    let redis = TestRedis::start();
    let store = store(&redis, Profile::Hero);
    let actor = unique("actor");
    let job = Job::builder("1")
        .actor_id(&actor)
        .run_at(SystemTime::now() - Duration::from_secs(5))
        .build()
        .unwrap();
    store.submit(job).unwrap();
    assert_eq!(store.queued(&actor).unwrap(), 1);
}

#[test]
fn a_client_delays_a_job_with_zadd_alone_and_bad_keys_do_not_stop_the_runner() {
    let redis = TestRedis::start();
    let mut conn = redis.conn();
    let store = store(&redis, Profile::Hero);
    let actor = unique("actor");
    // As a client following the wire format: the hash, then the id in the delayed set,
    // scored by the millisecond since the epoch it may run from.
    let id = unique("by-hand");
    let _: () = conn
        .hset_multiple(
            format!("hero:job:{id}"),
            &[("script", "40 + 2"), ("status", "dispatched")],
        )
        .unwrap();
    let due = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        + 300;
    let _: () = conn
        .zadd(format!("hero:job:delayed:{actor}"), &id, due)
        .unwrap();
    let started = Instant::now();
    let mut taken = Vec::new();
    while taken.is_empty() {
        assert!(started.elapsed() < Duration::from_secs(5));
        taken = store.take(&actor, 1, Duration::from_secs(1)).unwrap();
    }
    assert_eq!(taken[0].id, id);
    assert!(started.elapsed() >= Duration::from_millis(250));

    // A delayed "set" that is no sorted set, for another actor: its takes go on.
    let other = unique("actor");
    let _: () = conn
        .set(format!("hero:job:delayed:{other}"), "not a set")
        .unwrap();
    let job = Job::builder("1").actor_id(&other).build().unwrap();
    store.submit(job).unwrap();
    assert_eq!(
        store.take(&other, 1, Duration::from_secs(1)).unwrap().len(),
        1
    );
}
