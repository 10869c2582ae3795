//! `Runtime` and its `Builder`: the facade that puts the engine and the process layer
//! together. It makes the shared state, starts the scheduler and timer threads, and on
//! shutdown stops every process, then the threads.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing::{debug, warn};

use crate::engine::blocking::BlockingPool;
use crate::engine::clock::Clock;
use crate::engine::scheduler::{self, Scheduler};
use crate::engine::stats::Stats;
use crate::engine::watchdog::Watchdog;
use crate::engine::{timer, worker};
use crate::process::shared::Shared;
use crate::process::{CrashReports, Handle};
use crate::signal::ExitReason;

static NEXT_RUNTIME: AtomicUsize = AtomicUsize::new(1);

/// Builds a [`Runtime`].
///
/// ```
/// use baobab::Runtime;
/// let rt = Runtime::builder().threads(2).budget(500).blocking_threads(16).build();
/// assert_eq!(rt.threads(), 2);
/// ```
#[derive(Debug, Clone)]
pub struct Builder {
    threads: usize,
    budget: u32,
    blocking_threads: usize,
    blocking_stack_size: Option<usize>,
    clock: Clock,
    seed: Option<u64>,
    long_schedule: Duration,
    crash_reports: CrashReports,
    long_message_queue: Option<usize>,
    #[cfg(feature = "tokio")]
    tokio: Option<tokio::runtime::Handle>,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            budget: 2000,
            blocking_threads: 64,
            blocking_stack_size: None,
            clock: Clock::system(),
            seed: None,
            long_schedule: Duration::from_millis(100),
            crash_reports: CrashReports::Log,
            long_message_queue: None,
            #[cfg(feature = "tokio")]
            tokio: None,
        }
    }
}

impl Builder {
    /// Scheduler threads (default: the available cores; at least 1).
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// Reductions (messages) a process may handle per slice before it yields (default 2000,
    /// the BEAM's figure; at least 1).
    pub fn budget(mut self, budget: u32) -> Self {
        self.budget = budget.max(1);
        self
    }

    /// The most threads the blocking pool grows to (default 64).
    pub fn blocking_threads(mut self, threads: usize) -> Self {
        self.blocking_threads = threads.max(1);
        self
    }

    /// The stack size of each blocking thread, in bytes (default: the standard library's, 2 MiB
    /// unless `RUST_MIN_STACK` says otherwise). Work that recurses deeply needs more: the
    /// Rhai sandbox's `script::Sandbox::stack_size` tells how
    /// much its limits need. Only touched pages take memory.
    pub fn blocking_stack_size(mut self, bytes: usize) -> Self {
        self.blocking_stack_size = Some(bytes);
        self
    }

    /// The clock for timers and timeouts (default: the system clock).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Deterministic scheduling: one scheduler thread that picks the next process among the
    /// runnable ones with a generator seeded by `seed`. With a manual clock and no blocking
    /// work, the same seed replays the same interleaving.
    pub fn deterministic(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self.threads = 1;
        self
    }

    /// How long one slice (a process running between two `await`s) may hold its scheduler
    /// thread before the runtime reports it (default 100 ms): a `long_schedule` warning
    /// through `tracing`, naming the process and the time, when the slice ends, and a count
    /// in [`RuntimeStats::long_schedules`](crate::RuntimeStats::long_schedules). The watchdog
    /// that notices runs with the system clock only.
    ///
    /// Whatever this threshold, with the system clock and more than one scheduler thread the
    /// watchdog moves the busy thread's queued processes and lazy timers to the other threads
    /// once a slice has run for about 2 ms, so timers fire and queued processes run while one
    /// process computes. CPU-heavy work belongs on the blocking pool
    /// ([`Ctx::blocking`](crate::Ctx::blocking)); see `docs/architecture.md`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let rt = baobab::Runtime::builder().long_schedule(Duration::from_millis(20)).build();
    /// assert_eq!(rt.handle().stats().long_schedules, 0);
    /// ```
    pub fn long_schedule(mut self, threshold: Duration) -> Self {
        self.long_schedule = threshold;
        self
    }

