//! `Ctx`: what a process uses to act on the world (send, spawn, link, monitor, exit, timers).
//!
//! An `async` body owns its `Ctx`; a behaviour's callbacks borrow it. Receiving lives in
//! `receive.rs`, calls in `server.rs`, blocking work in `blocking.rs`.

use std::any::TypeId;
use std::collections::VecDeque;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use super::addr::{Addr, SendError, SpawnError};
use super::cell::ProcessCell;
use super::code::IntoProcess;
use super::handle::Handle;
use super::mailbox::{Mail, fits_inline, payload};
use super::outbox;
use super::shared::Shared;
use super::spawn::{SpawnOptions, Spawned, spawn_process};
use super::status::Status;
use crate::engine::scheduler::on_worker_thread;
use crate::engine::timer::TimerRef;
use crate::pid::Pid;
use crate::process::registry::RegistryError;
use crate::signal::rules::{self, Action, SignalKind};
use crate::signal::{ExitReason, MonitorRef};

/// The unwind payload of [`Ctx::stop`]: the scheduler turns it into an exit with its reason.
pub(crate) struct ExitPayload(pub(crate) ExitReason);

/// A process's handle on the runtime. `M` is the type of the user messages it receives.
///
/// ```
/// use baobab::{Message, Runtime};
///
/// let rt = Runtime::new();
/// let answer = rt.block_on(|mut ctx: baobab::Ctx<()>| async move {
///     let echo = ctx.spawn(|mut ctx: baobab::Ctx<(baobab::Addr<u32>, u32)>| async move {
///         if let Message::User((reply_to, n)) = ctx.recv().await {
///             ctx.send(&reply_to, n * 2).unwrap();
///         }
///     }).unwrap();
///     let me: baobab::Addr<u32> = ctx.spawn(|mut ctx: baobab::Ctx<u32>| async move {
///         let _ = ctx.recv().await;
///     }).unwrap();
///     ctx.send(&echo, (me, 21)).unwrap();
///     42
/// });
/// assert_eq!(answer.unwrap(), 42);
/// ```
pub struct Ctx<M> {
    pub(crate) cell: Arc<ProcessCell>,
    /// Messages moved out of the inbox, not yet received (selective receive skips stay here).
    pub(crate) local: VecDeque<Mail>,
    /// A behaviour's receive timeout: when `handle_timeout` is due.
    pub(crate) timeout_at: Option<Duration>,
    pub(crate) last_sent: std::cell::Cell<Option<Arc<ProcessCell>>>,
    _message: PhantomData<fn(M)>,
}

