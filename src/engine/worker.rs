//! A scheduler thread's loop, and one slice of one process.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::task::{Context, Poll};

use crossbeam_deque::Worker;
use tracing::{debug, warn};

use super::Shared;
use super::scheduler::Task;
use super::timer::DEFER_AT_MOST;
use crate::process::cell::ProcessCell;
use crate::process::context::ExitPayload;
use crate::process::exit::exit_process;
use crate::signal::ExitReason;
use crate::signal::reason::panic_message;

/// The body of scheduler thread `index`.
pub(crate) fn run_worker(shared: Arc<Shared>, index: usize, queue: Option<Worker<Task>>) {
    let scheduler = &shared.scheduler;
    scheduler.enter(index, queue);
    let mut searching = false;
    let mut slices = 0u32;
    let mut flushed_at = shared.clock.now();
    while !scheduler.is_stopped() {
        let task = scheduler.next_task();
        slices = slices.wrapping_add(1);
        // Lazy receive timers go to the heap before this thread sleeps, or when it has been
        // busy for a while (the clock is read once every 64 slices).
        let idle = task.is_none();
        if (idle || slices % 64 == 0)
            && Shared::has_deferred()
            && (idle || shared.clock.now().saturating_sub(flushed_at) >= DEFER_AT_MOST)
        {
            shared.flush_deferred();
            flushed_at = shared.clock.now();
        }
        if searching {
            // Found work or gave up: either way the next push may wake another thread.
            searching = false;
            scheduler.sleepers.stop_searching();
        }
        match task {
            Some(task) => run_slice(task, shared.budget),
            None if spin_for_work(scheduler) => {}
            None => {
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
fn spin_for_work(scheduler: &super::scheduler::Scheduler) -> bool {
    for _ in 0..SPINS_BEFORE_PARK {
        if scheduler.has_work() || scheduler.is_stopped() {
            return true;
        }
        std::hint::spin_loop();
    }
    false
}

/// Turns what unwound out of a process into its exit reason.
fn unwind_reason(payload: Box<dyn std::any::Any + Send>) -> ExitReason {
    match payload.downcast::<ExitPayload>() {
        Ok(exit) => exit.0,
        Err(payload) => ExitReason::Panic(panic_message(&*payload)),
    }
}

/// Runs one slice of `task`'s process: at most `budget` messages, then it yields.
pub(crate) fn run_slice(task: Task, budget: u32) {
    // The table's reference keeps the cell alive until `finish` (see `task_ref.rs`).
    let cell = task.cell();
    if !cell.state.transition_to_running() {
        return;
    }
    cell.budget.set(budget);
    let outcome = match cell.take_pending_exit() {
        Some(reason) => Some(reason),
        None => {
            let waker = futures_task::waker_ref(&cell);
            let mut cx = Context::from_waker(&waker);
            // SAFETY: this thread won `transition_to_running` above and holds the process until
            // `transition_to_idle` or `finish` below.
            let polled = unsafe {
                cell.code.with_mut(|task| {
                    let runnable = task.as_mut().expect("a runnable process has its task");
                    catch_unwind(AssertUnwindSafe(|| runnable.as_mut().run(&mut cx)))
                })
            };
            match polled {
                Ok(Poll::Pending) => None,
                Ok(Poll::Ready(reason)) => Some(reason),
                Err(payload) => Some(unwind_reason(payload)),
            }
        }
    };
    // Batched sends of this slice reach their mailboxes now: before this process can be
    // queued again, and before its links and monitors hear of an exit.
    crate::process::outbox::end_slice();
    cell.add_reductions(u64::from(budget - cell.budget.remaining().min(budget)));
    match outcome {
        None => {
            if cell.state.transition_to_idle() {
                // Woken while it ran, or its slice is used up: to the back of the queue.
                cell.shared.scheduler.schedule_yield(task);
            }
        }
        Some(reason) => {
            // `finish` drops the table's reference: hold one of our own until it returns.
            let cell = Arc::clone(&cell);
            finish(&cell, reason);
        }
    }
}

/// The process is done: terminate, drop its code, then tell its links and monitors.
fn finish(cell: &Arc<ProcessCell>, reason: ExitReason) {
    // SAFETY: called by `run_slice`'s thread, which still holds the process (RUNNING).
    let task = unsafe { cell.code.with_mut(Option::take) };
    if let Some(mut task) = task {
        if reason != ExitReason::Killed
            && let Err(payload) =
                catch_unwind(AssertUnwindSafe(|| task.as_mut().terminate(&reason)))
        {
            warn!(pid = %cell.pid, reason = %unwind_reason(payload), "terminate panicked");
        }
        if let Err(payload) = catch_unwind(AssertUnwindSafe(move || drop(task))) {
            warn!(pid = %cell.pid, reason = %unwind_reason(payload), "dropping a process panicked");
        }
    }
    if let ExitReason::Panic(message) = &reason {
        debug!(pid = %cell.pid, %message, "process panicked");
    }
    exit_process(cell, reason);
}
