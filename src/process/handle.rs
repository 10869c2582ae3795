//! `Handle`: the runtime as seen from outside any process (a test, `main`, another thread).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::addr::{Addr, AddrError, SendError, SpawnError};
use super::code::IntoProcess;
use super::context::Ctx;
use super::info::ProcessInfo;
use super::mailbox::Mail;
use super::outside::{Filler, Slot, Taken, block_thread_on};
use super::registry::RegistryError;
use super::shared::Shared;
use super::spawn::{SpawnOptions, Spawned, spawn_process, spawn_watched};
use crate::engine::{RuntimeStats, TimerRef};
use crate::pid::Pid;
use crate::signal::ExitReason;

/// A cloneable handle on a runtime. Signals it sends come from [`Pid::EXTERNAL`].
#[derive(Clone)]
pub struct Handle {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("live", &self.shared.table.live())
            .finish()
    }
}

/// Waits, from outside the runtime, for one process to exit. See [`Handle::watch`].
///
/// Wait on a thread with [`ExitWatch::wait`], or `.await` it from async code on any executor.
pub struct ExitWatch {
    pid: Pid,
    exit: Arc<Slot<ExitReason>>,
    /// The reason once received.
    seen: std::sync::OnceLock<ExitReason>,
}

impl std::fmt::Debug for ExitWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExitWatch")
            .field("pid", &self.pid)
            .field("exited", &self.seen.get())
            .finish()
    }
}

impl ExitWatch {
    /// The watched process.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// Blocks until the process exits; its reason.
    pub fn wait(self) -> ExitReason {
        self.seen(|exit| exit.take_until(None))
            .expect("no deadline, so a reason")
    }

    /// Blocks until the process exits or `timeout` passes (real time, not the runtime clock).
    pub fn wait_timeout(&self, timeout: Duration) -> Option<ExitReason> {
        // A timeout too long to add to the clock is no timeout.
        self.seen(|exit| exit.take_until(Instant::now().checked_add(timeout)))
    }

    /// The exit reason if the process has exited, without waiting.
    pub fn exited(&self) -> Option<ExitReason> {
        self.seen(Slot::try_take)
    }

    /// The reason seen before, or the one `take` takes from the slot now (then kept).
    fn seen(
        &self,
        take: impl FnOnce(&Slot<ExitReason>) -> Option<ExitReason>,
    ) -> Option<ExitReason> {
        if let Some(reason) = self.seen.get() {
            return Some(reason.clone());
        }
        let reason = take(&self.exit)?;
        Some(self.seen.get_or_init(|| reason).clone())
    }
}

/// `.await`s the exit reason, from any executor, without blocking a thread.
impl Future for ExitWatch {
    type Output = ExitReason;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<ExitReason> {
        match self.seen(|exit| match exit.poll_take(cx.waker()) {
            Poll::Ready(reason) => Some(reason),
            Poll::Pending => None,
        }) {
            Some(reason) => Poll::Ready(reason),
            None => Poll::Pending,
        }
    }
}

/// The end of a process started with [`Handle::run`]: `.await` it for the value its body
/// returned, or the reason it exited otherwise.
#[must_use = "the process runs anyway; this only waits for it"]
pub struct Run<T> {
    pid: Pid,
    end: Taken<Result<T, ExitReason>>,
}

impl<T> Run<T> {
    /// The process.
    pub fn pid(&self) -> Pid {
        self.pid
    }
}

impl<T> std::fmt::Debug for Run<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run").field("pid", &self.pid).finish()
    }
}

impl<T> Future for Run<T> {
    type Output = Result<T, ExitReason>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.end).poll(cx)
    }
}

impl Handle {
    pub(crate) fn from_shared(shared: Arc<Shared>) -> Self {
        Handle { shared }
    }

