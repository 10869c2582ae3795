//! The callback way to write a process, like OTP's behaviours.
//!
//! The scheduler calls [`Behaviour::init`] once, then one callback per message, in arrival
//! order, for at most the reduction budget per slice. Callbacks are plain functions: a
//! behaviour never blocks a scheduler thread waiting for something. To wait for a reply or a
//! selective message, write an `async` body instead (or send a request and handle the reply
//! as a message).

use std::pin::Pin;
use std::task::{Context, Poll};

use super::code::{IntoProcess, ProcessCode, Runnable};
use super::context::Ctx;
use super::mailbox::{Mail, unwrap_payload};
use crate::signal::{Down, ExitReason, ExitSignal};

/// What a callback returns: `Ok(())` to go on, `Err(reason)` to exit with `reason`.
pub type Handled = Result<(), ExitReason>;

/// A process written as callbacks.
///
/// ```
/// use baobab::{Behaviour, Ctx, Handled, Runtime};
///
/// struct Counter { total: u64 }
///
/// impl Behaviour for Counter {
///     type Msg = u64;
///     fn handle_message(&mut self, n: u64, _ctx: &mut Ctx<u64>) -> Handled {
///         self.total += n;
///         Ok(())
///     }
/// }
///
/// let rt = Runtime::new();
/// let counter = rt.handle().spawn(Counter { total: 0 }).unwrap();
/// rt.handle().send(&counter, 5).unwrap();
/// ```
pub trait Behaviour: Send + 'static {
    /// The user messages this process receives.
    type Msg: Send + 'static;

    /// Runs first, before any message. An error ends the process with that reason.
    fn init(&mut self, _ctx: &mut Ctx<Self::Msg>) -> Handled {
        Ok(())
    }

    /// One user message.
    fn handle_message(&mut self, message: Self::Msg, ctx: &mut Ctx<Self::Msg>) -> Handled;

    /// A trapped exit signal (only while trapping exits). The default behaves as if the
    /// process did not trap: it ignores `normal` and exits with any other reason.
    fn handle_exit(&mut self, signal: ExitSignal, _ctx: &mut Ctx<Self::Msg>) -> Handled {
        if signal.reason.is_normal() {
            Ok(())
        } else {
            Err(signal.reason)
        }
    }

    /// A monitor fired. The default ignores it.
    fn handle_down(&mut self, _down: Down, _ctx: &mut Ctx<Self::Msg>) -> Handled {
        Ok(())
    }

    /// No message arrived within the time set by [`Ctx::set_timeout`].
    fn handle_timeout(&mut self, _ctx: &mut Ctx<Self::Msg>) -> Handled {
        Ok(())
    }

    /// The process is ending with `reason` (any reason but `killed`), before its links and
    /// monitors hear of it. Panics here are logged and do not change the reason.
    fn terminate(&mut self, _reason: &ExitReason, _ctx: &mut Ctx<Self::Msg>) {}
}

/// Marks a [`Behaviour`] for [`IntoProcess`].
pub struct BehaviourKind;

impl<B: Behaviour> IntoProcess<B::Msg, BehaviourKind> for B {
    fn into_runnable(self, ctx: Ctx<B::Msg>) -> ProcessCode {
        ProcessCode(Box::pin(BehaviourCode {
            behaviour: self,
            ctx,
            started: false,
            timer: None,
        }))
    }
}

struct BehaviourCode<B: Behaviour> {
    behaviour: B,
    ctx: Ctx<B::Msg>,
    started: bool,
    /// The wake-up timer for a pending `handle_timeout`, and the deadline it is for.
    timer: Option<(std::time::Duration, crate::engine::timer::TimerRef)>,
}

// The behaviour is never pinned in place: callbacks take `&mut B`.
impl<B: Behaviour> Unpin for BehaviourCode<B> {}

impl<B: Behaviour> BehaviourCode<B> {
    fn next_envelope(&mut self) -> Option<Mail> {
        loop {
            let envelope = match self.ctx.local.pop_front() {
                Some(envelope) => envelope,
                None => self.ctx.cell.mailbox.pop_into(&mut self.ctx.local)?,
            };
            self.ctx.cell.mailbox.consumed(1);
            match &envelope {
                Mail::Reply { .. } => continue,
                Mail::User(any) if !any.is::<B::Msg>() => continue,
                _ => return Some(envelope),
            }
        }
    }

    fn dispatch(&mut self, envelope: Mail) -> Handled {
        let (behaviour, ctx) = (&mut self.behaviour, &mut self.ctx);
        ctx.timeout_at = None;
        match envelope {
            Mail::User(any) => {
                let message = unwrap_payload::<B::Msg>(any)
                    .unwrap_or_else(|_| unreachable!("checked in next_envelope"));
                behaviour.handle_message(message, ctx)
            }
            Mail::Exit(signal) => behaviour.handle_exit(signal, ctx),
            Mail::Down(down) => behaviour.handle_down(down, ctx),
            Mail::Reply { .. } => Ok(()),
        }
    }

    /// With an empty mailbox: runs `handle_timeout` if it is due, or sets a timer to wake for
    /// it. Returns `None` when the process should sleep.
    fn idle(&mut self) -> Option<Handled> {
        let due = self.ctx.timeout_at?;
        let shared = &self.ctx.cell.shared;
        if shared.clock.now() >= due {
            self.ctx.timeout_at = None;
            return Some(self.behaviour.handle_timeout(&mut self.ctx));
        }
        if self.timer.is_none_or(|(at, _)| at != due) {
            if let Some((_, old)) = self.timer.take() {
                shared.timers.cancel(old);
            }
            self.timer = Some((due, shared.wake_at(due, &self.ctx.cell)));
        }
        None
    }
}

impl<B: Behaviour> Runnable for BehaviourCode<B> {
    fn run(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<ExitReason> {
        let this = self.get_mut();
        if !this.started {
            this.started = true;
            if let Err(reason) = this.behaviour.init(&mut this.ctx) {
                return Poll::Ready(reason);
            }
        }
        loop {
            if !this.ctx.cell.may_receive() {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let handled = match this.next_envelope() {
                Some(envelope) => {
                    this.ctx.cell.budget.consume();
                    this.dispatch(envelope)
                }
                None => match this.idle() {
                    Some(handled) => handled,
                    None => return Poll::Pending,
                },
            };
            if let Err(reason) = handled {
                return Poll::Ready(reason);
            }
        }
    }

    fn terminate(self: Pin<&mut Self>, reason: &ExitReason) {
        let this = self.get_mut();
        if let Some((_, timer)) = this.timer.take() {
            this.ctx.cell.shared.timers.cancel(timer);
        }
        this.behaviour.terminate(reason, &mut this.ctx);
    }
}
