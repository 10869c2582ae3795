//! The worker pool: a dispatcher process that takes jobs from a [`JobStore`] and hands them, in
//! batches, to worker processes kept by a dynamic supervisor.
//!
//! - A worker runs each batch on the blocking pool, one job after the other (a worker with
//!   `concurrency` N runs up to N batches at once), and writes each result to the store as it
//!   ends.
//! - A worker that crashes (a panic in a native function called by a script, or a kill) is
//!   restarted by the supervisor with a fresh actor; the job it was running ends `error` with
//!   the reason, and the jobs of its batch it had not started go back to the queue.
//! - An idle worker is pinged; one that misses `max_missed` pings in a row is killed, and so
//!   restarted.
//! - The pool can be resized while it runs, and shut down with a grace period: it stops taking
//!   jobs, lets the running ones finish until the grace period ends, then cancels the rest
//!   (they end `error: cancelled`).
//!
//! Laid out as: this module (the API: [`WorkerPool`], its config and stats), `dispatcher`
//! (the process that takes jobs and hands them out, one handler per message), `batch` (the
//! jobs handed to a worker at once, shared with the blocking thread that runs them) and
//! `worker` (the worker process and the run of a batch).

mod batch;
mod dispatcher;
mod worker;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::jobs::actor::JobActor;
use crate::jobs::store::JobStore;
use crate::server::ReplyTo;
use crate::supervisor::Shutdown;
use crate::{Addr, Ctx, ExitReason, Handle, Pid};

use dispatcher::{DispatchMsg, dispatch};

/// Builds a worker's actor; called at each (re)start of a worker.
pub type ActorFactory = Arc<dyn Fn() -> Arc<dyn JobActor> + Send + Sync>;

/// How idle workers are checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthCheck {
    /// A worker idle this long gets a ping.
    pub idle: Duration,
    /// How long it has to answer.
    pub deadline: Duration,
    /// Missed pings in a row after which it is killed (and restarted).
    pub max_missed: u32,
}

impl Default for HealthCheck {
    fn default() -> Self {
        HealthCheck {
            idle: Duration::from_secs(30),
            deadline: Duration::from_secs(5),
            max_missed: 3,
        }
    }
}

/// A worker pool's settings.
#[derive(Clone, Debug)]
pub struct PoolConfig {
    /// The queue (actor id) jobs are taken from.
    pub actor_id: String,
    /// How many workers.
    pub workers: usize,
    /// Batches each worker runs at once: 1 is a sync actor (one job at a time), more an async
    /// one.
    pub concurrency: usize,
    /// The most jobs in one batch.
    pub max_batch: usize,
    /// How long one take from the store waits for jobs.
    pub take_wait: Duration,
    /// Health checks of idle workers (`None`: off).
    pub health: Option<HealthCheck>,
    /// Worker restarts allowed within a period before the pool gives up.
    pub intensity: (u32, Duration),
    /// Jobs to take from the store ahead of need, so workers do not wait for a take when their
    /// batch ends (a network store's round trips then overlap with the work). 0: take only
    /// for free workers.
    pub prefetch: usize,
    /// On shutdown, give jobs not finished back to the store (`JobStore::release`) instead of
    /// ending them `error: cancelled`: what a runner sharing a queue with others does.
    pub requeue_on_shutdown: bool,
}

impl PoolConfig {
    /// Defaults for `actor_id`: a worker per core, sync workers, batches of up to 64, pings
    /// after 30 s idle, 10 restarts per second at most.
    pub fn new(actor_id: impl Into<String>) -> Self {
        PoolConfig {
            actor_id: actor_id.into(),
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            concurrency: 1,
            max_batch: 64,
            take_wait: Duration::from_millis(100),
            health: Some(HealthCheck::default()),
            intensity: (10, Duration::from_secs(1)),
            requeue_on_shutdown: false,
            prefetch: 0,
        }
    }
}

/// Why the pool could not do something.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// The pool could not start.
    #[error("the worker pool could not start: {0}")]
    Start(String),
    /// The pool has stopped.
    #[error("the worker pool has stopped")]
    Stopped,
}