    /// Where crash reports go (default [`CrashReports::Log`]: a `tracing` event at `error`
    /// level). A report is made when a process's own code ends it with a reason other than
    /// `normal`, `shutdown` or `{shutdown, _}` (pid, registered name, reason, mailbox length,
    /// reductions), and when a supervisor sees a child exit as OTP's supervisor reports it
    /// (child id, pid, reason, restarts so far). See [`CrashReport`](crate::CrashReport).
    pub fn crash_reports(mut self, reports: CrashReports) -> Self {
        self.crash_reports = reports;
        self
    }

    /// Warn when a process's mailbox grows long (OTP's `system_monitor` with
    /// `long_message_queue`; default: off): when the messages a process has not yet taken
    /// (its inbox and the messages a selective receive skipped) reach `threshold` (at least
    /// 2), a `long_message_queue` warning through `tracing` names the process and the length,
    /// and [`RuntimeStats::long_queues`](crate::RuntimeStats::long_queues) counts it. The
    /// check runs on each send to the process; the warning comes again once a send has found
    /// fewer than half `threshold` queued. A long queue means a process receives faster than
    /// it handles: a bounded mailbox with [`Overflow::Wait`](crate::Overflow::Wait) slows its
    /// senders down. Off, it costs a send one compare.
    ///
    /// ```
    /// let rt = baobab::Runtime::builder().long_message_queue(10_000).build();
    /// assert_eq!(rt.handle().stats().long_queues, 0);
    /// ```
    pub fn long_message_queue(mut self, threshold: usize) -> Self {
        self.long_message_queue = Some(threshold.max(2));
        self
    }

    /// The tokio runtime on which [`Ctx::tokio`](crate::Ctx::tokio) runs futures (feature
    /// `tokio`; default: a one-thread runtime the crate starts on first use).
    ///
    /// ```
    /// let tokio = tokio::runtime::Runtime::new().unwrap();
    /// let rt = baobab::Runtime::builder().tokio(tokio.handle().clone()).build();
    /// let on = rt.block_on(|mut ctx: baobab::Ctx<()>| async move {
    ///     ctx.tokio(async { tokio::runtime::Handle::current().id() }).await
    /// });
    /// assert_eq!(on.unwrap(), tokio.handle().id());
    /// ```
    #[cfg(feature = "tokio")]
    pub fn tokio(mut self, handle: tokio::runtime::Handle) -> Self {
        self.tokio = Some(handle);
        self
    }

    /// Starts the runtime's threads.
    pub fn build(self) -> Runtime {
        let id = NEXT_RUNTIME.fetch_add(1, Ordering::Relaxed);
        let (scheduler, locals) = match self.seed {
            Some(seed) => (Scheduler::seeded(id, seed), vec![]),
            None => {
                let (scheduler, locals) = Scheduler::stealing(id, self.threads);
                (scheduler, locals.into_iter().map(Some).collect())
            }
        };
        let locals = if locals.is_empty() {
            vec![None]
        } else {
            locals
        };
        let shared = Shared::new(
            scheduler,
            self.clock.clone(),
            BlockingPool::new(self.blocking_threads, self.blocking_stack_size),
            Stats::new(id, self.threads),
            self.budget,
            self.crash_reports.clone(),
            self.long_message_queue.unwrap_or(usize::MAX),
        );
        #[cfg(feature = "tokio")]
        if let Some(handle) = self.tokio.clone() {
            let _ = shared.tokio.set(handle);
        }
        let threads = locals
            .into_iter()
            .enumerate()
            .map(|(index, queue)| {
                let shared = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name(format!("baobab-scheduler-{index}"))
                    .spawn(move || worker::run_worker(&*shared, index, queue))
                    .expect("start a scheduler thread")
            })
            .collect();
        let long_schedule = self.long_schedule;
        let timer_thread = (!self.clock.is_manual()).then(|| {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("baobab-timer".into())
                .spawn(move || {
                    let mut watchdog = Watchdog::new(shared.scheduler.threads(), long_schedule);
                    timer::run_timer_thread(
                        &shared.timers,
                        &shared.clock,
                        |action| shared.run_timer(action),
                        |now| {
                            Some(watchdog.check(now, &shared.scheduler, |index| {
                                shared.flush_deferred(index)
                            }))
                        },
                    )
                })
                .expect("start the timer thread")
        });
        Runtime {
            handle: Handle::from_shared(shared),
            threads,
            timer_thread,
        }
    }
}

