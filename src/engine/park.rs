//! How idle scheduler threads sleep and are woken: only when there is work for them.
//!
//! A thread with nothing to run registers itself as a sleeper, then looks for work once more,
//! then parks. Whoever makes work (pushes a process to a queue) then checks for sleepers and
//! unparks one. The two sides are a Dekker pair: the sleeper writes `sleeping` then reads the
//! queues; the waker writes a queue then reads `sleeping`, each with a `SeqCst` fence between,
//! so at least one of them sees the other's write: either the sleeper finds the work, or the
//! waker finds the sleeper. `unpark` before `park` is not lost (the token is kept).
//!
//! A thread woken this way is *searching* until it finds work or gives up. While any thread
//! searches, `notify_one` wakes nobody else: the searcher will find the new work or, when it
//! stops searching, look at the queues once more before it parks (the same Dekker pair, on
//! `searching`). This keeps a thread that spawns or sends in a burst from paying a futex wake
//! per message.
//!
//! The loom model in `engine/loom_tests.rs` checks that no push is left with every thread
//! asleep.

use crate::loom::lock;
use crate::loom::sync::Mutex;
use crate::loom::sync::atomic::{AtomicUsize, Ordering, fence};
use crate::loom::thread::{self, Thread};

/// How long an idle thread sleeps before it looks at the queues on its own. Pushes wake a
/// sleeper only when they make surplus work (see `scheduler.rs`); this bounds how long work
/// that did not wake anyone can wait for an idle thread.
#[cfg(not(loom))]
const RESCUE_INTERVAL: std::time::Duration = std::time::Duration::from_millis(2);

#[cfg(not(loom))]
fn park() {
    std::thread::park_timeout(RESCUE_INTERVAL);
}

/// Under loom a sleeper is woken only by `notify_one`: the models check the stricter protocol.
#[cfg(loom)]
fn park() {
    thread::park();
}

#[derive(Default)]
pub(crate) struct Sleepers {
    idle: Mutex<Vec<Thread>>,
    sleeping: AtomicUsize,
    searching: AtomicUsize,
}

impl Sleepers {
    pub(crate) fn new() -> Self {
        Sleepers::default()
    }

    /// Parks the calling thread unless `has_work` finds something after it registered.
    /// Returns `true` if `notify_one` woke it: it is then searching, and must call
    /// [`Sleepers::stop_searching`] once it found work or before it sleeps again.
    pub(crate) fn sleep(&self, has_work: impl Fn() -> bool) -> bool {
        let me = thread::current();
        lock(&self.idle).push(me.clone());
        self.sleeping.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if !has_work() {
            park();
        }
        !self.unregister(&me)
    }

    /// Takes the calling thread off the idle list if it is still there (it was not woken by
    /// `notify_one`). Returns whether it was there.
    fn unregister(&self, me: &Thread) -> bool {
        let mut idle = lock(&self.idle);
        match idle.iter().position(|t| t.id() == me.id()) {
            Some(at) => {
                idle.swap_remove(at);
                self.sleeping.fetch_sub(1, Ordering::SeqCst);
                true
            }
            None => false,
        }
    }

    /// A woken thread found work, or gives up looking.
    pub(crate) fn stop_searching(&self) {
        self.searching.fetch_sub(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
    }

    /// Wakes one sleeping thread, unless one is already searching or none sleeps. Call after
    /// making work visible.
    pub(crate) fn notify_one(&self) {
        fence(Ordering::SeqCst);
        if self.searching.load(Ordering::SeqCst) > 0 || self.sleeping.load(Ordering::SeqCst) == 0 {
            return;
        }
        let woken = {
            let mut idle = lock(&self.idle);
            let woken = idle.pop();
            if woken.is_some() {
                self.sleeping.fetch_sub(1, Ordering::SeqCst);
                self.searching.fetch_add(1, Ordering::SeqCst);
            }
            woken
        };
        if let Some(thread) = woken {
            thread.unpark();
        }
    }

    /// Wakes every sleeping thread (shutdown). Each counts as searching, as after `notify_one`.
    pub(crate) fn notify_all(&self) {
        let all = std::mem::take(&mut *lock(&self.idle));
        self.sleeping.fetch_sub(all.len(), Ordering::SeqCst);
        self.searching.fetch_add(all.len(), Ordering::SeqCst);
        for thread in all {
            thread.unpark();
        }
    }
}
