//! `SpinLock`: the lock of a mailbox's inbox and of a process's signal record.
//!
//! Both are locked for a handful of instructions: the inbox for a push, a pop or a swap of two
//! queues on every send and receive; the signal record for an insert or removal in a small map
//! when a call monitors its callee and demonitors it again, or a link is made or broken. A spin
//! lock does that with one read-modify-write to lock and a plain release store to unlock, where
//! `std`'s mutex spends a second read-modify-write on unlock (to see whether a waiter needs a
//! futex wake) and checks for poisoning on both; on a call round trip that is about 7 % of the
//! time. A holder preempted by the OS would leave a waiter spinning, so after a few rounds the
//! waiter yields its time slice to let the holder finish. No holder waits on anything but
//! a second signal record's lock, taken in pid order when a link is made.
//!
//! The loom models (`process/loom_tests.rs`) run this lock under loom, whose `UnsafeCell`
//! fails a model on any access not ordered by the lock: the inbox's models and the model of a
//! link racing with an exit.

use std::ops::{Deref, DerefMut};

use crate::loom::cell::{MutPtr, UnsafeCell};
use crate::loom::sync::atomic::{AtomicBool, Ordering};

#[repr(C)]
pub(crate) struct SpinLock<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the lock hands out access to `value` to one thread at a time (see `lock`), so sharing
// it between threads is as safe as sending `T` between them.
unsafe impl<T: Send> Sync for SpinLock<T> {}

/// Rounds of `spin_loop` before a waiter yields its time slice.
const SPINS_BEFORE_YIELD: u32 = 64;

impl<T> SpinLock<T> {
    pub(crate) fn new(value: T) -> Self {
        SpinLock {
            locked: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// Locks, spinning (then yielding) while another thread holds the lock.
    #[inline]
    pub(crate) fn lock(&self) -> SpinGuard<'_, T> {
        if self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_contended();
        }
        SpinGuard {
            lock: self,
            value: self.value.get_mut(),
        }
    }

    #[cold]
    fn lock_contended(&self) {
        let mut spins = 0;
        loop {
            while self.locked.load(Ordering::Relaxed) {
                if spins < SPINS_BEFORE_YIELD {
                    spins += 1;
                    std::hint::spin_loop();
                } else {
                    crate::loom::thread::yield_now();
                }
            }
            if self
                .locked
                .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
        }
    }
}

/// Access to a locked value; unlocks when dropped.
pub(crate) struct SpinGuard<'a, T> {
    lock: &'a SpinLock<T>,
    value: MutPtr<T>,
}

impl<T> Deref for SpinGuard<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: this guard exists only while its thread holds the lock (the acquire in
        // `lock` pairs with the release in `drop` of the previous holder), so no other
        // thread touches `value` now. The read goes through a `*const T`: no `&mut T` is made
        // for it, so two shared borrows from one guard never alias a unique one.
        self.value.with(|ptr| unsafe { &*ptr.cast_const() })
    }
}

impl<T> DerefMut for SpinGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference the guard hands out.
        unsafe { self.value.deref() }
    }
}

impl<T> Drop for SpinGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.lock.locked.store(false, Ordering::Release);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::SpinLock;

    /// Two shared borrows from one guard, both used after the second was made: under Miri's
    /// borrow models this is undefined behaviour if `deref` makes a `&mut T` for each read
    /// (`cargo +nightly miri test --lib spin`).
    #[test]
    fn shared_reads_through_one_guard_do_not_alias_a_unique_borrow() {
        let lock = SpinLock::new(vec![1, 2, 3]);
        let guard = lock.lock();
        let first: &Vec<i32> = &guard;
        let second: &Vec<i32> = &guard;
        assert_eq!(first.len() + second.len(), 6);
        assert_eq!(first[0], second[0]);
        drop(guard);
        let mut guard = lock.lock();
        guard.push(4);
        assert_eq!(guard.len(), 4);
    }

    #[test]
    fn the_lock_excludes_other_threads() {
        let lock = std::sync::Arc::new(SpinLock::new(0u64));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let lock = std::sync::Arc::clone(&lock);
                std::thread::spawn(move || {
                    for _ in 0..100 {
                        *lock.lock() += 1;
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(*lock.lock(), 200);
    }
}
