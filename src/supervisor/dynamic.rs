//! The dynamic supervisor (OTP's `simple_one_for_one`): one template spec; children are added
//! at run time with arguments, restarted one for one with the same arguments, capped at a
//! maximum if set, scaled to a number on request, and stopped in any order.

use std::sync::Arc;
use std::time::Duration;

use tracing::info;

use super::child_ref::{ChildRef, ChildSlot};
use super::intensity::Intensity;
use super::report;
use super::shutdown::{shut_down, shut_down_all};
use super::spec::{ChildKind, ChildStarter, Restart, Shutdown};
use super::supervisor::{CALL_TIMEOUT, ChildCounts, ChildInfo, SupervisorError};
use crate::server::{CallError, ReplyTo};
use crate::{Addr, Ctx, ExitReason, Handle, Message, Pid};

type StartFn<A> = dyn Fn(&ChildStarter<'_>, A) -> Result<Pid, ExitReason> + Send + Sync;

/// The template of a dynamic supervisor's children, and its flags.
///
/// ```
/// use baobab::supervisor::{DynamicSpec, DynamicSupervisor};
/// use baobab::{Ctx, Message, Runtime};
///
/// let rt = Runtime::new();
/// let spec = DynamicSpec::worker("conn", |start, port: u16| {
///     start.spawn(move |mut ctx: Ctx<()>| async move {
///         let _ = port;
///         while let Message::User(()) = ctx.recv().await {}
///     })
/// })
/// .max_children(100);
/// let sup = DynamicSupervisor::start(rt.handle(), spec).unwrap();
/// let counts = rt
///     .block_on(move |mut ctx: Ctx<()>| async move {
///         sup.start_child(&mut ctx, 8080).await.unwrap();
///         sup.scale(&mut ctx, 3, 9000).await.unwrap();
///         sup.count_children(&mut ctx).await.unwrap()
///     })
///     .unwrap();
/// assert_eq!(counts.active, 3);
/// sup.shutdown(rt.handle());
/// ```
pub struct DynamicSpec<A> {
    id: String,
    start: Arc<StartFn<A>>,
    restart: Restart,
    shutdown: Shutdown,
    kind: ChildKind,
    max_restarts: u32,
    period: Duration,
    max_children: Option<usize>,
}

impl<A: Clone + Send + 'static> DynamicSpec<A> {
    /// Permanent workers named `id`, started by `start` with their arguments; a 5 s shutdown
    /// timeout, intensity 1 in 5 s and no maximum (OTP's defaults).
    pub fn worker(
        id: impl Into<String>,
        start: impl Fn(&ChildStarter<'_>, A) -> Result<Pid, ExitReason> + Send + Sync + 'static,
    ) -> Self {
        DynamicSpec {
            id: id.into(),
            start: Arc::new(start),
            restart: Restart::Permanent,
            shutdown: Shutdown::Timeout(Duration::from_secs(5)),
            kind: ChildKind::Worker,
            max_restarts: 1,
            period: Duration::from_secs(5),
            max_children: None,
        }
    }

    /// Sets the children's restart type.
    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }

    /// Sets how children are stopped.
    pub fn shutdown(mut self, shutdown: Shutdown) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// More than `max_restarts` restarts within `period` stop the supervisor.
    pub fn intensity(mut self, max_restarts: u32, period: Duration) -> Self {
        self.max_restarts = max_restarts;
        self.period = period;
        self
    }

    /// At most `max` children at once; `start_child` beyond it fails with
    /// [`SupervisorError::MaxChildren`].
    pub fn max_children(mut self, max: usize) -> Self {
        self.max_children = Some(max);
        self
    }
}

/// A child just started: its id and the slot its `ChildRef` shares.
type NewChild = (Arc<str>, Arc<ChildSlot>);

/// A request to a dynamic supervisor (opaque: use [`DynamicSupervisor`]'s methods).
pub struct DynamicMsg<A>(Request<A>);

