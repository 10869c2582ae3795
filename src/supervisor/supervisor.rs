//! The supervisor process, and [`Supervisor`], the handle to talk to it.
//!
//! A supervisor is an `async` body that traps exits. It starts its children in order; a start
//! that fails stops the ones already started (in reverse order) and ends the supervisor with
//! that reason. Then it waits: an exit from a child is decided by the child's restart type
//! and the strategy, each restart counted against the intensity; an exit from its parent
//! stops every child in reverse order and ends the supervisor with the parent's reason;
//! requests (start, terminate, restart, delete, which, count) are answered in between.

use std::sync::Arc;
use std::time::Duration;

use tracing::{debug, info};

use super::child_ref::{ChildRef, ChildSlot};
use super::intensity::Intensity;
use super::report;
use super::shutdown::shut_down;
use super::spec::{ChildKind, ChildSpec, ChildStarter, Restart, Strategy, SupervisorSpec};
use crate::server::{CallError, ReplyTo};
use crate::{Addr, Ctx, ExitReason, Handle, Message, Pid};

/// How long a request to a supervisor may take before the caller gives up: OTP waits forever;
/// this only bounds a supervisor stuck in a child's infinite shutdown.
pub(super) const CALL_TIMEOUT: Duration = Duration::from_secs(3600);

/// A request to a supervisor (opaque: use [`Supervisor`]'s methods).
pub struct SupervisorMsg(Request);

enum Request {
    Started(ReplyTo<Result<(), ExitReason>>),
    StartChild(ChildSpec, ReplyTo<Result<Pid, SupervisorError>>),
    StartChildRef(ChildSpec, ReplyTo<Result<Arc<ChildSlot>, SupervisorError>>),
    TerminateChild(String, ReplyTo<Result<(), SupervisorError>>),
    RestartChild(String, ReplyTo<Result<Pid, SupervisorError>>),
    RestartNow(String, ReplyTo<Result<Pid, SupervisorError>>),
    DeleteChild(String, ReplyTo<Result<(), SupervisorError>>),
    WhichChildren(ReplyTo<Vec<ChildInfo>>),
    Child(String, ReplyTo<Result<Arc<ChildSlot>, SupervisorError>>),
    CountChildren(ReplyTo<ChildCounts>),
}

/// Why a supervisor request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SupervisorError {
    /// No child has this id.
    #[error("no child with id {0:?}")]
    NotFound(String),
    /// A child with this id exists already (`start_child`).
    #[error("a child with id {0:?} exists already")]
    AlreadyPresent(String),
    /// The child is running (`restart_child` and `delete_child` want it stopped).
    #[error("child {0:?} is running")]
    Running(String),
    /// The child's start function failed.
    #[error("child {id:?} failed to start: {reason}")]
    StartFailed {
        /// The child.
        id: String,
        /// Why.
        reason: ExitReason,
    },
    /// A dynamic supervisor has its maximum number of children.
    #[error("the supervisor has its maximum of {0} children")]
    MaxChildren(usize),
    /// No child has this pid (a dynamic supervisor's `terminate_child`).
    #[error("no child with pid {0}")]
    NoChild(Pid),
    /// The supervisor did not answer: it is gone (`NoProc` with its reason) or stuck.
    #[error("the supervisor did not answer: {0}")]
    Call(#[from] CallError),
}

/// One child as `which_children` reports it (OTP's `{Id, Child, Type, Modules}`, plus its
/// restart type, how many times it was restarted and its last exit reason).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildInfo {
    /// The child's id.
    pub id: String,
    /// Its pid while it runs; `None` when it is stopped (terminated, or a transient child that
    /// ended normally).
    pub pid: Option<Pid>,
    /// Worker or supervisor.
    pub kind: ChildKind,
    /// Its restart type.
    pub restart: Restart,
    /// How many times the supervisor restarted it.
    pub restarts: u32,
    /// The reason of its last exit, if it exited.
    pub last_exit: Option<ExitReason>,
}