/// What the pool has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Workers running (not counting those being retired).
    pub workers: usize,
    /// Batches running.
    pub running_batches: usize,
    /// Jobs taken from the store and not yet handed to a worker.
    pub pending: usize,
    /// Jobs that ended `finished`.
    pub finished: u64,
    /// Jobs that ended `error`.
    pub failed: u64,
    /// Workers that exited abnormally (and were restarted).
    pub crashes: u64,
    /// Workers killed for missing pings.
    pub unhealthy: u64,
    /// Health pings sent to idle workers.
    pub pings: u64,
    /// Health pings answered in time.
    pub pongs: u64,
}

/// A running worker pool.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use baobab::Runtime;
/// use baobab::jobs::{Job, JobStatus, JobStore, MemoryStore, PoolConfig, WorkerPool};
/// use baobab::script::RhaiActor;
/// use baobab::script::SandboxConfig;
///
/// let rt = Runtime::new();
/// let store = Arc::new(MemoryStore::new());
/// let pool = WorkerPool::start(
///     rt.handle(),
///     store.clone(),
///     Arc::new(|| Arc::new(RhaiActor::new("rhai", SandboxConfig::default())) as _),
///     PoolConfig::new("rhai"),
/// )
/// .unwrap();
/// let job = Job::builder("40 + 2").build().unwrap();
/// let id = job.id.clone();
/// store.submit(job).unwrap();
/// let done = store.wait(&id, Duration::from_secs(10)).unwrap();
/// assert_eq!((done.status, done.output.as_deref()), (JobStatus::Finished, Some("42")));
/// pool.shutdown(Duration::from_secs(1));
/// ```
#[derive(Clone)]
pub struct WorkerPool {
    dispatcher: Target,
    handle: Handle,
    /// The watch on the dispatcher, for a pool made by [`WorkerPool::start`].
    exit: Option<Arc<Mutex<crate::ExitWatch>>>,
}

/// How a pool handle finds its dispatcher: by address, or by registered name (a pool under a
/// supervisor gets a new dispatcher at each restart).
#[derive(Clone)]
enum Target {
    Addr(Addr<DispatchMsg>),
    Name(Arc<str>),
}

impl std::fmt::Debug for WorkerPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.dispatcher {
            Target::Addr(addr) => write!(f, "WorkerPool({})", addr.pid()),
            Target::Name(name) => write!(f, "WorkerPool({name:?})"),
        }
    }
}

impl WorkerPool {
    /// Starts the dispatcher, the supervisor and `config.workers` workers, from outside the
    /// runtime.
    ///
    /// # Panics
    /// On a scheduler thread.
    pub fn start(
        handle: &Handle,
        store: Arc<dyn JobStore>,
        factory: ActorFactory,
        config: PoolConfig,
    ) -> Result<WorkerPool, PoolError> {
        let (ready, started) = std::sync::mpsc::channel();
        let dispatcher = handle
            .spawn(move |ctx: Ctx<DispatchMsg>| {
                dispatch(ctx, store, factory, config, Some(ready), None)
            })
            .map_err(|error| PoolError::Start(error.to_string()))?;
        // Watched before it could have exited: a dispatcher gone by now answers `noproc`.
        let watch = handle.watch(dispatcher.pid());
        match started.recv() {
            Ok(Ok(())) => Ok(WorkerPool {
                dispatcher: Target::Addr(dispatcher),
                handle: handle.clone(),
                exit: Some(Arc::new(Mutex::new(watch))),
            }),
            Ok(Err(reason)) => Err(PoolError::Start(reason)),
            Err(_) => Err(PoolError::Start("the dispatcher exited".into())),
        }
    }

    /// The pool as a child of a supervisor: its dispatcher registers as `name` and, at each
    /// (re)start, first gives back to the store the jobs an earlier dispatcher took and did
    /// not finish ([`JobStore::recover`]). Reach it with [`WorkerPool::named`].
    pub fn child_spec(
        name: &str,
        store: Arc<dyn JobStore>,
        factory: ActorFactory,
        config: PoolConfig,
    ) -> crate::supervisor::ChildSpec {
        let name: Arc<str> = Arc::from(name);
        crate::supervisor::ChildSpec::worker(name.to_string(), move |start| {
            let (store, factory, config, name) =
                (store.clone(), factory.clone(), config.clone(), name.clone());
            start.spawn(move |ctx: Ctx<DispatchMsg>| {
                dispatch(ctx, store, factory, config, None, Some(name))
            })
        })
        .restart(crate::supervisor::Restart::Transient)
        .shutdown(Shutdown::Infinity)
    }

