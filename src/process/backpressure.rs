//! Sends that wait for room: a bounded mailbox with [`Overflow::Wait`] makes its senders wait
//! until its owner takes messages out, as kameo's and actix's bounded mailboxes do. A process
//! waits without holding its scheduler thread ([`Ctx::send_wait`]), any async code waits on its
//! own executor ([`Handle::send_wait`]), and a plain thread blocks
//! ([`Handle::send_blocking`]).
//!
//! The mailbox keeps the wakers of the senders waiting for it (`mailbox.rs`): its owner wakes
//! them when it takes a message, its exit wakes them to find it gone.
//!
//! [`Overflow::Wait`]: super::mailbox::Overflow::Wait

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::addr::{Addr, SendError};
use super::context::Ctx;
use super::handle::Handle;
use super::mailbox::{Mail, Offered, Pushed, payload};
use super::outbox;
use super::outside::block_thread_on;
use super::shared::Shared;
use super::status::Status;
use crate::pid::Pid;

/// The future of a send that waits for room ([`Ctx::send_wait`], [`Handle::send_wait`]).
///
/// Dropping it before it is ready abandons the send: the message was not delivered.
#[must_use = "futures do nothing unless awaited"]
pub struct SendWait {
    shared: Arc<Shared>,
    /// The sending process, if a process sends.
    from: Option<Pid>,
    to: Pid,
    envelope: Option<Mail>,
}

impl std::fmt::Debug for SendWait {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendWait").field("to", &self.to).finish()
    }
}

impl SendWait {
    fn new<M: Send + 'static>(
        shared: Arc<Shared>,
        from: Option<Pid>,
        to: &Addr<M>,
        message: M,
    ) -> Self {
        SendWait {
            shared,
            from,
            to: to.pid(),
            envelope: Some(Mail::User(payload(message))),
        }
    }
}

// Nothing in it is pinned in place: the message moves in and out by value.
impl Unpin for SendWait {}

impl Future for SendWait {
    type Output = Result<(), SendError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let envelope = this
            .envelope
            .take()
            .expect("SendWait polled after it finished");
        // A batched send from this slice to the same process goes first.
        outbox::flush();
        let shared = &this.shared;
        let cell = match shared.table.get(this.to) {
            Some(cell) if cell.state.status() != Status::Exiting => cell,
            _ => {
                shared.stats.dropped();
                return Poll::Ready(Ok(()));
            }
        };
        match cell.mailbox.offer(envelope, cx.waker()) {
            Offered::Done(pushed) => {
                if let Pushed::Queued(len) = pushed {
                    cell.delivered(len);
                }
                Poll::Ready(shared.count_push(this.to, pushed))
            }
            // Waiting for room in its own mailbox, a process would wait forever.
            Offered::Full(_) if this.from == Some(this.to) => {
                Poll::Ready(Err(SendError::MailboxFull(this.to)))
            }
            Offered::Full(envelope) => {
                this.envelope = Some(envelope);
                Poll::Pending
            }
        }
    }
}

impl<M: Send + 'static> Ctx<M> {
    /// Sends, waiting while `to`'s mailbox is full if it is bounded with
    /// [`Overflow::Wait`](crate::Overflow::Wait); meanwhile this process is suspended (it
    /// takes no messages) and its scheduler thread runs others. With any other mailbox it is
    /// [`Ctx::send`]. A send to a dead process, or one that dies while this waits, is dropped
    /// and counted, as a send is.
    ///
    /// A send to this process's own full mailbox fails with
    /// [`SendError::MailboxFull`] instead of waiting for ever. Two processes that wait for
    /// room in each other's full mailboxes wait forever, as two processes that each wait for
    /// the other's message do.
    ///
    /// ```
    /// use baobab::{Ctx, MailboxConfig, Message, Overflow, Runtime, SpawnOptions};
    ///
    /// let rt = Runtime::new();
    /// let total = rt.block_on(|mut ctx: Ctx<u64>| async move {
    ///     let me = ctx.addr();
    ///     // A slow consumer with room for 4 messages: the producer waits for it.
    ///     let consumer = ctx.spawn_with(move |mut ctx: Ctx<Option<u64>>| async move {
    ///         let mut total = 0;
    ///         while let Message::User(Some(n)) = ctx.recv().await {
    ///             total += n;
    ///         }
    ///         ctx.send(&me, total).unwrap();
    ///     }, SpawnOptions::new().mailbox(MailboxConfig::Bounded { capacity: 4, overflow: Overflow::Wait }))
    ///     .unwrap()
    ///     .addr;
    ///     for n in 1..=100 {
    ///         ctx.send_wait(&consumer, Some(n)).await.unwrap();
    ///     }
    ///     ctx.send_wait(&consumer, None).await.unwrap();
    ///     match ctx.recv().await { Message::User(total) => total, _ => 0 }
    /// });
    /// assert_eq!(total.unwrap(), 5050);
    /// ```
    pub fn send_wait<T: Send + 'static>(&self, to: &Addr<T>, message: T) -> SendWait {
        SendWait::new(Arc::clone(self.shared()), Some(self.pid()), to, message)
    }
}

impl Handle {
    /// Sends from async code outside the runtime (a tokio task, any executor), waiting without
    /// blocking a thread while `to`'s mailbox is full if it is bounded with
    /// [`Overflow::Wait`](crate::Overflow::Wait). See [`Ctx::send_wait`].
    pub fn send_wait<M: Send + 'static>(&self, to: &Addr<M>, message: M) -> SendWait {
        SendWait::new(Arc::clone(&self.shared), None, to, message)
    }

    /// Sends from a plain thread, blocking it while `to`'s mailbox is full if it is bounded
    /// with [`Overflow::Wait`](crate::Overflow::Wait). See [`Ctx::send_wait`].
    ///
    /// # Panics
    /// On a scheduler thread, where blocking would stall the runtime.
    pub fn send_blocking<M: Send + 'static>(
        &self,
        to: &Addr<M>,
        message: M,
    ) -> Result<(), SendError> {
        block_thread_on(
            "send_blocking called on a scheduler thread (use Ctx::send_wait)",
            self.send_wait(to, message),
        )
    }
}