/// `count_children`'s answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChildCounts {
    /// Child specs held.
    pub specs: usize,
    /// Children running.
    pub active: usize,
    /// Children that are supervisors.
    pub supervisors: usize,
    /// Children that are workers.
    pub workers: usize,
}

/// A running supervisor.
///
/// ```
/// use std::time::Duration;
/// use baobab::supervisor::{ChildSpec, Strategy, Supervisor, SupervisorSpec};
/// use baobab::{Ctx, Message, Runtime};
///
/// let rt = Runtime::new();
/// let spec = SupervisorSpec::new(Strategy::OneForOne)
///     .intensity(3, Duration::from_secs(5))
///     .child(ChildSpec::worker("worker", |start| {
///         start.spawn(|mut ctx: Ctx<u32>| async move {
///             while let Message::User(_) = ctx.recv().await {}
///         })
///     }));
/// let sup = Supervisor::start(rt.handle(), spec).unwrap();
/// let children = rt
///     .block_on(move |mut ctx: Ctx<()>| async move { sup.which_children(&mut ctx).await })
///     .unwrap()
///     .unwrap();
/// assert_eq!(children[0].id, "worker");
/// sup.shutdown(rt.handle());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Supervisor {
    addr: Addr<SupervisorMsg>,
}

impl Supervisor {
    /// Starts a supervisor from outside the runtime (its parent is [`Pid::EXTERNAL`]); returns
    /// once every child has started, or the reason a start failed.
    pub fn start(handle: &Handle, spec: SupervisorSpec) -> Result<Supervisor, ExitReason> {
        let addr = handle
            .spawn(move |ctx: Ctx<SupervisorMsg>| run(ctx, spec))
            .map_err(|error| ExitReason::error(error.to_string()))?;
        let supervisor = Supervisor { addr };
        handle
            .block_on(move |mut ctx: Ctx<()>| async move { supervisor.started(&mut ctx).await })
            .and_then(|started| started)?;
        Ok(supervisor)
    }

