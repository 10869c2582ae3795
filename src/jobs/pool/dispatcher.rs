//! The dispatcher: takes jobs from the store and hands them, in batches, to the workers;
//! restarts, pings, resizes, cancels and shuts down.

mod queue;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use tracing::{debug, info, warn};

use crate::jobs::job::Job;
use crate::jobs::store::{JobStore, StoreError};
use crate::server::ReplyTo;
use crate::supervisor::{DynamicSpec, DynamicSupervisor, Restart, Shutdown};
use crate::{Addr, Ctx, ExitReason, Message, MonitorRef, Pid};

use super::batch::{Abandon, Batch, Ended};
use super::worker::{WorkerArgs, WorkerMsg, work};
use super::{ActorFactory, HealthCheck, PoolConfig, PoolStats};

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

pub(super) struct Worker {
    pid: Pid,
    monitor: MonitorRef,
    batches: Vec<Arc<Batch>>,
    last_active: Duration,
    ping: Option<(u64, Duration)>,
    missed: u32,
    retiring: bool,
}

pub(super) struct Dispatcher {
    store: Arc<dyn JobStore>,
    config: PoolConfig,
    dynamic: DynamicSupervisor<WorkerArgs>,
    /// What each worker is started with.
    worker_args: WorkerArgs,
    workers: Vec<Worker>,
    pending: VecDeque<Job>,
    taking: bool,
    draining: bool,
    /// A shutdown under way: when the running jobs are cancelled, and whom to tell when the
    /// pool has stopped.
    shutdown: Option<(Duration, Option<ReplyTo<PoolStats>>)>,
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
pub(super) const EARLY_CANCELS: usize = 1024;

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

/// The dispatcher process: starts the workers, then handles one message at a time.
pub(super) async fn dispatch(
    mut ctx: Ctx<DispatchMsg>,
    store: Arc<dyn JobStore>,
    factory: ActorFactory,
    config: PoolConfig,
    started: Option<std::sync::mpsc::Sender<Result<(), String>>>,
    name: Option<Arc<str>>,
) -> ExitReason {
    let report = |result: Result<(), String>| {
        if let Some(started) = &started {
            let _ = started.send(result);
        }
    };
    let mut d = match Dispatcher::start(&mut ctx, store, factory, config, name).await {
        Ok(d) => d,
        Err((why, reason)) => {
            report(Err(why));
            return reason;
        }
    };
    report(Ok(()));
    drop(started);
    loop {
        d.assign(&ctx);
        d.take(&ctx);
        if d.shutdown.is_some() && d.idle_for_shutdown() {
            let (_, reply) = d.shutdown.take().expect("checked");
            return d.finish(&mut ctx, reply).await;
        }
        match ctx.recv().await {
            Message::User(DispatchMsg::Ready(pid)) => {
                d.add_worker(&mut ctx, pid);
                d.retire_extra(&mut ctx).await;
            }
            Message::User(DispatchMsg::Taken(taken)) => d.on_taken(&ctx, taken),
            Message::User(DispatchMsg::BatchEnded(batch)) => {
                d.orphans.remove(&batch);
            }
            Message::User(DispatchMsg::BatchDone { worker, batch }) => {
                d.on_batch_done(&mut ctx, worker, batch).await;
            }
            Message::User(DispatchMsg::Pong { worker, seq }) => d.on_pong(&ctx, worker, seq),
            Message::User(DispatchMsg::Tick) => d.on_tick(&ctx),
            Message::User(DispatchMsg::Completed(n)) => d.completing -= n,
            Message::User(DispatchMsg::Cancel(id)) => d.cancel_one(&ctx, &id),
            Message::User(DispatchMsg::Resize(n, reply)) => {
                d.resize(&mut ctx, n).await;
                reply.reply(n);
            }
            Message::User(DispatchMsg::SetWorkers(n)) => d.resize(&mut ctx, n).await,
            Message::User(DispatchMsg::Stats(reply)) => reply.reply(d.current_stats()),
            Message::User(DispatchMsg::Workers(reply)) => {
                reply.reply(d.workers.iter().map(|w| w.pid).collect());
            }
            Message::User(DispatchMsg::Shutdown(grace, reply)) => {
                d.on_shutdown(&ctx, grace, reply);
            }
            Message::Down(down) => d.on_down(&ctx, &down),
            Message::Exit(signal) if signal.from == d.dynamic.pid() => {
                return d.on_supervisor_exit(&mut ctx, &signal.reason).await;
            }
            Message::Exit(signal) if signal.from == ctx.parent() && d.shutdown.is_none() => {
                d.on_told_to_stop(&ctx, &signal.reason);
            }
            Message::Exit(_) => {}
        }
    }
}

impl Dispatcher {
    /// Gives back what an earlier dispatcher held, starts the supervisor and
    /// `config.workers` workers, waits until each has built its actor, and registers `name`.
    /// If it cannot: what to tell the caller of `start`, and the reason to exit with.
    async fn start(
        ctx: &mut Ctx<DispatchMsg>,
        store: Arc<dyn JobStore>,
        factory: ActorFactory,
        config: PoolConfig,
        name: Option<Arc<str>>,
    ) -> Result<Dispatcher, (String, ExitReason)> {
        ctx.trap_exit(true);
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
            Err(error) => {
                warn!(actor = %config.actor_id, %error, "could not give back earlier jobs")
            }
        }
        let spec = DynamicSpec::worker("job-worker", |start, args: WorkerArgs| {
            start.spawn(move |ctx: Ctx<WorkerMsg>| work(ctx, args))
        })
        .restart(Restart::Permanent)
        .shutdown(Shutdown::Timeout(Duration::from_secs(5)))
        .intensity(config.intensity.0, config.intensity.1);
        let dynamic = DynamicSupervisor::start_link(ctx, spec)
            .await
            .map_err(|reason| (reason.to_string(), reason))?;
        let worker_args = WorkerArgs {
            dispatcher: ctx.addr(),
            factory,
            store: Arc::clone(&store),
        };
        if let Err(error) = dynamic
            .scale(ctx, config.workers, worker_args.clone())
            .await
        {
            return Err((error.to_string(), ExitReason::error(error.to_string())));
        }
        // `start` returns once every worker has built its actor and said so.
        let mut ready = Vec::with_capacity(config.workers);
        while ready.len() < config.workers {
            match ctx
                .recv_matching(|m| {
                    matches!(m, Message::User(DispatchMsg::Ready(_)) | Message::Exit(_))
                })
                .await
            {
                Message::User(DispatchMsg::Ready(pid)) => ready.push(pid),
                Message::Exit(signal) => {
                    let why = format!("a worker could not start: {}", signal.reason);
                    return Err((why, signal.reason));
                }
                _ => unreachable!("only what the predicate takes"),
            }
        }
        if let Some(name) = &name
            && let Err(error) = ctx.register(name)
        {
            return Err((error.to_string(), ExitReason::error(error.to_string())));
        }
        let mut d = Dispatcher {
            store,
            target: config.workers,
            config,
            dynamic,
            worker_args,
            workers: Vec::new(),
            pending: VecDeque::new(),
            taking: false,
            draining: false,
            shutdown: None,
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
            d.add_worker(ctx, pid);
        }
        if let Some(health) = d.config.health {
            ctx.send_after(&ctx.addr(), DispatchMsg::Tick, tick_every(health));
        }
        Ok(d)
    }

