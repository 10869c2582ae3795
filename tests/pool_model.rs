//! A state-machine test of the worker pool: random sequences of submits (jobs that finish,
//! fail, panic or run until stopped), cancels, worker kills, resizes and pauses, run against a
//! real pool on real threads, then a shutdown. Timing decides much of what happens, so the
//! model checks what must hold whatever the timing:
//!
//! - every job ends at most once, and no job is left running: each is ended or still queued;
//! - a job ends only with what its kind allows (its own result, a cancel, its worker's death);
//! - a job cancelled while it was still queued never runs to the end;
//! - the pool's stats count each ending once.

#![cfg(feature = "rhai")]

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use baobab::jobs::{
    CancelToken, Job, JobActor, JobResult, JobStatus, JobStore, MemoryStore, PoolConfig,
    StoreError, WorkerPool,
};
use proptest::prelude::*;

const ACTOR: &str = "model";

/// What a job does (its script says it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Works this many milliseconds, then finishes with `done`.
    Ok(u64),
    /// Ends `error` at once.
    Fail,
    /// Panics (its worker crashes).
    Panic,
    /// Runs until cancelled.
    Block,
}

impl Kind {
    fn script(self) -> String {
        match self {
            Kind::Ok(ms) => format!("ok {ms}"),
            Kind::Fail => "fail".into(),
            Kind::Panic => "panic".into(),
            Kind::Block => "block".into(),
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    Submit(Kind),
    /// Cancel the job at this position (modulo the jobs submitted so far).
    Cancel(usize),
    /// Kill the worker at this position (modulo the workers running).
    Kill(usize),
    Resize(usize),
    Pause(u64),
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        4 => (0..15u64).prop_map(Kind::Ok),
        1 => Just(Kind::Fail),
        1 => Just(Kind::Panic),
        1 => Just(Kind::Block),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => kind().prop_map(Op::Submit),
        2 => any::<usize>().prop_map(Op::Cancel),
        1 => any::<usize>().prop_map(Op::Kill),
        1 => (1..4usize).prop_map(Op::Resize),
        2 => (0..10u64).prop_map(Op::Pause),
    ]
}

/// The actor the jobs' scripts drive.
struct Scripted;

impl JobActor for Scripted {
    fn actor_id(&self) -> &str {
        ACTOR
    }

    fn actor_type(&self) -> &str {
        "Scripted"
    }