    /// Starts a supervisor linked to the calling process; returns once every child has
    /// started, or the reason a start failed (the supervisor then unlinks before it exits,
    /// so the caller is not taken down with it).
    pub async fn start_link<M: Send + 'static>(
        ctx: &mut Ctx<M>,
        spec: SupervisorSpec,
    ) -> Result<Supervisor, ExitReason> {
        let addr = ctx
            .spawn_link(move |ctx: Ctx<SupervisorMsg>| run(ctx, spec))
            .map_err(|error| ExitReason::error(error.to_string()))?;
        let supervisor = Supervisor { addr };
        supervisor.started(ctx).await?;
        Ok(supervisor)
    }

    /// The supervisor's pid.
    pub fn pid(&self) -> Pid {
        self.addr.pid()
    }

    /// The supervisor whose process is `addr`.
    pub(crate) fn from_addr(addr: Addr<SupervisorMsg>) -> Self {
        Supervisor { addr }
    }

    /// A reference to child `id` that follows its restarts; `M` is the type of the messages
    /// it takes (checked whenever the reference makes an address). See [`ChildRef`].
    pub async fn child<M: Send + 'static, X: Send + 'static>(
        &self,
        ctx: &mut Ctx<X>,
        id: &str,
    ) -> Result<ChildRef<M>, SupervisorError> {
        let name = id.to_owned();
        let slot = self.request(ctx, |r| Request::Child(name, r)).await??;
        Ok(ChildRef::new(Arc::from(id), slot, ctx.handle()))
    }

    /// [`child`](Self::child), from outside the runtime (blocking the calling thread).
    pub fn child_ref<M: Send + 'static>(
        &self,
        handle: &Handle,
        id: &str,
    ) -> Result<ChildRef<M>, SupervisorError> {
        let supervisor = *self;
        let id = id.to_owned();
        handle
            .block_on(move |mut ctx: Ctx<()>| async move { supervisor.child(&mut ctx, &id).await })
            .unwrap_or_else(|reason| {
                Err(SupervisorError::Call(CallError::NoProc {
                    pid: supervisor.pid(),
                    reason,
                }))
            })
    }

    /// Waits until the supervisor has started its children, or learns why it could not: a
    /// supervisor whose start failed answers this request with the reason before it exits.
    async fn started<M: Send + 'static>(&self, ctx: &mut Ctx<M>) -> Result<(), ExitReason> {
        match ctx
            .call(
                &self.addr,
                |r| SupervisorMsg(Request::Started(r)),
                CALL_TIMEOUT,
            )
            .await
        {
            Ok(started) => started,
            Err(CallError::NoProc { reason, .. }) => Err(reason),
            Err(other) => Err(ExitReason::error(other.to_string())),
        }
    }

    async fn request<M: Send + 'static, R: Send + 'static>(
        &self,
        ctx: &mut Ctx<M>,
        request: impl FnOnce(ReplyTo<R>) -> Request,
    ) -> Result<R, SupervisorError> {
        Ok(ctx
            .call(&self.addr, |r| SupervisorMsg(request(r)), CALL_TIMEOUT)
            .await?)
    }

    /// Adds a child at the end and starts it (OTP's `start_child/2`).
    pub async fn start_child<M: Send + 'static>(
        &self,
        ctx: &mut Ctx<M>,
        spec: ChildSpec,
    ) -> Result<Pid, SupervisorError> {
        self.request(ctx, |r| Request::StartChild(spec, r)).await?
    }

    /// [`start_child`](Self::start_child), returning a reference to the new child that
    /// follows its restarts (see [`ChildRef`]); `M` is the type of the messages it takes.
    pub async fn start_child_ref<M: Send + 'static, X: Send + 'static>(
        &self,
        ctx: &mut Ctx<X>,
        spec: ChildSpec,
    ) -> Result<ChildRef<M>, SupervisorError> {
        let id: Arc<str> = Arc::from(spec.id.as_str());
        let slot = self
            .request(ctx, |r| Request::StartChildRef(spec, r))
            .await??;
        Ok(ChildRef::new(id, slot, ctx.handle()))
    }

    /// Stops a child and keeps its spec (a temporary child's spec goes too).
    pub async fn terminate_child<M: Send + 'static>(
        &self,
        ctx: &mut Ctx<M>,
        id: &str,
    ) -> Result<(), SupervisorError> {
        let id = id.to_owned();
        self.request(ctx, |r| Request::TerminateChild(id, r))
            .await?
    }

    /// Starts a stopped child again from its spec.
    pub async fn restart_child<M: Send + 'static>(
        &self,
        ctx: &mut Ctx<M>,
        id: &str,
    ) -> Result<Pid, SupervisorError> {
        let id = id.to_owned();
        self.request(ctx, |r| Request::RestartChild(id, r)).await?
    }

    /// Restarts one child by id whether it runs or not: stops it as its shutdown says, then
    /// starts it again. Not counted against the intensity.
    pub async fn restart_now<M: Send + 'static>(
        &self,
        ctx: &mut Ctx<M>,
        id: &str,
    ) -> Result<Pid, SupervisorError> {
        let id = id.to_owned();
        self.request(ctx, |r| Request::RestartNow(id, r)).await?
    }

    /// Removes a stopped child's spec.
    pub async fn delete_child<M: Send + 'static>(
        &self,
        ctx: &mut Ctx<M>,
        id: &str,
    ) -> Result<(), SupervisorError> {
        let id = id.to_owned();
        self.request(ctx, |r| Request::DeleteChild(id, r)).await?
    }

    /// Every child, in start order, with its status.
    pub async fn which_children<M: Send + 'static>(
        &self,
        ctx: &mut Ctx<M>,
    ) -> Result<Vec<ChildInfo>, SupervisorError> {
        self.request(ctx, Request::WhichChildren).await
    }

    /// Counts of specs, running children, supervisors and workers.
    pub async fn count_children<M: Send + 'static>(
        &self,
        ctx: &mut Ctx<M>,
    ) -> Result<ChildCounts, SupervisorError> {
        self.request(ctx, Request::CountChildren).await
    }

    /// Stops the supervisor and its whole subtree (children in reverse start order, each
    /// waited for), from outside the runtime; returns the supervisor's exit reason once every
    /// process in the tree is gone.
    pub fn shutdown(&self, handle: &Handle) -> ExitReason {
        let watch = handle.watch(self.pid());
        handle.exit(self.pid(), ExitReason::Shutdown);
        watch.wait()
    }
}