/// A running baobab runtime. Dropping it shuts it down.
///
/// ```
/// use baobab::{ExitReason, Message, Runtime};
///
/// let rt = Runtime::new();
/// // A process that traps exits sees its linked child crash as a message.
/// let seen = rt.block_on(|mut ctx: baobab::Ctx<()>| async move {
///     ctx.trap_exit(true);
///     let child = ctx.spawn_link(|_ctx: baobab::Ctx<()>| async move {
///         ExitReason::error("boom")
///     }).unwrap();
///     match ctx.recv().await {
///         Message::Exit(signal) => (signal.from == child.pid(), signal.reason),
///         other => panic!("unexpected {other:?}"),
///     }
/// });
/// assert_eq!(seen.unwrap(), (true, ExitReason::error("boom")));
/// ```
pub struct Runtime {
    handle: Handle,
    threads: Vec<JoinHandle<()>>,
    timer_thread: Option<JoinHandle<()>>,
}

impl Default for Runtime {
    fn default() -> Self {
        Runtime::new()
    }
}

impl Runtime {
    /// A runtime with the default settings.
    pub fn new() -> Self {
        Builder::default().build()
    }

    /// A builder for the settings.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// A cloneable handle for spawning, sending and introspection from anywhere.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// The number of scheduler threads.
    pub fn threads(&self) -> usize {
        self.threads.len()
    }

    /// Runs `body` as a process and blocks the calling thread until it ends: `Ok` with its
    /// value, or `Err` with its exit reason if it was killed or panicked. See
    /// [`Handle::block_on`].
    pub fn block_on<M, F, Fut, T>(&self, body: F) -> Result<T, ExitReason>
    where
        M: Send + 'static,
        F: FnOnce(crate::process::Ctx<M>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        self.handle.block_on(body)
    }

    /// Stops every process with reason `shutdown` (trap_exit notwithstanding; behaviours'
    /// `terminate` runs), then stops and joins the scheduler and timer threads. Work still
    /// running on the blocking pool is abandoned. Must not be called from inside the runtime.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if self.threads.is_empty() {
            return;
        }
        let shared = Arc::clone(&self.handle.shared);
        assert!(
            scheduler::current_index(shared.scheduler.id()).is_none(),
            "Runtime::shutdown called from one of its own scheduler threads"
        );
        shared.begin_stop();
        let mut rounds = 0u32;
        while shared.table.live() > 0 {
            for cell in shared.table.cells() {
                shared.force_exit(&cell, ExitReason::Shutdown);
            }
            std::thread::sleep(Duration::from_millis(1));
            rounds += 1;
            if rounds % 5000 == 0 {
                warn!(
                    live = shared.table.live(),
                    "runtime shutdown waits for processes to exit"
                );
            }
        }
        shared.scheduler.stop();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        shared.timers.stop();
        if let Some(thread) = self.timer_thread.take() {
            let _ = thread.join();
        }
        shared.blocking.stop();
        shared.scheduler.drain();
        debug!("runtime stopped");
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if !std::thread::panicking()
            || scheduler::current_index(self.handle.shared.scheduler.id()).is_none()
        {
            self.stop();
        }
    }
}