    fn process_job(&self, job: &Job, cancel: &CancelToken) -> JobResult {
        let run_until = |until: Instant| -> Result<(), String> {
            while Instant::now() < until {
                if cancel.is_cancelled() {
                    return Err("cancelled".into());
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            if cancel.is_cancelled() {
                return Err("cancelled".into());
            }
            Ok(())
        };
        let outcome = match job.script.split_whitespace().collect::<Vec<_>>()[..] {
            ["ok", ms] => run_until(Instant::now() + Duration::from_millis(ms.parse().unwrap()))
                .map(|()| "done".to_string()),
            ["fail"] => Err("failed on purpose".into()),
            ["panic"] => panic!("boom"),
            // A safety net: the shutdown's grace ends every blocked job long before.
            ["block"] => run_until(Instant::now() + common::SAFETY)
                .and(Err("block outlived the safety net".to_string())),
            _ => Err(format!("bad script {:?}", job.script)),
        };
        JobResult {
            outcome,
            log: Vec::new(),
        }
    }
}

/// The in-memory store, counting how often each job is ended.
#[derive(Default)]
struct Counting {
    inner: MemoryStore,
    ended: Mutex<HashMap<String, u32>>,
    /// Held by a take, and by the test while it reads a job's status and sends a cancel: so
    /// a job seen queued is still queued when the cancel reaches the pool's mailbox.
    takes: Mutex<()>,
}

impl JobStore for Counting {
    fn submit(&self, job: Job) -> Result<(), StoreError> {
        self.inner.submit(job)
    }
    fn take(&self, actor_id: &str, max: usize, wait: Duration) -> Result<Vec<Job>, StoreError> {
        // Waiting without the lock, taking with it.
        if self.inner.queued(actor_id)? == 0 {
            std::thread::sleep(wait.min(Duration::from_millis(5)));
        }
        let _takes = self.takes.lock().unwrap_or_else(PoisonError::into_inner);
        self.inner.take(actor_id, max, Duration::ZERO)
    }
    fn complete(&self, job: &Job) -> Result<(), StoreError> {
        *self
            .ended
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(job.id.clone())
            .or_default() += 1;
        self.inner.complete(job)
    }
    fn get(&self, id: &str) -> Result<Option<Job>, StoreError> {
        self.inner.get(id)
    }
    fn wait(&self, id: &str, timeout: Duration) -> Result<Job, StoreError> {
        self.inner.wait(id, timeout)
    }
    fn close(&self) {
        self.inner.close()
    }
    fn queued(&self, actor_id: &str) -> Result<usize, StoreError> {
        self.inner.queued(actor_id)
    }
    fn release(&self, job: &Job) -> Result<(), StoreError> {
        self.inner.release(job)
    }
}

/// What the test knows of a job.
struct Submitted {
    id: String,
    kind: Kind,
    /// A cancel was sent while the store still had it queued.
    cancelled_while_queued: bool,
}

fn run(
    ops: Vec<Op>,
    max_batch: usize,
    concurrency: usize,
    requeue_on_shutdown: bool,
) -> Result<(), TestCaseError> {
    let rt = common::runtime();
    let store = Arc::new(Counting::default());
    let mut config = PoolConfig::new(ACTOR);
    config.workers = 2;
    config.max_batch = max_batch;
    config.concurrency = concurrency;
    config.take_wait = Duration::from_millis(20);
    config.requeue_on_shutdown = requeue_on_shutdown;
    // Crashes are part of the test: the intensity must not end the pool.
    config.intensity = (1_000, Duration::from_secs(1));
    let factory: baobab::jobs::ActorFactory = Arc::new(|| Arc::new(Scripted) as Arc<dyn JobActor>);
    let pool = WorkerPool::start(rt.handle(), store.clone(), factory, config).unwrap();
    let mut jobs: Vec<Submitted> = Vec::new();
    for op in ops {
        match op {
            Op::Submit(kind) => {
                let job = Job::builder(kind.script()).actor_id(ACTOR).build().unwrap();
                jobs.push(Submitted {
                    id: job.id.clone(),
                    kind,
                    cancelled_while_queued: false,
                });
                store.submit(job).unwrap();
            }
            Op::Cancel(i) if !jobs.is_empty() => {
                let i = i % jobs.len();
                let _takes = store.takes.lock().unwrap();
                let queued = store.status(&jobs[i].id).unwrap() == Some(JobStatus::Dispatched);
                jobs[i].cancelled_while_queued |= queued;
                pool.cancel(&jobs[i].id);
            }
            Op::Kill(i) => {
                let workers = pool.workers().unwrap();
                if !workers.is_empty() {
                    rt.handle()
                        .exit(workers[i % workers.len()], baobab::ExitReason::Kill);
                }
            }
            Op::Resize(n) => pool.set_workers(n),
            Op::Pause(ms) => std::thread::sleep(Duration::from_millis(ms)),
            Op::Cancel(_) => {}
        }
    }
    // Every job that was not cancelled while queued gets a moment to be taken and run.
    std::thread::sleep(Duration::from_millis(30));
    let stats = pool.shutdown(Duration::from_millis(100)).unwrap();

    let ended = store.ended.lock().unwrap().clone();
    let (mut finished, mut failed) = (0, 0);
    for job in &jobs {
        let times = ended.get(&job.id).copied().unwrap_or(0);
        let now = store.get(&job.id).unwrap().unwrap();
        prop_assert!(times <= 1, "{} ended {times} times", job.id);
        match now.status {
            JobStatus::Dispatched => prop_assert_eq!(times, 0, "a queued job was ended"),
            JobStatus::Finished | JobStatus::Error => prop_assert_eq!(times, 1),
            other => prop_assert!(false, "{:?} left {other:?}: {now:?}", job.kind),
        }
        let error = now.error.as_deref().unwrap_or("");
        let by_others = error == "cancelled" || error.starts_with("worker exited");
        match (job.kind, now.status) {
            (_, JobStatus::Dispatched) => {}
            (Kind::Ok(_), JobStatus::Finished) => {
                prop_assert_eq!(now.output.as_deref(), Some("done"));
                prop_assert!(
                    !job.cancelled_while_queued,
                    "cancelled while queued, yet it ran to the end"
                );
            }
            (Kind::Fail, JobStatus::Error) => {
                prop_assert!(error == "failed on purpose" || by_others, "{error}")
            }
            (Kind::Panic, JobStatus::Error) => prop_assert!(
                error == "worker crashed: panic: boom" || by_others,
                "{error}"
            ),
            (_, JobStatus::Error) => prop_assert!(by_others, "{:?}: {error}", job.kind),
            (kind, status) => prop_assert!(false, "{kind:?} ended {status:?}"),
        }
        match now.status {
            JobStatus::Finished => finished += 1,
            JobStatus::Error => failed += 1,
            _ => {}
        }
    }
    prop_assert_eq!(
        (stats.finished, stats.failed),
        (finished, failed),
        "the stats count each ending once"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 48,
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_job_ends_at_most_once_and_only_as_its_kind_allows(
        ops in prop::collection::vec(op(), 1..30),
        max_batch in 1..4usize,
        concurrency in 1..3usize,
        requeue_on_shutdown in any::<bool>(),
    ) {
        run(ops, max_batch, concurrency, requeue_on_shutdown)?;
    }
}
