//! A scheduler thread's loop: take the next task, run a slice of it, park when there is
//! nothing to run.

use std::time::Duration;

use crossbeam_deque::Worker;

use super::clock::Clock;
use super::scheduler::Scheduler;
use super::task::{RawTask, Schedulable};

/// What a scheduler thread needs from the layer that owns the runnables.
pub(crate) trait Host {
    /// What the run queues hold.
    type Runnable: Schedulable;
    /// The run queues.
    fn scheduler(&self) -> &Scheduler<Self::Runnable>;
    /// The clock the deferred work is timed by.
    fn clock(&self) -> &Clock;
    /// Reductions per slice.
    fn budget(&self) -> u32;
    /// Whether scheduler thread `index` holds work it deferred (lazy timers) that must be
    /// handed over before it sleeps.
    fn has_deferred(&self, index: usize) -> bool;
    /// Hands scheduler thread `index`'s deferred work over (called by that thread, or by the
    /// watchdog while the thread is stuck in a long slice).
    fn flush_deferred(&self, index: usize);
}

/// How long deferred work may wait while its thread is busy.
pub(crate) const DEFER_AT_MOST: Duration = Duration::from_millis(1);

/// The body of scheduler thread `index`.
pub(crate) fn run_worker<H: Host>(host: &H, index: usize, queue: Option<Worker<RawTask>>) {
    let scheduler = host.scheduler();
    let clock = host.clock();
    let budget = host.budget();
    let watch = scheduler
        .watch(index)
        .expect("a scheduler thread has a watch");
    scheduler.enter(index, queue);
    let mut searching = false;
    let mut slices = 0u32;
    // This thread's slice count for the watchdog: odd while a slice runs.
    let mut ticks = 0u64;
    let mut flushed_at = clock.now();
    while !scheduler.is_stopped() {
        let task = scheduler.next_task();
        // Lazy receive timers go to the heap when this thread has been busy for a while (the
        // clock is read once every 64 slices), or before it parks (below).
        if task.is_some() {
            slices = slices.wrapping_add(1);
            if slices % 64 == 0
                && host.has_deferred(index)
                && clock.now().saturating_sub(flushed_at) >= DEFER_AT_MOST
            {
                host.flush_deferred(index);
                flushed_at = clock.now();
            }
        }
        if searching {
            // Found work or gave up: either way the next push may wake another thread.
            searching = false;
            scheduler.sleepers.stop_searching();
        }
        match task {
            Some(task) => {
                ticks += 1;
                watch.set(ticks);
                task.run(budget, watch);
                ticks += 1;
                watch.set(ticks);
            }
            // Out of work: spin a moment first. The message that ends a receive (a call's
            // reply) usually comes during the spin, and its timer never reaches the heap.
            None if spin_for_work(scheduler) => {}
            None => {
                if host.has_deferred(index) {
                    host.flush_deferred(index);
                    flushed_at = clock.now();
                }
                searching = scheduler
                    .sleepers
                    .sleep(|| scheduler.has_work() || scheduler.is_stopped());
            }
        }
    }
    if searching {
        scheduler.sleepers.stop_searching();
    }
    scheduler.leave();
}

/// How many times an idle thread looks for work before it parks: parking and the futex wake
/// that ends it cost microseconds, so a thread that ran out of work between two messages of a
/// burst should stay awake for a moment.
const SPINS_BEFORE_PARK: u32 = 128;

/// Spins briefly; returns `true` as soon as some queue has work.
fn spin_for_work<R: Schedulable>(scheduler: &Scheduler<R>) -> bool {
    for _ in 0..SPINS_BEFORE_PARK {
        if scheduler.has_work() || scheduler.is_stopped() {
            return true;
        }
        std::hint::spin_loop();
    }
    false
}
