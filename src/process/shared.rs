//! `Shared`: what every thread of one runtime shares. The engine's parts (run queues, timers,
//! clock, blocking pool, counters) and the process layer's (the process table, the registry,
//! the reference counter), with the hooks through which the engine calls back into processes
//! without knowing them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::cell::ProcessCell;
use super::crash::CrashReports;
use super::registry::Registry;
use super::table::ProcessTable;
use super::timers::{DeferredTimers, ProcessTimer};
use crate::engine::blocking::BlockingPool;
use crate::engine::clock::{Clock, Tick};
use crate::engine::scheduler::Scheduler;
use crate::engine::stats::Stats;
use crate::engine::timer::Timers;
use crate::engine::worker::Host;
use crate::pid::RefSource;

/// What every thread of one runtime shares.
pub(crate) struct Shared {
    pub(crate) table: ProcessTable,
    pub(crate) scheduler: Scheduler<ProcessCell>,
    pub(crate) timers: Timers<ProcessTimer>,
    /// Each scheduler thread's lazy receive timers (`timers.rs`).
    pub(crate) deferred: DeferredTimers,
    pub(crate) clock: Clock,
    pub(crate) blocking: Arc<BlockingPool>,
    pub(crate) registry: Registry,
    pub(crate) refs: RefSource,
    pub(crate) stats: Stats,
    pub(crate) budget: u32,
    /// Where crash reports go.
    pub(crate) crash_reports: CrashReports,
    /// The mailbox length that gives a long-queue warning (`usize::MAX`: none).
    pub(crate) long_queue: usize,
    /// The tokio runtime given to `Builder::tokio`, for `Ctx::tokio`.
    #[cfg(feature = "tokio")]
    pub(crate) tokio: std::sync::OnceLock<tokio::runtime::Handle>,
    stopping: AtomicBool,
}

impl Shared {
    /// A runtime's shared state around `scheduler`; with a manual clock, it hears of every
    /// advance.
    pub(crate) fn new(
        scheduler: Scheduler<ProcessCell>,
        clock: Clock,
        blocking: Arc<BlockingPool>,
        stats: Stats,
        budget: u32,
        crash_reports: CrashReports,
        long_queue: usize,
    ) -> Arc<Shared> {
        let threads = scheduler.threads();
        let shared = Arc::new(Shared {
            table: ProcessTable::new(),
            scheduler,
            timers: Timers::default(),
            deferred: DeferredTimers::new(threads),
            clock,
            blocking,
            registry: Registry::default(),
            refs: RefSource::default(),
            stats,
            budget,
            crash_reports,
            long_queue,
            #[cfg(feature = "tokio")]
            tokio: std::sync::OnceLock::new(),
            stopping: AtomicBool::new(false),
        });
        let weak: Weak<dyn Tick> = Arc::downgrade(&shared) as Weak<dyn Tick>;
        shared.clock.attach(weak);
        shared
    }

    /// Whether the runtime is shutting down (spawns fail).
    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// The runtime starts shutting down: no new processes.
    pub(crate) fn begin_stop(&self) {
        self.stopping.store(true, Ordering::Release);
    }
}

impl Host for Shared {
    type Runnable = ProcessCell;

    fn scheduler(&self) -> &Scheduler<ProcessCell> {
        &self.scheduler
    }

    fn clock(&self) -> &Clock {
        &self.clock
    }

    fn budget(&self) -> u32 {
        self.budget
    }

    fn has_deferred(&self, index: usize) -> bool {
        Shared::has_deferred(self, index)
    }

    fn flush_deferred(&self, index: usize) {
        Shared::flush_deferred(self, index);
    }
}

impl Tick for Shared {
    fn tick(&self, now: Duration) {
        self.fire_timers(now);
    }
}
