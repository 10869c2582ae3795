//! How idle scheduler threads sleep and are woken: only when there is work for them.
//!
//! A thread with nothing to run registers itself as a sleeper, then looks for work once more,
//! then parks. Whoever makes work (pushes a process to a queue) then checks for sleepers and
//! unparks one. The two sides are a Dekker pair: the sleeper writes `count` then reads the
//! queues; the waker writes a queue then reads `count`, each with a `SeqCst` fence between, so
//! at least one of them sees the other's write: either the sleeper finds the work, or the
//! waker finds the sleeper. `unpark` before `park` is not lost (the token is kept). The loom
//! model in `runtime/loom_tests.rs` checks that no push is left with every thread asleep.

use crate::loom::lock;
use crate::loom::sync::Mutex;
use crate::loom::sync::atomic::{AtomicUsize, Ordering, fence};
use crate::loom::thread::{self, Thread};

#[derive(Default)]
pub(crate) struct Sleepers {
    idle: Mutex<Vec<Thread>>,
    count: AtomicUsize,
}

impl Sleepers {
    pub(crate) fn new() -> Self {
        Sleepers::default()
    }

    /// Parks the calling thread unless `has_work` finds something after it registered.
    pub(crate) fn sleep(&self, has_work: impl Fn() -> bool) {
        let me = thread::current();
        lock(&self.idle).push(me.clone());
        self.count.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if !has_work() {
            thread::park();
        }
        self.unregister(&me);
    }

    fn unregister(&self, me: &Thread) {
        let mut idle = lock(&self.idle);
        if let Some(at) = idle.iter().position(|t| t.id() == me.id()) {
            idle.swap_remove(at);
            self.count.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Wakes one sleeping thread, if any. Call after making work visible.
    pub(crate) fn notify_one(&self) {
        fence(Ordering::SeqCst);
        if self.count.load(Ordering::SeqCst) == 0 {
            return;
        }
        let woken = {
            let mut idle = lock(&self.idle);
            let woken = idle.pop();
            if woken.is_some() {
                self.count.fetch_sub(1, Ordering::SeqCst);
            }
            woken
        };
        if let Some(thread) = woken {
            thread.unpark();
        }
    }

    /// Wakes every sleeping thread (shutdown).
    pub(crate) fn notify_all(&self) {
        let all = std::mem::take(&mut *lock(&self.idle));
        self.count.fetch_sub(all.len(), Ordering::SeqCst);
        for thread in all {
            thread.unpark();
        }
    }
}
