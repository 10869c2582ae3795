//! Waiting from outside the runtime: a one-value slot that a process fills and any waiter
//! (an async task on any executor, or a parked thread) takes, and the thread-parking loop
//! that the blocking forms of [`Handle`](super::Handle)'s waits use.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;
use std::time::Instant;

/// One value, filled once by the runtime and taken by one waiter.
pub(crate) struct Slot<T> {
    inner: Mutex<SlotState<T>>,
}

struct SlotState<T> {
    value: Option<T>,
    waker: Option<Waker>,
}

impl<T> Slot<T> {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Slot {
            inner: Mutex::new(SlotState {
                value: None,
                waker: None,
            }),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, SlotState<T>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Fills the slot and wakes its waiter. The waker runs after the lock is released.
    pub(crate) fn fill(&self, value: T) {
        let waker = {
            let mut state = self.state();
            state.value = Some(value);
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Takes the value, or keeps `waker` to wake when it comes.
    pub(crate) fn poll_take(&self, waker: &Waker) -> Poll<T> {
        let mut state = self.state();
        match state.value.take() {
            Some(value) => Poll::Ready(value),
            None => {
                if !state.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
                    state.waker = Some(waker.clone());
                }
                Poll::Pending
            }
        }
    }

    /// Takes the value if it is there.
    pub(crate) fn try_take(&self) -> Option<T> {
        self.state().value.take()
    }

    /// Waits on this thread until the value comes or `deadline` passes.
    pub(crate) fn take_until(&self, deadline: Option<Instant>) -> Option<T> {
        let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
        loop {
            if let Poll::Ready(value) = self.poll_take(&waker) {
                return Some(value);
            }
            match deadline {
                None => std::thread::park(),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return self.try_take();
                    }
                    std::thread::park_timeout(deadline - now);
                }
            }
        }
    }
}

/// Fills a slot once: with the value given to [`Filler::fill`], or, if it is dropped unused
/// (a hook that never ran because the runtime went away), with its fallback, so that nobody
/// waits forever.
pub(crate) struct Filler<T> {
    slot: Arc<Slot<T>>,
    fallback: Option<T>,
}

impl<T> Filler<T> {
    pub(crate) fn new(slot: &Arc<Slot<T>>, fallback: T) -> Self {
        Filler {
            slot: Arc::clone(slot),
            fallback: Some(fallback),
        }
    }

    pub(crate) fn fill(mut self, value: T) {
        self.fallback = None;
        self.slot.fill(value);
    }
}

impl<T> Drop for Filler<T> {
    fn drop(&mut self) {
        if let Some(fallback) = self.fallback.take() {
            self.slot.fill(fallback);
        }
    }
}

/// The future of a [`Slot`]'s value.
pub(crate) struct Taken<T>(pub(crate) Arc<Slot<T>>);

impl<T> Future for Taken<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        self.0.poll_take(cx.waker())
    }
}

/// Wakes a thread parked in [`block_thread_on`] or [`Slot::take_until`].
struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs `future` on this thread, parking it while the future waits.
///
/// # Panics
/// On a scheduler thread, where blocking would stall the runtime, with the message `refusal`.
#[track_caller]
pub(crate) fn block_thread_on<F: Future>(refusal: &str, future: F) -> F::Output {
    assert!(!super::on_scheduler_thread(), "{refusal}");
    let mut future = std::pin::pin!(future);
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        std::thread::park();
    }
}
