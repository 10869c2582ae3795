//! A process's mailbox: a locked inbox that senders push to, drained in batches by its owner.
//!
//! Senders lock the inbox, push, unlock, then wake the process (see `status.rs` for why the push
//! must come first). The owner moves the whole inbox into a private queue in one lock and
//! works on that queue without locking, which is also where selective receive scans: a
//! predicate never runs under our lock. `len` counts both queues, for bounded mailboxes and
//! introspection.

use std::any::Any;
use std::collections::VecDeque;
use std::task::Waker;

use super::spin::SpinLock;
use crate::loom::lock;
use crate::loom::sync::Mutex;
use crate::loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering, fence};
use crate::pid::Ref;
use crate::signal::{Down, ExitSignal};

/// A message's value, type-erased. Values of up to four words (a token, a pid, an address, a
/// call's request with its `ReplyTo`) are stored inline, so sending them allocates nothing.
pub(crate) type Payload = smallbox::SmallBox<dyn Any + Send, smallbox::space::S4>;

/// Whether a `T` is stored inline in a [`Payload`] (no allocation).
pub(crate) const fn fits_inline<T>() -> bool {
    std::mem::size_of::<T>() <= std::mem::size_of::<smallbox::space::S4>()
        && std::mem::align_of::<T>() <= std::mem::align_of::<smallbox::space::S4>()
}

/// Wraps a value as a [`Payload`].
#[inline]
pub(crate) fn payload<T: Send + 'static>(value: T) -> Payload {
    smallbox::smallbox!(value)
}

/// Takes the value of type `T` out of a payload, or gives the payload back.
pub(crate) fn unwrap_payload<T: Send + 'static>(payload: Payload) -> Result<T, Payload> {
    payload.downcast::<T>().map(smallbox::SmallBox::into_inner)
}

/// What a mailbox holds: user messages and the system messages every process understands.
pub(crate) enum Mail {
    /// A user message, typed by the sender's `Addr<M>`.
    User(Payload),
    /// A trapped exit signal.
    Exit(ExitSignal),
    /// A monitor fired.
    Down(Down),
    /// A reply to a call; dropped unless a call with that reference is waiting for it.
    Reply { reference: Ref, value: Payload },
}

impl std::fmt::Debug for Mail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mail::User(_) => f.write_str("User(..)"),
            Mail::Exit(signal) => write!(f, "Exit({signal:?})"),
            Mail::Down(down) => write!(f, "Down({down:?})"),
            Mail::Reply { reference, .. } => write!(f, "Reply({reference:?})"),
        }
    }
}

/// What a bounded mailbox does with a user message that does not fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overflow {
    /// The send fails with [`SendError::MailboxFull`](crate::SendError::MailboxFull).
    Reject,
    /// The message is dropped and counted in the mailbox's `dropped` figure; the send succeeds.
    DropNewest,
    /// Senders wait for room: [`Ctx::send_wait`](crate::Ctx::send_wait) (from a process),
    /// [`Handle::send_wait`](crate::Handle::send_wait) (from any async executor) and
    /// [`Handle::send_blocking`](crate::Handle::send_blocking) (from a thread) return once the
    /// message is in the mailbox. A send that cannot wait ([`Ctx::send`](crate::Ctx::send),
    /// [`Handle::send`](crate::Handle::send)) fails with
    /// [`SendError::MailboxFull`](crate::SendError::MailboxFull) as with `Reject`.
    Wait,
}

/// The result of pushing a user message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// Queued; the inbox's length after the push (for the long-queue warning).
    Queued(usize),
    Dropped,
    Rejected,
}

struct Bound {
    capacity: usize,
    overflow: Overflow,
    dropped: AtomicUsize,
    /// `Overflow::Wait`: the senders waiting for room, and whether there are any. A sender
    /// adds its waker, sets `waiting`, then looks at the length again; the owner stores
    /// `taken`, then reads `waiting`. A `SeqCst` fence on each side between the write and the
    /// read means at least one of them sees the other's write: the sender finds room, or the
    /// owner finds the waker (`loom_a_waiting_sender_is_never_forgotten`).
    waiters: Mutex<Vec<Waker>>,
    waiting: AtomicBool,
}