/// One child as the supervisor keeps it.
struct Child {
    spec: ChildSpec,
    pid: Option<Pid>,
    /// The current pid, shared with every `ChildRef` to this child.
    slot: Arc<ChildSlot>,
    /// The pid it had before it last stopped, for the restart log.
    previous: Option<Pid>,
    restarts: u32,
    last_exit: Option<ExitReason>,
}

impl Child {
    fn new(spec: ChildSpec) -> Self {
        Child {
            spec,
            pid: None,
            slot: Arc::default(),
            previous: None,
            restarts: 0,
            last_exit: None,
        }
    }

    /// The child stopped or exited: its pid, if it ran.
    fn stopped(&mut self) -> Option<Pid> {
        self.slot.clear();
        self.pid.take()
    }

    fn info(&self) -> ChildInfo {
        ChildInfo {
            id: self.spec.id.clone(),
            pid: self.pid,
            kind: self.spec.kind,
            restart: self.spec.restart,
            restarts: self.restarts,
            last_exit: self.last_exit.clone(),
        }
    }
}

struct State {
    strategy: Strategy,
    intensity: Intensity,
    children: Vec<Child>,
}

impl State {
    fn position(&self, pid: Pid) -> Option<usize> {
        self.children.iter().position(|c| c.pid == Some(pid))
    }

    fn find(&self, id: &str) -> Option<usize> {
        self.children.iter().position(|c| c.spec.id == id)
    }
}

/// The supervisor's body.
pub(crate) async fn run(mut ctx: Ctx<SupervisorMsg>, spec: SupervisorSpec) -> ExitReason {
    ctx.trap_exit(true);
    let mut state = State {
        strategy: spec.strategy,
        intensity: Intensity::new(spec.max_restarts, spec.period),
        children: spec.children.into_iter().map(Child::new).collect(),
    };
    for index in 0..state.children.len() {
        if let Err(reason) = start(&mut ctx, &mut state.children[index]).await {
            report::start_error(&ctx, &state.children[index].spec.id, &reason);
            terminate_from(&mut ctx, &mut state, 0).await;
            // The starter learns the reason from its `Started` request (every starter sends
            // one), not from the link, which would take it down too.
            ctx.unlink(ctx.parent());
            loop {
                match ctx.recv().await {
                    Message::User(SupervisorMsg(Request::Started(reply))) => {
                        reply.reply(Err(reason.clone()));
                        break;
                    }
                    Message::Exit(signal) if signal.from == ctx.parent() => break,
                    _ => {}
                }
            }
            return reason;
        }
    }
    loop {
        match ctx.recv().await {
            Message::Exit(signal) if signal.from == ctx.parent() => {
                terminate_from(&mut ctx, &mut state, 0).await;
                return signal.reason;
            }
            Message::Exit(signal) => {
                if let Some(index) = state.position(signal.from)
                    && let Some(reason) =
                        child_exited(&mut ctx, &mut state, index, signal.reason).await
                {
                    return reason;
                }
            }
            // A monitor of a child being stopped that outlived its wait; nothing to do.
            Message::Down(_) => {}
            Message::User(SupervisorMsg(request)) => handle(&mut ctx, &mut state, request).await,
        }
    }
}

/// Starts one child from its spec; a supervisor child is waited for until it has started its
/// own children.
async fn start(ctx: &mut Ctx<SupervisorMsg>, child: &mut Child) -> Result<Pid, ExitReason> {
    let pid = (child.spec.start)(&ChildStarter::new(ctx))?;
    if child.spec.kind == ChildKind::Supervisor {
        Supervisor {
            addr: Addr::new(pid),
        }
        .started(ctx)
        .await?;
    }
    child.pid = Some(pid);
    child.slot.set(pid);
    Ok(pid)
}

