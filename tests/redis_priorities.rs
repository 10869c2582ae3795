//! Priorities: jobs `high`, `normal` and `low` wait in three queues per actor; runners take
//! the higher ones first, but six takes in ten start high, three normal and one low, so a
//! backlog of higher jobs starves no lower one.
#![cfg(feature = "redis")]

mod common;

use std::time::Duration;

use baobab::bridge::{Profile, RedisConfig, RedisStore, Runner, RunnerConfig};
use baobab::jobs::{Job, JobStore, PoolConfig, Priority};
use baobab::script::SandboxConfig;
use common::redis_server::{TestRedis, unique};
use common::{SAFETY, runtime};
use redis::Commands;

#[test]
fn higher_priorities_run_first_and_no_priority_starves() {
    let redis = TestRedis::start();
    let rt = runtime();
    let mut conn = redis.conn();
    let actor = unique("prio");
    let client = RedisStore::new({
        let mut config = RedisConfig::new(&redis.url);
        config.profile = Profile::Hero;
        config
    })
    .unwrap();
    // A backlog of each priority, queued before any runner: low first, high last.
    let mut ids = Vec::new();
    for priority in [Priority::Low, Priority::Normal, Priority::High] {
        for _ in 0..30 {
            let job = Job::builder("sleep(0.002); 1")
                .actor_id(&actor)
                .priority(priority)
                .build()
                .unwrap();
            ids.push((priority, job.id.clone()));
            client.submit(job).unwrap();
        }
    }
    let high_queue: usize = conn
        .llen(format!("hero:job:actor_queue_high:{actor}"))
        .unwrap();
    let low_queue: usize = conn
        .llen(format!("hero:job:actor_queue_low:{actor}"))
        .unwrap();
    assert_eq!((high_queue, low_queue), (30, 30));
    assert_eq!(client.queued(&actor).unwrap(), 90);
    let high = client.get(&ids[60].1).unwrap().unwrap();
    assert_eq!(high.priority, Priority::High);
    // One worker taking one job at a time.
    let mut pool = PoolConfig::new(&actor);
    pool.workers = 1;
    pool.max_batch = 1;
    pool.prefetch = 1;
    let runner = Runner::start(
        rt.handle(),
        RunnerConfig {
            redis: RedisConfig::new(&redis.url),
            actor: actor.clone(),
            pool,
            sandbox: SandboxConfig::default(),
            actors: None,
        },
    )
    .unwrap();
    let mut started: Vec<(std::time::SystemTime, Priority)> = ids
        .iter()
        .map(|(priority, id)| {
            let job = runner.store().wait(id, SAFETY * 3).unwrap();
            (job.started_at.unwrap(), *priority)
        })
        .collect();
    started.sort();
    let count = |n: usize, p: Priority| started[..n].iter().filter(|(_, q)| *q == p).count();
    // The first thirty: mostly high, some normal, at least one low.
    let first = [Priority::High, Priority::Normal, Priority::Low].map(|p| count(30, p));
    eprintln!("first 30 run: {first:?} (high, normal, low)");
    assert!(first[0] >= 15, "{first:?}");
    assert!(first[1] >= 5, "{first:?}");
    assert!(first[2] >= 1, "no starvation: {first:?}");
    assert!(first[0] > first[1] && first[1] > first[2], "{first:?}");
    // On average, higher ones ran sooner.
    let mean = |p: Priority| {
        let at: Vec<usize> = started
            .iter()
            .enumerate()
            .filter(|(_, (_, q))| *q == p)
            .map(|(i, _)| i)
            .collect();
        at.iter().sum::<usize>() as f64 / at.len() as f64
    };
    assert!(mean(Priority::High) < mean(Priority::Normal));
    assert!(mean(Priority::Normal) < mean(Priority::Low));
    runner.shutdown(Duration::from_secs(1)).unwrap();
}