    /// A handle to the pool whose dispatcher is registered as `name` (see
    /// [`child_spec`](Self::child_spec)).
    pub fn named(handle: &Handle, name: &str) -> WorkerPool {
        WorkerPool {
            dispatcher: Target::Name(Arc::from(name)),
            handle: handle.clone(),
            exit: None,
        }
    }

    fn addr(&self) -> Result<Addr<DispatchMsg>, PoolError> {
        match &self.dispatcher {
            Target::Addr(addr) => Ok(*addr),
            Target::Name(name) => self.handle.whereis(name).ok_or(PoolError::Stopped),
        }
    }

    /// Why the pool stopped, once it has (`None` while it runs). A pool stops after
    /// [`shutdown`](Self::shutdown) (reason `normal`), or when its workers crash more often
    /// than [`PoolConfig::intensity`] allows: then every job it held and had not started, and
    /// (unless it requeues on shutdown) every job still queued in the store for its actor, has
    /// ended `error: worker pool stopped: …`; a job that was running was told to stop and ends
    /// so when it next looks at its cancel token (a Rhai script within a millisecond). The pool
    /// owns its actor's queue in the store: another pool of the same actor on the same store
    /// would see its queued jobs ended too. Does not wait. Always `None` for a pool reached by
    /// [`named`](Self::named) (its supervisor restarts it).
    pub fn exited(&self) -> Option<ExitReason> {
        self.exit
            .as_ref()?
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .exited()
    }

    /// The dispatcher's pid (`None` while a supervised pool has none running).
    pub fn pid(&self) -> Option<Pid> {
        self.addr().ok().map(|addr| addr.pid())
    }

    fn call<R: Send + 'static>(
        &self,
        request: impl FnOnce(ReplyTo<R>) -> DispatchMsg + Send + 'static,
        timeout: Duration,
    ) -> Result<R, PoolError> {
        let to = self.addr()?;
        self.handle
            .block_on(move |mut ctx: Ctx<()>| async move { ctx.call(&to, request, timeout).await })
            .map_err(|_| PoolError::Stopped)?
            .map_err(|_| PoolError::Stopped)
    }

    /// Changes the number of workers to `n`. Workers beyond `n` are retired: idle ones stop
    /// now, busy ones when their batch ends. Returns `n`.
    pub fn resize(&self, n: usize) -> Result<usize, PoolError> {
        self.call(
            move |reply| DispatchMsg::Resize(n, reply),
            Duration::from_secs(30),
        )
    }

    /// What the pool has done so far.
    pub fn stats(&self) -> Result<PoolStats, PoolError> {
        self.call(DispatchMsg::Stats, Duration::from_secs(30))
    }

    /// [`stats`](Self::stats), waiting at most `timeout` for the answer.
    pub fn stats_within(&self, timeout: Duration) -> Result<PoolStats, PoolError> {
        self.call(DispatchMsg::Stats, timeout)
    }

    /// The workers' pids.
    pub fn workers(&self) -> Result<Vec<Pid>, PoolError> {
        self.call(DispatchMsg::Workers, Duration::from_secs(30))
    }

    /// [`resize`](Self::resize) without waiting (callable from inside a process).
    pub fn set_workers(&self, n: usize) {
        if let Ok(to) = self.addr() {
            let _ = self.handle.send(&to, DispatchMsg::SetWorkers(n));
        }
    }

    /// Cancels job `id` if it is running (or waiting to run) in this pool: it ends
    /// `error: cancelled`. An id not in the pool is remembered (the newest 1,024), and the job
    /// is cancelled if a take brings it later: a stop that overtakes its job is not lost.
    /// Does not wait.
    pub fn cancel(&self, id: &str) {
        if let Ok(to) = self.addr() {
            let _ = self.handle.send(&to, DispatchMsg::Cancel(id.to_string()));
        }
    }

    /// Stops taking jobs, lets running ones finish for up to `grace`, cancels the rest (they
    /// end `error: cancelled`), stops the workers and the dispatcher. Returns the final stats.
    pub fn shutdown(&self, grace: Duration) -> Result<PoolStats, PoolError> {
        let watch = self.handle.watch(self.addr()?.pid());
        let stats = self.call(
            move |reply| DispatchMsg::Shutdown(grace, reply),
            grace + Duration::from_secs(60),
        );
        watch.wait();
        stats
    }
}
