//! Virtual actors: an event-sourced actor per id, activated by its first command, passivated
//! when idle, restarted by a supervisor when it crashes.
//!
//! `VirtualActors<A>` owns a router process, a dynamic supervisor of activations linked to
//! it, and the registry (id → the live activation). A command goes straight to the
//! activation the registry names; an id with none is activated by the router, which alone
//! starts activations, one at a time, so an id never has two. The supervisor's start function
//! writes the registry entry, for a first start and for every restart alike; an activation
//! removes its own entry before it exits normally (passivated, stopped, or unable to replay).
//!
//! A command travels in a slot the activation empties when it takes the command. A caller
//! whose activation exited before taking it (passivated between the caller's lookup and its
//! send, or crashed on an earlier command) finds the command still in the slot and sends it
//! again through the registry, so a command is never lost and never run twice by this layer;
//! a command that was taken when its activation died is reported as
//! [`ActorError::Crashed`], since its events may or may not have been stored.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::{debug, warn};

use super::activation::{Request, fold, run_activation};
use super::lock;
use super::model::EventSourced;
use super::outcome::{ActorError, Committed};
use super::placement::{Forwarded, Owner, Placement};
use super::store::{EventStore, check_name};
use crate::server::{CallError, ReplyTo};
use crate::supervisor::{ChildSpec, DynamicSpec, DynamicSupervisor, Restart, Shutdown};
use crate::{Addr, Ctx, ExitReason, Handle, Message, Pid};

/// How virtual actors behave.
#[derive(Debug, Clone)]
pub struct VirtualConfig {
    /// An activation that gets no message for this long is passivated: it saves a snapshot
    /// (if it has new events) and stops; the next command activates it again. `None`: never.
    /// Default: 5 minutes.
    pub idle_after: Option<Duration>,
    /// A snapshot is saved after every this many new events; `None`: only when passivated
    /// or stopped. Default: 100.
    pub snapshot_every: Option<u64>,
    /// How many times a command is decided again after a version conflict (another writer
    /// appended first) before the caller gets [`ActorError::Conflict`]. Default: 5.
    pub conflict_retries: u32,
    /// How long a caller waits for a command's reply (activation and replay included).
    /// Default: 30 s.
    pub call_timeout: Duration,
    /// The supervisor of the activations gives up (and the actors stop) after more than
    /// this many crashes within `period`. Default: 100 in 10 s.
    pub max_restarts: u32,
    /// At most about this many activations at once: activating one more first passivates
    /// the one least recently used (it saves its snapshot and stops). `None`: no cap.
    /// Default: 100,000.
    pub max_active: Option<usize>,
    /// See `max_restarts`.
    pub period: Duration,
}

impl Default for VirtualConfig {
    fn default() -> Self {
        VirtualConfig {
            idle_after: Some(Duration::from_secs(300)),
            snapshot_every: Some(100),
            conflict_retries: 5,
            call_timeout: Duration::from_secs(30),
            max_restarts: 100,
            period: Duration::from_secs(10),
            max_active: Some(100_000),
        }
    }
}

/// The registry: id → the live activation.
pub(crate) type Registry<A> = Mutex<HashMap<String, Entry<A>>>;

/// A live activation, and when it last got a message.
pub(crate) struct Entry<A: EventSourced> {
    addr: Addr<Request<A>>,
    /// Milliseconds since the host started (see [`Host::now`]).
    used: Arc<AtomicU64>,
}

/// What an activation shares with its host.
pub(crate) struct Host<A: EventSourced> {
    pub(crate) store: Arc<dyn EventStore>,
    pub(crate) config: VirtualConfig,
    pub(crate) registry: Registry<A>,
    /// Where ids live when several runtimes share the store (`None`: this runtime alone).
    pub(crate) placement: Option<Arc<dyn Placement<A>>>,
    /// The running router (a supervisor that restarts it writes the new one here).
    router: Mutex<Option<Addr<Activate<A>>>>,
    /// When the host started: activations note when they were last used relative to it.
    started: std::time::Instant,
}

