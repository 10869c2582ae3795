//! The watchdog: scheduling is cooperative, so a process that computes for long without
//! awaiting holds its scheduler thread, and with it what only that thread would run: the
//! processes in its local queue and the lazy receive timers it keeps. The BEAM preempts such a
//! process; we cannot, so (as Go's `sysmon` does) a watchdog on the timer thread looks at every
//! scheduler thread about once a millisecond, and when one has been inside the same slice for
//! [`RESCUE_AFTER`] it moves that thread's queued processes to the shared injector, where the
//! other threads take them, and hands its lazy timers to the timer heap. It does so again at
//! each look until the slice ends.
//!
//! A slice longer than the runtime's `long_schedule` threshold is also reported, once, by the
//! thread that ran it when the slice ends (the BEAM's `long_schedule` system monitor message
//! also comes after the fact): a `long_schedule` warning through `tracing` names the process
//! and the time.
//!
//! What it cannot free: the process in the busy thread's LIFO slot (one that the busy process
//! itself woke during its slice) waits for the slice to end. With one scheduler thread there
//! is no other thread to run anything. The watchdog runs only with the system clock.
//!
//! A scheduler thread shows its progress through its [`SliceWatch`]: a counter it bumps
//! before and after each slice (odd while a slice runs). The watchdog reads it; no lock, and
//! on the thread's side two plain stores per slice.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::scheduler::Scheduler;
use super::task::Schedulable;

/// How long a thread may stay in one slice before the watchdog moves its other work.
pub(crate) const RESCUE_AFTER: Duration = Duration::from_millis(2);

/// How often the watchdog looks while any scheduler thread is busy.
const BUSY_INTERVAL: Duration = Duration::from_millis(1);

/// The longest the watchdog waits between looks while every thread is idle (it backs off,
/// doubling, from `BUSY_INTERVAL`).
const IDLE_INTERVAL: Duration = Duration::from_millis(16);

/// One scheduler thread's progress, as the watchdog sees it.
#[derive(Debug, Default)]
pub(crate) struct SliceWatch {
    /// Bumped before and after each slice: odd while one runs. Only its thread writes it.
    ticks: AtomicU64,
    /// The `ticks` of a slice the watchdog found longer than the long-schedule threshold, or 0
    /// (never the `ticks` of a running slice, which are odd).
    long: AtomicU64,
    /// When the watchdog first saw that slice (the runtime clock, in nanoseconds).
    long_since: AtomicU64,
}

impl SliceWatch {
    /// Slice number `ticks` starts or ends: odd when it starts, even when it ends. Called by
    /// the watched thread only, which counts its slices itself, so this is one store.
    #[inline]
    pub(crate) fn set(&self, ticks: u64) {
        self.ticks.store(ticks, Ordering::Relaxed);
    }

    /// Called by the watched thread inside a slice: if the watchdog found this slice long,
    /// when it first saw it running (the runtime clock). Answers once per slice.
    #[inline]
    pub(crate) fn long_slice(&self) -> Option<Duration> {
        let long = self.long.load(Ordering::Acquire);
        if long == 0 {
            return None;
        }
        self.take_long(long)
    }

    #[cold]
    fn take_long(&self, long: u64) -> Option<Duration> {
        // Clear the mark either way: a mark for this slice is answered now, and one for an
        // earlier slice came after it ended. Only if it is still `long`: the watchdog may have
        // marked this slice meanwhile, and the next call answers that.
        let _ = self
            .long
            .compare_exchange(long, 0, Ordering::Relaxed, Ordering::Relaxed);
        (long == self.ticks.load(Ordering::Relaxed))
            .then(|| Duration::from_nanos(self.long_since.load(Ordering::Relaxed)))
    }

    /// The watchdog marks the slice `ticks`, running since `since`, as long.
    fn mark_long(&self, ticks: u64, since: Duration) {
        self.long_since.store(
            u64::try_from(since.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        self.long.store(ticks, Ordering::Release);
    }
}

/// What the watchdog last saw of one thread.
#[derive(Clone, Copy)]
struct Seen {
    ticks: u64,
    since: Duration,
    marked: bool,
}

/// The watchdog's memory of every scheduler thread; owned by the timer thread.
pub(crate) struct Watchdog {
    seen: Vec<Seen>,
    long_after: Duration,
    interval: Duration,
}

impl Watchdog {
    /// A watchdog for `threads` scheduler threads that marks slices longer than `long_after`.
    pub(crate) fn new(threads: usize, long_after: Duration) -> Self {
        Watchdog {
            seen: vec![
                Seen {
                    ticks: 0,
                    since: Duration::ZERO,
                    marked: false,
                };
                threads
            ],
            long_after,
            interval: BUSY_INTERVAL,
        }
    }

    /// Looks at every thread at `now`; `rescue(index)` hands thread `index`'s lazy timers to
    /// the heap (its queued processes are moved here). Returns how long to wait before the
    /// next look.
    pub(crate) fn check<R: Schedulable>(
        &mut self,
        now: Duration,
        scheduler: &Scheduler<R>,
        rescue: impl Fn(usize),
    ) -> Duration {
        let mut busy = false;
        for (index, seen) in self.seen.iter_mut().enumerate() {
            let Some(watch) = scheduler.watch(index) else {
                continue;
            };
            let ticks = watch.ticks.load(Ordering::Relaxed);
            if ticks != seen.ticks {
                busy = true;
                *seen = Seen {
                    ticks,
                    since: now,
                    marked: false,
                };
                continue;
            }
            if ticks % 2 == 0 {
                // Between slices since the last look: idle (parked or looking for work).
                continue;
            }
            busy = true;
            let running = now.saturating_sub(seen.since);
            if running >= RESCUE_AFTER && scheduler.threads() > 1 {
                rescue(index);
                scheduler.evacuate(index);
            }
            if running >= self.long_after && !seen.marked {
                seen.marked = true;
                watch.mark_long(ticks, seen.since);
            }
        }
        self.interval = if busy {
            BUSY_INTERVAL
        } else {
            (self.interval * 2).min(IDLE_INTERVAL)
        };
        self.interval
    }
}