    /// A take came back: its jobs join the queue, or (failed) the next take waits a second.
    fn on_taken(&mut self, ctx: &Ctx<DispatchMsg>, taken: Result<Vec<Job>, StoreError>) {
        self.taking = false;
        match taken {
            Ok(jobs) => self.add_taken(ctx, jobs),
            Err(error) => {
                if error == StoreError::Closed {
                    debug!(actor = %self.config.actor_id, "the store takes no more jobs");
                } else {
                    warn!(actor = %self.config.actor_id, %error, "taking jobs failed; retrying in 1 s");
                }
                self.take_after = ctx.now() + Duration::from_secs(1);
                ctx.send_after(
                    &ctx.addr(),
                    DispatchMsg::Completed(0),
                    Duration::from_secs(1),
                );
            }
        }
    }

    /// A worker ran a batch: the jobs it left (it stopped at a panic) go back to the front of
    /// the queue, and a retiring worker with nothing left stops.
    async fn on_batch_done(&mut self, ctx: &mut Ctx<DispatchMsg>, worker: Pid, batch: u64) {
        let Some(w) = self.workers.iter_mut().find(|w| w.pid == worker) else {
            return;
        };
        w.last_active = ctx.now();
        // A batch that stopped at a panic leaves its unstarted jobs behind.
        let back = match w.batches.iter().position(|b| b.id == batch) {
            Some(index) => w.batches.remove(index).take_back(),
            None => Vec::new(),
        };
        let retire = w.retiring && w.batches.is_empty();
        self.requeue_front(back);
        self.cancel_pending_if_draining(ctx);
        if retire {
            self.stop_worker(ctx, worker).await;
        }
    }

