//! A scheduler thread's loop, and one slice of one process.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::task::{Context, Poll};

use crossbeam_deque::Worker;
use tracing::{debug, warn};

use super::Shared;
use super::coop;
use super::scheduler::Task;
use crate::loom::lock;
use crate::process::cell::ProcessCell;
use crate::process::context::ExitPayload;
use crate::process::exit::exit_process;
use crate::signal::ExitReason;
use crate::signal::reason::panic_message;

/// The body of scheduler thread `index`.
pub(crate) fn run_worker(shared: Arc<Shared>, index: usize, queue: Option<Worker<Task>>) {
    let scheduler = &shared.scheduler;
    scheduler.enter(index, queue);
    while !scheduler.is_stopped() {
        match scheduler.next_task() {
            Some(task) => run_slice(task, shared.budget),
            None => scheduler
                .sleepers
                .sleep(|| scheduler.has_work() || scheduler.is_stopped()),
        }
    }
    scheduler.leave();
}

/// Turns what unwound out of a process into its exit reason.
fn unwind_reason(payload: Box<dyn std::any::Any + Send>) -> ExitReason {
    match payload.downcast::<ExitPayload>() {
        Ok(exit) => exit.0,
        Err(payload) => ExitReason::Panic(panic_message(&*payload)),
    }
}

/// Runs one slice of `cell`: at most `budget` messages, then it yields.
pub(crate) fn run_slice(cell: Arc<ProcessCell>, budget: u32) {
    if !cell.state.transition_to_running() {
        return;
    }
    coop::set(budget);
    let outcome = match cell.take_pending_exit() {
        Some(reason) => Some(reason),
        None => {
            let mut task = lock(&cell.task);
            let runnable = task.as_mut().expect("a runnable process has its task");
            let waker = futures_task::waker_ref(&cell);
            let mut cx = Context::from_waker(&waker);
            match catch_unwind(AssertUnwindSafe(|| runnable.as_mut().run(&mut cx))) {
                Ok(Poll::Pending) => None,
                Ok(Poll::Ready(reason)) => Some(reason),
                Err(payload) => Some(unwind_reason(payload)),
            }
        }
    };
    cell.add_reductions(u64::from(budget - coop::remaining().min(budget)));
    match outcome {
        None => {
            if cell.state.transition_to_idle() {
                let shared = Arc::clone(&cell.shared);
                shared.scheduler.schedule(cell);
            }
        }
        Some(reason) => finish(&cell, reason),
    }
}

/// The process is done: terminate, drop its code, then tell its links and monitors.
fn finish(cell: &Arc<ProcessCell>, reason: ExitReason) {
    let task = lock(&cell.task).take();
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
    cell.state.transition_to_exiting();
    exit_process(cell, reason);
}
