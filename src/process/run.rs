//! One slice of a process, and the protocol that lets the run queues, the wakers and the
//! runner share a process without a lock. Every `unsafe` block of it is in this file (the
//! spawn's `start`, the wake-up's `schedule`, a slice, the exit) or in the engine's
//! `engine/task.rs`, and these are the rules they rely on.
//!
//! **The state word** (`status.rs`) decides who may do what:
//! - only the caller whose `transition_to_queued` returns `true` makes a [`Task`] and queues
//!   it, so a process is in at most one run queue at a time;
//! - only the thread that won `transition_to_running` touches the code in the [`CodeSlot`],
//!   until it hands the process back (`transition_to_idle`) or finishes it (`EXITING`);
//! - a wake-up while the process runs turns `RUNNING` into `NOTIFIED`, and the runner queues
//!   it again itself, so no wake-up is lost.
//!
//! **The engine's two promises** (`engine/task.rs`) follow:
//! 1. *The pointer stays valid*: while a process has not finished, the process table holds a
//!    strong reference to its cell. The table takes it when the process is spawned, before
//!    its first push to a run queue (`spawn.rs`), and drops it only in `exit_process`, which
//!    only `finish` below calls, on the thread running the process's last slice. A `Task`
//!    exists only for a process that has not finished: it is made by the spawn (before the
//!    first run), by a waker whose `transition_to_queued` won (so the state was `IDLE`, never
//!    `EXITING`), or by the runner requeueing a process woken while it ran. So when `finish`
//!    runs, no `Task` for that process is left anywhere. `run_slice` takes its own strong
//!    reference before it calls `finish`, so the cell outlives the table's.
//! 2. *One task at a time*: the state word's first rule.
//!
//! **The code slot** needs no mutex: the spawner writes it once before the first push to a
//! run queue; then only the thread that won `transition_to_running` uses it, and that same
//! thread takes it out when the process exits. A mutex would only repeat that guarantee at two
//! atomic read-modify-writes per slice.
//!
//! The loom models in `loom_tests.rs` check each rule:
//! `loom_no_task_outlives_the_tables_reference` races wakers against a runner whose last slice
//! drops the "table's reference" (letting an `EXITING` process be queued again fails it);
//! `loom_code_slot_is_touched_by_one_thread` drives the real state transitions around a
//! `CodeSlot`, whose loom `UnsafeCell` fails on any concurrent access;
//! `loom_no_lost_wakeup_between_send_and_idle` and
//! `loom_wake_while_running_requeues_exactly_once` check the state word. The test suite also
//! runs clean under valgrind's memcheck.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use tracing::warn;

use super::cell::ProcessCell;
use super::code::Runnable;
use super::context::ExitPayload;
use super::crash::{CrashReport, CrashSource};
use super::exit::exit_process;
use crate::engine::task::{Schedulable, Task};
use crate::engine::watchdog::SliceWatch;
use crate::loom::cell::UnsafeCell;
use crate::signal::ExitReason;
use crate::signal::reason::panic_message;

type Code = Option<Pin<Box<dyn Runnable>>>;

/// Where a process's code lives, without a lock (see the module docs).
pub(crate) struct CodeSlot(UnsafeCell<Code>);

// SAFETY: the slot holds `Send` code and is only ever accessed by one thread at a time, as the
// module docs explain; moving that access between threads is what `Send` allows.
unsafe impl Sync for CodeSlot {}

impl CodeSlot {
    pub(crate) fn empty() -> Self {
        CodeSlot(UnsafeCell::new(None))
    }

    /// Runs `f` on the code.
    ///
    /// # Safety
    /// The caller has exclusive access to the process: it is the spawner before the first
    /// push to a run queue, or the thread that won `transition_to_running` and has not yet
    /// returned the process to `IDLE`, `QUEUED` or `EXITING`.
    pub(crate) unsafe fn with_mut<T>(&self, f: impl FnOnce(&mut Code) -> T) -> T {
        // SAFETY: exclusive access is the caller's promise (see above).
        self.0.with_mut(|code| f(unsafe { &mut *code }))
    }
}

/// Turns what unwound out of a process into its exit reason.
pub(crate) fn unwind_reason(payload: Box<dyn std::any::Any + Send>) -> ExitReason {
    match payload.downcast::<ExitPayload>() {
        Ok(exit) => exit.0,
        Err(payload) => ExitReason::Panic(panic_message(&*payload)),
    }
}

/// Installs a new process's code and queues it for its first slice. The cell must be in the
/// process table and never queued before (it is born `QUEUED`).
pub(crate) fn start(cell: &Arc<ProcessCell>, code: Pin<Box<dyn Runnable>>) {
    // SAFETY: the cell is not in any run queue yet (it is pushed below), so no other thread
    // runs it; senders only touch its mailbox and state.
    unsafe { cell.code.with_mut(|slot| *slot = Some(code)) };
    // SAFETY: the table holds the cell until its last slice (promise 1), and this push is its
    // one entry in a run queue: it was born `QUEUED`, so no waker queues it too (promise 2).
    cell.shared
        .scheduler
        .schedule_spawn(unsafe { Task::new(cell) });
}

