//! The job path in one process: jobs from the in-memory store through the supervised worker
//! pool and the Rhai sandbox, with crashes, kills, health checks, resizing and shutdown.

#![cfg(feature = "rhai")]

mod common;

use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use baobab::jobs::{
    CancelToken, HealthCheck, Job, JobActor, JobResult, JobStatus, JobStore, MemoryStore,
    PoolConfig, WorkerPool,
};
use baobab::script::{Limits, RhaiActor, SandboxConfig};
use baobab::{ExitReason, Runtime};
use common::{SAFETY, runtime};

fn rhai_factory(config: SandboxConfig) -> baobab::jobs::ActorFactory {
    Arc::new(move || Arc::new(RhaiActor::new("rhai", config.clone())) as Arc<dyn JobActor>)
}

fn pool(rt: &Runtime, store: &Arc<MemoryStore>, workers: usize) -> WorkerPool {
    let mut config = PoolConfig::new("rhai");
    config.workers = workers;
    WorkerPool::start(
        rt.handle(),
        store.clone(),
        rhai_factory(SandboxConfig::default()),
        config,
    )
    .unwrap()
}

fn submit(store: &MemoryStore, script: &str, timeout: Duration) -> String {
    let job = Job::builder(script).timeout(timeout).build().unwrap();
    let id = job.id.clone();
    store.submit(job).unwrap();
    id
}

fn ended(store: &MemoryStore, id: &str) -> Job {
    store.wait(id, SAFETY).unwrap()
}

fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < SAFETY, "not within {SAFETY:?}: {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_thousand_jobs_run_through_the_pool() {
    let rt = runtime();
    let store = Arc::new(MemoryStore::new());
    let pool = pool(&rt, &store, 2);
    let ids: Vec<(i64, String)> = (0..1000)
        .map(|i| {
            (
                i,
                submit(&store, &format!("{i} * 2"), Duration::from_secs(10)),
            )
        })
        .collect();
    for (i, id) in ids {
        let job = ended(&store, &id);
        assert_eq!(job.status, JobStatus::Finished);
        assert_eq!(job.output, Some((i * 2).to_string()));
        assert!(job.started_at.is_some() && job.finished_at.is_some());
    }
    let stats = pool.shutdown(Duration::from_secs(1)).unwrap();
    assert_eq!(stats.finished, 1000);
    assert_eq!(stats.failed, 0);
}