/// A child exited with `reason`. Returns the supervisor's own exit reason if it must stop.
async fn child_exited(
    ctx: &mut Ctx<SupervisorMsg>,
    state: &mut State,
    index: usize,
    reason: ExitReason,
) -> Option<ExitReason> {
    let child = &mut state.children[index];
    child.previous = child.stopped();
    if child.spec.restart.reports(&reason)
        && let Some(pid) = child.previous
    {
        report::child_terminated(ctx, &child.spec.id, pid, &reason, child.restarts);
    }
    child.last_exit = Some(reason.clone());
    if !child.spec.restart.restarts_after(&reason) {
        debug!(supervisor = %ctx.pid(), child = %child.spec.id, %reason, "child exited, not restarted");
        if child.spec.restart == Restart::Temporary {
            state.children.remove(index);
        }
        return None;
    }
    debug!(supervisor = %ctx.pid(), child = %child.spec.id, %reason, "child exited, restarting");
    restart(ctx, state, index).await
}

/// Restarts after child `index` exited, as the strategy says, counting against the intensity;
/// a start that fails is retried (and counted) until one succeeds or the intensity is spent.
async fn restart(
    ctx: &mut Ctx<SupervisorMsg>,
    state: &mut State,
    index: usize,
) -> Option<ExitReason> {
    let id = state.children[index].spec.id.clone();
    loop {
        if !state.intensity.add_restart(ctx.now()) {
            let reason = state
                .find(&id)
                .and_then(|at| state.children[at].last_exit.clone())
                .unwrap_or(ExitReason::Shutdown);
            report::gave_up(ctx, &id, &reason);
            terminate_from(ctx, state, 0).await;
            return Some(ExitReason::Shutdown);
        }
        let at = state.find(&id)?;
        // Which children go down and come up again with the one that exited.
        let first = match state.strategy {
            Strategy::OneForOne => None,
            Strategy::OneForAll => Some(0),
            Strategy::RestForOne => Some(at + 1),
        };
        if let Some(first) = first {
            terminate_from(ctx, state, first).await;
        }
        let group = match state.strategy {
            Strategy::OneForOne => at..at + 1,
            Strategy::OneForAll => 0..state.children.len(),
            Strategy::RestForOne => at..state.children.len(),
        };
        match start_group(ctx, state, group).await {
            Ok(()) => return None,
            Err(reason) => {
                report::start_error(ctx, &id, &reason);
            }
        }
    }
}

/// Starts the stopped children in `group`, in order. On a failure, the ones it started stay
/// up and the caller tries again (OTP's `try_again_restart`).
async fn start_group(
    ctx: &mut Ctx<SupervisorMsg>,
    state: &mut State,
    group: std::ops::Range<usize>,
) -> Result<(), ExitReason> {
    for index in group {
        let child = &mut state.children[index];
        if child.pid.is_some() {
            continue;
        }
        let pid = start(ctx, child).await?;
        child.restarts += 1;
        ctx.count_restart();
        info!(
            supervisor = %ctx.pid(),
            child = %child.spec.id,
            old = ?child.previous,
            reason = ?child.last_exit,
            new = %pid,
            "child restarted"
        );
    }
    Ok(())
}

/// Stops the running children from `first` on, last started first. Temporary children are
/// removed as they stop (OTP never restarts them).
async fn terminate_from(ctx: &mut Ctx<SupervisorMsg>, state: &mut State, first: usize) {
    let mut index = state.children.len();
    while index > first {
        index -= 1;
        let child = &mut state.children[index];
        if stop(ctx, child).await && child.spec.restart == Restart::Temporary {
            state.children.remove(index);
        }
    }
}

/// Stops a child if it runs, as its shutdown says, and records how it ended; returns whether
/// it was running.
async fn stop(ctx: &mut Ctx<SupervisorMsg>, child: &mut Child) -> bool {
    let Some(pid) = child.stopped() else {
        return false;
    };
    child.previous = Some(pid);
    let reason = shut_down(ctx, pid, child.spec.shutdown).await;
    debug!(supervisor = %ctx.pid(), child = %child.spec.id, %reason, "child stopped");
    child.last_exit = Some(reason);
    true
}

