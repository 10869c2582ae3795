//! Timers: a deadline heap on the runtime's clock.
//!
//! A timer either sends a message (`send_after`) or wakes a process (a receive timeout, a
//! behaviour's timeout, `sleep`): a wake-up only reschedules the process, which compares the
//! clock with its own deadline, so a timer that fires late or twice cannot end the wrong
//! receive. With the system clock a timer thread sleeps until the next deadline; with a
//! manual clock timers fire inside `ManualClock::advance`.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use super::{Shared, scheduler};
use crate::pid::Pid;
use crate::process::cell::ProcessCell;
use crate::process::mailbox::Mail;
use crate::process::status::Status;

/// A timer, to cancel it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerRef {
    index: u32,
    generation: u32,
}

impl TimerRef {
    /// The index of a receive's lazy timer (see `Shared::wait_timer`); its generation is the
    /// process's wait epoch.
    const LAZY: u32 = u32::MAX;

    fn is_lazy(self) -> bool {
        self.index == Self::LAZY
    }
}

/// A receive timeout not yet in the heap: most receives with a timeout end long before it, and
/// the heap costs a lock, a push and a cancel. The scheduler thread the receive ran on keeps
/// these in a list and moves the ones still waiting to the heap before it sleeps or after
/// `DEFER_AT_MOST` of continuous work (`flush_deferred`).
struct Deferred {
    scheduler: usize,
    deadline: Duration,
    cell: Weak<ProcessCell>,
    epoch: u32,
}

thread_local! {
    static DEFERRED: RefCell<Vec<Deferred>> = const { RefCell::new(Vec::new()) };
}

/// How long a lazy receive timer may stay out of the heap while its thread is busy; the
/// timeout can fire this much late at worst.
pub(crate) const DEFER_AT_MOST: Duration = Duration::from_millis(1);

pub(crate) enum TimerAction {
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

impl TimerAction {
    /// A wake-up nobody needs any more: the process is gone, or the receive that set it ended.
    fn is_stale(&self) -> bool {
        match self {
            TimerAction::Send { .. } => false,
            TimerAction::Wake { cell, epoch } => match cell.upgrade() {
                None => true,
                Some(cell) => {
                    epoch.is_some_and(|e| cell.wait_epoch.load(Ordering::Acquire) != e)
                        || cell.state.status() == Status::Exiting
                }
            },
        }
    }
}

/// One slot of the timer slab: the live timer in it, if any, and the slot's generation (a
/// `TimerRef` of an older generation finds nothing).
#[derive(Default)]
struct Slot {
    generation: u32,
    timer: Option<(Duration, TimerAction)>,
}

#[derive(Default)]
struct TimerState {
    /// Deadlines in order, with the slot and generation they are for. Cancelled timers stay
    /// here until due (or the next rebuild) and are skipped.
    heap: BinaryHeap<Reverse<(Duration, u32, u32)>>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    live: usize,
    /// When `live` reaches this, stale wake-ups are dropped (see `purge_stale`).
    purge_at: usize,
    stopped: bool,
}

/// The smallest number of live timers at which stale wake-ups are looked for.
const PURGE_FLOOR: usize = 1024;

impl TimerState {
    /// Drops the wake-ups nobody needs any more (their process exited, or the lazy receive
    /// timer's receive ended). A lazy timer cannot be cancelled once it is in the heap, and a
    /// long receive timeout (a supervisor call waits up to an hour) would otherwise keep its
    /// entry that long. Runs when the live count doubles, so it costs O(1) per insert.
    fn purge_stale(&mut self) {
        for index in 0..self.slots.len() {
            let slot = &self.slots[index];
            if slot
                .timer
                .as_ref()
                .is_some_and(|(_, action)| action.is_stale())
            {
                let generation = slot.generation;
                self.take(index as u32, generation);
            }
        }
        self.purge_at = (2 * self.live).max(PURGE_FLOOR);
    }

    fn take(&mut self, index: u32, generation: u32) -> Option<(Duration, TimerAction)> {
        let slot = self.slots.get_mut(index as usize)?;
        if slot.generation != generation {
            return None;
        }
        let timer = slot.timer.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(index);
        self.live -= 1;
        Some(timer)
    }
}

#[derive(Default)]
pub(crate) struct Timers {
    state: Mutex<TimerState>,
    changed: Condvar,
}

impl Timers {
    fn lock(&self) -> MutexGuard<'_, TimerState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn insert(&self, at: Duration, action: TimerAction) -> TimerRef {
        let mut state = self.lock();
        let index = match state.free.pop() {
            Some(index) => index,
            None => {
                state.slots.push(Slot::default());
                (state.slots.len() - 1) as u32
            }
        };
        let slot = &mut state.slots[index as usize];
        slot.timer = Some((at, action));
        let generation = slot.generation;
        state.live += 1;
        let earliest = state
            .heap
            .peek()
            .is_none_or(|Reverse((first, _, _))| at < *first);
        state.heap.push(Reverse((at, index, generation)));
        if state.live >= state.purge_at.max(PURGE_FLOOR) {
            state.purge_stale();
        }
        // Cancelled timers stay in the heap until due; rebuild it when they dominate.
        if state.heap.len() > 64 + 2 * state.live {
            let live: Vec<_> = state
                .slots
                .iter()
                .enumerate()
                .filter_map(|(index, slot)| {
                    let (at, _) = slot.timer.as_ref()?;
                    Some(Reverse((*at, index as u32, slot.generation)))
                })
                .collect();
            state.heap = BinaryHeap::from(live);
        }
        drop(state);
        if earliest {
            self.changed.notify_all();
        }
        TimerRef { index, generation }
    }

