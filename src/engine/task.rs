//! `Task`: what the run queues hold. The engine knows nothing of processes: a task is a
//! pointer to something [`Schedulable`] and the function that runs one slice of it, paired
//! by [`Task::new`] so the two always agree on the type.
//!
//! A task owns no reference count. An `Arc` in the queue would cost two atomic
//! read-modify-writes per slice (one when a send queues the runnable, one when the slice
//! ends), on every message that wakes a process. Instead the owner of the runnable promises,
//! when it makes a task, what [`Task::new`] states:
//!
//! 1. **The pointer stays valid**: something else holds a strong reference to the runnable
//!    for as long as any task for it exists.
//! 2. **One task at a time**: a runnable is in at most one queue at a time and never in a
//!    queue while a slice of it runs, so two threads never run it at once.
//!
//! The process layer keeps both with its state word and its process table; `process/run.rs`
//! says how, and its loom models check it.

use std::mem::ManuallyDrop;
use std::ptr::NonNull;
use std::sync::Arc;

/// Something the engine runs in slices.
pub(crate) trait Schedulable: Send + Sync + 'static {
    /// Runs one slice of `this` with `budget` reductions. `task` is the task it was queued
    /// as: the implementation either queues it again or drops it (when the runnable is done).
    fn run_slice(this: &Arc<Self>, task: Task, budget: u32);
}

/// A queued runnable (see the module docs).
pub(crate) struct Task {
    ptr: NonNull<()>,
    run: unsafe fn(Task, u32),
}

// SAFETY: a `Task` stands for an `Arc<R>` with `R: Schedulable` (so `Send + Sync`) that
// someone else holds (promise 1): moving the pointer to the thread that runs the slice is
// what a moved `Arc<R>` would do.
unsafe impl Send for Task {}

impl Task {
    /// A task for `runnable`.
    ///
    /// # Safety
    /// The caller keeps the two promises of the module docs: a strong reference to
    /// `runnable` outlives this task, and no other task for it is queued or running.
    #[inline]
    pub(crate) unsafe fn new<R: Schedulable>(runnable: &Arc<R>) -> Task {
        Task {
            ptr: NonNull::new(Arc::as_ptr(runnable).cast_mut())
                .expect("an Arc's pointer is never null")
                .cast(),
            run: run_erased::<R>,
        }
    }

    /// Runs one slice of the runnable.
    #[inline]
    pub(crate) fn run(self, budget: u32) {
        // SAFETY: `run` was made by `new` for the type `ptr` points to.
        unsafe { (self.run)(self, budget) }
    }
}

/// `Task::run` for runnables of type `R`.
///
/// # Safety
/// `task.ptr` came from `Arc::<R>::as_ptr` in `Task::new`, and its promise 1 holds.
unsafe fn run_erased<R: Schedulable>(task: Task, budget: u32) {
    // SAFETY: the pointer is an `Arc<R>`'s (see above), and the owner's strong reference keeps
    // the allocation alive while this task exists (promise 1). `ManuallyDrop` keeps this view
    // from giving back a count it never took.
    let this = ManuallyDrop::new(unsafe { Arc::from_raw(task.ptr.cast::<R>().as_ptr()) });
    R::run_slice(&this, task, budget);
}