enum Request<A> {
    Started(ReplyTo<()>),
    StartChild(A, ReplyTo<Result<Pid, SupervisorError>>),
    StartChildRef(A, ReplyTo<Result<NewChild, SupervisorError>>),
    TerminateChild(Pid, ReplyTo<Result<(), SupervisorError>>),
    Scale(usize, A, ReplyTo<Result<usize, SupervisorError>>),
    WhichChildren(ReplyTo<Vec<ChildInfo>>),
    CountChildren(ReplyTo<ChildCounts>),
}

/// A running dynamic supervisor whose children take arguments of type `A`.
pub struct DynamicSupervisor<A> {
    addr: Addr<DynamicMsg<A>>,
}

impl<A> Clone for DynamicSupervisor<A> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<A> Copy for DynamicSupervisor<A> {}

impl<A> std::fmt::Debug for DynamicSupervisor<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DynamicSupervisor({})", self.addr.pid())
    }
}

impl<A: Clone + Send + 'static> DynamicSupervisor<A> {
    /// Starts a dynamic supervisor (with no children) from outside the runtime.
    pub fn start(handle: &Handle, spec: DynamicSpec<A>) -> Result<Self, ExitReason> {
        let addr = handle
            .spawn(move |ctx: Ctx<DynamicMsg<A>>| run(ctx, spec))
            .map_err(|error| ExitReason::error(error.to_string()))?;
        Ok(DynamicSupervisor { addr })
    }

    /// Starts a dynamic supervisor linked to the calling process.
    pub async fn start_link<M: Send + 'static>(
        ctx: &mut Ctx<M>,
        spec: DynamicSpec<A>,
    ) -> Result<Self, ExitReason> {
        let addr = ctx
            .spawn_link(move |ctx: Ctx<DynamicMsg<A>>| run(ctx, spec))
            .map_err(|error| ExitReason::error(error.to_string()))?;
        let supervisor = DynamicSupervisor { addr };
        supervisor
            .request(ctx, Request::Started)
            .await
            .map_err(|error| match error {
                SupervisorError::Call(CallError::NoProc { reason, .. }) => reason,
                other => ExitReason::error(other.to_string()),
            })?;
        Ok(supervisor)
    }

    /// The supervisor's pid.
    pub fn pid(&self) -> Pid {
        self.addr.pid()
    }

    async fn request<M: Send + 'static, R: Send + 'static>(
        &self,
        ctx: &mut Ctx<M>,
        request: impl FnOnce(ReplyTo<R>) -> Request<A>,
    ) -> Result<R, SupervisorError> {
        Ok(ctx
            .call(&self.addr, |r| DynamicMsg(request(r)), CALL_TIMEOUT)
            .await?)
    }

    /// Starts a child with `args`.
    pub async fn start_child<M: Send + 'static>(
        &self,
        ctx: &mut Ctx<M>,
        args: A,
    ) -> Result<Pid, SupervisorError> {
        self.request(ctx, |r| Request::StartChild(args, r)).await?
    }

    /// Starts a child with `args` and returns a reference to it that follows its restarts
    /// (see [`ChildRef`]); `M` is the type of the messages it takes.
    pub async fn start_child_ref<M: Send + 'static, X: Send + 'static>(
        &self,
        ctx: &mut Ctx<X>,
        args: A,
    ) -> Result<ChildRef<M>, SupervisorError> {
        let (id, slot) = self
            .request(ctx, |r| Request::StartChildRef(args, r))
            .await??;
        Ok(ChildRef::new(id, slot, ctx.handle()))
    }

    /// Stops the child `pid` and forgets it.
    pub async fn terminate_child<M: Send + 'static>(
        &self,
        ctx: &mut Ctx<M>,
        pid: Pid,
    ) -> Result<(), SupervisorError> {
        self.request(ctx, |r| Request::TerminateChild(pid, r))
            .await?
    }

    /// Brings the number of children to `n`: starts the difference with `args`, or stops the
    /// newest ones. Returns how many run afterwards (fewer than `n` if the maximum is lower).
    pub async fn scale<M: Send + 'static>(
        &self,
        ctx: &mut Ctx<M>,
        n: usize,
        args: A,
    ) -> Result<usize, SupervisorError> {
        self.request(ctx, |r| Request::Scale(n, args, r)).await?
    }

    /// Every child, oldest first.
    pub async fn which_children<M: Send + 'static>(
        &self,
        ctx: &mut Ctx<M>,
    ) -> Result<Vec<ChildInfo>, SupervisorError> {
        self.request(ctx, Request::WhichChildren).await
    }

    /// Counts of children.
    pub async fn count_children<M: Send + 'static>(
        &self,
        ctx: &mut Ctx<M>,
    ) -> Result<ChildCounts, SupervisorError> {
        self.request(ctx, Request::CountChildren).await
    }

    /// Stops the supervisor and all its children, from outside the runtime; returns its exit
    /// reason once they are all gone.
    pub fn shutdown(&self, handle: &Handle) -> ExitReason {
        let watch = handle.watch(self.pid());
        handle.exit(self.pid(), ExitReason::Shutdown);
        watch.wait()
    }
}