#[test]
fn bad_scripts_end_in_error_naming_why_and_the_rest_run() {
    let rt = runtime();
    let store = Arc::new(MemoryStore::new());
    let mut config = PoolConfig::new("rhai");
    config.workers = 2;
    let sandbox = SandboxConfig {
        limits: Limits {
            max_operations: 100_000,
            ..Limits::default()
        },
        ..SandboxConfig::default()
    };
    let pool =
        WorkerPool::start(rt.handle(), store.clone(), rhai_factory(sandbox), config).unwrap();
    let forever = submit(&store, "loop {}", Duration::from_secs(1));
    let greedy = submit(
        &store,
        "let x = 0; for i in 0..10000000 { x += i; } x",
        Duration::from_secs(10),
    );
    let broken = submit(&store, "let = ;", Duration::from_secs(10));
    let thrown = submit(
        &store,
        r#"print("about to throw"); throw "nope""#,
        Duration::from_secs(10),
    );
    let good = submit(&store, r#"print("hi"); "fine""#, Duration::from_secs(10));

    let job = ended(&store, &forever);
    assert_eq!(job.status, JobStatus::Error);
    // `loop {}` reaches the operations limit or the timeout, whichever comes first.
    let error = job.error.unwrap();
    assert!(
        error.contains("max-operations") || error.contains("timeout"),
        "{error}"
    );
    assert_eq!(
        ended(&store, &greedy).error.as_deref(),
        Some("limit exceeded: max-operations (100000)")
    );
    assert!(
        ended(&store, &broken)
            .error
            .unwrap()
            .starts_with("compile error")
    );
    let job = ended(&store, &thrown);
    assert!(job.error.unwrap().contains("nope"));
    assert_eq!(job.log, ["about to throw"]);
    let job = ended(&store, &good);
    assert_eq!(
        (job.status, job.output.as_deref()),
        (JobStatus::Finished, Some("fine"))
    );
    assert_eq!(job.log, ["hi"]);
    pool.shutdown(Duration::from_secs(1)).unwrap();
}

#[test]
fn a_wall_clock_timeout_ends_an_endless_loop_on_time() {
    let rt = runtime();
    let store = Arc::new(MemoryStore::new());
    let pool = pool(&rt, &store, 1);
    let start = Instant::now();
    let id = submit(&store, "loop {}", Duration::from_secs(1));
    let job = ended(&store, &id);
    assert_eq!(
        job.error.as_deref(),
        Some("timeout: still running after 1s")
    );
    assert!(start.elapsed() < Duration::from_secs(5));
    pool.shutdown(Duration::from_secs(1)).unwrap();
}

#[test]
fn a_panic_in_a_native_function_ends_only_its_job_and_the_worker_goes_on() {
    let rt = runtime();
    let store = Arc::new(MemoryStore::new());
    let sandbox = SandboxConfig {
        extend: Some(Arc::new(|engine: &mut baobab::script::rhai::Engine| {
            engine.register_fn("explode", || -> i64 { panic!("native code exploded") });
        })),
        ..SandboxConfig::default()
    };
    let mut config = PoolConfig::new("rhai");
    config.workers = 1;
    config.max_batch = 64;
    let pool =
        WorkerPool::start(rt.handle(), store.clone(), rhai_factory(sandbox), config).unwrap();
    let before = pool.workers().unwrap();
    // One batch: jobs before and after the panicking ones, more panics than the restart
    // intensity (10 a second) would allow were each a worker's death.
    let scripts: Vec<&str> = ["1"]
        .into_iter()
        .chain(std::iter::repeat_n("explode()", 30))
        .chain(["3", "4"])
        .collect();
    let ids: Vec<String> = scripts
        .iter()
        .map(|s| {
            let job = Job::builder(*s).build().unwrap();
            let id = job.id.clone();
            store.submit(job).unwrap();
            id
        })
        .collect();
    for (id, script) in ids.iter().zip(&scripts) {
        let job = ended(&store, id);
        if *script == "explode()" {
            assert_eq!(job.status, JobStatus::Error);
            assert_eq!(job.error.as_deref(), Some("panic: native code exploded"));
        } else {
            assert_eq!(job.status, JobStatus::Finished, "{job:?}");
        }
    }
    assert_eq!(pool.workers().unwrap(), before, "no worker died");
    // A job is counted just after its result is stored.
    eventually("every job counted", || {
        let stats = pool.stats().unwrap();
        (stats.finished, stats.failed) == (3, 30)
    });
    assert_eq!(pool.stats().unwrap().crashes, 0);
    assert_eq!(pool.exited(), None);
    pool.shutdown(Duration::from_secs(1)).unwrap();
}

/// An actor whose every job panics (a custom actor: the sandbox is not there to catch it).
struct Panicker;

impl JobActor for Panicker {
    fn actor_id(&self) -> &str {
        "panicker"
    }

    fn actor_type(&self) -> &str {
        "Panicker"
    }

    fn process_job(&self, job: &Job, _cancel: &CancelToken) -> JobResult {
        if job.script == "ok" {
            return JobResult {
                outcome: Ok("fine".into()),
                log: Vec::new(),
            };
        }
        panic!("actor exploded")
    }
}

#[test]
fn a_pool_whose_workers_keep_crashing_stops_and_ends_every_job_at_once() {
    let rt = runtime();
    let store = Arc::new(MemoryStore::new());
    let mut config = PoolConfig::new("panicker");
    config.workers = 2;
    config.max_batch = 1;
    config.intensity = (3, Duration::from_secs(60));
    let factory: baobab::jobs::ActorFactory = Arc::new(|| Arc::new(Panicker) as Arc<dyn JobActor>);
    let pool = WorkerPool::start(rt.handle(), store.clone(), factory, config).unwrap();
    let submit = |script: &str| {
        let job = Job::builder(script).actor_id("panicker").build().unwrap();
        let id = job.id.clone();
        store.submit(job).unwrap();
        id
    };
    // More crashes than the intensity allows, then jobs that would run fine: they are still
    // queued when the pool stops, and must not be left waiting.
    let crashing: Vec<String> = (0..10).map(|_| submit("boom")).collect();
    let queued: Vec<String> = (0..50).map(|_| submit("ok")).collect();
    let start = Instant::now();
    for id in crashing.iter().chain(&queued) {
        let job = store.wait(id, Duration::from_secs(10)).unwrap_or_else(|e| {
            panic!(
                "{e}: {:?} (crashing: {})",
                store.get(id),
                crashing.contains(id)
            )
        });
        assert!(job.status.is_final());
        if job.status == JobStatus::Error {
            let error = job.error.unwrap();
            assert!(
                error.starts_with("worker crashed: panic: actor exploded")
                    || error
                        .starts_with("worker pool stopped: its workers crashed more than 3 times"),
                "{error}"
            );
        }
    }
    assert!(start.elapsed() < Duration::from_secs(10));
    let stopped = queued
        .iter()
        .filter(|id| {
            store.get(id).unwrap().unwrap().error.as_deref().is_some_and(|e| {
                e.starts_with("worker pool stopped: its workers crashed more than 3 times in 60s (the last: panic: actor exploded)")
            })
        })
        .count();
    assert!(stopped > 0, "the jobs queued behind end with the reason");
    assert_eq!(store.queued("panicker").unwrap(), 0);
    eventually("the pool reports its end", || pool.exited().is_some());
    let reason = pool.exited().unwrap().to_string();
    assert!(reason.contains("worker pool stopped"), "{reason}");
    assert!(pool.shutdown(Duration::from_secs(1)).is_err());
}

#[test]
fn a_killed_worker_ends_its_job_with_the_reason_and_others_are_untouched() {
    let rt = runtime();
    let store = Arc::new(MemoryStore::new());
    let pool = pool(&rt, &store, 2);
    let long = submit(&store, "loop {}", Duration::from_secs(60));
    eventually("the long job started", || {
        store.status(&long).unwrap() == Some(JobStatus::Started)
    });
    assert_eq!(pool.stats().unwrap().running_batches, 1);
    let workers = pool.workers().unwrap();
    // Kill the workers in turn until the long job ends: only the busy one's death ends it.
    let mut killed = 0;
    for pid in workers {
        if store.status(&long).unwrap() == Some(JobStatus::Error) {
            break;
        }
        rt.handle().exit(pid, ExitReason::Kill);
        killed += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    let job = ended(&store, &long);
    assert_eq!(job.error.as_deref(), Some("worker exited: killed"));
    let others: Vec<String> = (0..10)
        .map(|i| submit(&store, &i.to_string(), Duration::from_secs(10)))
        .collect();
    for id in others {
        assert_eq!(ended(&store, &id).status, JobStatus::Finished);
    }
    eventually("both workers are back", || {
        pool.workers().unwrap().len() == 2
    });
    assert_eq!(pool.stats().unwrap().crashes, killed);
    pool.shutdown(Duration::from_secs(1)).unwrap();
}

#[test]
fn the_pool_resizes_while_it_runs() {
    let rt = runtime();
    let store = Arc::new(MemoryStore::new());
    let pool = pool(&rt, &store, 2);
    eventually("two workers", || pool.workers().unwrap().len() == 2);
    pool.resize(4).unwrap();
    eventually("four workers", || pool.workers().unwrap().len() == 4);
    pool.resize(1).unwrap();
    eventually("one worker", || pool.workers().unwrap().len() == 1);
    let id = submit(&store, "6 * 7", Duration::from_secs(10));
    assert_eq!(ended(&store, &id).output.as_deref(), Some("42"));
    assert_eq!(
        pool.stats().unwrap().crashes,
        0,
        "retired workers are no crashes"
    );
    pool.shutdown(Duration::from_secs(1)).unwrap();
}

/// An actor that sleeps as long as its job's script says (in ms), and whose pings can be
/// blocked.
struct Sleeper {
    pings: Arc<Mutex<mpsc::Receiver<()>>>,
    block_pings: bool,
}

impl JobActor for Sleeper {
    fn actor_id(&self) -> &str {
        "sleeper"
    }

    fn actor_type(&self) -> &str {
        "Sleeper"
    }

    fn process_job(&self, job: &Job, cancel: &CancelToken) -> JobResult {
        let ms: u64 = job.script.trim().parse().unwrap_or(0);
        let until = Instant::now() + Duration::from_millis(ms);
        while Instant::now() < until {
            if cancel.is_cancelled() {
                return JobResult {
                    outcome: Err("cancelled".into()),
                    log: Vec::new(),
                };
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        JobResult {
            outcome: Ok(format!("slept {ms}")),
            log: Vec::new(),
        }
    }

    fn ping(&self) -> bool {
        if self.block_pings {
            // Waits until the test lets go (or drops the sender): a worker that never answers.
            let _ = self.pings.lock().unwrap().recv();
            false
        } else {
            true
        }
    }
}

fn sleeper_pool(
    rt: &Runtime,
    store: &Arc<MemoryStore>,
    config: PoolConfig,
    block_pings: bool,
) -> (WorkerPool, mpsc::Sender<()>) {
    let (release, pings) = mpsc::channel();
    let pings = Arc::new(Mutex::new(pings));
    let factory: baobab::jobs::ActorFactory = Arc::new(move || {
        Arc::new(Sleeper {
            pings: Arc::clone(&pings),
            block_pings,
        }) as Arc<dyn JobActor>
    });
    let pool = WorkerPool::start(rt.handle(), store.clone(), factory, config).unwrap();
    (pool, release)
}

fn sleep_job(store: &MemoryStore, ms: u64) -> String {
    let job = Job::builder(ms.to_string())
        .actor_id("sleeper")
        .build()
        .unwrap();
    let id = job.id.clone();
    store.submit(job).unwrap();
    id
}

#[test]
fn an_async_worker_runs_several_jobs_at_once() {
    let rt = runtime();
    let store = Arc::new(MemoryStore::new());
    let mut config = PoolConfig::new("sleeper");
    config.workers = 1;
    config.concurrency = 4;
    config.max_batch = 1;
    let (pool, _release) = sleeper_pool(&rt, &store, config, false);
    let start = Instant::now();
    let ids: Vec<String> = (0..4).map(|_| sleep_job(&store, 300)).collect();
    for id in &ids {
        assert_eq!(ended(&store, id).output.as_deref(), Some("slept 300"));
    }
    let took = start.elapsed();
    assert!(
        took < Duration::from_millis(1100),
        "4 × 300 ms ran at once: {took:?}"
    );
    pool.shutdown(Duration::from_secs(1)).unwrap();
}

#[test]
fn a_sync_worker_runs_one_job_at_a_time() {
    let rt = runtime();
    let store = Arc::new(MemoryStore::new());
    let mut config = PoolConfig::new("sleeper");
    config.workers = 1;
    let (pool, _release) = sleeper_pool(&rt, &store, config, false);
    let start = Instant::now();
    let ids: Vec<String> = (0..3).map(|_| sleep_job(&store, 100)).collect();
    for id in &ids {
        ended(&store, id);
    }
    assert!(start.elapsed() >= Duration::from_millis(300));
    pool.shutdown(Duration::from_secs(1)).unwrap();
}

#[test]
fn a_cancel_that_overtakes_its_job_cancels_it_when_it_arrives() {
    let rt = runtime();
    let store = Arc::new(MemoryStore::new());
    let pool = pool(&rt, &store, 1);
    let job = Job::builder("40 + 2").build().unwrap();
    let id = job.id.clone();
    // The stop comes before the job reaches the pool (as when another runner passes a stop
    // on while this one's take is still on its way).
    pool.cancel(&id);
    store.submit(job).unwrap();
    let job = ended(&store, &id);
    assert_eq!(job.status, JobStatus::Error);
    assert_eq!(job.error.as_deref(), Some("cancelled"));
    assert_eq!(job.output, None);
    // Only that job: the next one runs.
    let next = submit(&store, "1 + 1", Duration::from_secs(5));
    assert_eq!(ended(&store, &next).output.as_deref(), Some("2"));
    let stats = pool.shutdown(Duration::from_secs(1)).unwrap();
    assert_eq!((stats.finished, stats.failed), (1, 1));
}

#[test]
fn jobs_stopped_during_a_requeueing_shutdown_end_cancelled_and_are_not_requeued() {
    let rt = runtime();
    let store = Arc::new(MemoryStore::new());
    let mut config = PoolConfig::new("sleeper");
    config.workers = 1;
    config.max_batch = 2;
    config.requeue_on_shutdown = true;
    // Both in one batch: one runs, one waits behind it.
    let running = sleep_job(&store, 60_000);
    let waiting = sleep_job(&store, 60_000);
    let (pool, _release) = sleeper_pool(&rt, &store, config, false);
    eventually("the batch runs", || {
        pool.stats().unwrap().running_batches == 1
    });
    let shutdown = {
        let pool = pool.clone();
        std::thread::spawn(move || pool.shutdown(Duration::from_secs(30)))
    };
    // Let the shutdown begin: during its grace, jobs it would give back are stopped.
    std::thread::sleep(Duration::from_millis(100));
    pool.cancel(&waiting);
    pool.cancel(&running);
    for id in [&running, &waiting] {
        let job = ended(&store, id);
        assert_eq!(job.status, JobStatus::Error, "{job:?}");
        assert_eq!(job.error.as_deref(), Some("cancelled"), "{job:?}");
    }
    let stats = shutdown.join().unwrap().unwrap();
    assert_eq!(stats.failed, 2);
    assert_eq!(store.queued("sleeper").unwrap(), 0);
}

#[test]
fn shutdown_lets_running_jobs_finish_within_the_grace_then_cancels_the_rest() {
    let rt = runtime();
    let store = Arc::new(MemoryStore::new());
    let mut config = PoolConfig::new("sleeper");
    config.workers = 2;
    config.max_batch = 1;
    let (pool, _release) = sleeper_pool(&rt, &store, config, false);
    let quick = sleep_job(&store, 300);
    let slow = sleep_job(&store, 60_000);
    eventually("both run", || pool.stats().unwrap().running_batches == 2);
    let waiting: Vec<String> = (0..5).map(|_| sleep_job(&store, 10)).collect();
    let start = Instant::now();
    let stats = pool.shutdown(Duration::from_millis(500)).unwrap();
    assert!(start.elapsed() < Duration::from_secs(5));
    let quick_job = ended(&store, &quick);
    assert_eq!(quick_job.status, JobStatus::Finished, "{quick_job:?}");
    assert_eq!(ended(&store, &slow).error.as_deref(), Some("cancelled"));
    // Jobs still queued were never taken: they wait in the store for the next runner.
    for id in waiting {
        assert_eq!(store.status(&id).unwrap(), Some(JobStatus::Dispatched));
    }
    assert_eq!(stats.finished, 1);
}

/// A ping after 10 s idle, answered within 2 s; three misses kill the worker.
const HEALTH: HealthCheck = HealthCheck {
    idle: Duration::from_secs(10),
    deadline: Duration::from_secs(2),
    max_missed: 3,
};

/// A runtime on `clock`.
fn manual_runtime(clock: &baobab::ManualClock) -> Runtime {
    Runtime::builder()
        .threads(2)
        .clock(baobab::Clock::manual(clock))
        .build()
}

#[test]
fn an_idle_worker_that_misses_three_pings_is_restarted() {
    let clock = baobab::ManualClock::new();
    let rt = manual_runtime(&clock);
    let store = Arc::new(MemoryStore::new());
    let mut config = PoolConfig::new("sleeper");
    config.workers = 1;
    config.health = Some(HEALTH);
    let (pool, release) = sleeper_pool(&rt, &store, config, true);
    let first = pool.workers().unwrap()[0];
    let watch = rt.handle().watch(first);
    // Idle 10 s: a ping; each unanswered for 2 s is a miss; the third miss kills it.
    let mut exit = None;
    for _ in 0..30 {
        clock.advance(Duration::from_secs(1));
        exit = watch.wait_timeout(Duration::from_millis(20));
        if exit.is_some() {
            break;
        }
    }
    assert_eq!(exit, Some(ExitReason::Killed));
    eventually("a new worker", || {
        pool.workers().unwrap().first().is_some_and(|&p| p != first)
    });
    let stats = pool.stats().unwrap();
    assert_eq!(stats.unhealthy, 1);
    // Three pings went unanswered (the blocked worker never answers one).
    assert!(stats.pings >= 3, "{stats:?}");
    assert_eq!(stats.pongs, 0, "{stats:?}");
    drop(release);
    pool.shutdown(Duration::from_secs(1)).unwrap();
}

#[test]
fn a_healthy_idle_worker_answers_its_pings() {
    let clock = baobab::ManualClock::new();
    let rt = manual_runtime(&clock);
    let store = Arc::new(MemoryStore::new());
    let mut config = PoolConfig::new("rhai");
    config.workers = 1;
    config.health = Some(HEALTH);
    let pool = WorkerPool::start(
        rt.handle(),
        store.clone(),
        rhai_factory(SandboxConfig::default()),
        config,
    )
    .unwrap();
    let first = pool.workers().unwrap()[0];
    // A minute idle: a ping every 10 s. The clock moves on only once every ping sent is
    // answered, so a slow machine cannot make one late.
    for _ in 0..60 {
        clock.advance(Duration::from_secs(1));
        std::thread::sleep(Duration::from_millis(2));
        eventually("the ping is answered", || {
            let stats = pool.stats().unwrap();
            stats.pongs == stats.pings
        });
    }
    assert!(pool.stats().unwrap().pongs >= 3);
    assert_eq!(pool.workers().unwrap(), [first]);
    assert_eq!(pool.stats().unwrap().unhealthy, 0);
    pool.shutdown(Duration::from_secs(1)).unwrap();
}

#[test]
fn the_scripts_see_their_job_context() {
    let rt = runtime();
    let store = Arc::new(MemoryStore::new());
    let sandbox = SandboxConfig {
        db_path: "/var/db/baobab".into(),
        ..SandboxConfig::default()
    };
    let mut config = PoolConfig::new("rhai");
    config.workers = 1;
    let pool =
        WorkerPool::start(rt.handle(), store.clone(), rhai_factory(sandbox), config).unwrap();
    let job = Job::builder(
        "#{job: JOB_ID, caller: CALLER_ID, context: CONTEXT_ID, db: DB_PATH, who: WHO}",
    )
    .id("job-1")
    .caller_id("alice")
    .context_id("circle-7")
    .env("WHO", "world")
    .build()
    .unwrap();
    store.submit(job).unwrap();
    let done = ended(&store, "job-1");
    let value: serde_json::Value = serde_json::from_str(done.output.as_deref().unwrap()).unwrap();
    assert_eq!(
        value,
        serde_json::json!({"job": "job-1", "caller": "alice", "context": "circle-7", "db": "/var/db/baobab", "who": "world"})
    );
    pool.shutdown(Duration::from_secs(1)).unwrap();
}

#[test]
fn the_embedded_store_runs_a_failed_job_again_after_its_backoff_and_keeps_each_failure() {
    let rt = runtime();
    let store = Arc::new(MemoryStore::new());
    let pool = pool(&rt, &store, 2);
    let backoff = Duration::from_millis(200);
    let job = |script: &str, retries: u32| {
        let job = Job::builder(script)
            .retries(retries)
            .backoff(backoff)
            .build()
            .unwrap();
        let id = job.id.clone();
        store.submit(job).unwrap();
        id
    };
    let started = Instant::now();
    let failing = job(r#"throw "boom""#, 2);
    let fine = job("6 * 7", 2);
    let ended_failing = ended(&store, &failing);
    assert_eq!(ended_failing.status, JobStatus::Error);
    assert_eq!(ended_failing.attempts, 3, "{ended_failing:?}");
    assert_eq!(
        ended_failing
            .errors
            .iter()
            .map(|e| e.attempt)
            .collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert!(
        ended_failing
            .errors
            .iter()
            .all(|e| e.error.contains("boom"))
    );
    assert!(started.elapsed() >= 2 * backoff);
    // A job that succeeds runs once, whatever its retries.
    let ended_fine = ended(&store, &fine);
    assert_eq!(ended_fine.status, JobStatus::Finished);
    assert_eq!((ended_fine.attempts, ended_fine.errors.len()), (1, 0));
    // A job for later waits until then in the embedded store too.
    let later = Job::builder("1")
        .run_at(std::time::SystemTime::now() + Duration::from_millis(300))
        .build()
        .unwrap();
    let id = later.id.clone();
    let submitted = Instant::now();
    store.submit(later).unwrap();
    assert_eq!(ended(&store, &id).status, JobStatus::Finished);
    assert!(submitted.elapsed() >= Duration::from_millis(290));
    pool.shutdown(Duration::from_secs(1)).unwrap();
}