impl Bound {
    /// The owner took messages out: wakes the senders waiting for room, if any.
    #[inline]
    fn made_room(&self) {
        if self.overflow != Overflow::Wait {
            return;
        }
        fence(Ordering::SeqCst);
        if self.waiting.load(Ordering::Relaxed) {
            self.wake_all();
        }
    }

    #[cold]
    fn wake_all(&self) {
        let waiters = {
            let mut waiters = lock(&self.waiters);
            self.waiting.store(false, Ordering::Relaxed);
            std::mem::take(&mut *waiters)
        };
        for waker in waiters {
            waker.wake();
        }
    }

    /// A sender found no room: its waker joins the waiters.
    fn add_waiter(&self, waker: &Waker) {
        let mut waiters = lock(&self.waiters);
        if !waiters.iter().any(|w| w.will_wake(waker)) {
            waiters.push(waker.clone());
        }
        self.waiting.store(true, Ordering::Relaxed);
    }
}

/// What [`Mailbox::offer`] did with a message.
pub(crate) enum Offered {
    /// Queued, dropped or rejected, as a push would.
    Done(Pushed),
    /// No room in an `Overflow::Wait` mailbox: the message comes back, and the waker will be
    /// woken when there may be room.
    Full(Mail),
}

#[repr(C)]
pub(crate) struct Mailbox {
    inbox: SpinLock<VecDeque<Mail>>,
    /// Messages ever pushed; written only under the inbox lock.
    pushed: AtomicUsize,
    /// Messages ever taken out by the owner. Only the owner writes it while the process
    /// lives, so it needs no read-modify-write; after the exit, `clear` adds with one.
    taken: AtomicUsize,
    bound: Option<Box<Bound>>,
}

impl Mailbox {
    pub(crate) fn unbounded() -> Self {
        Mailbox {
            inbox: SpinLock::new(VecDeque::new()),
            pushed: AtomicUsize::new(0),
            taken: AtomicUsize::new(0),
            bound: None,
        }
    }

    pub(crate) fn bounded(capacity: usize, overflow: Overflow) -> Self {
        Mailbox {
            bound: Some(Box::new(Bound {
                capacity: capacity.max(1),
                overflow,
                dropped: AtomicUsize::new(0),
                waiters: Mutex::new(Vec::new()),
                waiting: AtomicBool::new(false),
            })),
            ..Mailbox::unbounded()
        }
    }

    /// Pushes a user message, applying the bound. System messages never go through here.
    #[cfg(any(test, loom))]
    pub(crate) fn push_user(&self, envelope: Mail) -> Pushed {
        self.push_user_with(move || envelope)
    }

    /// `push_user` with the envelope made under the lock, straight into its slot: a small
    /// message is then written once, not built on the stack and copied (see `Ctx::send`).
    /// Over the bound, `make` is dropped unused.
    #[inline(always)]
    pub(crate) fn push_user_with(&self, make: impl FnOnce() -> Mail) -> Pushed {
        let mut inbox = self.inbox.lock();
        if let Some(bound) = &self.bound
            && self.is_full(bound)
        {
            drop(inbox);
            return match bound.overflow {
                Overflow::Reject | Overflow::Wait => Pushed::Rejected,
                Overflow::DropNewest => {
                    bound.dropped.fetch_add(1, Ordering::Relaxed);
                    Pushed::Dropped
                }
            };
        }
        self.count_push_locked();
        inbox.push_back(make());
        Pushed::Queued(inbox.len())
    }

    /// Whether a bounded mailbox has no room. `taken` may be stale (the owner moves it without
    /// the inbox lock), which only makes the mailbox look fuller: the bound is never exceeded.
    #[inline]
    fn is_full(&self, bound: &Bound) -> bool {
        let len = self
            .pushed_locked()
            .wrapping_sub(self.taken.load(Ordering::Acquire));
        len >= bound.capacity
    }