impl<A: EventSourced> Host<A> {
    pub(crate) fn registered(&self, id: &str) -> Option<Addr<Request<A>>> {
        lock(&self.registry).get(id).map(|entry| entry.addr)
    }

    /// Milliseconds since the host started.
    pub(crate) fn now(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Removes `id`'s entry if it still names `pid`.
    pub(crate) fn unregister(&self, id: &str, pid: Pid) {
        let mut registry = lock(&self.registry);
        if registry
            .get(id)
            .is_some_and(|entry| entry.addr.pid() == pid)
        {
            registry.remove(id);
        }
    }

    /// With `max_active` activations or more, asks the one least recently used to
    /// passivate, so that a new one can start.
    fn make_room(&self, ctx: &Ctx<Activate<A>>) {
        let Some(max) = self.config.max_active else {
            return;
        };
        let registry = lock(&self.registry);
        if registry.len() < max.max(1) {
            return;
        }
        let Some((id, entry)) = registry
            .iter()
            .min_by_key(|(_, entry)| entry.used.load(Ordering::Relaxed))
        else {
            return;
        };
        debug!(
            kind = A::KIND,
            id, max, "virtual actors: at the cap; passivating the least recently used"
        );
        // Not chosen again while it passivates (unless it gets a message meanwhile).
        entry.used.store(u64::MAX, Ordering::Relaxed);
        let _ = ctx.send(&entry.addr, Request::Passivate);
    }

    /// An activation ends: it leaves the registry and gives its lease up.
    pub(crate) async fn leave(&self, id: &str, pid: Pid) {
        self.unregister(id, pid);
        if let Some(placement) = &self.placement
            && let Err(error) = placement.release(id).await
        {
            debug!(kind = A::KIND, id, %error, "virtual actor: lease not given up (it expires)");
        }
    }
}

/// Where a request was served: here, or (with a placement) the node holding the id's lease,
/// or nowhere yet: the id is active nowhere and the request did not activate it.
enum Route<T> {
    Here(T),
    Elsewhere(String),
    Unheld,
}

/// A request to the router: activate an id.
struct Activate<A: EventSourced>(String, ReplyTo<Option<Addr<Request<A>>>>);

/// A shared slot a request travels in: the activation takes what it holds, and a caller whose
/// activation died finds it still there if it was never taken.
pub(crate) type Slot<T> = Arc<Mutex<Option<T>>>;

pub(crate) fn take<T>(slot: &Slot<T>) -> Option<T> {
    lock(slot).take()
}

fn is_full<T>(slot: &Slot<T>) -> bool {
    lock(slot).is_some()
}

/// A query's reader, type-erased for the trip to the activation.
pub(crate) type Reader<A> = Box<dyn FnOnce(&A, u64) -> Box<dyn std::any::Any + Send> + Send>;

/// Event-sourced actors of type `A`, one activation per id (see the module's documentation).
///
/// ```
/// use std::sync::Arc;
/// use baobab::persistence::{EventSourced, MemoryStore, VirtualActors, VirtualConfig};
/// use baobab::{Ctx, Runtime};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Default, Serialize, Deserialize)]
/// struct Counter { total: u64 }
///
/// #[derive(Serialize, Deserialize)]
/// struct Added(u64);
///
/// impl EventSourced for Counter {
///     const KIND: &'static str = "counter";
///     type Command = u64;
///     type Event = Added;
///     type Rejection = String;
///     fn decide(&self, n: &u64) -> Result<Vec<Added>, String> {
///         if *n == 0 { Err("add something".into()) } else { Ok(vec![Added(*n)]) }
///     }
///     fn apply(&mut self, event: &Added) { self.total += event.0; }
/// }
///
/// let rt = Runtime::new();
/// let store = Arc::new(MemoryStore::new());
/// let counters = VirtualActors::<Counter>::start(rt.handle(), store, VirtualConfig::default())
///     .unwrap();
/// let total = rt.block_on(move |mut ctx: Ctx<()>| async move {
///     counters.ask(&mut ctx, "c1", 2).await.unwrap();
///     let committed = counters.ask(&mut ctx, "c1", 3).await.unwrap();
///     assert_eq!(committed.version, 2);
///     counters.query(&mut ctx, "c1", |counter, _version| counter.total).await.unwrap()
/// });
/// assert_eq!(total.unwrap(), 5);
/// ```
pub struct VirtualActors<A: EventSourced> {
    host: Arc<Host<A>>,
}

impl<A: EventSourced> Clone for VirtualActors<A> {
    fn clone(&self) -> Self {
        VirtualActors {
            host: Arc::clone(&self.host),
        }
    }
}

impl<A: EventSourced> std::fmt::Debug for VirtualActors<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VirtualActors")
            .field("kind", &A::KIND)
            .field("router", &self.router())
            .finish_non_exhaustive()
    }
}

