//! A Redis runner whose worker pool keeps crashing gives up: it stops, says why, and leaves
//! the jobs it had taken to be run again, by a runner that works.
#![cfg(feature = "redis")]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use baobab::bridge::{Client, Profile, Runner, RunnerConfig};
use baobab::jobs::{CancelToken, Job, JobActor, JobResult, JobStatus};
use common::redis_server::{TestRedis, unique};
use common::runtime;

/// Panics on jobs whose script is `boom`, answers the others.
struct Fragile;

impl JobActor for Fragile {
    fn actor_id(&self) -> &str {
        "fragile"
    }

    fn actor_type(&self) -> &str {
        "Fragile"
    }

    fn process_job(&self, job: &Job, _cancel: &CancelToken) -> JobResult {
        if job.script == "boom" {
            panic!("actor exploded");
        }
        // Slow enough that the crashing jobs overtake it.
        std::thread::sleep(Duration::from_millis(200));
        JobResult {
            outcome: Ok(format!("ran {}", job.script)),
            log: Vec::new(),
        }
    }
}

fn runner(rt: &baobab::Runtime, redis: &TestRedis, actor: &str, fragile: bool) -> Runner {
    let mut config = RunnerConfig::new(&redis.url, actor);
    config.pool.workers = 2;
    config.pool.max_batch = 1;
    config.redis.heartbeat_ttl = Duration::from_secs(1);
    if fragile {
        config.actors = Some(Arc::new(|| Arc::new(Fragile) as Arc<dyn JobActor>));
    }
    Runner::start(rt.handle(), config).unwrap()
}

#[test]
fn a_runner_whose_pool_keeps_crashing_stops_and_its_jobs_are_run_elsewhere() {
    let redis = TestRedis::start();
    let rt = runtime();
    let actor = unique("fragile");
    let client = Client::new(&redis.url, Profile::Hero).unwrap();
    let submit = |script: &str| {
        let job = Job::builder(script)
            .actor_id(&actor)
            .retries(5)
            .build()
            .unwrap();
        client.submit(job).unwrap()
    };
    // Good jobs first (oldest are taken first), then far more crashes than the pool's and the
    // runner's restart intensities allow.
    let good: Vec<String> = (0..20).map(|i| submit(&i.to_string())).collect();
    let crashing: Vec<String> = (0..400).map(|_| submit("boom")).collect();

    let fragile = runner(&rt, &redis, &actor, true);
    let start = Instant::now();
    let reason = loop {
        if let Some(reason) = fragile.exited() {
            break reason;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the runner never gave up"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_ne!(reason, baobab::ExitReason::Normal, "{reason}");
    // No job it held was ended for its pool's failure: each one is either done or will be
    // run again.
    for id in good.iter().chain(&crashing) {
        let job = client.get(id).unwrap().unwrap();
        if let Some(error) = &job.error {
            assert!(!error.contains("worker pool stopped"), "{id}: {error}");
        }
    }
    drop(fragile);

    // A runner that works takes the jobs back (the dead runner's once its heartbeat expires)
    // and finishes every good one.
    let healthy = runner(&rt, &redis, &actor, false);
    for id in &good {
        let job = client
            .await_result(id, Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("{id}: {e}"));
        if job.status == JobStatus::Finished {
            continue;
        }
        // The fragile runner may have finished it before it gave up.
        panic!("{id} ended {:?}: {:?}", job.status, job.error);
    }
    healthy.shutdown(Duration::from_secs(1)).unwrap();
}