struct Child<A> {
    pid: Pid,
    /// The current pid, shared with every `ChildRef` to this child.
    slot: Arc<ChildSlot>,
    args: A,
    restarts: u32,
    last_exit: Option<ExitReason>,
}

struct State<A> {
    spec: DynamicSpec<A>,
    intensity: Intensity,
    children: Vec<Child<A>>,
}

impl<A> State<A> {
    fn info(&self, child: &Child<A>) -> ChildInfo {
        ChildInfo {
            id: self.spec.id.clone(),
            pid: Some(child.pid),
            kind: self.spec.kind,
            restart: self.spec.restart,
            restarts: child.restarts,
            last_exit: child.last_exit.clone(),
        }
    }
}

async fn run<A: Clone + Send + 'static>(
    mut ctx: Ctx<DynamicMsg<A>>,
    spec: DynamicSpec<A>,
) -> ExitReason {
    ctx.trap_exit(true);
    let mut state = State {
        intensity: Intensity::new(spec.max_restarts, spec.period),
        spec,
        children: Vec::new(),
    };
    loop {
        match ctx.recv().await {
            Message::Exit(signal) if signal.from == ctx.parent() => {
                stop_all(&mut ctx, &mut state).await;
                return signal.reason;
            }
            Message::Exit(signal) => {
                let Some(index) = state.children.iter().position(|c| c.pid == signal.from) else {
                    continue;
                };
                if let Some(reason) = child_exited(&mut ctx, &mut state, index, signal.reason).await
                {
                    return reason;
                }
            }
            Message::Down(_) => {}
            Message::User(DynamicMsg(request)) => handle(&mut ctx, &mut state, request).await,
        }
    }
}

fn start<A: Clone + Send + 'static>(
    ctx: &Ctx<DynamicMsg<A>>,
    state: &State<A>,
    args: A,
) -> Result<Pid, ExitReason> {
    (state.spec.start)(&ChildStarter::new(ctx), args)
}

async fn child_exited<A: Clone + Send + 'static>(
    ctx: &mut Ctx<DynamicMsg<A>>,
    state: &mut State<A>,
    index: usize,
    reason: ExitReason,
) -> Option<ExitReason> {
    let mut child = state.children.remove(index);
    if state.spec.restart.reports(&reason) {
        report::child_terminated(ctx, &state.spec.id, child.pid, &reason, child.restarts);
    }
    child.slot.clear();
    if !state.spec.restart.restarts_after(&reason) {
        return None;
    }
    let old = child.pid;
    loop {
        if !state.intensity.add_restart(ctx.now()) {
            report::gave_up(ctx, &state.spec.id, &reason);
            stop_all(ctx, state).await;
            return Some(ExitReason::Shutdown);
        }
        match start(ctx, state, child.args.clone()) {
            Ok(pid) => {
                info!(supervisor = %ctx.pid(), child = %state.spec.id, %old, %reason, new = %pid, "child restarted");
                ctx.count_restart();
                child.pid = pid;
                child.slot.set(pid);
                child.restarts += 1;
                child.last_exit = Some(reason);
                state.children.insert(index, child);
                return None;
            }
            Err(error) => {
                report::start_error(ctx, &state.spec.id, &error);
            }
        }
    }
}

