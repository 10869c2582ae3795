//! One bad member of a group-committed result write never holds back the others: a job whose
//! result Redis refuses (its reply key holds another type, a result over Redis's limits, OOM)
//! ends `error` with a small result, one whose hash key holds another type is dropped from the
//! processing list, and the others are written once, their replies pushed once.
#![cfg(feature = "redis")]

mod common;

use std::collections::HashMap;
use std::process::Command;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use baobab::bridge::{Profile, RedisConfig, RedisStore};
use baobab::jobs::{Job, JobStatus, JobStore};
use common::SAFETY;
use common::redis_server::{TestRedis, unique};
use redis::Commands;

fn store(redis: &TestRedis) -> Arc<RedisStore> {
    let mut config = RedisConfig::new(&redis.url);
    config.profile = Profile::Hero;
    Arc::new(RedisStore::new(config).unwrap())
}

/// Submits `n` jobs and takes them: they are in the store's processing list, started.
fn taken(store: &RedisStore, actor: &str, n: usize) -> Vec<Job> {
    for i in 0..n {
        let job = Job::builder(format!("{i}"))
            .actor_id(actor)
            .build()
            .unwrap();
        store.submit(job).unwrap();
    }
    let jobs = store.take(actor, n, Duration::from_secs(1)).unwrap();
    assert_eq!(jobs.len(), n);
    jobs
}

fn finished(mut job: Job, output: String) -> Job {
    job.status = JobStatus::Finished;
    job.output = Some(output);
    job
}

fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Completes `first` while Redis is paused (it becomes the writer, its write waits), then
/// `group` (queued behind it, so written together as one group), resumes Redis and flushes.
/// Fails the test if that does not end in time.
fn complete_as_a_group(redis: &TestRedis, store: &Arc<RedisStore>, first: Job, group: Vec<Job>) {
    let pid = redis.pid().expect("a private server");
    signal(pid, "STOP");
    let writer = {
        let store = store.clone();
        std::thread::spawn(move || store.complete(&first))
    };
    std::thread::sleep(Duration::from_millis(200));
    for job in &group {
        store.complete(job).unwrap();
    }
    signal(pid, "CONT");
    let (done, flushed) = mpsc::channel();
    let flusher = store.clone();
    std::thread::spawn(move || {
        let _ = writer.join();
        flusher.flush();
        let _ = done.send(());
    });
    flushed
        .recv_timeout(SAFETY * 3)
        .expect("the results were written (or given up) in time");
}

fn hash(conn: &mut redis::Connection, id: &str) -> HashMap<String, String> {
    conn.hgetall(format!("hero:job:{id}")).unwrap()
}

fn replies(conn: &mut redis::Connection, id: &str) -> Vec<String> {
    conn.lrange(format!("hero:reply:{id}"), 0, -1).unwrap()
}

fn held(conn: &mut redis::Connection, store: &RedisStore, actor: &str) -> usize {
    conn.llen(format!("hero:processing:{actor}:{}", store.runner_id()))
        .unwrap()
}

#[test]
fn a_member_whose_keys_hold_other_types_does_not_hold_back_its_group() {
    let redis = TestRedis::private();
    let actor = unique("actor");
    let store = store(&redis);
    let mut conn = redis.conn();
    let jobs = taken(&store, &actor, 5);
    let [first, good, hash_gone, reply_taken, last] = <[Job; 5]>::try_from(jobs).unwrap();
    // While they ran: one's hash key became a list, another's reply key a string.
    let _: () = conn.del(format!("hero:job:{}", hash_gone.id)).unwrap();
    let _: () = conn
        .rpush(format!("hero:job:{}", hash_gone.id), "not a hash")
        .unwrap();
    let _: () = conn
        .set(format!("hero:reply:{}", reply_taken.id), "not a list")
        .unwrap();
    let group = vec![
        finished(good.clone(), "good".into()),
        finished(hash_gone.clone(), "lost".into()),
        finished(reply_taken.clone(), "unanswered".into()),
        finished(last.clone(), "last".into()),
    ];
    complete_as_a_group(
        &redis,
        &store,
        finished(first.clone(), "first".into()),
        group,
    );
    // The others: written once, answered once.
    for (job, output) in [(&first, "first"), (&good, "good"), (&last, "last")] {
        let hash = hash(&mut conn, &job.id);
        assert_eq!(
            (hash["status"].as_str(), hash["output"].as_str()),
            ("finished", output)
        );
        assert_eq!(replies(&mut conn, &job.id), ["finished"], "{output}");
    }
    // Its reply list a string: the job ended `error`, saying why; the string is left alone.
    let hash = hash(&mut conn, &reply_taken.id);
    assert_eq!(hash["status"], "error");
    assert!(
        hash["error"].starts_with("could not record the result: WRONGTYPE"),
        "{hash:?}"
    );
    assert!(!hash.contains_key("output"), "{hash:?}");
    let reply: String = conn.get(format!("hero:reply:{}", reply_taken.id)).unwrap();
    assert_eq!(reply, "not a list");
    // Its hash a list: nothing could be recorded in it; its reply says how it ended, and it
    // left the processing list.
    let list: Vec<String> = conn
        .lrange(format!("hero:job:{}", hash_gone.id), 0, -1)
        .unwrap();
    assert_eq!(list, ["not a hash"]);
    assert_eq!(replies(&mut conn, &hash_gone.id), ["finished"]);
    assert_eq!(held(&mut conn, &store, &actor), 0);
}

