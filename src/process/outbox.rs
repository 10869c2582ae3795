//! The outbox: a burst of sends to one process, delivered in one batch.
//!
//! A process that sends many messages to the same process in one slice (a producer feeding a
//! consumer, many senders fanning in to one receiver) would otherwise take the receiver's
//! inbox lock once per message; when the receiver runs on another core, every one of those
//! locks moves the inbox's cache line between the cores. Instead, the first send of a slice to
//! a process goes straight to its mailbox, as always; further sends to that same process in
//! the same slice collect here, in the scheduler thread's outbox, and reach the mailbox in one
//! lock when the slice ends (or every [`BATCH`] messages).
//!
//! What stays the same as a direct send, and why:
//! - Order between a pair of processes: the batch is FIFO and follows the direct send. Every
//!   other delivery (a send to another process, a reply, an exit or down signal, a push from
//!   outside) first empties the outbox of the thread it runs on, so nothing the sender does
//!   after a buffered send can overtake it.
//! - A process's exit: its slice ends before its links and monitors hear of it, and the end of
//!   the slice empties the outbox, so its last messages arrive before its exit signal, as in
//!   OTP.
//! - Bounded mailboxes: never batched, so `Reject` still fails the send that overflows.
//! - Sends to oneself: never batched, so a process sees its own message at its next receive.
//!
//! What differs: a batched message becomes visible to its receiver when the sender's slice
//! ends (or its batch fills) rather than at the `send` call. A sender that computes for a long
//! time between two sends to the same process holds the second until then; any receive,
//! call or other wait ends the slice and delivers it.
//!
//! Only scheduler threads batch (the end of a slice is theirs to see); other threads send
//! directly.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::sync::Arc;

use super::cell::ProcessCell;
use super::mailbox::Mail;
use super::status::Status;

/// Messages a batch holds before it is delivered without waiting for the end of the slice.
pub(crate) const BATCH: usize = 64;

struct Outgoing {
    /// The process the batch is for, once it holds a message.
    target: Option<Arc<ProcessCell>>,
    messages: VecDeque<Mail>,
}

thread_local! {
    /// The process this slice sent to directly, by address (compared, never dereferenced);
    /// zero when none. Plain `Cell`s without destructors: the send path reads them cheaply.
    static LAST: Cell<usize> = const { Cell::new(0) };
    /// Whether `BATCH_OF` holds messages.
    static PENDING: Cell<bool> = const { Cell::new(false) };
    static BATCH_OF: RefCell<Outgoing> = const {
        RefCell::new(Outgoing {
            target: None,
            messages: VecDeque::new(),
        })
    };
}

/// Whether a send to `to` (an unbounded mailbox, not the sender's own) repeats a send of
/// this slice, and so joins the batch ([`push`]). If not, the outbox is emptied (this send must
/// not overtake a batch for another process) and `to` becomes the process this slice sends
/// to: the caller sends directly. Call only on a scheduler thread, inside a slice.
#[inline]
pub(crate) fn is_repeat(to: &Arc<ProcessCell>) -> bool {
    let key = Arc::as_ptr(to) as usize;
    if LAST.with(Cell::get) == key {
        return true;
    }
    flush();
    LAST.with(|last| last.set(key));
    false
}

/// Adds a user message for `to` to the batch (after [`is_repeat`] said yes).
///
/// The batch is borrowed only inside this module, never across user code (a message's `Drop`
/// runs after the borrow ends), so the borrow cannot fail.
pub(crate) fn push(to: &Arc<ProcessCell>, envelope: Mail) {
    let full = BATCH_OF.with(|batch| {
        let mut batch = batch.borrow_mut();
        if batch.target.is_none() {
            batch.target = Some(Arc::clone(to));
        }
        batch.messages.push_back(envelope);
        batch.messages.len() >= BATCH
    });
    PENDING.with(|pending| pending.set(true));
    if full {
        deliver();
    }
}

/// Delivers what the calling thread's outbox holds. Every delivery other than a batched send
/// calls this first (see the module docs).
#[inline]
pub(crate) fn flush() {
    if PENDING.with(Cell::get) {
        deliver();
    }
}

/// The slice is over: deliver the batch, and the next send to any process is a first one.
#[inline]
pub(crate) fn end_slice() {
    LAST.with(|last| last.set(0));
    flush();
}

/// Puts the batch in its receiver's mailbox (one lock) and wakes it; the batch's buffer goes
/// back to the outbox for the next burst.
#[inline(never)]
fn deliver() {
    PENDING.with(|pending| pending.set(false));
    let taken = BATCH_OF.with(|batch| {
        let mut batch = batch.borrow_mut();
        let to = batch.target.take()?;
        Some((to, std::mem::take(&mut batch.messages)))
    });
    let Some((to, mut messages)) = taken else {
        return;
    };
    let n = messages.len() as u64;
    let shared = &to.shared;
    if to.state.status() == Status::Exiting {
        shared.stats.dropped_n(n);
        messages.clear();
    } else {
        let len = to.mailbox.push_batch(&mut messages);
        shared.stats.sent_n(n);
        to.delivered(len);
    }
    BATCH_OF.with(|batch| {
        let mut batch = batch.borrow_mut();
        if batch.messages.capacity() == 0 {
            batch.messages = messages;
        }
    });
}