/// Stops every child: all are told at once, then each is waited for (OTP stops dynamic
/// children in no particular order).
async fn stop_all<A: Clone + Send + 'static>(ctx: &mut Ctx<DynamicMsg<A>>, state: &mut State<A>) {
    let pids: Vec<Pid> = std::mem::take(&mut state.children)
        .into_iter()
        .map(|child| {
            child.slot.clear();
            child.pid
        })
        .collect();
    shut_down_all(ctx, &pids, state.spec.shutdown).await;
}

async fn handle<A: Clone + Send + 'static>(
    ctx: &mut Ctx<DynamicMsg<A>>,
    state: &mut State<A>,
    request: Request<A>,
) {
    match request {
        Request::Started(reply) => reply.reply(()),
        Request::StartChild(args, reply) => {
            reply.reply(add(ctx, state, args).map(|child| child.pid));
        }
        Request::StartChildRef(args, reply) => {
            let id: Arc<str> = Arc::from(state.spec.id.as_str());
            reply.reply(add(ctx, state, args).map(|child| (id, Arc::clone(&child.slot))));
        }
        Request::TerminateChild(pid, reply) => {
            let Some(index) = state.children.iter().position(|c| c.pid == pid) else {
                reply.reply(Err(SupervisorError::NoChild(pid)));
                return;
            };
            state.children.remove(index).slot.clear();
            shut_down(ctx, pid, state.spec.shutdown).await;
            reply.reply(Ok(()));
        }
        Request::Scale(n, args, reply) => {
            while state.children.len() > n {
                let child = state.children.pop().expect("more than n children");
                child.slot.clear();
                shut_down(ctx, child.pid, state.spec.shutdown).await;
            }
            let mut result = Ok(state.children.len());
            while state.children.len() < n {
                match add(ctx, state, args.clone()) {
                    Ok(_) => result = Ok(state.children.len()),
                    Err(SupervisorError::MaxChildren(_)) => break,
                    Err(error) => {
                        result = Err(error);
                        break;
                    }
                }
            }
            reply.reply(result);
        }
        Request::WhichChildren(reply) => {
            reply.reply(state.children.iter().map(|c| state.info(c)).collect());
        }
        Request::CountChildren(reply) => {
            let n = state.children.len();
            let supervisors = if state.spec.kind == ChildKind::Supervisor {
                n
            } else {
                0
            };
            reply.reply(ChildCounts {
                specs: 1,
                active: n,
                supervisors,
                workers: n - supervisors,
            });
        }
    }
}

/// Starts one more child with `args`, within the maximum.
fn add<'a, A: Clone + Send + 'static>(
    ctx: &Ctx<DynamicMsg<A>>,
    state: &'a mut State<A>,
    args: A,
) -> Result<&'a Child<A>, SupervisorError> {
    if let Some(max) = state.spec.max_children
        && state.children.len() >= max
    {
        return Err(SupervisorError::MaxChildren(max));
    }
    let pid = start(ctx, state, args.clone()).map_err(|reason| SupervisorError::StartFailed {
        id: state.spec.id.clone(),
        reason,
    })?;
    let slot = Arc::new(ChildSlot::default());
    slot.set(pid);
    state.children.push(Child {
        pid,
        slot,
        args,
        restarts: 0,
        last_exit: None,
    });
    Ok(state.children.last().expect("just pushed"))
}
