//! Receiving: plain, selective and with a timeout, without blocking a scheduler thread.
//!
//! A receive scans the process's private queue from the front, taking the first message its
//! predicate selects; skipped messages stay where they are, in order. When nothing matches it
//! moves the inbox into the private queue (one lock) and goes on scanning; when the inbox was
//! empty it returns `Pending` and the process sleeps until a sender wakes it. A receive with a
//! timeout also sets a timer that only wakes the process: the timeout is decided by comparing
//! the clock with the deadline, so a stale timer can never end a later receive. Replies to
//! calls nobody waits for any more are dropped here; they never reach user code.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use super::context::Ctx;
use super::mailbox::{Mail, unwrap_payload};
use crate::engine::timer::TimerRef;
use crate::signal::{Down, ExitSignal};

/// What a process receives: a user message, or one of the system messages every process
/// understands whatever its message type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<M> {
    /// A message sent to this process's `Addr<M>`.
    User(M),
    /// A trapped exit signal (only while trapping exits).
    Exit(ExitSignal),
    /// A monitor fired.
    Down(Down),
}

impl<M> Message<M> {
    /// The user message, if this is one.
    pub fn user(self) -> Option<M> {
        match self {
            Message::User(message) => Some(message),
            _ => None,
        }
    }
}

/// What a scan does with one envelope.
pub(crate) enum Select {
    Take,
    Skip,
    Discard,
}

