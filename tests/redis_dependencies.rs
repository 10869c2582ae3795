//! Dependencies: a job whose `prerequisites` have not all finished waits (status
//! `waiting_for_prerequisites`), out of every queue, listed in each prerequisite's
//! `dependents`; the prerequisite's ending releases it (no polling); a prerequisite that fails
//! for good fails its dependents, naming it, and theirs in turn.
#![cfg(feature = "redis")]

mod common;

use std::time::{Duration, Instant};

use baobab::bridge::{Profile, RedisConfig, Runner, RunnerConfig, StopRoute};
use baobab::jobs::{Job, JobStatus, JobStore, PoolConfig};
use baobab::script::SandboxConfig;
use common::redis_server::{TestRedis, unique};
use common::{SAFETY, runtime};
use redis::Commands;

fn runner(rt: &baobab::Runtime, redis: &TestRedis, actor: &str, profile: Profile) -> Runner {
    let mut pool = PoolConfig::new(actor);
    pool.workers = 2;
    let mut redis_config = RedisConfig::new(&redis.url);
    redis_config.profile = profile;
    Runner::start(
        rt.handle(),
        RunnerConfig {
            redis: redis_config,
            actor: actor.to_string(),
            pool,
            sandbox: SandboxConfig::default(),
            actors: None,
        },
    )
    .unwrap()
}

fn job(actor: &str, script: &str, prerequisites: &[&Job]) -> Job {
    let mut builder = Job::builder(script).actor_id(actor);
    for p in prerequisites {
        builder = builder.prerequisite(&p.id);
    }
    builder.build().unwrap()
}

fn waits_until(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < SAFETY, "not within {SAFETY:?}: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn dependents_wait_for_their_prerequisites_and_run_after_them_in_both_profiles() {
    let redis = TestRedis::start();
    let rt = runtime();
    let mut conn = redis.conn();
    for (profile, key, waiting) in [
        (Profile::Hero, "hero:job:", "waiting_for_prerequisites"),
        (Profile::Rhailib, "rhai_task_details:", "waiting"),
    ] {
        let actor = unique("deps");
        let runner = runner(&rt, &redis, &actor, profile);
        let store = runner.store();
        // a ← b ← c, and c also on a: a takes a while.
        let a = job(&actor, "sleep(0.4); 1", &[]);
        let b = job(&actor, "2", &[&a]);
        let c = job(&actor, "3", &[&a, &b]);
        for j in [&a, &b, &c] {
            store.submit(j.clone()).unwrap();
        }
        // While `a` runs, the others wait, out of the queue, listed as its dependents.
        waits_until("b and c wait", || {
            [&b, &c].iter().all(|j| {
                let status: Option<String> = conn.hget(format!("{key}{}", j.id), "status").unwrap();
                status.as_deref() == Some(waiting)
            })
        });
        let dependents: String = conn.hget(format!("{key}{}", a.id), "dependents").unwrap();
        let dependents: Vec<String> = serde_json::from_str(&dependents).unwrap();
        assert!(
            dependents.contains(&b.id) && dependents.contains(&c.id),
            "{dependents:?}"
        );
        assert_eq!(store.status(&a.id).unwrap(), Some(JobStatus::Started));
        // Then each runs once what it waits for has finished.
        let ended: Vec<Job> = [&a, &b, &c]
            .iter()
            .map(|j| store.wait(&j.id, SAFETY).unwrap())
            .collect();
        for (j, want) in ended.iter().zip(["1", "2", "3"]) {
            assert_eq!(j.status, JobStatus::Finished, "{j:?}");
            assert_eq!(j.output.as_deref(), Some(want));
        }
        if profile == Profile::Hero {
            // (A rhailib task records no start and end times.)
            let times: Vec<_> = ended.iter().map(|j| j.started_at.unwrap()).collect();
            assert!(
                ended[0].finished_at.unwrap() <= times[1],
                "b started after a ended"
            );
            assert!(
                ended[1].finished_at.unwrap() <= times[2],
                "c started after b ended"
            );
        }
        runner.shutdown(Duration::from_secs(1)).unwrap();
    }
}