impl<M: Send + 'static> Ctx<M> {
    pub(crate) fn new(cell: Arc<ProcessCell>) -> Self {
        Ctx {
            cell,
            local: VecDeque::new(),
            timeout_at: None,
            last_sent: std::cell::Cell::new(None),
            _message: PhantomData,
        }
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.cell.shared
    }

    /// Counts a child restarted by this process (a supervisor) in the runtime's stats.
    pub(crate) fn count_restart(&self) {
        self.cell.shared.stats.restarted();
    }

    /// Hands a crash report, made only if reports are on, to the runtime's
    /// [`CrashReports`](super::crash::CrashReports) (a supervisor reports its children's exits).
    pub(crate) fn report_crash(&self, report: impl FnOnce() -> super::crash::CrashReport) {
        self.cell.shared.crash_reports.report(report);
    }

    /// This process's pid.
    pub fn pid(&self) -> Pid {
        self.cell.pid
    }

    /// This process's typed address.
    pub fn addr(&self) -> Addr<M> {
        Addr::new(self.cell.pid)
    }

    /// `pid` as a typed address, checked; see [`Handle::addr_of`].
    pub fn addr_of<T: Send + 'static>(&self, pid: Pid) -> Result<Addr<T>, super::addr::AddrError> {
        self.shared().addr_of(pid)
    }

    /// The process that spawned this one ([`Pid::EXTERNAL`] if it was spawned from outside).
    pub fn parent(&self) -> Pid {
        self.cell.parent
    }

    /// A handle on the runtime, for code that outlives this call.
    pub fn handle(&self) -> Handle {
        Handle::from_shared(Arc::clone(self.shared()))
    }

    /// The runtime clock's time since the runtime started.
    pub fn now(&self) -> Duration {
        self.shared().clock.now()
    }

    /// Sends a message. A send to a dead process is dropped and counted, not an error.
    pub fn send<T: Send + 'static>(&self, to: &Addr<T>, message: T) -> Result<(), SendError> {
        let shared = self.shared();
        let cached = self.last_sent.take().filter(|cell| cell.pid == to.pid());
        let Some(cell) = cached.or_else(|| shared.table.get(to.pid())) else {
            shared.stats.dropped();
            return Ok(());
        };
        if cell.state.status() == Status::Exiting {
            shared.stats.dropped();
            return Ok(());
        }
        // On a scheduler thread, a second send to the same process in one slice joins a batch
        // (see `outbox.rs`). Decided before the envelope exists, so that it is built once,
        // where it goes.
        let batched = on_worker_thread()
            && cell.mailbox.is_unbounded()
            && cell.pid != self.pid()
            && outbox::is_repeat(&cell);
        if batched {
            outbox::push(&cell, Mail::User(payload(message)));
            self.last_sent.set(Some(cell));
            return Ok(());
        }
        let pid = cell.pid;
        // A small message is made under the inbox lock, in its slot; a large one is boxed
        // first, so that no allocation happens under the lock.
        let pushed = if fits_inline::<T>() {
            cell.push_user_after_flush_with(|| Mail::User(payload(message)))
        } else {
            let envelope = Mail::User(payload(message));
            cell.push_user_after_flush_with(move || envelope)
        };
        if cell.state.status() == Status::Exiting {
            cell.mailbox.clear();
        } else {
            self.last_sent.set(Some(cell));
        }
        // Counted last, as the tail: a `Result` built before the code above and copied out
        // after it stalls the store buffer on this path.
        shared.count_push(pid, pushed)
    }

    /// Sends to the process registered under `name`, which must receive `T`: else
    /// [`SendError::NoName`] if no process has the name, [`SendError::WrongType`] if its
    /// process takes another message type.
    pub fn send_named<T: Send + 'static>(&self, name: &str, message: T) -> Result<(), SendError> {
        let addr = self.shared().registry.lookup::<T>(name)?;
        self.send(&addr, message)
    }

    /// Spawns a process (an `async` body or a [`Behaviour`](crate::Behaviour)).
    pub fn spawn<T: Send + 'static, K>(
        &self,
        process: impl IntoProcess<T, K>,
    ) -> Result<Addr<T>, SpawnError> {
        self.spawn_with(process, SpawnOptions::new())
            .map(|spawned| spawned.addr)
    }

    /// Spawns a process linked to this one, atomically.
    pub fn spawn_link<T: Send + 'static, K>(
        &self,
        process: impl IntoProcess<T, K>,
    ) -> Result<Addr<T>, SpawnError> {
        self.spawn_with(process, SpawnOptions::new().link())
            .map(|spawned| spawned.addr)
    }

    /// Spawns a process monitored by this one, atomically.
    pub fn spawn_monitor<T: Send + 'static, K>(
        &self,
        process: impl IntoProcess<T, K>,
    ) -> Result<(Addr<T>, MonitorRef), SpawnError> {
        let spawned = self.spawn_with(process, SpawnOptions::new().monitor())?;
        let monitor = spawned.monitor.expect("monitor was asked for");
        Ok((spawned.addr, monitor))
    }

    /// Spawns with explicit options.
    pub fn spawn_with<T: Send + 'static, K>(
        &self,
        process: impl IntoProcess<T, K>,
        options: SpawnOptions,
    ) -> Result<Spawned<T>, SpawnError> {
        spawn_process(self.shared(), Some(&self.cell), process, options)
    }

    /// Links this process to `other`. Linking to a dead process delivers an exit signal with
    /// reason `noproc` at once: a message if this process traps exits, otherwise this process
    /// exits with `noproc` (Erlang raises `noproc` here).
    pub fn link(&self, other: Pid) {
        if self.shared().link(&self.cell, other) {
            return;
        }
        if self.cell.signals.lock().trap_exit {
            self.cell
                .signal_exit(other, &ExitReason::NoProc, SignalKind::Exit);
        } else {
            self.stop(ExitReason::NoProc);
        }
    }

    /// Removes the link to `other`, if any. No exit signal from that link arrives afterwards.
    pub fn unlink(&self, other: Pid) {
        self.shared().unlink(&self.cell, other);
    }

    /// Monitors `target`: one `Down` message arrives when it exits, at once (`noproc`) if it is
    /// already dead.
    pub fn monitor(&self, target: Pid) -> MonitorRef {
        self.shared().monitor(&self.cell, target)
    }

    /// Stops a monitor. With `flush`, a `Down` for it already in the mailbox is removed too.
    /// Returns whether the monitor was still active.
    pub fn demonitor(&mut self, reference: MonitorRef, flush: bool) -> bool {
        let shared = Arc::clone(self.shared());
        self.demonitor_with(reference, flush, |target| shared.table.get(target))
    }

    /// `demonitor`, finding the monitored process's cell with `find`.
    pub(crate) fn demonitor_with(
        &mut self,
        reference: MonitorRef,
        flush: bool,
        find: impl FnOnce(Pid) -> Option<Arc<ProcessCell>>,
    ) -> bool {
        let active = self.shared().demonitor_cell(&self.cell, reference, find);
        // A `Down` is queued only by taking the monitor off this process's record, under the
        // same lock `demonitor` took it off with: if it was still active, none is queued.
        if flush && !active {
            let is_it = |e: &Mail| matches!(e, Mail::Down(d) if d.reference == reference);
            let before = self.local.len();
            self.local.retain(|e| !is_it(e));
            self.cell.mailbox.consumed(before - self.local.len());
            self.cell.mailbox.remove_where(is_it);
        }
        active
    }

    /// Sets whether exit signals arrive as [`Message::Exit`](crate::Message::Exit) messages
    /// instead of killing this process. Returns the previous setting.
    pub fn trap_exit(&self, trap: bool) -> bool {
        std::mem::replace(&mut self.cell.signals.lock().trap_exit, trap)
    }

    /// Sends an exit signal to `target` (Erlang's `exit/2`). `ExitReason::Kill` cannot be
    /// trapped. A signal that ends this process itself takes effect at once.
    pub fn exit(&self, target: Pid, reason: ExitReason) {
        if target != self.pid() {
            return self.shared().exit(self.pid(), target, reason);
        }
        let trapping = self.cell.signals.lock().trap_exit;
        match rules::on_exit_signal(SignalKind::Exit, &reason, target, target, trapping) {
            Action::Die(reason) => self.stop(reason),
            _ => self.cell.signal_exit(target, &reason, SignalKind::Exit),
        }
    }

    /// Ends this process now with `reason` (Erlang's `exit/1`). It unwinds the process's
    /// stack; the scheduler turns it into an exit, not a panic.
    pub fn stop(&self, reason: ExitReason) -> ! {
        std::panic::resume_unwind(Box::new(ExitPayload(reason)))
    }

    /// Whether `pid` is alive.
    pub fn is_alive(&self, pid: Pid) -> bool {
        self.shared().is_alive(pid)
    }

    /// Registers this process under `name`, released when it exits.
    pub fn register(&self, name: &str) -> Result<(), RegistryError> {
        self.shared()
            .registry
            .register(name, &self.cell, TypeId::of::<M>())
    }

    /// Removes this process's registered name, if it has one.
    pub fn unregister(&self, name: &str) -> bool {
        self.shared().registry.unregister(name, &self.cell)
    }

    /// The process registered under `name`, if it receives messages of type `T`.
    pub fn whereis<T: Send + 'static>(&self, name: &str) -> Option<Addr<T>> {
        self.shared().registry.whereis::<T>(name)
    }

    /// Sends `message` to `to` after `delay` on the runtime's clock.
    pub fn send_after<T: Send + 'static>(
        &self,
        to: &Addr<T>,
        message: T,
        delay: Duration,
    ) -> TimerRef {
        self.shared().send_after(to.pid(), message, delay)
    }

    /// Cancels a timer. Returns `true` if it had not fired yet (and now never will).
    pub fn cancel_timer(&self, timer: TimerRef) -> bool {
        self.shared().timers.cancel(timer)
    }

    /// For a [`Behaviour`](crate::Behaviour): call `handle_timeout` if no message arrives
    /// within `after` of this callback's return (gen_server's timeout). Any message disarms
    /// it; `None` disarms it now.
    pub fn set_timeout(&mut self, after: Option<Duration>) {
        self.timeout_at = after.map(|after| self.now() + after);
    }
}