    /// A worker answered ping `seq`.
    fn on_pong(&mut self, ctx: &Ctx<DispatchMsg>, worker: Pid, seq: u64) {
        if let Some(w) = self.workers.iter_mut().find(|w| w.pid == worker)
            && w.ping.is_some_and(|(s, _)| s == seq)
        {
            w.ping = None;
            w.missed = 0;
            w.last_active = ctx.now();
            self.stats.pongs += 1;
        }
    }

    /// Time to check the idle workers, and to cancel what runs past a shutdown's grace.
    fn on_tick(&mut self, ctx: &Ctx<DispatchMsg>) {
        if let Some(health) = self.config.health {
            self.check_health(ctx, health);
            ctx.send_after(&ctx.addr(), DispatchMsg::Tick, tick_every(health));
        }
        if let Some((deadline, _)) = &self.shutdown
            && ctx.now() >= *deadline
        {
            let back = self.cancel_running("cancelled");
            self.cancel_jobs(ctx, back, "cancelled");
        }
    }

    /// [`WorkerPool::shutdown`](super::WorkerPool::shutdown): no more takes, the queue
    /// cancelled, the running jobs given `grace`.
    fn on_shutdown(&mut self, ctx: &Ctx<DispatchMsg>, grace: Duration, reply: ReplyTo<PoolStats>) {
        info!(actor = %self.config.actor_id, ?grace, "worker pool shutting down");
        self.draining = true;
        self.cancel_pending_if_draining(ctx);
        let deadline = ctx.now() + grace;
        ctx.send_after(&ctx.addr(), DispatchMsg::Tick, grace);
        self.shutdown = Some((deadline, Some(reply)));
    }

    /// A worker exited: the jobs of its batches not started go back to the front of the
    /// queue; its running job ends `error` with the reason.
    fn on_down(&mut self, ctx: &Ctx<DispatchMsg>, down: &crate::Down) {
        let Some(index) = self
            .workers
            .iter()
            .position(|w| w.monitor == down.reference)
        else {
            return;
        };
        let worker = self.workers.remove(index);
        let planned = matches!(down.reason, ExitReason::Normal | ExitReason::Shutdown);
        if !planned {
            self.stats.crashes += 1;
            self.last_crash = Some(down.reason.to_string());
            warn!(worker = %worker.pid, reason = %down.reason, "job worker exited");
        }
        for batch in worker.batches {
            let back = batch.take_back();
            debug!(
                batch = batch.id,
                requeued = back.len(),
                "batch of an exited worker"
            );
            self.requeue_front(back);
            batch.abandon(Abandon::Fail(format!("worker exited: {}", down.reason)));
            // A batch the worker handed to the blocking pool runs (on an empty queue
            // now) even though the worker is gone. `done` is set before `BatchEnded`
            // is sent: unset here, the message comes after this.
            if batch.handed.load(Ordering::SeqCst) && !batch.done.load(Ordering::SeqCst) {
                self.orphans.insert(batch.id, batch);
            }
        }
        self.cancel_pending_if_draining(ctx);
    }