impl ProcessCell {
    /// Asks for the process to run; queues it unless it is queued or running already.
    /// Returns whether it queued it.
    #[inline]
    pub(crate) fn schedule(self: &Arc<Self>) -> bool {
        if self.state.transition_to_queued() {
            // SAFETY: winning `transition_to_queued` means the process has not finished (the
            // table still holds it, promise 1) and has no other task (promise 2).
            self.shared.scheduler.schedule(unsafe { Task::new(self) });
            true
        } else {
            false
        }
    }
}

impl Schedulable for ProcessCell {
    /// Runs one slice of the process: at most `budget` messages, then it yields.
    #[inline]
    fn run_slice(
        cell: &Arc<ProcessCell>,
        task: Task<ProcessCell>,
        budget: u32,
        watch: &SliceWatch,
    ) {
        // The table's reference keeps the cell alive until `finish` (promise 1 above).
        if !cell.state.transition_to_running() {
            return;
        }
        cell.budget.set(budget);
        // `(reason, own)`: `own` when the process's code ended it, not an exit signal.
        let outcome = match cell.take_pending_exit() {
            Some(reason) => Some((reason, false)),
            None => {
                let waker = futures_task::waker_ref(cell);
                let mut cx = Context::from_waker(&waker);
                // SAFETY: this thread won `transition_to_running` above and holds the process until
                // `transition_to_idle` or `finish` below.
                let polled = unsafe {
                    cell.code.with_mut(|code| {
                        let runnable = code.as_mut().expect("a runnable process has its code");
                        catch_unwind(AssertUnwindSafe(|| runnable.as_mut().run(&mut cx)))
                    })
                };
                match polled {
                    Ok(Poll::Pending) => None,
                    Ok(Poll::Ready(reason)) => Some((reason, true)),
                    Err(payload) => Some((unwind_reason(payload), true)),
                }
            }
        };
        // Batched sends of this slice reach their mailboxes now: before this process can be
        // queued again, and before its links and monitors hear of an exit.
        super::outbox::end_slice();
        if let Some(since) = watch.long_slice() {
            report_long_slice(cell, since);
        }
        cell.add_reductions(u64::from(budget - cell.budget.remaining().min(budget)));
        match outcome {
            None => {
                if cell.state.transition_to_idle() {
                    // Woken while it ran, or its slice is used up: to the back of the queue.
                    cell.shared.scheduler.schedule_yield(task);
                }
            }
            Some((reason, own)) => {
                // `finish` drops the table's reference: hold one of our own until it returns.
                let cell = Arc::clone(cell);
                finish(&cell, reason, own);
            }
        }
    }
}

/// The watchdog found this slice long (`engine/watchdog.rs`): say which process held its
/// thread, and for how long at least.
#[cold]
fn report_long_slice(cell: &ProcessCell, since: std::time::Duration) {
    let ran = cell.shared.clock.now().saturating_sub(since);
    cell.shared.stats.long_schedule();
    warn!(
        pid = %cell.pid,
        ms = ran.as_millis() as u64,
        "long_schedule: a process ran {} ms without yielding its scheduler thread; its \
         queued processes and timers were moved to the other threads (run CPU-heavy work \
         with Ctx::blocking)",
        ran.as_millis()
    );
}

/// The process is done: terminate, drop its code, report a crash of its own making, then tell
/// its links and monitors.
fn finish(cell: &Arc<ProcessCell>, reason: ExitReason, own: bool) {
    // Read before the code (and the messages its `Ctx` holds) is dropped.
    let mailbox_len = cell.mailbox.len();
    // SAFETY: called by `run_slice`'s thread, which still holds the process (RUNNING).
    let code = unsafe { cell.code.with_mut(Option::take) };
    if let Some(mut code) = code {
        if reason != ExitReason::Killed
            && let Err(payload) =
                catch_unwind(AssertUnwindSafe(|| code.as_mut().terminate(&reason)))
        {
            warn!(pid = %cell.pid, reason = %unwind_reason(payload), "terminate panicked");
        }
        if let Err(payload) = catch_unwind(AssertUnwindSafe(move || drop(code))) {
            warn!(pid = %cell.pid, reason = %unwind_reason(payload), "dropping a process panicked");
        }
    }
    if own && !reason.is_clean() {
        cell.shared.crash_reports.report(|| CrashReport {
            pid: cell.pid,
            reason: reason.clone(),
            source: CrashSource::Process {
                name: cell
                    .signals
                    .lock()
                    .relations()
                    .and_then(|relations| relations.name.as_deref().map(str::to_owned)),
                mailbox_len,
                reductions: cell.reductions.load(Ordering::Relaxed),
            },
        });
    }
    exit_process(cell, reason);
}
