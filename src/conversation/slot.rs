//! A one-shot slot that a waiter blocks on (a thread) or awaits (a process), filled once by
//! whoever has the answer.
//!
//! Every fill and take holds the slot's mutex (loom models below); the `ready` flag is only a hint that lets a
//! blocked thread spin briefly before it sleeps (a reply usually comes within microseconds,
//! sooner than a sleeping thread wakes).

use std::sync::PoisonError;

use crate::loom::sync::atomic::{AtomicBool, Ordering};
use crate::loom::sync::{Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

pub(crate) struct Slot<T> {
    ready: AtomicBool,
    inner: Mutex<Inner<T>>,
    filled: Condvar,
}

struct Inner<T> {
    value: Option<T>,
    waker: Option<Waker>,
    /// Threads asleep on the condition variable.
    sleeping: usize,
}

/// How long a blocked thread spins before it sleeps.
const SPIN: Duration = Duration::from_micros(50);

impl<T> Slot<T> {
    pub(crate) fn new() -> Self {
        Slot {
            ready: AtomicBool::new(false),
            inner: Mutex::new(Inner {
                value: None,
                waker: None,
                sleeping: 0,
            }),
            filled: Condvar::new(),
        }
    }

    pub(crate) fn filled_with(value: T) -> Self {
        let slot = Slot::new();
        slot.fill(value);
        slot
    }

    fn lock(&self) -> MutexGuard<'_, Inner<T>> {
        crate::loom::lock(&self.inner)
    }

    /// Fills the slot (a second fill replaces an untaken value) and wakes its waiter.
    pub(crate) fn fill(&self, value: T) {
        let mut inner = self.lock();
        inner.value = Some(value);
        self.ready.store(true, Ordering::Release);
        let waker = inner.waker.take();
        let sleeping = inner.sleeping > 0;
        drop(inner);
        if sleeping {
            self.filled.notify_all();
        }
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// The value, if the slot is filled.
    pub(crate) fn take(&self) -> Option<T> {
        self.lock().value.take()
    }

    /// A copy of the value, if the slot is filled (it stays there).
    pub(crate) fn peek(&self) -> Option<T>
    where
        T: Clone,
    {
        self.lock().value.clone()
    }

    /// Blocks the calling thread until the slot is filled (`true`) or `deadline` passes
    /// (`false`). Does not take the value.
    pub(crate) fn wait(&self, deadline: Option<Instant>) -> bool {
        // (Not under loom: a spin is a busy loop the model checker would explore step by step.)
        #[cfg(not(loom))]
        {
            let spin_until = Instant::now() + SPIN;
            let mut spins = 0u32;
            while !self.ready.load(Ordering::Acquire) {
                spins += 1;
                if spins % 64 == 0 && Instant::now() >= spin_until {
                    break;
                }
                std::hint::spin_loop();
            }
        }
        let mut inner = self.lock();
        while inner.value.is_none() {
            let timeout = match deadline {
                None => None,
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return false;
                    }
                    Some(deadline - now)
                }
            };
            inner.sleeping += 1;
            inner = match timeout {
                None => self
                    .filled
                    .wait(inner)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(timeout) => {
                    self.filled
                        .wait_timeout(inner, timeout)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
            inner.sleeping -= 1;
        }
        true
    }

    /// Takes the value, or registers `cx`'s waker to be woken by the fill.
    pub(crate) fn poll_take(&self, cx: &mut Context<'_>) -> Poll<T> {
        let mut inner = self.lock();
        match inner.value.take() {
            Some(value) => Poll::Ready(value),
            None => {
                inner.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

#[cfg(all(test, loom))]
mod loom_models {
    use super::Slot;
    use loom::sync::Arc;

    /// One fill wakes every thread waiting on the slot, whatever the interleaving of their
    /// locking, sleeping and waking. (loom's timed waits never time out, so the timed-out
    /// waiter of `a_waiter_that_times_out_does_not_hide_another_sleeping_waiter` is left to
    /// that test.)
    #[test]
    fn loom_a_fill_wakes_every_waiting_thread() {
        loom::model(|| {
            let slot = Arc::new(Slot::new());
            let waiters: Vec<_> = (0..2)
                .map(|_| {
                    let slot = Arc::clone(&slot);
                    loom::thread::spawn(move || {
                        assert!(slot.wait(None));
                        slot.peek()
                    })
                })
                .collect();
            slot.fill(7u8);
            for waiter in waiters {
                assert_eq!(waiter.join().unwrap(), Some(7));
            }
        });
    }

    /// Records that it was woken.
    struct Flag(loom::sync::atomic::AtomicBool);

    impl futures_task::ArcWake for Flag {
        fn wake_by_ref(this: &std::sync::Arc<Self>) {
            this.0.store(true, loom::sync::atomic::Ordering::SeqCst);
        }
    }

    /// A fill racing a `poll_take` either is taken by it or wakes its waker.
    #[test]
    fn loom_a_fill_is_taken_or_wakes_the_poller() {
        use std::task::{Context, Poll};
        loom::model(|| {
            let slot = Arc::new(Slot::new());
            let filler = {
                let slot = Arc::clone(&slot);
                loom::thread::spawn(move || slot.fill(1u8))
            };
            let flag = std::sync::Arc::new(Flag(loom::sync::atomic::AtomicBool::new(false)));
            let waker = futures_task::waker(std::sync::Arc::clone(&flag));
            let mut cx = Context::from_waker(&waker);
            let first = slot.poll_take(&mut cx);
            filler.join().unwrap();
            match first {
                Poll::Ready(value) => assert_eq!(value, 1),
                Poll::Pending => {
                    assert!(flag.0.load(loom::sync::atomic::Ordering::SeqCst));
                    assert_eq!(slot.poll_take(&mut cx), Poll::Ready(1));
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_fill_from_another_thread_wakes_a_sleeping_waiter() {
        let slot = Arc::new(Slot::new());
        let filler = Arc::clone(&slot);
        let thread = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            filler.fill(7);
        });
        assert!(slot.wait(Some(Instant::now() + Duration::from_secs(10))));
        assert_eq!(slot.take(), Some(7));
        thread.join().unwrap();
    }

    #[test]
    fn a_waiter_that_times_out_does_not_hide_another_sleeping_waiter() {
        let slot = Arc::new(Slot::new());
        let patient = Arc::clone(&slot);
        let sleeper = std::thread::spawn(move || patient.wait(None));
        std::thread::sleep(Duration::from_millis(100));
        assert!(!slot.wait(Some(Instant::now() + Duration::from_millis(10))));
        slot.fill(1);
        assert!(sleeper.join().unwrap());
        assert_eq!(slot.peek(), Some(1));
    }

    #[test]
    fn an_unfilled_slot_times_out() {
        let slot: Slot<u8> = Slot::new();
        let start = Instant::now();
        assert!(!slot.wait(Some(start + Duration::from_millis(5))));
        assert!(start.elapsed() >= Duration::from_millis(5));
        assert_eq!(slot.take(), None);
    }
}