    /// A timer that reschedules `cell` at `at`.
    pub(crate) fn wake_at(&self, at: Duration, cell: &Arc<ProcessCell>) -> TimerRef {
        self.insert(
            at,
            TimerAction::Wake {
                cell: Arc::downgrade(cell),
                epoch: None,
            },
        )
    }

    /// Returns `true` if the timer had not fired (it never will now).
    pub(crate) fn cancel(&self, timer: TimerRef) -> bool {
        let cancelled = self.lock().take(timer.index, timer.generation);
        cancelled.is_some()
    }

    /// Takes the actions due at `now`, in deadline order.
    fn take_due(state: &mut TimerState, now: Duration) -> Vec<TimerAction> {
        let mut due = Vec::new();
        while let Some(Reverse((at, index, generation))) = state.heap.peek().copied() {
            if at > now {
                break;
            }
            state.heap.pop();
            if let Some((_, action)) = state.take(index, generation) {
                due.push(action);
            }
        }
        due
    }

    pub(crate) fn pending(&self) -> usize {
        self.lock().live
    }

    pub(crate) fn stop(&self) {
        let mut state = self.lock();
        state.stopped = true;
        let slots = std::mem::take(&mut state.slots);
        state.heap.clear();
        state.free.clear();
        state.live = 0;
        drop(state);
        drop(slots);
        self.changed.notify_all();
    }
}

impl Shared {
    /// The wake-up timer of a receive that waits until `deadline`. With the system clock on
    /// one of this runtime's scheduler threads it is lazy: it only goes to this thread's list.
    pub(crate) fn wait_timer(&self, cell: &Arc<ProcessCell>, deadline: Duration) -> TimerRef {
        let scheduler = self.scheduler.id();
        if !self.clock.is_manual() && scheduler::current_index(scheduler).is_some() {
            let epoch = cell.wait_epoch.load(Ordering::Relaxed).wrapping_add(1);
            cell.wait_epoch.store(epoch, Ordering::Release);
            DEFERRED.with(|deferred| {
                deferred.borrow_mut().push(Deferred {
                    scheduler,
                    deadline,
                    cell: Arc::downgrade(cell),
                    epoch,
                });
            });
            return TimerRef {
                index: TimerRef::LAZY,
                generation: epoch,
            };
        }
        self.timers.wake_at(deadline, cell)
    }

    /// The receive ended: its timer is not needed any more. Called by the process's own thread.
    pub(crate) fn cancel_wait_timer(&self, cell: &ProcessCell, timer: TimerRef) {
        if timer.is_lazy() {
            // A new epoch: the deferred entry no longer matches and is dropped at the flush.
            let epoch = cell.wait_epoch.load(Ordering::Relaxed).wrapping_add(1);
            cell.wait_epoch.store(epoch, Ordering::Release);
        } else {
            self.timers.cancel(timer);
        }
    }

    /// Moves this thread's lazy receive timers that still wait into the heap.
    pub(crate) fn flush_deferred(&self) {
        let scheduler = self.scheduler.id();
        let entries = DEFERRED.with(|deferred| std::mem::take(&mut *deferred.borrow_mut()));
        for entry in entries {
            if entry.scheduler != scheduler {
                continue;
            }
            let waiting = entry.cell.upgrade().is_some_and(|cell| {
                cell.wait_epoch.load(Ordering::Acquire) == entry.epoch
                    && cell.state.status() != Status::Exiting
            });
            if waiting {
                self.timers.insert(
                    entry.deadline,
                    TimerAction::Wake {
                        cell: entry.cell,
                        epoch: Some(entry.epoch),
                    },
                );
            }
        }
    }

    /// Whether this thread holds lazy receive timers.
    pub(crate) fn has_deferred() -> bool {
        DEFERRED.with(|deferred| !deferred.borrow().is_empty())
    }

    /// Runs every timer due at `now`.
    pub(crate) fn fire_timers(&self, now: Duration) {
        let due = Timers::take_due(&mut self.timers.lock(), now);
        for action in due {
            self.run_timer(action);
        }
    }

    fn run_timer(&self, action: TimerAction) {
        match action {
            TimerAction::Send { to, envelope } => {
                // A bounded, full mailbox loses a timer's message, as a send would fail.
                let _ = self.send(to, envelope);
            }
            TimerAction::Wake { cell, .. } => {
                if let Some(cell) = cell.upgrade() {
                    cell.schedule();
                }
            }
        }
    }

    pub(crate) fn send_after<T: Send + 'static>(
        &self,
        to: Pid,
        message: T,
        delay: Duration,
    ) -> TimerRef {
        let at = self.clock.now() + delay;
        let envelope = Mail::User(crate::process::mailbox::payload(message));
        let timer = self.timers.insert(at, TimerAction::Send { to, envelope });
        if self.clock.is_manual() {
            // A zero delay is due now; nothing else would fire it until the next advance.
            self.fire_timers(self.clock.now());
        }
        timer
    }
}

/// The timer thread of a runtime on the system clock.
pub(crate) fn run_timer_thread(shared: Arc<Shared>) {
    let timers = &shared.timers;
    let mut state = timers.lock();
    loop {
        if state.stopped {
            return;
        }
        let now = shared.clock.now();
        let due = Timers::take_due(&mut state, now);
        if !due.is_empty() {
            drop(state);
            for action in due {
                shared.run_timer(action);
            }
            state = timers.lock();
            continue;
        }
        let next = state.heap.peek().map(|Reverse((at, _, _))| *at);
        state = match next {
            Some(at) => {
                timers
                    .changed
                    .wait_timeout(state, at.saturating_sub(now))
                    .unwrap_or_else(PoisonError::into_inner)
                    .0
            }
            None => timers
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner),
        };
    }
}
