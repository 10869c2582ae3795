//! The runtime's clock: the system's monotonic clock, or a manual clock that tests advance.
//!
//! Every timer (send_after, receive timeouts, a behaviour's timeout, sleep) reads this clock.
//! With a [`ManualClock`], time stands still until the test calls
//! [`advance`](ManualClock::advance), which fires every timer that came due: no test sleeps
//! to wait for a timer.

use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

/// What a manual clock tells when it moves: the runtimes on it fire their due timers.
pub(crate) trait Tick: Send + Sync {
    /// The clock moved to `now`.
    fn tick(&self, now: Duration);
}

/// A clock for a runtime: [`Clock::system`] (the default) or [`Clock::manual`].
#[derive(Clone, Debug)]
pub struct Clock(ClockKind);

#[derive(Clone, Debug)]
enum ClockKind {
    System(Instant),
    Manual(ManualClock),
}

impl Clock {
    /// The system's monotonic clock.
    pub fn system() -> Self {
        Clock(ClockKind::System(Instant::now()))
    }

    /// A clock that moves only when `clock` is advanced.
    pub fn manual(clock: &ManualClock) -> Self {
        Clock(ClockKind::Manual(clock.clone()))
    }

    /// Time since the clock started.
    pub fn now(&self) -> Duration {
        match &self.0 {
            ClockKind::System(start) => start.elapsed(),
            ClockKind::Manual(manual) => manual.now(),
        }
    }

    pub(crate) fn is_manual(&self) -> bool {
        matches!(self.0, ClockKind::Manual(_))
    }

    /// With a manual clock, `runtime` hears of every advance while it lives.
    pub(crate) fn attach(&self, runtime: Weak<dyn Tick>) {
        if let ClockKind::Manual(manual) = &self.0 {
            manual
                .0
                .runtimes
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(runtime);
        }
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

/// A clock that stands still until advanced. Cloning it gives another handle on the same time.
///
/// ```
/// use std::time::Duration;
/// use baobab::{Clock, ManualClock, Runtime};
///
/// let clock = ManualClock::new();
/// let rt = Runtime::builder().clock(Clock::manual(&clock)).build();
/// assert_eq!(rt.handle().now(), Duration::ZERO);
/// clock.advance(Duration::from_secs(5));
/// assert_eq!(rt.handle().now(), Duration::from_secs(5));
/// ```
#[derive(Clone, Default)]
pub struct ManualClock(Arc<ManualInner>);

#[derive(Default)]
struct ManualInner {
    now: Mutex<Duration>,
    runtimes: Mutex<Vec<Weak<dyn Tick>>>,
}

impl std::fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ManualClock").field(&self.now()).finish()
    }
}

impl ManualClock {
    /// A clock at zero.
    pub fn new() -> Self {
        ManualClock::default()
    }

    /// The current time.
    pub fn now(&self) -> Duration {
        *self.0.now.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Moves time forward by `by` and fires every timer that is now due, in deadline order,
    /// before returning.
    pub fn advance(&self, by: Duration) {
        let now = {
            let mut now = self.0.now.lock().unwrap_or_else(PoisonError::into_inner);
            *now += by;
            *now
        };
        let runtimes: Vec<Arc<dyn Tick>> = {
            let mut list = self
                .0
                .runtimes
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            list.retain(|w| w.strong_count() > 0);
            list.iter().filter_map(Weak::upgrade).collect()
        };
        for runtime in runtimes {
            runtime.tick(now);
        }
    }
}
