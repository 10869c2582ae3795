//! `Task`: what the run queues hold. The engine knows nothing of processes: it is generic over
//! the [`Schedulable`] type the layer above gives it, and a task is a pointer to one of those.
//! Inside the queues (and the thread-locals that hold a thread's queue and LIFO slot) a task is
//! a [`RawTask`], the same pointer with its type erased; the scheduler turns it back into the
//! `Task<R>` it was made from (see `scheduler.rs`), and runs the slice through a direct call
//! the compiler can inline.
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

use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ptr::NonNull;
use std::sync::Arc;

use super::watchdog::SliceWatch;

/// Something the engine runs in slices.
pub(crate) trait Schedulable: Send + Sync + Sized + 'static {
    /// Runs one slice of `this` with `budget` reductions. `task` is the task it was queued
    /// as: the implementation either queues it again or drops it (when the runnable is done).
    /// `watch` is the running thread's: it tells whether the watchdog found the slice long.
    fn run_slice(this: &Arc<Self>, task: Task<Self>, budget: u32, watch: &SliceWatch);
}

/// A queued runnable of type `R` (see the module docs).
pub(crate) struct Task<R: Schedulable> {
    ptr: NonNull<R>,
    _owns: PhantomData<Arc<R>>,
}

// SAFETY: a `Task<R>` stands for an `Arc<R>` that someone else holds (promise 1), and
// `R: Schedulable` is `Send + Sync`: moving the pointer to the thread that runs the slice is
// what a moved `Arc<R>` would do.
unsafe impl<R: Schedulable> Send for Task<R> {}

impl<R: Schedulable> Task<R> {
    /// A task for `runnable`.
    ///
    /// # Safety
    /// The caller keeps the two promises of the module docs: a strong reference to
    /// `runnable` outlives this task, and no other task for it is queued or running.
    #[inline]
    pub(crate) unsafe fn new(runnable: &Arc<R>) -> Self {
        Task {
            ptr: NonNull::new(Arc::as_ptr(runnable).cast_mut())
                .expect("an Arc's pointer is never null"),
            _owns: PhantomData,
        }
    }

    /// Runs one slice of the runnable.
    #[inline]
    pub(crate) fn run(self, budget: u32, watch: &SliceWatch) {
        // SAFETY: the pointer is an `Arc<R>`'s (`new`), and the owner's strong reference keeps
        // the allocation alive while this task exists (promise 1). `ManuallyDrop` keeps this
        // view from giving back a count it never took.
        let this = ManuallyDrop::new(unsafe { Arc::from_raw(self.ptr.as_ptr()) });
        R::run_slice(&this, self, budget, watch);
    }

    /// The task with its type erased, for the queues.
    #[inline]
    pub(crate) fn into_raw(self) -> RawTask {
        RawTask(self.ptr.cast())
    }

    /// The task a [`RawTask`] was made from.
    ///
    /// # Safety
    /// `raw` came from [`Task::into_raw`] of a `Task<R>`, of this same `R`.
    #[inline]
    pub(crate) unsafe fn from_raw(raw: RawTask) -> Self {
        Task {
            ptr: raw.0.cast(),
            _owns: PhantomData,
        }
    }
}

/// A [`Task`] with its runnable's type erased, as the queues and thread-locals hold it.
pub(crate) struct RawTask(NonNull<()>);

// SAFETY: a `RawTask` is a `Task<R>` with `R: Schedulable` (see `Task`'s `Send`).
unsafe impl Send for RawTask {}