#[test]
fn a_failed_prerequisite_fails_its_dependents_naming_it_and_theirs_in_turn() {
    let redis = TestRedis::start();
    let rt = runtime();
    let mut conn = redis.conn();
    let actor = unique("deps");
    let runner = runner(&rt, &redis, &actor, Profile::Hero);
    let store = runner.store();
    let a = job(&actor, r#"sleep(0.3); throw "a broke""#, &[]);
    let b = job(&actor, "2", &[&a]);
    let c = job(&actor, "3", &[&b]);
    for j in [&a, &b, &c] {
        store.submit(j.clone()).unwrap();
    }
    assert_eq!(store.wait(&a.id, SAFETY).unwrap().status, JobStatus::Error);
    let b_ended = store.wait(&b.id, SAFETY).unwrap();
    assert_eq!(b_ended.status, JobStatus::Error);
    assert_eq!(
        b_ended.error.as_deref(),
        Some(format!("prerequisite {} ended in error", a.id).as_str())
    );
    assert_eq!(b_ended.attempts, 0, "never run");
    let c_ended = store.wait(&c.id, SAFETY).unwrap();
    assert_eq!(
        c_ended.error.as_deref(),
        Some(format!("prerequisite {} ended in error", b.id).as_str())
    );
    // Their replies are pushed as for any ending, and their hashes expire as failed ones.
    for j in [&b, &c] {
        let reply: Vec<String> = conn.lrange(format!("hero:reply:{}", j.id), 0, -1).unwrap();
        assert_eq!(reply, ["error"]);
        let ttl: i64 = conn.ttl(format!("hero:job:{}", j.id)).unwrap();
        assert!(ttl > 0, "{ttl}");
    }
    // A job submitted after its prerequisite failed, or naming one that does not exist,
    // fails at once without running.
    let late = job(&actor, "4", &[&a]);
    store.submit(late.clone()).unwrap();
    let late = store.wait(&late.id, SAFETY).unwrap();
    assert_eq!(
        late.error.as_deref(),
        Some(format!("prerequisite {} ended in error", a.id).as_str())
    );
    let orphan = Job::builder("5")
        .actor_id(&actor)
        .prerequisite("no-such-job")
        .build()
        .unwrap();
    store.submit(orphan.clone()).unwrap();
    let orphan = store.wait(&orphan.id, SAFETY).unwrap();
    assert_eq!(
        orphan.error.as_deref(),
        Some("prerequisite no-such-job: no such job")
    );
    // A job whose prerequisite already finished runs at once.
    let done = job(&actor, "6", &[]);
    store.submit(done.clone()).unwrap();
    store.wait(&done.id, SAFETY).unwrap();
    let after = job(&actor, "7", &[&done]);
    store.submit(after.clone()).unwrap();
    assert_eq!(
        store.wait(&after.id, SAFETY).unwrap().output.as_deref(),
        Some("7")
    );
    runner.shutdown(Duration::from_secs(1)).unwrap();
}

#[test]
fn a_stopped_waiting_job_is_cancelled_and_so_are_its_dependents() {
    let redis = TestRedis::start();
    let rt = runtime();
    let actor = unique("deps");
    let runner = runner(&rt, &redis, &actor, Profile::Hero);
    let store = runner.store();
    let a = job(&actor, "sleep(30); 1", &[]);
    let b = job(&actor, "2", &[&a]);
    let c = job(&actor, "3", &[&b]);
    for j in [&a, &b, &c] {
        store.submit(j.clone()).unwrap();
    }
    waits_until("b and c wait", || {
        [&b, &c]
            .iter()
            .all(|j| store.status(&j.id).unwrap() == Some(JobStatus::Waiting))
    });
    assert_eq!(
        store.route_stop(&actor, &b.id).unwrap(),
        StopRoute::Cancelled { dead_runner: None }
    );
    let b_ended = store.get(&b.id).unwrap().unwrap();
    assert_eq!(b_ended.error.as_deref(), Some("cancelled"));
    let c_ended = store.wait(&c.id, SAFETY).unwrap();
    assert_eq!(
        c_ended.error.as_deref(),
        Some(format!("prerequisite {} ended in error", b.id).as_str())
    );
    // `a` is unaffected.
    assert_eq!(store.status(&a.id).unwrap(), Some(JobStatus::Started));
    runner.shutdown(Duration::from_millis(100)).unwrap();
}

#[test]
fn the_embedded_store_holds_dependents_until_their_prerequisites_finish() {
    use baobab::jobs::MemoryStore;
    let store = MemoryStore::new();
    let a = Job::builder("1").build().unwrap();
    let b = Job::builder("2").prerequisite(&a.id).build().unwrap();
    let c = Job::builder("3").prerequisite(&b.id).build().unwrap();
    let lone = Job::builder("4").prerequisite("missing").build().unwrap();
    for j in [&a, &b, &c, &lone] {
        store.submit(j.clone()).unwrap();
    }
    assert_eq!(store.status(&b.id).unwrap(), Some(JobStatus::Waiting));
    assert_eq!(store.status(&lone.id).unwrap(), Some(JobStatus::Error));
    // Only `a` is queued.
    let mut taken = store.take("rhai", 10, Duration::ZERO).unwrap();
    assert_eq!(taken.len(), 1);
    taken[0].status = JobStatus::Finished;
    store.complete(&taken[0]).unwrap();
    // Now `b`; failed, it fails `c`.
    let mut taken = store.take("rhai", 10, Duration::ZERO).unwrap();
    assert_eq!(taken.iter().map(|j| &j.id).collect::<Vec<_>>(), [&b.id]);
    taken[0].status = JobStatus::Error;
    taken[0].error = Some("broke".into());
    store.complete(&taken[0]).unwrap();
    let c = store.get(&c.id).unwrap().unwrap();
    assert_eq!(c.status, JobStatus::Error);
    assert_eq!(
        c.error.as_deref(),
        Some(format!("prerequisite {} ended in error", b.id).as_str())
    );
}