    /// Pushes a user message for a sender that waits for room: as `push_user_with`, except
    /// that a full `Overflow::Wait` mailbox gives the message back and will wake `waker`.
    pub(crate) fn offer(&self, envelope: Mail, waker: &Waker) -> Offered {
        let Some(bound) = self
            .bound
            .as_deref()
            .filter(|b| b.overflow == Overflow::Wait)
        else {
            return Offered::Done(self.push_user_with(move || envelope));
        };
        let mut registered = false;
        loop {
            {
                let mut inbox = self.inbox.lock();
                if !self.is_full(bound) {
                    self.count_push_locked();
                    inbox.push_back(envelope);
                    return Offered::Done(Pushed::Queued(inbox.len()));
                }
            }
            if registered {
                return Offered::Full(envelope);
            }
            // Full: wait for room, then look once more, in case the owner made room before
            // it could see the waker.
            bound.add_waiter(waker);
            fence(Ordering::SeqCst);
            registered = true;
        }
    }

    /// Whether user messages may be batched (see `outbox.rs`): only without a bound, whose
    /// overflow must answer the very send that overflows.
    #[inline]
    pub(crate) fn is_unbounded(&self) -> bool {
        self.bound.is_none()
    }

    /// Appends a batch of user messages from one sender (an unbounded mailbox), in one lock.
    /// Returns the inbox's length after the push.
    pub(crate) fn push_batch(&self, batch: &mut VecDeque<Mail>) -> usize {
        debug_assert!(self.bound.is_none());
        let mut inbox = self.inbox.lock();
        self.pushed.store(
            self.pushed_locked().wrapping_add(batch.len()),
            Ordering::Release,
        );
        inbox.append(batch);
        inbox.len()
    }

    /// Pushes a system message: signals are never refused or dropped by a bound.
    pub(crate) fn push_system(&self, envelope: Mail) {
        let mut inbox = self.inbox.lock();
        self.count_push_locked();
        inbox.push_back(envelope);
    }

    /// `pushed`, read by a pusher holding the inbox lock.
    #[inline]
    fn pushed_locked(&self) -> usize {
        self.pushed.load(Ordering::Relaxed)
    }

    /// Counts a push. Only pushers holding the inbox lock write `pushed`, so a load and a
    /// store suffice; the release store publishes it to the owner's lock-free `len` check.
    #[inline]
    fn count_push_locked(&self) {
        self.pushed
            .store(self.pushed_locked().wrapping_add(1), Ordering::Release);
    }

    /// Moves everything in the inbox to the back of `queue` (the owner's private queue);
    /// returns how many moved.
    ///
    /// `len` counts both queues, so when it equals the private queue's length the inbox is
    /// empty and the lock is skipped. A push that this check misses has not yet called
    /// `transition_to_queued`, which will then see the process running and make it run again.
    pub(crate) fn drain_into(&self, queue: &mut VecDeque<Mail>) -> usize {
        if self.len() == queue.len() {
            return 0;
        }
        let mut inbox = self.inbox.lock();
        let moved = inbox.len();
        if queue.is_empty() {
            std::mem::swap(&mut *inbox, queue);
        } else {
            queue.append(&mut inbox);
        }
        moved
    }

    /// For an owner whose private queue is empty: the next message, with any others behind
    /// it moved to `queue` in the same lock. A process that gets one message at a time never
    /// allocates a private queue, and its inbox's buffer stays the hot one.
    #[inline]
    pub(crate) fn pop_into(&self, queue: &mut VecDeque<Mail>) -> Option<Mail> {
        debug_assert!(queue.is_empty());
        if self.len() == 0 {
            return None;
        }
        let mut inbox = self.inbox.lock();
        let first = inbox.pop_front()?;
        if !inbox.is_empty() {
            std::mem::swap(&mut *inbox, queue);
        }
        Some(first)
    }

    /// The owner took `n` messages out of its private queue (received or discarded). Only
    /// the owner calls this.
    #[inline]
    pub(crate) fn consumed(&self, n: usize) {
        let taken = self.taken.load(Ordering::Relaxed);
        self.taken.store(taken.wrapping_add(n), Ordering::Release);
        if let Some(bound) = &self.bound {
            bound.made_room();
        }
    }

