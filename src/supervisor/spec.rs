//! What a supervisor is told: its strategy and intensity, and a spec per child.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::process::Ctx;
use crate::process::ParentRef;
use crate::{ExitReason, IntoProcess, Pid};

use super::supervisor::SupervisorMsg;

/// Which children a supervisor restarts when one of them must be restarted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// Only the child that exited.
    OneForOne,
    /// Every child: the others are stopped (in reverse start order), then all start again in
    /// order.
    OneForAll,
    /// The child that exited and every child started after it: those are stopped (in reverse
    /// order), then started again in order.
    RestForOne,
}

/// When a child is restarted, decided by its exit reason exactly as OTP does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Restart {
    /// Always restarted.
    Permanent,
    /// Restarted unless it exits with `normal`, `shutdown` or `shutdown(_)`.
    Transient,
    /// Never restarted; removed from the supervisor's children when it exits.
    Temporary,
}

impl Restart {
    /// Whether a child of this type that exited with `reason` is restarted.
    pub fn restarts_after(self, reason: &ExitReason) -> bool {
        match self {
            Restart::Permanent => true,
            Restart::Transient => !matches!(
                reason,
                ExitReason::Normal | ExitReason::Shutdown | ExitReason::ShutdownWith(_)
            ),
            Restart::Temporary => false,
        }
    }

    /// Whether a supervisor reports the exit of a child of this type with `reason` (OTP's
    /// `child_terminated` report): a permanent child's whatever the reason, another's unless
    /// the reason is `normal`, `shutdown` or `shutdown(_)`.
    pub fn reports(self, reason: &ExitReason) -> bool {
        self == Restart::Permanent || !reason.is_clean()
    }
}

/// How a supervisor stops a child.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Shutdown {
    /// `exit(child, kill)` at once.
    BrutalKill,
    /// `exit(child, shutdown)`, then `kill` if it has not exited after this long (on the
    /// runtime's clock).
    Timeout(Duration),
    /// `exit(child, shutdown)` and wait as long as it takes: for supervisor children, whose
    /// own shutdown is bounded by their children's.
    Infinity,
}

/// Whether a child is a worker or a supervisor (OTP's `type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChildKind {
    /// A worker.
    Worker,
    /// A supervisor: started with [`ChildStarter::supervisor`], and waited for until its own
    /// children have started.
    Supervisor,
}

type StartFn = dyn Fn(&ChildStarter<'_>) -> Result<Pid, ExitReason> + Send + Sync;

/// How a supervisor starts, restarts and stops one child.
///
/// ```
/// use baobab::supervisor::{ChildSpec, Restart, Shutdown};
/// use baobab::{Ctx, Message};
///
/// let spec = ChildSpec::worker("echo", |start| {
///     start.spawn(|mut ctx: Ctx<u32>| async move {
///         while let Message::User(_) = ctx.recv().await {}
///     })
/// })
/// .restart(Restart::Transient)
/// .shutdown(Shutdown::BrutalKill);
/// assert_eq!(spec.id(), "echo");
/// ```
#[derive(Clone)]
pub struct ChildSpec {
    pub(crate) id: String,
    pub(crate) start: Arc<StartFn>,
    pub(crate) restart: Restart,
    pub(crate) shutdown: Shutdown,
    pub(crate) kind: ChildKind,
}

impl fmt::Debug for ChildSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildSpec")
            .field("id", &self.id)
            .field("restart", &self.restart)
            .field("shutdown", &self.shutdown)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl ChildSpec {
    /// A permanent worker stopped with a 5 s shutdown timeout (OTP's defaults). `start`
    /// spawns the child through the [`ChildStarter`] (which links it to the supervisor) and
    /// returns its pid, or fails with a reason.
    pub fn worker(
        id: impl Into<String>,
        start: impl Fn(&ChildStarter<'_>) -> Result<Pid, ExitReason> + Send + Sync + 'static,
    ) -> Self {
        ChildSpec {
            id: id.into(),
            start: Arc::new(start),
            restart: Restart::Permanent,
            shutdown: Shutdown::Timeout(Duration::from_secs(5)),
            kind: ChildKind::Worker,
        }
    }

    /// A permanent supervisor child with an infinite shutdown, running `spec`.
    pub fn supervisor(id: impl Into<String>, spec: SupervisorSpec) -> Self {
        ChildSpec {
            id: id.into(),
            start: Arc::new(move |start: &ChildStarter<'_>| start.supervisor(spec.clone())),
            restart: Restart::Permanent,
            shutdown: Shutdown::Infinity,
            kind: ChildKind::Supervisor,
        }
    }

    /// Sets the restart type.
    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }

    /// Sets how the child is stopped.
    pub fn shutdown(mut self, shutdown: Shutdown) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// The child's id, unique among its supervisor's children.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// A supervisor's flags and children.
///
/// ```
/// use std::time::Duration;
/// use baobab::supervisor::{Strategy, SupervisorSpec};
///
/// let spec = SupervisorSpec::new(Strategy::OneForOne).intensity(3, Duration::from_secs(5));
/// assert_eq!(spec.children().len(), 0);
/// ```
#[derive(Clone, Debug)]
pub struct SupervisorSpec {
    pub(crate) strategy: Strategy,
    pub(crate) max_restarts: u32,
    pub(crate) period: Duration,
    pub(crate) children: Vec<ChildSpec>,
}

impl SupervisorSpec {
    /// A supervisor with `strategy`, no children, and OTP's default intensity: at most 1
    /// restart in 5 seconds.
    pub fn new(strategy: Strategy) -> Self {
        SupervisorSpec {
            strategy,
            max_restarts: 1,
            period: Duration::from_secs(5),
            children: Vec::new(),
        }
    }

    /// More than `max_restarts` restarts within `period` stop the supervisor.
    pub fn intensity(mut self, max_restarts: u32, period: Duration) -> Self {
        self.max_restarts = max_restarts;
        self.period = period;
        self
    }

    /// Adds a child, started after the ones before it.
    pub fn child(mut self, child: ChildSpec) -> Self {
        self.children.push(child);
        self
    }

    /// The children, in start order.
    pub fn children(&self) -> &[ChildSpec] {
        &self.children
    }
}

/// What a child's start function spawns through: every process it spawns is linked to the
/// supervisor.
pub struct ChildStarter<'a> {
    /// The supervisor: children are spawned as if by it.
    supervisor: ParentRef,
    _ctx: std::marker::PhantomData<&'a ()>,
}

impl<'a> ChildStarter<'a> {
    pub(crate) fn new<M: Send + 'static>(ctx: &'a Ctx<M>) -> Self {
        ChildStarter {
            supervisor: ParentRef::of(ctx),
            _ctx: std::marker::PhantomData,
        }
    }
}

impl ChildStarter<'_> {
    /// Spawns `process` linked to the supervisor; returns its pid.
    pub fn spawn<M: Send + 'static, K>(
        &self,
        process: impl IntoProcess<M, K>,
    ) -> Result<Pid, ExitReason> {
        self.supervisor
            .spawn_linked(process)
            .map_err(|error| ExitReason::error(error.to_string()))
    }

    /// Spawns a supervisor running `spec`, linked to this one (the caller waits for its
    /// children to start: see [`ChildKind::Supervisor`]).
    pub fn supervisor(&self, spec: SupervisorSpec) -> Result<Pid, ExitReason> {
        self.spawn(move |ctx: Ctx<SupervisorMsg>| super::supervisor::run(ctx, spec))
    }

    /// The supervisor's pid.
    pub fn supervisor_pid(&self) -> Pid {
        self.supervisor.pid()
    }
}
