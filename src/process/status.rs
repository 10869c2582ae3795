//! The process state word: one atomic byte, with named transitions.
//!
//! ```text
//!            schedule()                run()                 poll -> Pending
//!   IDLE ─────────────────▶ QUEUED ─────────────▶ RUNNING ─────────────────────▶ IDLE
//!                                                   │  ▲
//!                                       schedule()  │  │ poll -> Pending: back to QUEUED
//!                                                   ▼  │ (it was woken while running)
//!                                               NOTIFIED
//!   RUNNING ──── exit ────▶ EXITING (final)
//! ```
//!
//! The rules that make it correct:
//! - Only the caller whose `transition_to_queued` returns `true` pushes the process to a run
//!   queue, so a process is in at most one run queue at a time.
//! - Only the thread that won `transition_to_running` polls the process, so a process runs on
//!   at most one thread at a time.
//! - A wake-up that arrives while the process runs is never lost: it turns `RUNNING` into
//!   `NOTIFIED`, and `transition_to_idle` then reports that the process must be queued again.
//!   Senders push to the mailbox *before* they call `transition_to_queued`, and the runner
//!   checks the mailbox *before* `transition_to_idle`; both touch this one atomic, so either the
//!   runner sees the message or the sender sees `IDLE` and queues the process.
//!
//! The loom model in `process/loom_tests.rs` checks these rules.

use crate::loom::sync::atomic::{AtomicU8, Ordering};

const IDLE: u8 = 0;
const QUEUED: u8 = 1;
const RUNNING: u8 = 2;
const NOTIFIED: u8 = 3;
const EXITING: u8 = 4;

/// What a process is doing, as shown in introspection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    /// Waiting for a message or a wake-up.
    Waiting,
    /// In a run queue.
    Runnable,
    /// Being polled by a scheduler thread.
    Running,
    /// Exiting or exited.
    Exiting,
}

/// The atomic state of one process.
#[derive(Debug)]
pub(crate) struct ProcessState(AtomicU8);

impl ProcessState {
    /// A new process starts queued: its spawner pushes it to a run queue.
    pub(crate) fn new_queued() -> Self {
        ProcessState(AtomicU8::new(QUEUED))
    }

    /// Asks for the process to run. Returns `true` when the caller must push it to a run queue.
    #[inline]
    pub(crate) fn transition_to_queued(&self) -> bool {
        let mut current = self.0.load(Ordering::Acquire);
        loop {
            let next = match current {
                IDLE => QUEUED,
                RUNNING => NOTIFIED,
                _ => return false,
            };
            match self
                .0
                .compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return next == QUEUED,
                Err(actual) => current = actual,
            }
        }
    }

    /// Taken from a run queue. Returns `false` if the process is exiting and must not run.
    #[inline]
    ///
    /// A plain store suffices: while a process is `QUEUED` nobody else writes its state
    /// (wakers only move `IDLE` and `RUNNING`, and only the runner moves `QUEUED`), so no
    /// read-modify-write can come between the load and the store. What the waker wrote before
    /// queueing reaches this thread through the run queue it came from.
    pub(crate) fn transition_to_running(&self) -> bool {
        if self.0.load(Ordering::Acquire) != QUEUED {
            return false;
        }
        self.0.store(RUNNING, Ordering::Release);
        true
    }

    /// After a poll that did not finish. Returns `true` when the process was woken while it ran
    /// and must be pushed to a run queue again (it is then `QUEUED`).
    #[inline]
    pub(crate) fn transition_to_idle(&self) -> bool {
        match self
            .0
            .compare_exchange(RUNNING, IDLE, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => false,
            Err(actual) => {
                debug_assert_eq!(actual, NOTIFIED);
                self.0.store(QUEUED, Ordering::Release);
                true
            }
        }
    }

    /// The process ran its last poll. Final: no transition leaves `EXITING`.
    pub(crate) fn transition_to_exiting(&self) {
        self.0.store(EXITING, Ordering::Release);
    }

    #[inline]
    pub(crate) fn status(&self) -> Status {
        match self.0.load(Ordering::Acquire) {
            IDLE => Status::Waiting,
            QUEUED => Status::Runnable,
            RUNNING | NOTIFIED => Status::Running,
            _ => Status::Exiting,
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn schedule_while_idle_queues_once() {
        let state = ProcessState::new_queued();
        assert!(state.transition_to_running());
        assert!(!state.transition_to_idle());
        assert!(state.transition_to_queued());
        assert!(!state.transition_to_queued(), "already queued");
        assert_eq!(state.status(), Status::Runnable);
    }

    #[test]
    fn wake_while_running_requeues_after_the_poll() {
        let state = ProcessState::new_queued();
        assert!(state.transition_to_running());
        assert!(
            !state.transition_to_queued(),
            "the runner requeues, not the waker"
        );
        assert!(state.transition_to_idle());
        assert_eq!(state.status(), Status::Runnable);
        assert!(state.transition_to_running());
    }

    #[test]
    fn exiting_is_final() {
        let state = ProcessState::new_queued();
        assert!(state.transition_to_running());
        state.transition_to_exiting();
        assert!(!state.transition_to_queued());
        assert!(!state.transition_to_running());
        assert_eq!(state.status(), Status::Exiting);
    }
}