/// Answers one request.
async fn handle(ctx: &mut Ctx<SupervisorMsg>, state: &mut State, request: Request) {
    match request {
        Request::Started(reply) => reply.reply(Ok(())),
        Request::StartChild(spec, reply) => {
            reply.reply(add_child(ctx, state, spec).await.map(|(pid, _)| pid));
        }
        Request::StartChildRef(spec, reply) => {
            reply.reply(add_child(ctx, state, spec).await.map(|(_, slot)| slot));
        }
        Request::TerminateChild(id, reply) => {
            let Some(index) = state.find(&id) else {
                reply.reply(Err(SupervisorError::NotFound(id)));
                return;
            };
            terminate_one(ctx, state, index).await;
            reply.reply(Ok(()));
        }
        Request::RestartChild(id, reply) => {
            let Some(index) = state.find(&id) else {
                reply.reply(Err(SupervisorError::NotFound(id)));
                return;
            };
            if state.children[index].pid.is_some() {
                reply.reply(Err(SupervisorError::Running(id)));
                return;
            }
            let started = start(ctx, &mut state.children[index]).await;
            reply.reply(started.map_err(|reason| SupervisorError::StartFailed { id, reason }));
        }
        Request::RestartNow(id, reply) => {
            let Some(index) = state.find(&id) else {
                reply.reply(Err(SupervisorError::NotFound(id)));
                return;
            };
            let child = &mut state.children[index];
            stop(ctx, child).await;
            let started = start(ctx, child).await;
            if started.is_ok() {
                child.restarts += 1;
                ctx.count_restart();
            }
            reply.reply(started.map_err(|reason| SupervisorError::StartFailed { id, reason }));
        }
        Request::DeleteChild(id, reply) => {
            let result = match state.find(&id) {
                None => Err(SupervisorError::NotFound(id)),
                Some(index) if state.children[index].pid.is_some() => {
                    Err(SupervisorError::Running(id))
                }
                Some(index) => {
                    state.children.remove(index);
                    Ok(())
                }
            };
            reply.reply(result);
        }
        Request::WhichChildren(reply) => {
            reply.reply(state.children.iter().map(Child::info).collect());
        }
        Request::Child(id, reply) => match state.find(&id) {
            Some(index) => reply.reply(Ok(Arc::clone(&state.children[index].slot))),
            None => reply.reply(Err(SupervisorError::NotFound(id))),
        },
        Request::CountChildren(reply) => {
            let mut counts = ChildCounts {
                specs: state.children.len(),
                ..ChildCounts::default()
            };
            for child in &state.children {
                counts.active += usize::from(child.pid.is_some());
                match child.spec.kind {
                    ChildKind::Supervisor => counts.supervisors += 1,
                    ChildKind::Worker => counts.workers += 1,
                }
            }
            reply.reply(counts);
        }
    }
}

/// Adds a child at the end and starts it: its pid and its slot.
async fn add_child(
    ctx: &mut Ctx<SupervisorMsg>,
    state: &mut State,
    spec: ChildSpec,
) -> Result<(Pid, Arc<ChildSlot>), SupervisorError> {
    if state.find(&spec.id).is_some() {
        return Err(SupervisorError::AlreadyPresent(spec.id));
    }
    let mut child = Child::new(spec);
    match start(ctx, &mut child).await {
        Ok(pid) => {
            let slot = Arc::clone(&child.slot);
            state.children.push(child);
            Ok((pid, slot))
        }
        Err(reason) => Err(SupervisorError::StartFailed {
            id: child.spec.id,
            reason,
        }),
    }
}

/// Stops child `index` if it runs; a temporary child's spec goes with it.
async fn terminate_one(ctx: &mut Ctx<SupervisorMsg>, state: &mut State, index: usize) {
    let child = &mut state.children[index];
    stop(ctx, child).await;
    if child.spec.restart == Restart::Temporary {
        state.children.remove(index);
    }
}
