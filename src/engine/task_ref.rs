//! `Task`: a queued process, as the run queues hold it: a pointer to its cell that owns no
//! reference count.
//!
//! An `Arc` in the queue would cost two atomic read-modify-writes per slice (one when a send
//! queues the process, one when the slice ends), on every message that wakes a process. They
//! are not needed, because of this invariant:
//!
//! **While a process has not finished, the process table holds a strong reference to its
//! cell.** The table takes it when the process is spawned, before its first push to a run
//! queue (`process/spawn.rs`), and drops it only in `exit_process`, which only `finish` calls,
//! on the thread running the process's last slice (`runtime/worker.rs`).
//!
//! And a `Task` exists only for a process that has not finished: it is made by the spawn
//! (before the first run), by a waker whose `transition_to_queued` won (so the state was
//! `IDLE`, never `EXITING`), or by the runner requeueing a process woken while it ran. The
//! state word puts a process in at most one queue at a time and never in a queue while it
//! runs (loom-checked in `process/loom_tests.rs`), so when `finish` runs, no `Task` for that
//! process is left anywhere. `run_slice` takes its own strong reference before it calls
//! `finish`, so the cell outlives the table's.
//!
//! The loom model `loom_no_task_outlives_the_tables_reference` (`process/loom_tests.rs`)
//! races wakers against a runner whose last slice drops the "table's reference" and checks
//! that no queued pointer is taken after it; letting an `EXITING` process be queued again
//! fails it. The test suite also runs clean under valgrind's memcheck.

use std::mem::ManuallyDrop;
use std::ptr::NonNull;
use std::sync::Arc;

use crate::process::cell::ProcessCell;

/// A queued process (see the module docs).
pub(crate) struct Task(NonNull<ProcessCell>);

// SAFETY: a `Task` only stands for an `Arc<ProcessCell>` the table holds, and
// `Arc<ProcessCell>` is `Send` (`ProcessCell` is `Send + Sync`): moving the pointer to the
// thread that runs the process is what a moved `Arc` would do.
unsafe impl Send for Task {}

impl Task {
    /// The task of a process that has not finished (the caller's promise, kept by the three
    /// places the module docs list).
    #[inline]
    pub(crate) fn new(cell: &Arc<ProcessCell>) -> Task {
        Task(NonNull::new(Arc::as_ptr(cell).cast_mut()).expect("an Arc's pointer is never null"))
    }

    /// The cell, as the `Arc` the table holds, without a count of its own: never dropped,
    /// never cloned past `finish` (clone it first if it must outlive the process).
    #[inline]
    pub(crate) fn cell(&self) -> ManuallyDrop<Arc<ProcessCell>> {
        // SAFETY: the pointer came from `Arc::as_ptr` of a live `Arc`, and the table's strong reference keeps the allocation alive while a `Task` for it
        // exists (module docs). `ManuallyDrop` keeps this view from giving back a count it
        // never took.
        ManuallyDrop::new(unsafe { Arc::from_raw(self.0.as_ptr()) })
    }
}
