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

use std::collections::{HashMap, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use tracing::{debug, info, warn};

use super::actor::{CancelToken, JobActor};
use super::job::{Job, JobStatus};
use super::store::{JobStore, StoreError};
use crate::server::ReplyTo;
use crate::signal::reason::panic_message;
use crate::supervisor::{DynamicSpec, DynamicSupervisor, Restart, Shutdown};
use crate::{Addr, Ctx, ExitReason, Handle, Message, MonitorRef, Pid};

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
/// use baobab::jobs::{Job, JobStatus, JobStore, MemoryStore, PoolConfig, RhaiActor, WorkerPool};
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

/// What the dispatcher receives.
pub(crate) enum DispatchMsg {
    Ready(Pid),
    Taken(Result<Vec<Job>, StoreError>),
    BatchDone {
        worker: Pid,
        batch: u64,
    },
    /// Sent from the blocking thread that ran batch `id`, when it is done: the dispatcher
    /// waits for the batches of dead workers this way.
    BatchEnded(u64),
    Pong {
        worker: Pid,
        seq: u64,
    },
    Tick,
    Completed(u64),
    Resize(usize, ReplyTo<usize>),
    Stats(ReplyTo<PoolStats>),
    Workers(ReplyTo<Vec<Pid>>),
    Shutdown(Duration, ReplyTo<PoolStats>),
    Cancel(String),
    SetWorkers(usize),
}

/// Jobs handed to a worker at once. The worker pops them one at a time; the dispatcher takes
/// back those not started if the worker dies.
pub(crate) struct Batch {
    id: u64,
    jobs: Mutex<VecDeque<Job>>,
    /// Set when the batch is given up.
    cancel: CancelToken,
    /// Why the batch was given up: its running job then ends with this.
    abandoned: Mutex<Option<Abandon>>,
    /// The job running now, and its own cancel token.
    current: Mutex<Option<(String, CancelToken)>>,
    /// The running job was cancelled by [`Batch::cancel`] (a stop): it ends `cancelled` even
    /// if the batch is given up to be requeued meanwhile.
    stopped: AtomicBool,
    /// Set by the worker when it hands the batch to the blocking pool (a batch sent to a
    /// worker that died first never runs).
    handed: AtomicBool,
    /// Set by the blocking thread that ran the batch when it is done.
    done: AtomicBool,
    /// The pool's count of ended jobs: the batch adds its own as they end.
    ended: Arc<Ended>,
}

/// Jobs ended by a pool's batches and by its dispatcher, counted where they end (a batch
/// whose worker died still counts its jobs).
#[derive(Default)]
struct Ended {
    finished: AtomicU64,
    failed: AtomicU64,
}

impl Ended {
    fn add(&self, status: JobStatus) {
        let counter = if status == JobStatus::Finished {
            &self.finished
        } else {
            &self.failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// What becomes of the running job of a batch that is given up.
#[derive(Clone, Debug)]
enum Abandon {
    /// It ends `error` with this message.
    Fail(String),
    /// It goes back to the store's queue (`JobStore::release`).
    Requeue,
    /// Nothing is written: its dispatcher is gone and a new one (or a reaper) owns it.
    Forget,
}

impl Batch {
    fn new(id: u64, jobs: VecDeque<Job>, ended: Arc<Ended>) -> Batch {
        Batch {
            id,
            jobs: Mutex::new(jobs),
            cancel: CancelToken::new(),
            abandoned: Mutex::new(None),
            current: Mutex::new(None),
            stopped: AtomicBool::new(false),
            handed: AtomicBool::new(false),
            done: AtomicBool::new(false),
            ended,
        }
    }

    fn take_back(&self) -> Vec<Job> {
        self.jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
            .collect()
    }

    fn abandon(&self, why: Abandon) {
        *self
            .abandoned
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(why);
        self.cancel.cancel();
        if let Some((_, token)) = &*self.current.lock().unwrap_or_else(PoisonError::into_inner) {
            token.cancel();
        }
    }

    /// Cancels job `id` if it is in this batch: a running one is told to stop (and
    /// `Cancelled::Running` returned), one not started is taken out and returned.
    fn cancel(&self, id: &str) -> Option<Cancelled> {
        // The jobs lock first, as `run_batch` takes them, so the job cannot be between the
        // queue and `current` while we look.
        let mut jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(index) = jobs.iter().position(|j| j.id == id) {
            return jobs
                .remove(index)
                .map(|job| Cancelled::Waiting(Box::new(job)));
        }
        match &*self.current.lock().unwrap_or_else(PoisonError::into_inner) {
            Some((running, token)) if running == id => {
                self.stopped.store(true, Ordering::SeqCst);
                token.cancel();
                Some(Cancelled::Running)
            }
            _ => None,
        }
    }
}

/// What [`Batch::cancel`] found.
enum Cancelled {
    /// The job was running: it was told to stop.
    Running,
    /// The job had not started: here it is.
    Waiting(Box<Job>),
}

/// What a worker receives.
pub(crate) enum WorkerMsg {
    Work(Arc<Batch>),
    Ping(u64),
    Ran { batch: u64, panic: Option<String> },
    Pinged(u64, bool),
}

#[derive(Clone)]
struct WorkerArgs {
    dispatcher: Addr<DispatchMsg>,
    factory: ActorFactory,
    store: Arc<dyn JobStore>,
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

struct Worker {
    pid: Pid,
    monitor: MonitorRef,
    batches: Vec<Arc<Batch>>,
    last_active: Duration,
    ping: Option<(u64, Duration)>,
    missed: u32,
    retiring: bool,
}

struct Dispatcher {
    store: Arc<dyn JobStore>,
    config: PoolConfig,
    dynamic: DynamicSupervisor<WorkerArgs>,
    workers: Vec<Worker>,
    pending: VecDeque<Job>,
    taking: bool,
    draining: bool,
    /// Workers wanted; those beyond it are retired.
    target: usize,
    next_batch: u64,
    next_ping: u64,
    stats: PoolStats,
    /// Jobs the dispatcher itself is completing on the blocking pool (cancelled ones).
    completing: u64,
    /// No take before this (after a failed one).
    take_after: Duration,
    /// Ids cancelled before they reached this pool (a take still on its way), newest last:
    /// each is cancelled when it arrives. At most [`EARLY_CANCELS`].
    early_cancels: VecDeque<String>,
    /// Jobs ended so far (shared with the batches).
    ended: Arc<Ended>,
    /// Batches of dead workers still running on the blocking pool (their jobs were told to
    /// stop): a shutdown waits for them.
    orphans: HashMap<u64, Arc<Batch>>,
    /// Why the last worker that crashed exited.
    last_crash: Option<String>,
}

/// How many cancels of jobs not (yet) in a pool it remembers.
const EARLY_CANCELS: usize = 1024;

impl Drop for Dispatcher {
    /// A dispatcher that dies (killed, or its process ends) lets go of its running batches:
    /// their jobs are no longer written by it (a restarted pool gives them back with
    /// `JobStore::recover`, or a reaper does).
    fn drop(&mut self) {
        for worker in &self.workers {
            for batch in &worker.batches {
                let undecided = batch
                    .abandoned
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .is_none();
                if undecided {
                    batch.take_back();
                    batch.abandon(Abandon::Forget);
                }
            }
        }
    }
}

async fn dispatch(
    mut ctx: Ctx<DispatchMsg>,
    store: Arc<dyn JobStore>,
    factory: ActorFactory,
    config: PoolConfig,
    started: Option<std::sync::mpsc::Sender<Result<(), String>>>,
    name: Option<Arc<str>>,
) -> ExitReason {
    ctx.trap_exit(true);
    let report = |result: Result<(), String>| {
        if let Some(started) = &started {
            let _ = started.send(result);
        }
    };
    // A restarted dispatcher: what the previous one took and did not finish goes back.
    let recover = {
        let (store, actor) = (Arc::clone(&store), config.actor_id.clone());
        move || store.recover(&actor)
    };
    match ctx.blocking(recover).await {
        Ok(0) => {}
        Ok(n) => {
            warn!(actor = %config.actor_id, requeued = n, "gave back the jobs of an earlier dispatcher")
        }
        Err(error) => warn!(actor = %config.actor_id, %error, "could not give back earlier jobs"),
    }
    let spec = DynamicSpec::worker("job-worker", |start, args: WorkerArgs| {
        start.spawn(move |ctx: Ctx<WorkerMsg>| work(ctx, args))
    })
    .restart(Restart::Permanent)
    .shutdown(Shutdown::Timeout(Duration::from_secs(5)))
    .intensity(config.intensity.0, config.intensity.1);
    let dynamic = match DynamicSupervisor::start_link(&mut ctx, spec).await {
        Ok(dynamic) => dynamic,
        Err(reason) => {
            report(Err(reason.to_string()));
            return reason;
        }
    };
    let args = WorkerArgs {
        dispatcher: ctx.addr(),
        factory,
        store: Arc::clone(&store),
    };
    if let Err(error) = dynamic.scale(&mut ctx, config.workers, args.clone()).await {
        report(Err(error.to_string()));
        return ExitReason::error(error.to_string());
    }
    // `start` returns once every worker has built its actor and said so.
    let mut ready = Vec::with_capacity(config.workers);
    while ready.len() < config.workers {
        match ctx
            .recv_matching(|m| matches!(m, Message::User(DispatchMsg::Ready(_)) | Message::Exit(_)))
            .await
        {
            Message::User(DispatchMsg::Ready(pid)) => ready.push(pid),
            Message::Exit(signal) => {
                report(Err(format!("a worker could not start: {}", signal.reason)));
                return signal.reason;
            }
            _ => unreachable!("only what the predicate takes"),
        }
    }
    if let Some(name) = &name
        && let Err(error) = ctx.register(name)
    {
        report(Err(error.to_string()));
        return ExitReason::error(error.to_string());
    }
    report(Ok(()));
    drop(started);
    let mut d = Dispatcher {
        store,
        target: config.workers,
        config,
        dynamic,
        workers: Vec::new(),
        pending: VecDeque::new(),
        taking: false,
        draining: false,
        next_batch: 0,
        next_ping: 0,
        stats: PoolStats::default(),
        completing: 0,
        take_after: Duration::ZERO,
        early_cancels: VecDeque::new(),
        ended: Arc::default(),
        orphans: HashMap::new(),
        last_crash: None,
    };
    for pid in ready {
        d.add_worker(&mut ctx, pid);
    }
    if let Some(health) = d.config.health {
        ctx.send_after(&ctx.addr(), DispatchMsg::Tick, tick_every(health));
    }
    let mut shutdown: Option<(Duration, Option<ReplyTo<PoolStats>>)> = None;
    loop {
        d.assign(&ctx);
        d.take(&ctx);
        if shutdown.is_some() && d.idle_for_shutdown() {
            let (_, reply) = shutdown.take().expect("checked");
            return d.finish(&mut ctx, reply).await;
        }
        match ctx.recv().await {
            Message::User(DispatchMsg::Ready(pid)) => {
                d.add_worker(&mut ctx, pid);
                d.retire_extra(&mut ctx).await;
            }
            Message::User(DispatchMsg::Taken(taken)) => {
                d.taking = false;
                match taken {
                    Ok(jobs) => d.add_taken(&ctx, jobs),
                    Err(error) => {
                        if error == StoreError::Closed {
                            debug!(actor = %d.config.actor_id, "the store takes no more jobs");
                        } else {
                            warn!(actor = %d.config.actor_id, %error, "taking jobs failed; retrying in 1 s");
                        }
                        d.take_after = ctx.now() + Duration::from_secs(1);
                        ctx.send_after(
                            &ctx.addr(),
                            DispatchMsg::Completed(0),
                            Duration::from_secs(1),
                        );
                    }
                }
            }
            Message::User(DispatchMsg::BatchEnded(batch)) => {
                d.orphans.remove(&batch);
            }
            Message::User(DispatchMsg::BatchDone { worker, batch }) => {
                let Some(w) = d.workers.iter_mut().find(|w| w.pid == worker) else {
                    continue;
                };
                w.last_active = ctx.now();
                // A batch that stopped at a panic leaves its unstarted jobs behind.
                let back = match w.batches.iter().position(|b| b.id == batch) {
                    Some(index) => w.batches.remove(index).take_back(),
                    None => Vec::new(),
                };
                let retire = w.retiring && w.batches.is_empty();
                d.requeue_front(back);
                d.cancel_pending_if_draining(&ctx);
                if retire {
                    d.stop_worker(&mut ctx, worker).await;
                }
            }
            Message::User(DispatchMsg::Pong { worker, seq }) => {
                if let Some(w) = d.workers.iter_mut().find(|w| w.pid == worker)
                    && w.ping.is_some_and(|(s, _)| s == seq)
                {
                    w.ping = None;
                    w.missed = 0;
                    w.last_active = ctx.now();
                    d.stats.pongs += 1;
                }
            }
            Message::User(DispatchMsg::Tick) => {
                if let Some(health) = d.config.health {
                    d.check_health(&ctx, health);
                    ctx.send_after(&ctx.addr(), DispatchMsg::Tick, tick_every(health));
                }
                if let Some((deadline, _)) = &shutdown
                    && ctx.now() >= *deadline
                {
                    let back = d.cancel_running("cancelled");
                    d.cancel_jobs(&ctx, back, "cancelled");
                }
            }
            Message::User(DispatchMsg::Completed(n)) => d.completing -= n,
            Message::User(DispatchMsg::Cancel(id)) => d.cancel_one(&ctx, &id),
            Message::User(DispatchMsg::Resize(n, reply)) => {
                d.resize(&mut ctx, n, &args).await;
                reply.reply(n);
            }
            Message::User(DispatchMsg::SetWorkers(n)) => d.resize(&mut ctx, n, &args).await,
            Message::User(DispatchMsg::Stats(reply)) => reply.reply(d.current_stats()),
            Message::User(DispatchMsg::Workers(reply)) => {
                reply.reply(d.workers.iter().map(|w| w.pid).collect());
            }
            Message::User(DispatchMsg::Shutdown(grace, reply)) => {
                info!(actor = %d.config.actor_id, ?grace, "worker pool shutting down");
                d.draining = true;
                d.cancel_pending_if_draining(&ctx);
                let deadline = ctx.now() + grace;
                ctx.send_after(&ctx.addr(), DispatchMsg::Tick, grace);
                shutdown = Some((deadline, Some(reply)));
            }
            Message::Down(down) => {
                let Some(index) = d.workers.iter().position(|w| w.monitor == down.reference) else {
                    continue;
                };
                let worker = d.workers.remove(index);
                let planned = matches!(down.reason, ExitReason::Normal | ExitReason::Shutdown);
                if !planned {
                    d.stats.crashes += 1;
                    d.last_crash = Some(down.reason.to_string());
                    warn!(worker = %worker.pid, reason = %down.reason, "job worker exited");
                }
                for batch in worker.batches {
                    let back = batch.take_back();
                    debug!(
                        batch = batch.id,
                        requeued = back.len(),
                        "batch of an exited worker"
                    );
                    d.requeue_front(back);
                    batch.abandon(Abandon::Fail(format!("worker exited: {}", down.reason)));
                    // A batch the worker handed to the blocking pool runs (on an empty queue
                    // now) even though the worker is gone. `done` is set before `BatchEnded`
                    // is sent: unset here, the message comes after this.
                    if batch.handed.load(Ordering::SeqCst) && !batch.done.load(Ordering::SeqCst) {
                        d.orphans.insert(batch.id, batch);
                    }
                }
                d.cancel_pending_if_draining(&ctx);
            }
            Message::Exit(signal) if signal.from == d.dynamic.pid() => {
                let why = d.gave_up(&signal.reason);
                warn!(actor = %d.config.actor_id, reason = %why, "the pool stops");
                let mut jobs = d.cancel_running(&why);
                jobs.extend(d.pending.drain(..));
                // A take on its way holds jobs the store counts as taken: wait for it (a
                // store that cannot answer by then keeps them, as after a crash).
                if d.taking {
                    let wait = d.config.take_wait + Duration::from_secs(5);
                    let taken = ctx
                        .recv_matching_timeout(
                            |m| matches!(m, Message::User(DispatchMsg::Taken(_))),
                            wait,
                        )
                        .await;
                    if let Some(Message::User(DispatchMsg::Taken(Ok(taken)))) = taken {
                        jobs.extend(taken);
                    }
                    d.taking = false;
                }
                d.draining = true;
                d.cancel_jobs(&ctx, jobs, &why);
                if !d.config.requeue_on_shutdown {
                    // Nothing will take the jobs still queued for this actor: they end now,
                    // so no caller waits for them forever. (A pool that requeues shares its
                    // queue with other runners: it leaves them there.)
                    d.fail_queued(&mut ctx, &why).await;
                }
                // The pool's end is seen once the jobs it held have ended (their writes to the
                // store are on the blocking pool), or after a while if the store hangs.
                d.await_completions(&mut ctx, Duration::from_secs(10)).await;
                if let Some((_, Some(reply))) = shutdown.take() {
                    reply.reply(d.current_stats());
                }
                // Abnormal, so a supervisor above restarts the pool.
                return ExitReason::error(why);
            }
            Message::Exit(signal) if signal.from == ctx.parent() && shutdown.is_none() => {
                // Our own supervisor stops us: drain at once (a pool that requeues gives back
                // what it holds), then exit.
                info!(actor = %d.config.actor_id, reason = %signal.reason, "worker pool told to stop");
                d.draining = true;
                let mut jobs: Vec<Job> = d.pending.drain(..).collect();
                jobs.extend(d.cancel_running("cancelled"));
                d.cancel_jobs(&ctx, jobs, "cancelled");
                shutdown = Some((ctx.now(), None));
            }
            Message::Exit(_) => {}
        }
    }
}

fn tick_every(health: HealthCheck) -> Duration {
    (health.idle.min(health.deadline) / 2).max(Duration::from_millis(1))
}

impl Dispatcher {
    fn add_worker(&mut self, ctx: &mut Ctx<DispatchMsg>, pid: Pid) {
        let monitor = ctx.monitor(pid);
        self.workers.push(Worker {
            pid,
            monitor,
            batches: Vec::new(),
            last_active: ctx.now(),
            ping: None,
            missed: 0,
            retiring: false,
        });
    }

    fn current_stats(&self) -> PoolStats {
        PoolStats {
            workers: self.workers.iter().filter(|w| !w.retiring).count(),
            running_batches: self.workers.iter().map(|w| w.batches.len()).sum(),
            pending: self.pending.len(),
            finished: self.ended.finished.load(Ordering::Relaxed),
            failed: self.ended.failed.load(Ordering::Relaxed),
            ..self.stats
        }
    }

    /// Jobs taken back before they started: to the front of the queue, in their order.
    fn requeue_front(&mut self, jobs: Vec<Job>) {
        for job in jobs.into_iter().rev() {
            self.pending.push_front(job);
        }
    }

    /// While draining nothing more is handed out: what is pending ends now.
    fn cancel_pending_if_draining(&mut self, ctx: &Ctx<DispatchMsg>) {
        if self.draining && !self.pending.is_empty() {
            let jobs: Vec<Job> = self.pending.drain(..).collect();
            self.cancel_jobs(ctx, jobs, "cancelled");
        }
    }

    fn free_slots(&self) -> usize {
        self.workers
            .iter()
            .filter(|w| !w.retiring)
            .map(|w| self.config.concurrency.saturating_sub(w.batches.len()))
            .sum()
    }

    /// With nothing pending and a slot free, takes the back half of the longest waiting
    /// queue of a running batch, so a long job does not hold up the jobs batched behind it
    /// while another worker idles.
    fn steal(&mut self) {
        if !self.pending.is_empty() || self.free_slots() == 0 {
            return;
        }
        let longest = self
            .workers
            .iter()
            .flat_map(|w| w.batches.iter())
            .map(|b| {
                (
                    b.jobs.lock().unwrap_or_else(PoisonError::into_inner).len(),
                    b,
                )
            })
            .filter(|(waiting, _)| *waiting >= 1)
            .max_by_key(|(waiting, _)| *waiting)
            .map(|(_, b)| Arc::clone(b));
        if let Some(batch) = longest {
            let mut jobs = batch.jobs.lock().unwrap_or_else(PoisonError::into_inner);
            let keep = jobs.len() / 2;
            self.pending.extend(jobs.drain(keep..));
        }
    }

    /// Hands pending jobs to workers with free slots, spread evenly.
    fn assign(&mut self, ctx: &Ctx<DispatchMsg>) {
        if self.draining {
            return;
        }
        self.steal();
        let concurrency = self.config.concurrency.max(1);
        loop {
            let free = self.free_slots();
            if free == 0 || self.pending.is_empty() {
                return;
            }
            let size = (self.pending.len() / free).clamp(1, self.config.max_batch.max(1));
            let Some(worker) = self
                .workers
                .iter_mut()
                .filter(|w| !w.retiring && w.batches.len() < concurrency)
                .min_by_key(|w| w.batches.len())
            else {
                return;
            };
            let jobs: VecDeque<Job> = self.pending.drain(..size).collect();
            let batch = Arc::new(Batch::new(self.next_batch, jobs, Arc::clone(&self.ended)));
            self.next_batch += 1;
            worker.batches.push(Arc::clone(&batch));
            worker.ping = None;
            let to = Addr::<WorkerMsg>::new(worker.pid);
            let _ = ctx.send(&to, WorkerMsg::Work(batch));
        }
    }

    /// Asks the store for more jobs when workers have free slots and nothing is pending, or
    /// when fewer than `prefetch` jobs are pending.
    fn take(&mut self, ctx: &Ctx<DispatchMsg>) {
        if self.taking || self.draining || ctx.now() < self.take_after {
            return;
        }
        let batch = self.config.max_batch.max(1);
        let max = if self.pending.len() < self.config.prefetch {
            (self.config.prefetch - self.pending.len()).max(batch)
        } else if self.pending.is_empty() && self.free_slots() > 0 {
            self.free_slots() * batch
        } else {
            return;
        };
        self.taking = true;
        let store = Arc::clone(&self.store);
        let actor_id = self.config.actor_id.clone();
        let wait = self.config.take_wait;
        ctx.spawn_blocking(move || store.take(&actor_id, max, wait), DispatchMsg::Taken);
    }

    /// Ends `jobs` with `error: <why>` (on the blocking pool); on a shutdown of a pool that
    /// requeues, gives them back to the store instead.
    fn cancel_jobs(&mut self, ctx: &Ctx<DispatchMsg>, jobs: Vec<Job>, why: &str) {
        if jobs.is_empty() {
            return;
        }
        if !(self.config.requeue_on_shutdown && self.draining) {
            self.end_jobs(ctx, jobs, why);
            return;
        }
        let n = jobs.len() as u64;
        self.completing += n;
        let store = Arc::clone(&self.store);
        ctx.spawn_blocking(
            move || {
                for job in jobs {
                    if let Err(error) = store.release(&job) {
                        warn!(job = %job.id, %error, "could not requeue a job");
                    }
                }
                n
            },
            DispatchMsg::Completed,
        );
    }

    /// Ends `jobs` `error: <why>` in the store (on the blocking pool), even during a drain:
    /// a stopped job is not given back to the queue.
    fn end_jobs(&mut self, ctx: &Ctx<DispatchMsg>, jobs: Vec<Job>, why: &str) {
        if jobs.is_empty() {
            return;
        }
        let n = jobs.len() as u64;
        self.completing += n;
        let store = Arc::clone(&self.store);
        let ended = Arc::clone(&self.ended);
        let why = why.to_string();
        ctx.spawn_blocking(
            move || {
                for mut job in jobs {
                    job.status = JobStatus::Error;
                    job.error = Some(why.clone());
                    job.finished_at = Some(SystemTime::now());
                    if let Err(error) = store.complete(&job) {
                        warn!(job = %job.id, %error, "could not record a cancelled job");
                    }
                    ended.add(JobStatus::Error);
                }
                n
            },
            DispatchMsg::Completed,
        );
    }

    /// Cancels every running batch: the running job of each ends `error: <why>`; the jobs not
    /// started are taken back and returned.
    fn cancel_running(&mut self, why: &str) -> Vec<Job> {
        let batches: Vec<Arc<Batch>> = self
            .workers
            .iter()
            .flat_map(|w| w.batches.iter().cloned())
            .collect();
        let mut back = Vec::new();
        let why = if self.config.requeue_on_shutdown {
            Abandon::Requeue
        } else {
            Abandon::Fail(why.to_string())
        };
        for batch in batches {
            back.extend(batch.take_back());
            batch.abandon(why.clone());
        }
        back
    }

    /// Queues taken jobs, except those cancelled before they arrived: they end
    /// `error: cancelled`. During a drain, none is queued (see [`Self::cancel_jobs`]).
    fn add_taken(&mut self, ctx: &Ctx<DispatchMsg>, jobs: Vec<Job>) {
        let (cancelled, jobs): (Vec<Job>, Vec<Job>) = if self.early_cancels.is_empty() {
            (Vec::new(), jobs)
        } else {
            jobs.into_iter().partition(|job| {
                let early = self.early_cancels.iter().position(|id| *id == job.id);
                early.and_then(|i| self.early_cancels.remove(i)).is_some()
            })
        };
        if self.draining {
            self.cancel_jobs(ctx, jobs, "cancelled");
        } else {
            self.pending.extend(jobs);
        }
        for job in &cancelled {
            info!(job = %job.id, "cancelling a job stopped before it arrived");
        }
        self.end_jobs(ctx, cancelled, "cancelled");
    }

    /// Cancels job `id`: a running one is told to stop (it ends `error: cancelled`); one not
    /// started ends so at once. An id not here is remembered (the newest
    /// [`EARLY_CANCELS`]), and the job is cancelled if a take brings it later.
    fn cancel_one(&mut self, ctx: &Ctx<DispatchMsg>, id: &str) {
        if let Some(index) = self.pending.iter().position(|j| j.id == id) {
            let job = self.pending.remove(index).expect("index in bounds");
            self.end_jobs(ctx, vec![job], "cancelled");
            return;
        }
        let batches: Vec<Arc<Batch>> = self
            .workers
            .iter()
            .flat_map(|w| w.batches.iter().cloned())
            .collect();
        for batch in batches {
            match batch.cancel(id) {
                Some(Cancelled::Running) => {
                    info!(job = %id, "cancelling a running job");
                    return;
                }
                Some(Cancelled::Waiting(job)) => {
                    self.end_jobs(ctx, vec![*job], "cancelled");
                    return;
                }
                None => {}
            }
        }
        debug!(job = %id, "cancel for a job not here (yet): remembered");
        if !self.early_cancels.iter().any(|early| early == id) {
            if self.early_cancels.len() == EARLY_CANCELS {
                self.early_cancels.pop_front();
            }
            self.early_cancels.push_back(id.to_string());
        }
    }

    /// Why the pool stops when its workers' supervisor has given up (`reason`, its exit).
    fn gave_up(&self, reason: &ExitReason) -> String {
        let (restarts, period) = self.config.intensity;
        match &self.last_crash {
            Some(last) => format!(
                "worker pool stopped: its workers crashed more than {restarts} times in \
                 {period:?} (the last: {last})"
            ),
            None => format!("worker pool stopped: its workers' supervisor exited ({reason})"),
        }
    }

    /// Waits (up to `limit`) until the jobs this dispatcher is ending or giving back on the
    /// blocking pool are written.
    async fn await_completions(&mut self, ctx: &mut Ctx<DispatchMsg>, limit: Duration) {
        let until = ctx.now() + limit;
        while self.completing > 0 {
            let left = until.saturating_sub(ctx.now());
            match ctx
                .recv_matching_timeout(
                    |m| matches!(m, Message::User(DispatchMsg::Completed(_))),
                    left,
                )
                .await
            {
                Some(Message::User(DispatchMsg::Completed(n))) => self.completing -= n,
                _ => {
                    warn!(actor = %self.config.actor_id, left = self.completing,
                        "jobs not yet written as the pool stops");
                    return;
                }
            }
        }
    }

    /// Ends every job still queued in the store for this pool's actor `error: <why>` (on the
    /// blocking pool; this waits for it). The pool owns its actor's queue in the store.
    async fn fail_queued(&mut self, ctx: &mut Ctx<DispatchMsg>, why: &str) {
        let store = Arc::clone(&self.store);
        let ended = Arc::clone(&self.ended);
        let actor = self.config.actor_id.clone();
        let why = why.to_string();
        ctx.blocking(move || {
            let mut failed = 0u64;
            loop {
                let jobs = match store.take(&actor, 1024, Duration::ZERO) {
                    Ok(jobs) if !jobs.is_empty() => jobs,
                    Ok(_) => break,
                    Err(error) => {
                        warn!(%actor, %error, "could not end the jobs still queued");
                        break;
                    }
                };
                for mut job in jobs {
                    job.status = JobStatus::Error;
                    job.error = Some(why.clone());
                    job.finished_at = Some(SystemTime::now());
                    if let Err(error) = store.complete(&job) {
                        warn!(job = %job.id, %error, "could not end a queued job");
                    }
                    ended.add(JobStatus::Error);
                    failed += 1;
                }
            }
            if failed > 0 {
                warn!(%actor, failed, "ended the jobs still queued: the pool stopped");
            }
        })
        .await;
    }

    fn idle_for_shutdown(&self) -> bool {
        self.draining
            && self.pending.is_empty()
            && self.completing == 0
            && !self.taking
            && self.workers.iter().all(|w| w.batches.is_empty())
            && self.orphans.is_empty()
    }

    async fn finish(
        &mut self,
        ctx: &mut Ctx<DispatchMsg>,
        reply: Option<ReplyTo<PoolStats>>,
    ) -> ExitReason {
        let stats = self.current_stats();
        let dynamic = self.dynamic.pid();
        ctx.exit(dynamic, ExitReason::Shutdown);
        let _ = ctx
            .recv_matching(|m| matches!(m, Message::Exit(s) if s.from == dynamic))
            .await;
        info!(actor = %self.config.actor_id, finished = stats.finished, failed = stats.failed,
            "worker pool stopped");
        if let Some(reply) = reply {
            reply.reply(stats);
        }
        ExitReason::Normal
    }

    async fn resize(&mut self, ctx: &mut Ctx<DispatchMsg>, n: usize, args: &WorkerArgs) {
        info!(actor = %self.config.actor_id, workers = n, "resizing the worker pool");
        self.target = n;
        let have = self.workers.iter().filter(|w| !w.retiring).count();
        for _ in have..n {
            let dynamic = self.dynamic;
            if let Err(error) = dynamic.start_child(ctx, args.clone()).await {
                warn!(%error, "starting a worker failed");
            }
        }
        self.retire_extra(ctx).await;
    }

    /// Marks workers beyond the target as retiring; stops the idle ones now.
    async fn retire_extra(&mut self, ctx: &mut Ctx<DispatchMsg>) {
        let active = self.workers.iter().filter(|w| !w.retiring).count();
        let mut extra = active.saturating_sub(self.target);
        if extra == 0 {
            return;
        }
        // Idle workers first, then the newest.
        let mut order: Vec<usize> = (0..self.workers.len()).collect();
        order.sort_by_key(|&i| (self.workers[i].batches.len(), std::cmp::Reverse(i)));
        let mut idle = Vec::new();
        for i in order {
            if extra == 0 {
                break;
            }
            let w = &mut self.workers[i];
            if w.retiring {
                continue;
            }
            w.retiring = true;
            extra -= 1;
            if w.batches.is_empty() {
                idle.push(w.pid);
            }
        }
        for pid in idle {
            self.stop_worker(ctx, pid).await;
        }
    }

    async fn stop_worker(&mut self, ctx: &mut Ctx<DispatchMsg>, pid: Pid) {
        if let Some(index) = self.workers.iter().position(|w| w.pid == pid) {
            let worker = self.workers.remove(index);
            ctx.demonitor(worker.monitor, true);
        }
        let dynamic = self.dynamic;
        if let Err(error) = dynamic.terminate_child(ctx, pid).await {
            debug!(worker = %pid, %error, "retiring a worker");
        }
    }

    /// Pings idle workers; kills those that missed too many pings.
    fn check_health(&mut self, ctx: &Ctx<DispatchMsg>, health: HealthCheck) {
        let now = ctx.now();
        for w in &mut self.workers {
            if let Some((_, deadline)) = w.ping
                && now >= deadline
            {
                w.ping = None;
                w.missed += 1;
                warn!(worker = %w.pid, missed = w.missed, "worker missed a ping");
                if w.missed >= health.max_missed {
                    self.stats.unhealthy += 1;
                    warn!(worker = %w.pid, "worker unhealthy: killing it (its supervisor restarts it)");
                    ctx.exit(w.pid, ExitReason::Kill);
                    continue;
                }
            }
            let idle_long =
                w.batches.is_empty() && now.saturating_sub(w.last_active) >= health.idle;
            let retry = w.missed > 0 && w.batches.is_empty();
            if w.ping.is_none() && (idle_long || retry) {
                let seq = self.next_ping;
                self.next_ping += 1;
                w.ping = Some((seq, now + health.deadline));
                self.stats.pings += 1;
                let _ = ctx.send(&Addr::<WorkerMsg>::new(w.pid), WorkerMsg::Ping(seq));
            }
        }
    }
}

/// A worker: builds its actor, tells the dispatcher it is ready, runs batches on the
/// blocking pool, answers pings.
async fn work(mut ctx: Ctx<WorkerMsg>, args: WorkerArgs) {
    let actor = (args.factory)();
    let me = ctx.pid();
    let _ = ctx.send(&args.dispatcher, DispatchMsg::Ready(me));
    loop {
        match ctx.recv().await {
            Message::User(WorkerMsg::Work(batch)) => {
                let actor = Arc::clone(&actor);
                let store = Arc::clone(&args.store);
                let id = batch.id;
                batch.handed.store(true, Ordering::SeqCst);
                let (handle, dispatcher) = (ctx.handle(), args.dispatcher);
                ctx.spawn_blocking(
                    move || {
                        /// Tells the dispatcher the batch is done, even if running it panics
                        /// outside the jobs' own guard.
                        struct Done(Arc<Batch>, Handle, Addr<DispatchMsg>);
                        impl Drop for Done {
                            fn drop(&mut self) {
                                self.0.done.store(true, Ordering::SeqCst);
                                let _ = self.1.send(&self.2, DispatchMsg::BatchEnded(self.0.id));
                            }
                        }
                        let _done = Done(Arc::clone(&batch), handle, dispatcher);
                        run_batch(&*actor, &*store, &batch)
                    },
                    move |panic| WorkerMsg::Ran { batch: id, panic },
                );
            }
            Message::User(WorkerMsg::Ran { batch, panic }) => {
                let _ = ctx.send(
                    &args.dispatcher,
                    DispatchMsg::BatchDone { worker: me, batch },
                );
                if let Some(message) = panic {
                    // A fresh actor (and engine) after a panic: the supervisor restarts us.
                    ctx.stop(ExitReason::Panic(message.into()));
                }
            }
            Message::User(WorkerMsg::Ping(seq)) => {
                let actor = Arc::clone(&actor);
                ctx.spawn_blocking(move || actor.ping(), move |ok| WorkerMsg::Pinged(seq, ok));
            }
            Message::User(WorkerMsg::Pinged(seq, ok)) => {
                if ok {
                    let _ = ctx.send(&args.dispatcher, DispatchMsg::Pong { worker: me, seq });
                }
            }
            Message::Exit(_) | Message::Down(_) => {}
        }
    }
}

/// Runs a batch's jobs one after the other and records each; stops at a panic (the job that
/// panicked ends `error` with it; the rest stay in the batch for the dispatcher to take back).
/// Each ended job is counted in the batch's `ended`. Returns the panic message, if any.
fn run_batch(actor: &dyn JobActor, store: &dyn JobStore, batch: &Batch) -> Option<String> {
    loop {
        let token = CancelToken::new();
        let next = {
            // Popped and marked current under the jobs lock, which `Batch::cancel` also holds:
            // a cancel finds the job either waiting or running, never in between.
            let mut jobs = batch.jobs.lock().unwrap_or_else(PoisonError::into_inner);
            let next = jobs.pop_front();
            if let Some(job) = &next {
                batch.stopped.store(false, Ordering::SeqCst);
                *batch.current.lock().unwrap_or_else(PoisonError::into_inner) =
                    Some((job.id.clone(), token.clone()));
            }
            next
        };
        // Nothing left: the batch is done.
        let mut job = next?;
        // Started now (the store marked it when it was taken; it may have waited in the batch).
        job.started_at = Some(SystemTime::now());
        if batch.cancel.is_cancelled() {
            token.cancel();
        }
        let result = catch_unwind(AssertUnwindSafe(|| actor.process_job(&job, &token)));
        *batch.current.lock().unwrap_or_else(PoisonError::into_inner) = None;
        job.finished_at = Some(SystemTime::now());
        let panic = match result {
            Ok(result) => {
                job.log = result.log;
                match result.outcome {
                    Ok(output) => {
                        job.status = JobStatus::Finished;
                        job.output = Some(output);
                    }
                    Err(error) => {
                        // A stopped job ends `cancelled`, whatever became of its batch.
                        let abandoned = if batch.stopped.load(Ordering::SeqCst) {
                            None
                        } else {
                            batch
                                .abandoned
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .clone()
                        };
                        match abandoned {
                            Some(Abandon::Requeue) => {
                                if let Err(error) = store.release(&job) {
                                    warn!(job = %job.id, %error, "could not requeue a job");
                                }
                                continue;
                            }
                            Some(Abandon::Forget) => continue,
                            Some(Abandon::Fail(why)) => job.error = Some(why),
                            None => job.error = Some(error),
                        }
                        job.status = JobStatus::Error;
                    }
                }
                None
            }
            Err(payload) => {
                let message = panic_message(&*payload).to_string();
                job.status = JobStatus::Error;
                job.error = Some(format!("worker crashed: panic: {message}"));
                Some(message)
            }
        };
        if let Err(error) = store.complete(&job) {
            warn!(job = %job.id, %error, "could not record a job's result");
        }
        batch.ended.add(job.status);
        if panic.is_some() {
            return panic;
        }
    }
}