impl<M: Send + 'static> Ctx<M> {
    /// How a plain receive sees an envelope: user messages of type `M` and signals are taken,
    /// replies nobody waits for are dropped.
    fn select_message(envelope: &Mail) -> Option<Message<&M>> {
        match envelope {
            Mail::User(any) => any.downcast_ref::<M>().map(Message::User),
            Mail::Exit(signal) => Some(Message::Exit(signal.clone())),
            Mail::Down(down) => Some(Message::Down(down.clone())),
            Mail::Reply { .. } => None,
        }
    }

    fn into_message(envelope: Mail) -> Message<M> {
        match envelope {
            Mail::User(any) => Message::User(
                unwrap_payload::<M>(any).unwrap_or_else(|_| unreachable!("selected as M")),
            ),
            Mail::Exit(signal) => Message::Exit(signal),
            Mail::Down(down) => Message::Down(down),
            Mail::Reply { .. } => unreachable!("replies are never selected as messages"),
        }
    }

    /// Envelopes no receive will ever take: replies (a call holds `&mut Ctx` while it waits,
    /// so any reply seen outside it is late) and user messages of another type.
    fn is_orphan(envelope: &Mail) -> bool {
        match envelope {
            Mail::Reply { .. } => true,
            Mail::User(any) => !any.is::<M>(),
            _ => false,
        }
    }

    /// One poll of a receive: the first envelope `select` takes, `Ready(None)` at the deadline.
    pub(crate) fn poll_take(
        &mut self,
        cx: &mut Context<'_>,
        select: &mut dyn FnMut(&Mail) -> Select,
        deadline: Option<Duration>,
        timer: &mut Option<TimerRef>,
    ) -> Poll<Option<Mail>> {
        if !self.cell.may_receive() {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let mut scanned = 0;
        loop {
            let mut index = scanned;
            while index < self.local.len() {
                match select(&self.local[index]) {
                    Select::Take => {
                        let envelope = if index == 0 {
                            self.local.pop_front()
                        } else {
                            self.local.remove(index)
                        }
                        .expect("index in bounds");
                        self.cell.mailbox.consumed(1);
                        self.cell.budget.consume();
                        return Poll::Ready(Some(envelope));
                    }
                    Select::Discard => {
                        self.local.remove(index);
                        self.cell.mailbox.consumed(1);
                    }
                    Select::Skip => index += 1,
                }
            }
            scanned = index;
            if self.cell.mailbox.drain_into(&mut self.local) == 0 {
                break;
            }
        }
        self.wait(deadline, timer)
    }

    /// Nothing to take: sleep, setting the receive's timer the first time, or time out.
    fn wait(
        &mut self,
        deadline: Option<Duration>,
        timer: &mut Option<TimerRef>,
    ) -> Poll<Option<Mail>> {
        if let Some(deadline) = deadline {
            let shared = &self.cell.shared;
            // The first time the receive waits, it only sets its timer (a zero timeout is
            // `Duration::ZERO`, which is always due); afterwards a wake-up may be the timer's,
            // so the clock decides.
            match timer {
                None if deadline > Duration::ZERO => {
                    *timer = Some(shared.wait_timer(&self.cell, deadline));
                    // A manual clock may have been advanced past the deadline since it was
                    // computed; no timer thread would notice before the next advance.
                    if shared.clock.is_manual() && shared.clock.now() >= deadline {
                        return Poll::Ready(None);
                    }
                }
                _ if deadline == Duration::ZERO || shared.clock.now() >= deadline => {
                    return Poll::Ready(None);
                }
                _ => {}
            }
        }
        Poll::Pending
    }

    /// A timed receive ended (or was dropped): its timer is not needed any more.
    fn end_wait(&self, timer: &mut Option<TimerRef>) {
        if let Some(timer) = timer.take() {
            self.cell.shared.cancel_wait_timer(&self.cell, timer);
        }
    }

    /// One poll of a plain receive (every message taken, in order): the fast path of
    /// `poll_take`, with no predicate to ask.
    ///
    /// Always inlined, with everything but "the next envelope is a user message" and "the
    /// mailbox is empty" in `poll_next_rest`: a small fast path lets the compiler keep the
    /// message in registers instead of copying it through memory.
    #[inline(always)]
    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        deadline: Option<Duration>,
        timer: &mut Option<TimerRef>,
    ) -> Poll<Option<Message<M>>> {
        if !self.cell.may_receive() {
            return self.poll_next_rest(cx, deadline, timer, None);
        }
        match self.next_envelope() {
            Some(Mail::User(any)) => {
                self.cell.mailbox.consumed(1);
                if let Ok(message) = unwrap_payload::<M>(any) {
                    self.cell.budget.consume();
                    return Poll::Ready(Some(Message::User(message)));
                }
                // A message of another type: dropped; look further.
                self.poll_next_rest(cx, deadline, timer, None)
            }
            None if deadline.is_none() => Poll::Pending,
            other => self.poll_next_rest(cx, deadline, timer, other),
        }
    }

    /// The next envelope in arrival order: the private queue first, then the inbox.
    #[inline(always)]
    fn next_envelope(&mut self) -> Option<Mail> {
        match self.local.pop_front() {
            Some(envelope) => Some(envelope),
            None => self.cell.mailbox.pop_into(&mut self.local),
        }
    }

    /// The rest of `poll_next`: a system message or an orphan first (`first`, already out of
    /// the mailbox), a deadline, a slice out of budget.
    #[inline(never)]
    fn poll_next_rest(
        &mut self,
        cx: &mut Context<'_>,
        deadline: Option<Duration>,
        timer: &mut Option<TimerRef>,
        mut first: Option<Mail>,
    ) -> Poll<Option<Message<M>>> {
        if first.is_none() && !self.cell.may_receive() {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        loop {
            let next = match first.take() {
                Some(envelope) => Some(envelope),
                None => self.next_envelope(),
            };
            let Some(envelope) = next else {
                return self.wait(deadline, timer).map(|_| None);
            };
            self.cell.mailbox.consumed(1);
            let message = match envelope {
                Mail::User(any) => match unwrap_payload::<M>(any) {
                    Ok(message) => Message::User(message),
                    Err(_) => continue,
                },
                Mail::Exit(signal) => Message::Exit(signal),
                Mail::Down(down) => Message::Down(down),
                Mail::Reply { .. } => continue,
            };
            self.cell.budget.consume();
            return Poll::Ready(Some(message));
        }
    }

    /// Waits for the first envelope `select` takes, until `deadline` if given.
    pub(crate) fn take<F: FnMut(&Mail) -> Select>(
        &mut self,
        deadline: Option<Duration>,
        select: F,
    ) -> Take<'_, M, F> {
        Take {
            ctx: self,
            select,
            deadline,
            timer: None,
        }
    }

    async fn recv_where(
        &mut self,
        deadline: Option<Duration>,
        mut predicate: impl FnMut(&Message<&M>) -> bool,
    ) -> Option<Message<M>> {
        self.take(deadline, |envelope| match Self::select_message(envelope) {
            Some(message) if predicate(&message) => Select::Take,
            Some(_) => Select::Skip,
            None if Self::is_orphan(envelope) => Select::Discard,
            None => Select::Skip,
        })
        .await
        .map(Self::into_message)
    }

    /// The clock time `timeout` from now; `Duration::ZERO` for a zero timeout, which
    /// `poll_take` treats as already due without reading the clock again.
    pub(crate) fn deadline(&self, timeout: Duration) -> Duration {
        if timeout.is_zero() {
            Duration::ZERO
        } else {
            self.now() + timeout
        }
    }

    /// Receives the next message, user or system, in arrival order.
    pub fn recv(&mut self) -> Recv<'_, M> {
        Recv { ctx: self }
    }

    /// Receives the next message, or `None` when `timeout` passes first.
    pub fn recv_timeout(&mut self, timeout: Duration) -> RecvTimeout<'_, M> {
        let deadline = self.deadline(timeout);
        RecvTimeout {
            ctx: self,
            deadline,
            timer: None,
        }
    }

    /// Selective receive: the first message `predicate` accepts; the ones it skips stay in the
    /// mailbox, in order, for later receives.
    pub async fn recv_matching(
        &mut self,
        predicate: impl FnMut(&Message<&M>) -> bool,
    ) -> Message<M> {
        self.recv_where(None, predicate)
            .await
            .expect("no deadline, so a message")
    }

    /// Selective receive with a timeout.
    pub async fn recv_matching_timeout(
        &mut self,
        predicate: impl FnMut(&Message<&M>) -> bool,
        timeout: Duration,
    ) -> Option<Message<M>> {
        let deadline = self.deadline(timeout);
        self.recv_where(Some(deadline), predicate).await
    }

    /// Sleeps for `duration` on the runtime's clock; messages wait in the mailbox meanwhile.
    pub async fn sleep(&mut self, duration: Duration) {
        let deadline = self.deadline(duration);
        self.take(Some(deadline), |_| Select::Skip).await;
    }

    /// Gives the scheduler thread to other processes, then goes on.
    pub async fn yield_now(&mut self) {
        let mut yielded = false;
        poll_fn(|cx| {
            if yielded {
                Poll::Ready(())
            } else {
                yielded = true;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        })
        .await;
    }
}

