//! Runtime counters, kept per scheduler thread (no shared cache line on the send path) and
//! summed when read.

use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_utils::CachePadded;

use super::scheduler::current_index;

#[derive(Default)]
struct Counters {
    spawned: AtomicU64,
    exited: AtomicU64,
    sent: AtomicU64,
    dropped: AtomicU64,
    restarts: AtomicU64,
    long_schedules: AtomicU64,
    long_queues: AtomicU64,
}

pub(crate) struct Stats {
    scheduler: usize,
    /// One per scheduler thread, then one for every other thread.
    slots: Box<[CachePadded<Counters>]>,
}

/// The runtime's counters, summed over its threads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuntimeStats {
    /// Processes spawned since the runtime started.
    pub spawned: u64,
    /// Processes that exited.
    pub exited: u64,
    /// Processes alive now.
    pub live: u64,
    /// User messages delivered to a mailbox.
    pub messages_sent: u64,
    /// User messages dropped: sent to a dead pid, or over a `DropNewest` bound.
    pub messages_dropped: u64,
    /// Children restarted by supervisors.
    pub restarts: u64,
    /// Slices longer than the runtime's long-schedule threshold (see
    /// [`Builder::long_schedule`](crate::Builder::long_schedule)).
    pub long_schedules: u64,
    /// Long-queue warnings given (see
    /// [`Builder::long_message_queue`](crate::Builder::long_message_queue)).
    pub long_queues: u64,
}

impl Stats {
    pub(crate) fn new(scheduler: usize, threads: usize) -> Self {
        Stats {
            scheduler,
            slots: (0..=threads).map(|_| CachePadded::default()).collect(),
        }
    }

    /// Adds `n` to a counter. A scheduler thread is the only writer of its own slot, so it
    /// needs no read-modify-write; every other thread shares the last slot and does.
    #[inline]
    fn bump(&self, counter: fn(&Counters) -> &AtomicU64) {
        self.add(counter, 1);
    }

    #[inline]
    fn add(&self, counter: fn(&Counters) -> &AtomicU64, n: u64) {
        match current_index(self.scheduler) {
            Some(index) if index + 1 < self.slots.len() => {
                let counter = counter(&self.slots[index]);
                counter.store(counter.load(Ordering::Relaxed) + n, Ordering::Relaxed);
            }
            _ => {
                counter(&self.slots[self.slots.len() - 1]).fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    /// A supervisor restarted a child.
    pub(crate) fn restarted(&self) {
        self.bump(|c| &c.restarts);
    }

    /// A slice was longer than the long-schedule threshold.
    pub(crate) fn long_schedule(&self) {
        self.bump(|c| &c.long_schedules);
    }

    /// A mailbox grew to the long-queue threshold.
    pub(crate) fn long_queue(&self) {
        self.bump(|c| &c.long_queues);
    }

    /// `n` user messages delivered at once (a batch).
    pub(crate) fn sent_n(&self, n: u64) {
        self.add(|c| &c.sent, n);
    }

    /// `n` user messages dropped at once (a batch for a process that exited).
    pub(crate) fn dropped_n(&self, n: u64) {
        self.add(|c| &c.dropped, n);
    }

    pub(crate) fn spawned(&self) {
        self.bump(|c| &c.spawned);
    }

    pub(crate) fn exited(&self) {
        self.bump(|c| &c.exited);
    }

    #[inline]
    pub(crate) fn sent(&self) {
        self.bump(|c| &c.sent);
    }

    #[inline]
    pub(crate) fn dropped(&self) {
        self.bump(|c| &c.dropped);
    }

    pub(crate) fn read(&self, live: usize) -> RuntimeStats {
        let sum = |f: fn(&Counters) -> &AtomicU64| {
            self.slots
                .iter()
                .map(|c| f(c).load(Ordering::Relaxed))
                .sum()
        };
        RuntimeStats {
            spawned: sum(|c| &c.spawned),
            exited: sum(|c| &c.exited),
            live: live as u64,
            messages_sent: sum(|c| &c.sent),
            messages_dropped: sum(|c| &c.dropped),
            restarts: sum(|c| &c.restarts),
            long_schedules: sum(|c| &c.long_schedules),
            long_queues: sum(|c| &c.long_queues),
        }
    }
}