    /// The workers' supervisor gave up (restart intensity): every job the pool holds ends
    /// `error` with why, and the pool exits abnormally, so a supervisor above restarts it.
    async fn on_supervisor_exit(
        &mut self,
        ctx: &mut Ctx<DispatchMsg>,
        reason: &ExitReason,
    ) -> ExitReason {
        let why = self.gave_up(reason);
        warn!(actor = %self.config.actor_id, reason = %why, "the pool stops");
        let mut jobs = self.cancel_running(&why);
        jobs.extend(self.pending.drain(..));
        // A take on its way holds jobs the store counts as taken: wait for it (a
        // store that cannot answer by then keeps them, as after a crash).
        if self.taking {
            let wait = self.config.take_wait + Duration::from_secs(5);
            let taken = ctx
                .recv_matching_timeout(|m| matches!(m, Message::User(DispatchMsg::Taken(_))), wait)
                .await;
            if let Some(Message::User(DispatchMsg::Taken(Ok(taken)))) = taken {
                jobs.extend(taken);
            }
            self.taking = false;
        }
        self.draining = true;
        self.cancel_jobs(ctx, jobs, &why);
        if !self.config.requeue_on_shutdown {
            // Nothing will take the jobs still queued for this actor: they end now,
            // so no caller waits for them forever. (A pool that requeues shares its
            // queue with other runners: it leaves them there.)
            self.fail_queued(ctx, &why).await;
        }
        // The pool's end is seen once the jobs it held have ended (their writes to the
        // store are on the blocking pool), or after a while if the store hangs.
        self.await_completions(ctx, Duration::from_secs(10)).await;
        if let Some((_, Some(reply))) = self.shutdown.take() {
            reply.reply(self.current_stats());
        }
        // Abnormal, so a supervisor above restarts the pool.
        ExitReason::error(why)
    }

    /// Our own supervisor stops us: drain at once (a pool that requeues gives back what it
    /// holds), then exit.
    fn on_told_to_stop(&mut self, ctx: &Ctx<DispatchMsg>, reason: &ExitReason) {
        info!(actor = %self.config.actor_id, %reason, "worker pool told to stop");
        self.draining = true;
        let mut jobs: Vec<Job> = self.pending.drain(..).collect();
        jobs.extend(self.cancel_running("cancelled"));
        self.cancel_jobs(ctx, jobs, "cancelled");
        self.shutdown = Some((ctx.now(), None));
    }
}

pub(super) fn tick_every(health: HealthCheck) -> Duration {
    (health.idle.min(health.deadline) / 2).max(Duration::from_millis(1))
}

impl Dispatcher {
    pub(super) fn add_worker(&mut self, ctx: &mut Ctx<DispatchMsg>, pid: Pid) {
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

    pub(super) fn current_stats(&self) -> PoolStats {
        PoolStats {
            workers: self.workers.iter().filter(|w| !w.retiring).count(),
            running_batches: self.workers.iter().map(|w| w.batches.len()).sum(),
            pending: self.pending.len(),
            finished: self.ended.finished.load(Ordering::Relaxed),
            failed: self.ended.failed.load(Ordering::Relaxed),
            ..self.stats
        }
    }

    pub(super) async fn resize(&mut self, ctx: &mut Ctx<DispatchMsg>, n: usize) {
        info!(actor = %self.config.actor_id, workers = n, "resizing the worker pool");
        self.target = n;
        let have = self.workers.iter().filter(|w| !w.retiring).count();
        for _ in have..n {
            let dynamic = self.dynamic;
            if let Err(error) = dynamic.start_child(ctx, self.worker_args.clone()).await {
                warn!(%error, "starting a worker failed");
            }
        }
        self.retire_extra(ctx).await;
    }

    /// Marks workers beyond the target as retiring; stops the idle ones now.
    pub(super) async fn retire_extra(&mut self, ctx: &mut Ctx<DispatchMsg>) {
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

    pub(super) async fn stop_worker(&mut self, ctx: &mut Ctx<DispatchMsg>, pid: Pid) {
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
    pub(super) fn check_health(&mut self, ctx: &Ctx<DispatchMsg>, health: HealthCheck) {
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