/// The future of [`Ctx::recv`]: the next message.
#[must_use = "futures do nothing unless awaited"]
pub struct Recv<'a, M> {
    ctx: &'a mut Ctx<M>,
}

impl<M: Send + 'static> Future for Recv<'_, M> {
    type Output = Message<M>;

    // Always inlined into the body that awaits it: returned through memory, the message is
    // copied with loads that wait for the stores that wrote it (a store-forwarding stall
    // that cost the ring benchmark a tenth of its time).
    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Message<M>> {
        self.get_mut()
            .ctx
            .poll_next(cx, None, &mut None)
            .map(|message| message.expect("no deadline, so a message"))
    }
}

/// The future of [`Ctx::recv_timeout`]: the next message, or `None` at the timeout.
#[must_use = "futures do nothing unless awaited"]
pub struct RecvTimeout<'a, M: Send + 'static> {
    ctx: &'a mut Ctx<M>,
    deadline: Duration,
    timer: Option<TimerRef>,
}

impl<M: Send + 'static> Future for RecvTimeout<'_, M> {
    type Output = Option<Message<M>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Message<M>>> {
        let this = self.get_mut();
        let polled = this.ctx.poll_next(cx, Some(this.deadline), &mut this.timer);
        if polled.is_ready() {
            this.ctx.end_wait(&mut this.timer);
        }
        polled
    }
}

impl<M: Send + 'static> Drop for RecvTimeout<'_, M> {
    fn drop(&mut self) {
        self.ctx.end_wait(&mut self.timer);
    }
}

/// The future of a selective receive: the first envelope `select` takes, or `None` at the
/// deadline. Its timer is cancelled when it ends or is dropped.
pub(crate) struct Take<'a, M: Send + 'static, F> {
    ctx: &'a mut Ctx<M>,
    select: F,
    deadline: Option<Duration>,
    timer: Option<TimerRef>,
}

impl<M: Send + 'static, F: FnMut(&Mail) -> Select + Unpin> Future for Take<'_, M, F> {
    type Output = Option<Mail>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Mail>> {
        let this = self.get_mut();
        let polled = this
            .ctx
            .poll_take(cx, &mut this.select, this.deadline, &mut this.timer);
        if polled.is_ready() {
            this.ctx.end_wait(&mut this.timer);
        }
        polled
    }
}

impl<M: Send + 'static, F> Drop for Take<'_, M, F> {
    fn drop(&mut self) {
        self.ctx.end_wait(&mut self.timer);
    }
}

impl<M: Send + 'static> Ctx<M> {
    /// Waits, without blocking the scheduler thread, until `poll` is ready (something outside
    /// the mailbox woke this process through the waker `poll` was given) or the runtime clock
    /// reaches `deadline` (`None`). The mailbox is left alone.
    pub(crate) async fn wait_ready<T>(
        &mut self,
        deadline: Option<Duration>,
        mut poll: impl FnMut(&mut Context<'_>) -> Poll<T>,
    ) -> Option<T> {
        let cell = &self.cell;
        let mut timer: Option<TimerRef> = None;
        let result = poll_fn(|cx| {
            if let Poll::Ready(value) = poll(cx) {
                return Poll::Ready(Some(value));
            }
            let Some(deadline) = deadline else {
                return Poll::Pending;
            };
            let shared = &cell.shared;
            match timer {
                None if deadline > Duration::ZERO => {
                    timer = Some(shared.wait_timer(cell, deadline));
                    if shared.clock.is_manual() && shared.clock.now() >= deadline {
                        return Poll::Ready(None);
                    }
                }
                _ if deadline == Duration::ZERO || shared.clock.now() >= deadline => {
                    return Poll::Ready(None);
                }
                _ => {}
            }
            Poll::Pending
        })
        .await;
        if let Some(timer) = timer {
            cell.shared.cancel_wait_timer(cell, timer);
        }
        result
    }
}