    /// Spawns a process (an `async` body or a [`Behaviour`](crate::Behaviour)) with no parent.
    pub fn spawn<M: Send + 'static, K>(
        &self,
        process: impl IntoProcess<M, K>,
    ) -> Result<Addr<M>, SpawnError> {
        self.spawn_with(process, SpawnOptions::new())
            .map(|spawned| spawned.addr)
    }

    /// Spawns with options; `link` and `monitor` need a parent process and are ignored here.
    pub fn spawn_with<M: Send + 'static, K>(
        &self,
        process: impl IntoProcess<M, K>,
        options: SpawnOptions,
    ) -> Result<Spawned<M>, SpawnError> {
        spawn_process(&self.shared, None, process, options)
    }

    /// Sends a message. A send to a dead process is dropped and counted, not an error.
    pub fn send<M: Send + 'static>(&self, to: &Addr<M>, message: M) -> Result<(), SendError> {
        self.shared
            .send(to.pid(), Mail::User(super::mailbox::payload(message)))
    }

    /// Sends to the process registered under `name`, which must receive `M`: else
    /// [`SendError::NoName`] if no process has the name, [`SendError::WrongType`] if its
    /// process takes another message type.
    pub fn send_named<M: Send + 'static>(&self, name: &str, message: M) -> Result<(), SendError> {
        let addr = self.shared.registry.lookup::<M>(name)?;
        self.send(&addr, message)
    }

    /// `pid` as a typed address, checked: [`AddrError::NoProc`] if no process has the pid,
    /// [`AddrError::WrongType`] if its process takes another message type than `M`.
    ///
    /// ```
    /// use baobab::{AddrError, Ctx, Runtime};
    /// let rt = Runtime::new();
    /// let pid = rt.handle().spawn(|mut ctx: Ctx<u32>| async move { let _ = ctx.recv().await; }).unwrap().pid();
    /// assert!(rt.handle().addr_of::<u32>(pid).is_ok());
    /// assert!(matches!(rt.handle().addr_of::<String>(pid), Err(AddrError::WrongType { .. })));
    /// ```
    pub fn addr_of<M: Send + 'static>(&self, pid: Pid) -> Result<Addr<M>, AddrError> {
        self.shared.addr_of(pid)
    }

    /// Sends an exit signal to `target`, from [`Pid::EXTERNAL`].
    pub fn exit(&self, target: Pid, reason: ExitReason) {
        self.shared.exit(Pid::EXTERNAL, target, reason);
    }

    /// Whether `pid` is alive.
    pub fn is_alive(&self, pid: Pid) -> bool {
        self.shared.is_alive(pid)
    }

    /// Registers `addr`'s process under `name`.
    pub fn register<M: Send + 'static>(
        &self,
        name: &str,
        addr: &Addr<M>,
    ) -> Result<(), RegistryError> {
        let cell = self
            .shared
            .table
            .get(addr.pid())
            .ok_or(RegistryError::NoProc(addr.pid()))?;
        self.shared
            .registry
            .register(name, &cell, std::any::TypeId::of::<M>())
    }

    /// The process registered under `name`, if it receives messages of type `M`.
    pub fn whereis<M: Send + 'static>(&self, name: &str) -> Option<Addr<M>> {
        self.shared.registry.whereis::<M>(name)
    }

    /// The pid registered under `name`, whatever its message type.
    pub fn whereis_pid(&self, name: &str) -> Option<Pid> {
        self.shared.registry.whereis_pid(name)
    }

    /// How many names are registered.
    pub fn registered_names(&self) -> usize {
        self.shared.registry.len()
    }

    /// A snapshot of every live process.
    pub fn snapshot(&self) -> Vec<ProcessInfo> {
        self.shared
            .table
            .cells()
            .iter()
            .map(ProcessInfo::of)
            .collect()
    }

    /// A snapshot of one process, if alive.
    pub fn process_info(&self, pid: Pid) -> Option<ProcessInfo> {
        self.shared
            .table
            .get(pid)
            .map(|cell| ProcessInfo::of(&cell))
    }

    /// The runtime's counters.
    pub fn stats(&self) -> RuntimeStats {
        self.shared.stats.read(self.shared.table.live())
    }

    /// Timers set and not yet fired or cancelled.
    pub fn pending_timers(&self) -> usize {
        self.shared.timers.pending()
    }

    /// The runtime clock's time.
    pub fn now(&self) -> Duration {
        self.shared.clock.now()
    }

    /// Sends `message` to `to` after `delay` on the runtime's clock.
    pub fn send_after<M: Send + 'static>(
        &self,
        to: &Addr<M>,
        message: M,
        delay: Duration,
    ) -> TimerRef {
        self.shared.send_after(to.pid(), message, delay)
    }

    /// Cancels a timer; `true` if it had not fired yet.
    pub fn cancel_timer(&self, timer: TimerRef) -> bool {
        self.shared.timers.cancel(timer)
    }

    /// Tells of `pid`'s exit: the returned watch yields its reason (`noproc` if it is dead).
    pub fn watch(&self, pid: Pid) -> ExitWatch {
        let exit = Slot::new();
        let filler = Filler::new(&exit, ExitReason::NoProc);
        self.shared
            .watch(pid, Box::new(move |_, reason| filler.fill(reason.clone())));
        ExitWatch {
            pid,
            exit,
            seen: std::sync::OnceLock::new(),
        }
    }

    /// Runs `body` as a process and blocks the calling thread until it ends: `Ok` with the
    /// value it returned, or `Err` with its exit reason if it exited otherwise (killed, a
    /// panic, [`Ctx::stop`]). From async code, use [`Handle::run`].
    ///
    /// # Panics
    /// On a scheduler thread, where blocking would stall the runtime.
    pub fn block_on<M, F, Fut, T>(&self, body: F) -> Result<T, ExitReason>
    where
        M: Send + 'static,
        F: FnOnce(Ctx<M>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        block_thread_on("block_on called on a scheduler thread", self.run(body))
    }

    /// Runs `body` as a process, at once; the returned [`Run`] is a future of its end (`Ok`
    /// with the value it returned, or `Err` with its exit reason) that async code on any
    /// executor (tokio, async-std, a hand-written one) awaits without blocking a thread.
    /// Dropping the `Run` does not stop the process.
    ///
    /// ```
    /// # use baobab::{Ctx, Runtime};
    /// # use std::time::Duration;
    /// let rt = Runtime::new();
    /// let h = rt.handle().clone();
    /// // Any executor: here, the calling thread polls it.
    /// # let block = |f| baobab_test_block(f);
    /// # fn baobab_test_block<F: std::future::Future>(f: F) -> F::Output {
    /// #     use std::task::{Context, Poll, Waker};
    /// #     let mut f = std::pin::pin!(f);
    /// #     loop {
    /// #         if let Poll::Ready(v) = f.as_mut().poll(&mut Context::from_waker(Waker::noop())) { return v; }
    /// #         std::thread::sleep(Duration::from_millis(1));
    /// #     }
    /// # }
    /// let sum = block(async move {
    ///     h.run(|mut ctx: Ctx<()>| async move {
    ///         ctx.sleep(Duration::from_millis(1)).await;
    ///         2 + 2
    ///     })
    ///     .await
    /// });
    /// assert_eq!(sum, Ok(4));
    /// ```
    pub fn run<M, F, Fut, T>(&self, body: F) -> Run<T>
    where
        M: Send + 'static,
        F: FnOnce(Ctx<M>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let end: Arc<Slot<Result<T, ExitReason>>> = Slot::new();
        let value: Arc<Mutex<Option<T>>> = Arc::default();
        let filled = Arc::clone(&value);
        let ended = Filler::new(&end, Err(ExitReason::NoProc));
        let spawned = spawn_watched(
            &self.shared,
            None,
            move |ctx: Ctx<M>| async move {
                let value = body(ctx).await;
                *filled.lock().unwrap_or_else(PoisonError::into_inner) = Some(value);
            },
            SpawnOptions::new(),
            Some(Box::new(move |_, reason: &ExitReason| {
                let value = value.lock().unwrap_or_else(PoisonError::into_inner).take();
                ended.fill(value.ok_or_else(|| reason.clone()));
            })),
        );
        let pid = match spawned {
            Ok(spawned) => spawned.addr.pid(),
            Err(_) => {
                end.fill(Err(ExitReason::Shutdown));
                Pid::EXTERNAL
            }
        };
        Run {
            pid,
            end: Taken(end),
        }
    }
}