    /// Removes from the inbox every envelope `remove` selects; returns how many went.
    pub(crate) fn remove_where(&self, mut remove: impl FnMut(&Mail) -> bool) -> usize {
        let removed: Vec<Mail> = {
            let mut inbox = self.inbox.lock();
            if !inbox.iter().any(&mut remove) {
                return 0;
            }
            let mut removed = Vec::new();
            let mut kept = VecDeque::with_capacity(inbox.len());
            for envelope in inbox.drain(..) {
                if remove(&envelope) {
                    removed.push(envelope);
                } else {
                    kept.push_back(envelope);
                }
            }
            *inbox = kept;
            removed
        };
        self.consumed(removed.len());
        removed.len()
    }

    /// Empties the inbox of an exited process (its owner is gone; late senders may race
    /// here) and settles the count: whatever its owner's private queue held went with its
    /// code. The messages are dropped after the lock is released, since a user message's
    /// `Drop` may do anything.
    pub(crate) fn clear(&self) {
        let cleared = {
            let mut inbox = self.inbox.lock();
            // `pushed` is written only under this lock.
            self.taken
                .store(self.pushed.load(Ordering::Acquire), Ordering::Release);
            std::mem::take(&mut *inbox)
        };
        drop(cleared);
        // Senders waiting for room look again, and find the process gone.
        if let Some(bound) = &self.bound
            && bound.overflow == Overflow::Wait
        {
            bound.wake_all();
        }
    }

    /// Messages waiting, in the inbox and the owner's private queue.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        let taken = self.taken.load(Ordering::Acquire);
        self.pushed.load(Ordering::Acquire).wrapping_sub(taken)
    }

    /// User messages a `DropNewest` bound has dropped.
    pub(crate) fn dropped(&self) -> usize {
        self.bound
            .as_ref()
            .map_or(0, |bound| bound.dropped.load(Ordering::Relaxed))
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn user(n: u32) -> Mail {
        Mail::User(payload(n))
    }

    fn value(envelope: &Mail) -> u32 {
        match envelope {
            Mail::User(any) => *any.downcast_ref::<u32>().unwrap(),
            other => panic!("not a user message: {other:?}"),
        }
    }

    #[test]
    fn drain_keeps_fifo_order_across_batches() {
        let mailbox = Mailbox::unbounded();
        let mut local = VecDeque::new();
        mailbox.push_user(user(1));
        mailbox.push_user(user(2));
        assert_eq!(mailbox.drain_into(&mut local), 2);
        mailbox.push_user(user(3));
        assert_eq!(mailbox.drain_into(&mut local), 1);
        let order: Vec<u32> = local.iter().map(value).collect();
        assert_eq!(order, [1, 2, 3]);
        assert_eq!(mailbox.len(), 3);
        mailbox.consumed(3);
        assert_eq!(mailbox.len(), 0);
    }

    #[test]
    fn reject_bound_refuses_user_messages_but_not_signals() {
        let mailbox = Mailbox::bounded(1, Overflow::Reject);
        assert_eq!(mailbox.push_user(user(1)), Pushed::Queued(1));
        assert_eq!(mailbox.push_user(user(2)), Pushed::Rejected);
        mailbox.push_system(Mail::Exit(ExitSignal {
            from: crate::pid::Pid::EXTERNAL,
            reason: crate::signal::ExitReason::Shutdown,
        }));
        assert_eq!(mailbox.len(), 2);
    }

    #[test]
    fn drop_newest_bound_counts_what_it_drops() {
        let mailbox = Mailbox::bounded(2, Overflow::DropNewest);
        for n in 0..5 {
            mailbox.push_user(user(n));
        }
        assert_eq!(mailbox.len(), 2);
        assert_eq!(mailbox.dropped(), 3);
        let mut local = VecDeque::new();
        mailbox.drain_into(&mut local);
        assert_eq!(local.iter().map(value).collect::<Vec<_>>(), [0, 1]);
    }

    #[test]
    fn remove_where_keeps_the_rest_in_order() {
        let mailbox = Mailbox::unbounded();
        for n in 0..6 {
            mailbox.push_user(user(n));
        }
        assert_eq!(mailbox.remove_where(|e| value(e) % 2 == 0), 3);
        let mut local = VecDeque::new();
        mailbox.drain_into(&mut local);
        assert_eq!(local.iter().map(value).collect::<Vec<_>>(), [1, 3, 5]);
        assert_eq!(mailbox.len(), 3);
    }
}
