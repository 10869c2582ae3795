//! A coarse clock that a running script's checks read at every operation for the price of
//! one atomic load: a thread bumps a counter every millisecond while scripts run.
//!
//! Reading the real clock at every operation would cost more than many operations do, and
//! reading it every N operations lets one slow operation after another (a case change of a
//! 10 MB string takes milliseconds) run far past a timeout. So the checks compare this counter
//! with the value they last saw, and look at the real clock and the cancel flag when it has
//! moved: at most once a millisecond, and never more than a millisecond (plus one operation)
//! late.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::thread::Thread;
use std::time::Duration;

/// Milliseconds counted while scripts run.
static TICKS: AtomicU64 = AtomicU64::new(0);
/// Runs in progress, in the whole process.
static ACTIVE: AtomicUsize = AtomicUsize::new(0);
/// The ticking thread, once started (`None` if it could not be).
static TICKER: OnceLock<Option<Thread>> = OnceLock::new();

/// The counter: it moves every millisecond while a run is in progress.
#[inline]
pub(crate) fn ticks() -> u64 {
    TICKS.load(Ordering::Relaxed)
}

/// Starts the ticking thread if it is not running yet.
pub(crate) fn start() {
    TICKER.get_or_init(|| {
        std::thread::Builder::new()
            .name("baobab-ticker".into())
            .stack_size(64 * 1024)
            .spawn(tick)
            .map(|handle| handle.thread().clone())
            .ok()
    });
}

fn tick() {
    loop {
        if ACTIVE.load(Ordering::Acquire) == 0 {
            // Nothing to time: wait for a run to start (`begin` unparks this thread).
            std::thread::park_timeout(Duration::from_secs(1));
        } else {
            std::thread::sleep(Duration::from_millis(1));
        }
        TICKS.fetch_add(1, Ordering::Relaxed);
    }
}

/// A run begins: the counter must move.
pub(crate) fn begin() {
    if ACTIVE.fetch_add(1, Ordering::AcqRel) == 0
        && let Some(Some(ticker)) = TICKER.get()
    {
        ticker.unpark();
    }
}

/// A run ends.
pub(crate) fn end() {
    ACTIVE.fetch_sub(1, Ordering::AcqRel);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_counter_moves_while_a_run_is_in_progress() {
        start();
        begin();
        let before = ticks();
        std::thread::sleep(Duration::from_millis(50));
        assert!(ticks() > before);
        end();
    }
}
