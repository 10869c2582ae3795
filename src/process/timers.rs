//! The process layer's timers, kept in the engine's deadline heap: a timer either sends a
//! message (`send_after`) or wakes a process (a receive timeout, a behaviour's timeout,
//! `sleep`). A wake-up only reschedules the process, which compares the clock with its own
//! deadline, so a timer that fires late or twice cannot end the wrong receive.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use crossbeam_utils::CachePadded;

use super::cell::ProcessCell;
use super::mailbox::Mail;
use super::shared::Shared;
use super::status::Status;
use crate::engine::scheduler;
use crate::engine::timer::{TimerAction, TimerRef};
use crate::pid::Pid;

/// A receive timeout not yet in the heap: most receives with a timeout end long before it, and
/// the heap costs a lock, a push and a cancel. The scheduler thread the receive ran on keeps
/// these in its list and moves the ones still waiting to the heap before it sleeps or after
/// `DEFER_AT_MOST` (`engine/worker.rs`) of continuous work (`flush_deferred`); the watchdog
/// moves them for it while it is stuck in a long slice (`engine/watchdog.rs`).
struct Deferred {
    deadline: Duration,
    cell: Weak<ProcessCell>,
    epoch: u32,
}

/// The lazy receive timers of each scheduler thread of one runtime. A thread pushes to and
/// flushes its own list, so its lock is taken by another thread (the watchdog's) only while
/// the owner is stuck in a slice.
pub(crate) struct DeferredTimers(Box<[CachePadded<Mutex<Vec<Deferred>>>]>);

impl DeferredTimers {
    /// Lists for `threads` scheduler threads.
    pub(crate) fn new(threads: usize) -> Self {
        DeferredTimers((0..threads).map(|_| CachePadded::default()).collect())
    }

    fn list(&self, index: usize) -> Option<MutexGuard<'_, Vec<Deferred>>> {
        let list = self.0.get(index)?;
        Some(list.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// What a process timer does when it fires.
pub(crate) enum ProcessTimer {
    Send {
        to: Pid,
        envelope: Mail,
    },
    /// Reschedule the process; `epoch`: only while its wait epoch is still this (a lazy
    /// receive timer moved to the heap; the receive that set it may end before it is due).
    Wake {
        cell: Weak<ProcessCell>,
        epoch: Option<u32>,
    },
}

impl TimerAction for ProcessTimer {
    /// A wake-up nobody needs any more: the process is gone, or the receive that set it ended.
    fn is_stale(&self) -> bool {
        match self {
            ProcessTimer::Send { .. } => false,
            ProcessTimer::Wake { cell, epoch } => match cell.upgrade() {
                None => true,
                Some(cell) => {
                    epoch.is_some_and(|e| cell.wait_epoch.load(Ordering::Acquire) != e)
                        || cell.state.status() == Status::Exiting
                }
            },
        }
    }
}

impl Shared {
    /// The wake-up timer of a receive that waits until `deadline`. With the system clock on
    /// one of this runtime's scheduler threads it is lazy: it only goes to this thread's list.
    pub(crate) fn wait_timer(&self, cell: &Arc<ProcessCell>, deadline: Duration) -> TimerRef {
        if !self.clock.is_manual()
            && let Some(index) = scheduler::current_index(self.scheduler.id())
            && let Some(mut list) = self.deferred.list(index)
        {
            let epoch = cell.wait_epoch.load(Ordering::Relaxed).wrapping_add(1);
            cell.wait_epoch.store(epoch, Ordering::Release);
            list.push(Deferred {
                deadline,
                cell: Arc::downgrade(cell),
                epoch,
            });
            return TimerRef::lazy(epoch);
        }
        self.wake_at(deadline, cell)
    }

    /// The receive ended: its timer is not needed any more. Called by the process's own thread.
    pub(crate) fn cancel_wait_timer(&self, cell: &ProcessCell, timer: TimerRef) {
        if timer.is_lazy() {
            // A new epoch: the deferred entry no longer matches and is dropped at the flush.
            let epoch = cell.wait_epoch.load(Ordering::Relaxed);
            cell.wait_epoch
                .store(epoch.wrapping_add(1), Ordering::Release);
            // Most receives end on the thread that set their timer before it set another
            // one: then the entry is the list's last and goes now, which spares the flush
            // its upgrade of the process's count.
            if let Some(index) = scheduler::current_index(self.scheduler.id())
                && let Some(mut list) = self.deferred.list(index)
                && list.last().is_some_and(|last| {
                    last.epoch == epoch && std::ptr::eq(last.cell.as_ptr(), cell)
                })
            {
                list.pop();
            }
        } else {
            self.timers.cancel(timer);
        }
    }

    /// Whether scheduler thread `index` holds lazy receive timers.
    pub(crate) fn has_deferred(&self, index: usize) -> bool {
        self.deferred
            .list(index)
            .is_some_and(|list| !list.is_empty())
    }

    /// Moves scheduler thread `index`'s lazy receive timers that still wait into the heap.
    pub(crate) fn flush_deferred(&self, index: usize) {
        let Some(entries) = self
            .deferred
            .list(index)
            .map(|mut list| std::mem::take(&mut *list))
        else {
            return;
        };
        for entry in entries {
            let waiting = entry.cell.upgrade().is_some_and(|cell| {
                cell.wait_epoch.load(Ordering::Acquire) == entry.epoch
                    && cell.state.status() != Status::Exiting
            });
            if waiting {
                self.timers.insert(
                    entry.deadline,
                    ProcessTimer::Wake {
                        cell: entry.cell,
                        epoch: Some(entry.epoch),
                    },
                );
            }
        }
    }

    /// Runs every timer due at `now`.
    pub(crate) fn fire_timers(&self, now: Duration) {
        let due = self.timers.take_due(now);
        for action in due {
            self.run_timer(action);
        }
    }

    /// Runs one timer that came due.
    pub(crate) fn run_timer(&self, action: ProcessTimer) {
        match action {
            ProcessTimer::Send { to, envelope } => {
                // A bounded, full mailbox loses a timer's message, as a send would fail.
                let _ = self.send(to, envelope);
            }
            ProcessTimer::Wake { cell, .. } => {
                if let Some(cell) = cell.upgrade() {
                    cell.schedule();
                }
            }
        }
    }

    /// A timer that reschedules `cell` at `at`.
    pub(crate) fn wake_at(&self, at: Duration, cell: &Arc<ProcessCell>) -> TimerRef {
        self.timers.insert(
            at,
            ProcessTimer::Wake {
                cell: Arc::downgrade(cell),
                epoch: None,
            },
        )
    }

    /// A timer that sends `message` to `to` after `delay`.
    pub(crate) fn send_after<T: Send + 'static>(
        &self,
        to: Pid,
        message: T,
        delay: Duration,
    ) -> TimerRef {
        let at = self.clock.now() + delay;
        let envelope = Mail::User(super::mailbox::payload(message));
        let timer = self.timers.insert(at, ProcessTimer::Send { to, envelope });
        if self.clock.is_manual() {
            // A zero delay is due now; nothing else would fire it until the next advance.
            self.fire_timers(self.clock.now());
        }
        timer
    }
}