/// How many times a caller sends a command again whose activation exited before taking it.
const RESENDS: u32 = 20;

impl<A: EventSourced> VirtualActors<A> {
    /// Starts the router and the supervisor of the activations on `handle`'s runtime.
    ///
    /// # Panics
    /// If `A::KIND` breaks the naming rule of [`StreamId`](super::StreamId).
    pub fn start(
        handle: &Handle,
        store: Arc<dyn EventStore>,
        config: VirtualConfig,
    ) -> Result<Self, ExitReason> {
        let actors = Self::unstarted(store, config, None);
        actors.spawn_router(handle)?;
        Ok(actors)
    }

    /// Virtual actors to run under a supervisor of the caller's: the child spec starts their
    /// router (linked to that supervisor), which starts the supervisor of the activations.
    /// The returned handle reaches the actors from the first start on and follows every
    /// restart; between a crash and its restart, requests fail with [`ActorError::Down`].
    ///
    /// The child is a permanent worker with an infinite shutdown time: stopping it stops
    /// every activation first, each saving its snapshot.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use baobab::persistence::{EventSourced, MemoryStore, VirtualActors, VirtualConfig};
    /// use baobab::supervisor::{Strategy, Supervisor, SupervisorSpec};
    /// use baobab::{Ctx, Runtime};
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Default, Serialize, Deserialize)]
    /// struct Counter { total: u64 }
    ///
    /// impl EventSourced for Counter {
    ///     const KIND: &'static str = "counter";
    ///     type Command = u64;
    ///     type Event = u64;
    ///     type Rejection = ();
    ///     fn decide(&self, n: &u64) -> Result<Vec<u64>, ()> { Ok(vec![*n]) }
    ///     fn apply(&mut self, n: &u64) { self.total += n; }
    /// }
    ///
    /// let rt = Runtime::new();
    /// let (spec, counters) = VirtualActors::<Counter>::child_spec(
    ///     "counters",
    ///     Arc::new(MemoryStore::new()),
    ///     VirtualConfig::default(),
    /// );
    /// let tree = Supervisor::start(rt.handle(), SupervisorSpec::new(Strategy::OneForOne).child(spec))
    ///     .unwrap();
    /// let version = rt.block_on(move |mut ctx: Ctx<()>| async move {
    ///     counters.ask(&mut ctx, "c1", 2).await.unwrap().version
    /// });
    /// assert_eq!(version.unwrap(), 1);
    /// tree.shutdown(rt.handle());
    /// ```
    ///
    /// # Panics
    /// If `A::KIND` breaks the naming rule of [`StreamId`](super::StreamId).
    pub fn child_spec(
        id: impl Into<String>,
        store: Arc<dyn EventStore>,
        config: VirtualConfig,
    ) -> (ChildSpec, Self) {
        let actors = Self::unstarted(store, config, None);
        (actors.spec(id), actors)
    }

    /// The handle of virtual actors whose router is not running yet.
    pub(crate) fn unstarted(
        store: Arc<dyn EventStore>,
        config: VirtualConfig,
        placement: Option<Arc<dyn Placement<A>>>,
    ) -> Self {
        if let Err(error) = check_name(A::KIND) {
            panic!("EventSourced::KIND: {error}");
        }
        VirtualActors {
            host: Arc::new(Host {
                store,
                config,
                registry: Mutex::new(HashMap::new()),
                placement,
                router: Mutex::new(None),
                started: std::time::Instant::now(),
            }),
        }
    }

    /// Starts the router, on its own.
    pub(crate) fn spawn_router(&self, handle: &Handle) -> Result<(), ExitReason> {
        let host = Arc::clone(&self.host);
        let router = handle
            .spawn(move |ctx: Ctx<Activate<A>>| run_router(ctx, host))
            .map_err(|error| ExitReason::error(error.to_string()))?;
        *lock(&self.host.router) = Some(router);
        Ok(())
    }

    /// A child spec whose start runs the router under the caller's supervisor.
    pub(crate) fn spec(&self, id: impl Into<String>) -> ChildSpec {
        let host = Arc::clone(&self.host);
        ChildSpec::worker(id, move |start| {
            let router_host = Arc::clone(&host);
            let pid = start.spawn(move |ctx: Ctx<Activate<A>>| run_router(ctx, router_host))?;
            *lock(&host.router) = Some(Addr::new(pid));
            Ok(pid)
        })
        .shutdown(Shutdown::Infinity)
    }

    /// Sends `command` to actor `id` (activating it if needed) and waits for its outcome.
    ///
    /// With a cluster, a command for an id whose lease another runtime holds is forwarded
    /// to that runtime; one for a runtime that is gone waits (within `call_timeout`) until
    /// its lease expires and the id is activated here.
    pub async fn ask<M: Send + 'static>(
        &self,
        ctx: &mut Ctx<M>,
        id: &str,
        command: A::Command,
    ) -> Result<Committed, ActorError<A::Rejection>> {
        match self.ask_routed(ctx, id, command, true).await {
            Forwarded::Done(result) => result,
            // Only an ask that may not forward stops at another node.
            Forwarded::NotHere => Err(ActorError::Down),
        }
    }

    /// `ask`, for a command forwarded from another runtime: if this runtime does not hold
    /// the id's lease and another one does, nothing runs and the answer says so.
    #[cfg_attr(not(feature = "nats"), allow(dead_code))]
    pub(crate) async fn ask_here<M: Send + 'static>(
        &self,
        ctx: &mut Ctx<M>,
        id: &str,
        command: A::Command,
    ) -> Forwarded<A::Rejection> {
        match self.ask_routed(ctx, id, command, false).await {
            // The actors here are not running (a router between a crash and its restart):
            // nothing ran; the sender looks again.
            Forwarded::Done(Err(ActorError::Down)) => Forwarded::NotHere,
            outcome => outcome,
        }
    }

    async fn ask_routed<M: Send + 'static>(
        &self,
        ctx: &mut Ctx<M>,
        id: &str,
        command: A::Command,
        forward: bool,
    ) -> Forwarded<A::Rejection> {
        if let Err(error) = check_name(id) {
            return Forwarded::Done(Err(error.into()));
        }
        let deadline = std::time::Instant::now() + self.host.config.call_timeout;
        let slot: Slot<A::Command> = Arc::new(Mutex::new(Some(command)));
        let mut attempt = 0;
        loop {
            let routed = self
                .with_activation(
                    ctx,
                    id,
                    deadline,
                    // A forwarded command does not activate an id that is active nowhere:
                    // its sender does (the id lives where it is asked for).
                    forward,
                    || is_full(&slot),
                    |reply| Request::Command(Arc::clone(&slot), reply),
                )
                .await;
            let node = match routed {
                Ok(Route::Here(result)) => return Forwarded::Done(result),
                Err(error) => return Forwarded::Done(Err(error)),
                Ok(Route::Elsewhere(_) | Route::Unheld) if !forward => return Forwarded::NotHere,
                Ok(Route::Unheld) => unreachable!("an ask that may forward activates free ids"),
                Ok(Route::Elsewhere(node)) => node,
            };
            let Some(placement) = &self.host.placement else {
                unreachable!("only a placement routes elsewhere")
            };
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let sent = {
                let command = lock(&slot);
                let Some(command) = command.as_ref() else {
                    unreachable!("a command leaves its slot only for an activation")
                };
                placement.forward(&node, id, command, left)
            };
            match sent.await {
                Ok(Forwarded::Done(result)) => return Forwarded::Done(result),
                // The lease moved (or its holder is gone and the lease has yet to expire):
                // look again, after a pause.
                Ok(Forwarded::NotHere) => {
                    debug!(
                        id,
                        node, attempt, "virtual actor: lease holder did not take the command"
                    );
                }
                Err(error) => return Forwarded::Done(Err(error.into())),
            }
            if std::time::Instant::now() >= deadline {
                return Forwarded::Done(Err(ActorError::Timeout));
            }
            attempt += 1;
            ctx.sleep(pause(attempt)).await;
        }
    }

    /// Runs `read` on actor `id`'s state and version (activating it if needed) and returns
    /// what it returns. The state cannot be changed here: only events change it.
    ///
    /// With a cluster, an id active on another runtime is not moved here: its state is
    /// folded from the store (its latest snapshot and the events after it), which holds
    /// every command acknowledged so far.
    pub async fn query<M: Send + 'static, R: Send + 'static>(
        &self,
        ctx: &mut Ctx<M>,
        id: &str,
        read: impl FnOnce(&A, u64) -> R + Send + 'static,
    ) -> Result<R, ActorError<A::Rejection>> {
        check_name(id)?;
        let deadline = std::time::Instant::now() + self.host.config.call_timeout;
        let read: Reader<A> = Box::new(move |state, version| Box::new(read(state, version)));
        let slot: Slot<Reader<A>> = Arc::new(Mutex::new(Some(read)));
        let value = match self
            .with_activation(
                ctx,
                id,
                deadline,
                true,
                || is_full(&slot),
                |reply| Request::Query(Arc::clone(&slot), reply),
            )
            .await?
        {
            Route::Here(value) => value?,
            Route::Elsewhere(_) | Route::Unheld => {
                let Some(read) = take(&slot) else {
                    unreachable!("a reader leaves its slot only for an activation")
                };
                let (store, stream) = (Arc::clone(&self.host.store), id.to_owned());
                ctx.blocking(move || {
                    fold::<A>(&*store, &stream).map(|(state, version)| read(&state, version))
                })
                .await?
            }
        };
        Ok(*value
            .downcast::<R>()
            .unwrap_or_else(|_| unreachable!("a query answers with its reader's type")))
    }

    /// Stops actor `id` if it is active: it saves a snapshot (if it has new events) and
    /// exits. `Ok(true)` if it was active.
    pub async fn stop<M: Send + 'static>(
        &self,
        ctx: &mut Ctx<M>,
        id: &str,
    ) -> Result<bool, ActorError<A::Rejection>> {
        check_name(id)?;
        let Some(addr) = self.host.registered(id) else {
            return Ok(false);
        };
        match ctx
            .call(&addr, Request::Stop, self.host.config.call_timeout)
            .await
        {
            Ok(result) => result.map(|()| true),
            Err(CallError::NoProc { .. }) => Ok(false),
            Err(CallError::Timeout) => Err(ActorError::Timeout),
            Err(CallError::MailboxFull(_)) => Err(ActorError::Down),
        }
    }

    /// The ids of the active actors, sorted.
    pub fn active(&self) -> Vec<String> {
        let mut ids: Vec<String> = lock(&self.host.registry).keys().cloned().collect();
        ids.sort_unstable();
        ids
    }

    /// The pid of actor `id`'s activation, if it is active.
    pub fn pid_of(&self, id: &str) -> Option<Pid> {
        self.host.registered(id).map(|addr| addr.pid())
    }

    /// The pid of the router, once started: killing it stops the supervisor of the
    /// activations and every activation.
    pub fn router(&self) -> Option<Pid> {
        lock(&self.host.router).map(|addr| addr.pid())
    }

    /// The store the actors use.
    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.host.store
    }

    /// Stops every activation (each saves a snapshot if it has new events), then the router;
    /// with a cluster, stops serving the other runtimes too. (Under a supervisor, stop the
    /// child through the supervisor instead.)
    pub fn shutdown(&self, handle: &Handle) {
        if let Some(placement) = &self.host.placement {
            // First, so that what other runtimes sent is answered while the actors run.
            placement.stop_serving();
        }
        if let Some(router) = self.router() {
            let watch = handle.watch(router);
            handle.exit(router, ExitReason::Shutdown);
            let _ = watch.wait_timeout(Duration::from_secs(60));
        }
        if let Some(placement) = &self.host.placement {
            placement.close();
        }
    }

    /// Calls `id`'s activation, activating it first if needed, and again
    /// (after a short pause) while the activation it found exited before taking the request
    /// (`pending` says whether the request is still in its slot; `request` makes the
    /// message). With a placement, an id whose lease another runtime holds is not activated
    /// here: the answer names that runtime; nor is an id whose lease is free, unless
    /// `activate_free`.
    async fn with_activation<M: Send + 'static, T: Send + 'static>(
        &self,
        ctx: &mut Ctx<M>,
        id: &str,
        deadline: std::time::Instant,
        activate_free: bool,
        pending: impl Fn() -> bool,
        request: impl Fn(ReplyTo<T>) -> Request<A>,
    ) -> Result<Route<T>, ActorError<A::Rejection>> {
        for attempt in 0..RESENDS {
            let timeout = deadline.saturating_duration_since(std::time::Instant::now());
            if timeout.is_zero() {
                return Err(ActorError::Timeout);
            }
            let addr = match self.host.registered(id) {
                Some(addr) => addr,
                None => {
                    if let Some(placement) = &self.host.placement {
                        match placement.owner(id, timeout).await? {
                            Owner::Node(node) => return Ok(Route::Elsewhere(node)),
                            Owner::Free if !activate_free => return Ok(Route::Unheld),
                            Owner::Free | Owner::Here => {}
                        }
                    }
                    self.activate(ctx, id, timeout).await?
                }
            };
            match ctx.call(&addr, &request, timeout).await {
                Ok(value) => return Ok(Route::Here(value)),
                Err(CallError::NoProc { reason, .. }) if !pending() => {
                    return Err(ActorError::Crashed(reason));
                }
                Err(CallError::NoProc { pid, reason }) => {
                    // Passivated, stopped, crashed or moved before taking the request: a new
                    // activation (or the restarted one, or the lease's new holder) gets it.
                    debug!(%pid, ?reason, attempt, "virtual actor: resending to a new activation");
                    if attempt > 0 {
                        ctx.sleep(pause(attempt)).await;
                    }
                }
                Err(CallError::Timeout) => return Err(ActorError::Timeout),
                Err(CallError::MailboxFull(_)) => return Err(ActorError::Down),
            }
        }
        Err(ActorError::Down)
    }

    async fn activate<M: Send + 'static>(
        &self,
        ctx: &mut Ctx<M>,
        id: &str,
        timeout: Duration,
    ) -> Result<Addr<Request<A>>, ActorError<A::Rejection>> {
        let Some(router) = *lock(&self.host.router) else {
            return Err(ActorError::Down);
        };
        match ctx
            .call(&router, |reply| Activate(id.to_owned(), reply), timeout)
            .await
        {
            Ok(Some(addr)) => Ok(addr),
            Ok(None) | Err(CallError::NoProc { .. } | CallError::MailboxFull(_)) => {
                Err(ActorError::Down)
            }
            Err(CallError::Timeout) => Err(ActorError::Timeout),
        }
    }
}

