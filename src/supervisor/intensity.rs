//! Restart intensity: more than `max_restarts` restarts within `period` stops the supervisor.
//!
//! As OTP's `supervisor:add_restart/1`: each restart is recorded with the time it happens;
//! records older than the period are forgotten (a record at `then` still counts at `now` while
//! `now - then < period`); when the records then number more than `max_restarts`, the restart
//! is refused. OTP counts in whole seconds of `erlang:monotonic_time`; this counts on the
//! runtime's clock at its full precision.

use std::collections::VecDeque;
use std::time::Duration;

/// The restart records of one supervisor.
#[derive(Debug, Clone)]
pub(crate) struct Intensity {
    max_restarts: u32,
    period: Duration,
    restarts: VecDeque<Duration>,
}

impl Intensity {
    pub(crate) fn new(max_restarts: u32, period: Duration) -> Self {
        Intensity {
            max_restarts,
            period,
            restarts: VecDeque::new(),
        }
    }

    /// Records a restart at `now`. `false` means the intensity is exceeded: the supervisor
    /// must stop instead of restarting.
    pub(crate) fn add_restart(&mut self, now: Duration) -> bool {
        self.restarts.push_back(now);
        while let Some(&then) = self.restarts.front() {
            if now.saturating_sub(then) < self.period {
                break;
            }
            self.restarts.pop_front();
        }
        self.restarts.len() <= self.max_restarts as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn exactly_max_restarts_in_the_period_are_allowed_one_more_is_not() {
        let mut intensity = Intensity::new(2, 5 * S);
        assert!(intensity.add_restart(S));
        assert!(intensity.add_restart(2 * S));
        assert!(!intensity.add_restart(3 * S));
    }

    #[test]
    fn restarts_older_than_the_period_are_forgotten() {
        let mut intensity = Intensity::new(2, 5 * S);
        assert!(intensity.add_restart(Duration::ZERO));
        assert!(intensity.add_restart(S));
        // At 5 s the first record is exactly one period old: no longer counted.
        assert!(intensity.add_restart(5 * S));
        assert!(!intensity.add_restart(5 * S + Duration::from_millis(1)));
    }

    #[test]
    fn zero_max_restarts_refuses_the_first() {
        let mut intensity = Intensity::new(0, 5 * S);
        assert!(!intensity.add_restart(S));
    }
}
