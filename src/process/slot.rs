//! `CodeSlot`: where a process's code lives, without a lock.
//!
//! The state word (`state.rs`) already makes the running thread the only one that touches the
//! code: it is written once by the spawner before the process's first push to a run queue,
//! then used only by the thread that won `transition_to_running`, and taken out by that same
//! thread when the process exits. A mutex here would only repeat that guarantee at two atomic
//! read-modify-writes per slice. The loom model `loom_task_slot_is_touched_by_one_thread`
//! (in `process/loom_tests.rs`) drives the real state transitions around this cell, and
//! loom's `UnsafeCell` fails it on any concurrent access.

use std::pin::Pin;

use super::code::Runnable;
use crate::loom::cell::UnsafeCell;

type Code = Option<Pin<Box<dyn Runnable>>>;

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