/// When the router ends, however it ends, gives up the leases no registered activation
/// uses (those of activations killed without leaving). The activations still running are
/// being stopped by their supervisor, and each gives its own lease up when it leaves.
struct Closing<A: EventSourced>(Arc<Host<A>>);

impl<A: EventSourced> Drop for Closing<A> {
    fn drop(&mut self) {
        if let Some(placement) = &self.0.placement {
            let active: HashSet<String> = lock(&self.0.registry).keys().cloned().collect();
            placement.release_unused(active);
        }
    }
}

/// The pause before the `attempt`th retry: 1, 4, 9 … ms, at most 100 ms.
fn pause(attempt: u32) -> Duration {
    Duration::from_millis(u64::from(attempt.min(10).pow(2)))
}

/// The router: starts activations, one at a time, for ids that have none.
async fn run_router<A: EventSourced>(mut ctx: Ctx<Activate<A>>, host: Arc<Host<A>>) {
    let _closing = Closing(Arc::clone(&host));
    ctx.trap_exit(true);
    // A restarted router: entries of activations that died without leaving (their
    // supervisor gave up, or killed them after the shutdown timeout) name dead pids. The
    // new supervisor has no child yet, so nothing can restart them: forget them.
    lock(&host.registry).retain(|_, entry| ctx.is_alive(entry.addr.pid()));
    let start_host = Arc::clone(&host);
    let spec = DynamicSpec::worker(A::KIND, move |start, id: String| {
        let host = Arc::clone(&start_host);
        let activation_id = id.clone();
        let used = Arc::new(AtomicU64::new(start_host.now()));
        let touch = Arc::clone(&used);
        let pid = start
            .spawn(move |ctx: Ctx<Request<A>>| run_activation(ctx, activation_id, host, touch))?;
        // First start or restart alike: this is now the id's activation.
        let addr = Addr::new(pid);
        lock(&start_host.registry).insert(id, Entry { addr, used });
        Ok(pid)
    })
    .restart(Restart::Transient)
    .intensity(host.config.max_restarts, host.config.period);
    let supervisor = match DynamicSupervisor::start_link(&mut ctx, spec).await {
        Ok(supervisor) => supervisor,
        Err(reason) => {
            warn!(kind = A::KIND, %reason, "virtual actors: the supervisor did not start");
            return;
        }
    };
    loop {
        match ctx.recv().await {
            Message::User(Activate(id, reply)) => {
                if let Some(addr) = host.registered(&id) {
                    reply.reply(Some(addr));
                    continue;
                }
                host.make_room(&ctx);
                match supervisor.start_child(&mut ctx, id.clone()).await {
                    // The pid, not the registry: an activation that cannot replay may leave
                    // it before the caller's request arrives.
                    Ok(pid) => reply.reply(Some(Addr::new(pid))),
                    Err(error) => {
                        warn!(kind = A::KIND, id, %error, "virtual actors: activation failed");
                        reply.reply(None);
                    }
                }
            }
            Message::Exit(signal) if signal.from == supervisor.pid() => {
                warn!(kind = A::KIND, reason = %signal.reason, "virtual actors: the supervisor exited");
                ctx.stop(signal.reason);
            }
            Message::Exit(signal) => {
                // A shutdown from the owner: stop the supervisor (and with it every
                // activation, each saving its snapshot) first.
                ctx.exit(supervisor.pid(), ExitReason::Shutdown);
                while let Some(message) = ctx.recv_timeout(Duration::from_secs(60)).await {
                    if let Message::Exit(exit) = message
                        && exit.from == supervisor.pid()
                    {
                        break;
                    }
                }
                ctx.stop(signal.reason);
            }
            Message::Down(_) => {}
        }
    }
}
