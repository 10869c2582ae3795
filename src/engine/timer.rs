//! Timers: a deadline heap on the runtime's clock, holding actions the layer above defines
//! (the process layer's are in `process/timers.rs`).
//!
//! With the system clock a timer thread sleeps until the next deadline and runs what is due;
//! with a manual clock timers fire inside `ManualClock::advance`.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::clock::Clock;

/// What a timer does when it fires.
pub(crate) trait TimerAction: Send {
    /// Whether the action is no longer needed (it can be dropped unfired); see
    /// `TimerState::purge_stale`.
    fn is_stale(&self) -> bool;
}

/// A timer, to cancel it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerRef {
    index: u32,
    generation: u32,
}

impl TimerRef {
    /// The index of a timer kept out of the heap by its owner (a lazy receive timer, see
    /// `process/timers.rs`).
    const LAZY: u32 = u32::MAX;

    /// A reference to a timer kept out of the heap; `generation` is its owner's to choose.
    pub(crate) fn lazy(generation: u32) -> TimerRef {
        TimerRef {
            index: Self::LAZY,
            generation,
        }
    }

    /// Whether this is a [`TimerRef::lazy`] reference.
    pub(crate) fn is_lazy(self) -> bool {
        self.index == Self::LAZY
    }
}

/// One slot of the timer slab: the live timer in it, if any, and the slot's generation (a
/// `TimerRef` of an older generation finds nothing).
struct Slot<A> {
    generation: u32,
    timer: Option<(Duration, A)>,
}

impl<A> Default for Slot<A> {
    fn default() -> Self {
        Slot {
            generation: 0,
            timer: None,
        }
    }
}

struct TimerState<A> {
    /// Deadlines in order, with the slot and generation they are for. Cancelled timers stay
    /// here until due (or the next rebuild) and are skipped.
    heap: BinaryHeap<Reverse<(Duration, u32, u32)>>,
    slots: Vec<Slot<A>>,
    free: Vec<u32>,
    live: usize,
    /// When `live` reaches this, stale wake-ups are dropped (see `purge_stale`).
    purge_at: usize,
    stopped: bool,
}

impl<A> Default for TimerState<A> {
    fn default() -> Self {
        TimerState {
            heap: BinaryHeap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
            purge_at: 0,
            stopped: false,
        }
    }
}

/// The smallest number of live timers at which stale wake-ups are looked for.
const PURGE_FLOOR: usize = 1024;

impl<A: TimerAction> TimerState<A> {
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

    fn take(&mut self, index: u32, generation: u32) -> Option<(Duration, A)> {
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

pub(crate) struct Timers<A> {
    state: Mutex<TimerState<A>>,
    changed: Condvar,
}

impl<A> Default for Timers<A> {
    fn default() -> Self {
        Timers {
            state: Mutex::new(TimerState::default()),
            changed: Condvar::new(),
        }
    }
}

impl<A: TimerAction> Timers<A> {
    fn lock(&self) -> MutexGuard<'_, TimerState<A>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A timer that runs `action` at `at`.
    pub(crate) fn insert(&self, at: Duration, action: A) -> TimerRef {
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

    /// Returns `true` if the timer had not fired (it never will now).
    pub(crate) fn cancel(&self, timer: TimerRef) -> bool {
        let cancelled = self.lock().take(timer.index, timer.generation);
        cancelled.is_some()
    }

    /// Takes the actions due at `now`, in deadline order.
    pub(crate) fn take_due(&self, now: Duration) -> Vec<A> {
        Self::take_due_locked(&mut self.lock(), now)
    }

    fn take_due_locked(state: &mut TimerState<A>, now: Duration) -> Vec<A> {
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

/// The timer thread of a runtime on the system clock: runs each action with `fire` when it
/// is due, until the timers are stopped. `watch(now)` runs between timers, first at once and
/// then after as long as it returns each time (the watchdog, see `watchdog.rs`; `None` never
/// again).
pub(crate) fn run_timer_thread<A: TimerAction>(
    timers: &Timers<A>,
    clock: &Clock,
    fire: impl Fn(A),
    mut watch: impl FnMut(Duration) -> Option<Duration>,
) {
    let mut next_watch = Some(Duration::ZERO);
    let mut state = timers.lock();
    loop {
        if state.stopped {
            return;
        }
        let now = clock.now();
        if next_watch.is_some_and(|at| at <= now) {
            // The watchdog may hand lazy timers to the heap: not under the heap's lock.
            drop(state);
            next_watch = watch(now).map(|wait| now + wait);
            state = timers.lock();
            continue;
        }
        let due = Timers::take_due_locked(&mut state, now);
        if !due.is_empty() {
            drop(state);
            for action in due {
                fire(action);
            }
            state = timers.lock();
            continue;
        }
        let next_timer = state.heap.peek().map(|Reverse((at, _, _))| *at);
        let next = match (next_timer, next_watch) {
            (Some(timer), Some(watch)) => Some(timer.min(watch)),
            (timer, watch) => timer.or(watch),
        };
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
