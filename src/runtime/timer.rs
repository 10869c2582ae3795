//! Timers: a deadline heap on the runtime's clock.
//!
//! A timer either sends a message (`send_after`) or wakes a process (a receive timeout, a
//! behaviour's timeout, `sleep`): a wake-up only reschedules the process, which compares the
//! clock with its own deadline, so a timer that fires late or twice cannot end the wrong
//! receive. With the system clock a timer thread sleeps until the next deadline; with a
//! manual clock timers fire inside `ManualClock::advance`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use super::Shared;
use crate::process::cell::ProcessCell;
use crate::process::mailbox::Envelope;
use crate::process::pid::Pid;

/// A timer, to cancel it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerRef(u64);

pub(crate) enum TimerAction {
    Send { to: Pid, envelope: Envelope },
    Wake(Weak<ProcessCell>),
}

#[derive(Default)]
struct TimerState {
    heap: BinaryHeap<Reverse<(Duration, u64)>>,
    actions: HashMap<u64, (Duration, TimerAction)>,
    stopped: bool,
}

#[derive(Default)]
pub(crate) struct Timers {
    state: Mutex<TimerState>,
    changed: Condvar,
    next_id: AtomicU64,
}

impl Timers {
    fn lock(&self) -> MutexGuard<'_, TimerState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn insert(&self, at: Duration, action: TimerAction) -> TimerRef {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut state = self.lock();
        let earliest = state
            .heap
            .peek()
            .is_none_or(|Reverse((first, _))| at < *first);
        state.heap.push(Reverse((at, id)));
        state.actions.insert(id, (at, action));
        // Cancelled timers stay in the heap until due; rebuild it when they dominate.
        if state.heap.len() > 64 + 2 * state.actions.len() {
            let live: Vec<_> = state
                .actions
                .iter()
                .map(|(id, (at, _))| Reverse((*at, *id)))
                .collect();
            state.heap = BinaryHeap::from(live);
        }
        drop(state);
        if earliest {
            self.changed.notify_all();
        }
        TimerRef(id)
    }

    /// A timer that reschedules `cell` at `at`.
    pub(crate) fn wake_at(&self, at: Duration, cell: &Arc<ProcessCell>) -> TimerRef {
        self.insert(at, TimerAction::Wake(Arc::downgrade(cell)))
    }

    /// Returns `true` if the timer had not fired (it never will now).
    pub(crate) fn cancel(&self, timer: TimerRef) -> bool {
        self.lock().actions.remove(&timer.0).is_some()
    }

    /// Takes the actions due at `now`, in deadline order.
    fn take_due(state: &mut TimerState, now: Duration) -> Vec<TimerAction> {
        let mut due = Vec::new();
        while let Some(Reverse((at, id))) = state.heap.peek().copied() {
            if at > now {
                break;
            }
            state.heap.pop();
            if let Some((_, action)) = state.actions.remove(&id) {
                due.push(action);
            }
        }
        due
    }

    pub(crate) fn pending(&self) -> usize {
        self.lock().actions.len()
    }

    pub(crate) fn stop(&self) {
        let mut state = self.lock();
        state.stopped = true;
        state.actions.clear();
        state.heap.clear();
        drop(state);
        self.changed.notify_all();
    }
}

impl Shared {
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
            TimerAction::Wake(cell) => {
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
        let envelope = Envelope::User(Box::new(message));
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
        let next = state.heap.peek().map(|Reverse((at, _))| *at);
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