#[test]
fn a_result_over_redis_limits_is_isolated_and_its_job_ends_in_error() {
    let redis = TestRedis::private();
    let actor = unique("actor");
    let store = store(&redis);
    let mut conn = redis.conn();
    // Redis closes the connection of a request carrying a string over 1 MB.
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("proto-max-bulk-len")
        .arg("1mb")
        .query(&mut conn)
        .unwrap();
    let jobs = taken(&store, &actor, 4);
    let [first, before, huge, after] = <[Job; 4]>::try_from(jobs).unwrap();
    let group = vec![
        finished(before.clone(), "before".into()),
        finished(huge.clone(), "x".repeat(3 << 20)),
        finished(after.clone(), "after".into()),
    ];
    complete_as_a_group(
        &redis,
        &store,
        finished(first.clone(), "first".into()),
        group,
    );
    for (job, output) in [(&first, "first"), (&before, "before"), (&after, "after")] {
        let hash = hash(&mut conn, &job.id);
        assert_eq!(
            (hash["status"].as_str(), hash["output"].as_str()),
            ("finished", output)
        );
        assert_eq!(
            replies(&mut conn, &job.id),
            ["finished"],
            "{output}: answered once, however often its group was tried"
        );
    }
    let hash = hash(&mut conn, &huge.id);
    assert_eq!(hash["status"], "error");
    assert!(
        hash["error"].starts_with("could not record the result: Redis closed the connection"),
        "{}",
        hash["error"]
    );
    assert!(!hash.contains_key("output"));
    assert_eq!(replies(&mut conn, &huge.id), ["error"]);
    assert_eq!(held(&mut conn, &store, &actor), 0);
    // The store goes on.
    let next = taken(&store, &actor, 1).remove(0);
    store
        .complete(&finished(next.clone(), "next".into()))
        .unwrap();
    assert_eq!(replies(&mut conn, &next.id), ["finished"]);
}

#[test]
fn a_result_refused_for_oom_ends_its_job_in_error() {
    let redis = TestRedis::private();
    let actor = unique("actor");
    let store = store(&redis);
    let mut conn = redis.conn();
    let job = taken(&store, &actor, 1).remove(0);
    let config = |conn: &mut redis::Connection, name: &str, value: &str| {
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg(name)
            .arg(value)
            .query(conn)
            .unwrap();
    };
    config(&mut conn, "maxmemory-policy", "noeviction");
    config(&mut conn, "maxmemory", "1");
    let result = {
        let store = store.clone();
        let job = finished(job.clone(), "y".repeat(100_000));
        mpsc_within(move || store.complete(&job))
    };
    config(&mut conn, "maxmemory", "0");
    result.unwrap();
    let hash = hash(&mut conn, &job.id);
    assert_eq!(hash["status"], "error");
    assert!(
        hash["error"].starts_with("could not record the result: OOM"),
        "{}",
        hash["error"]
    );
    assert_eq!(replies(&mut conn, &job.id), ["error"]);
    assert_eq!(held(&mut conn, &store, &actor), 0);
}

/// Runs `f` on a thread; fails the test if it takes longer than the safety net.
fn mpsc_within<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, result) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(f());
    });
    result.recv_timeout(SAFETY).expect("returned in time")
}
