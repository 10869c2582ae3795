//! gen_server-style calls and casts.
//!
//! A call sends a request carrying a [`ReplyTo`] (the caller and a fresh reference), monitors
//! the callee, and waits for the reply with that reference, the callee's `Down`, or the
//! timeout, whichever comes first:
//! - a dead callee, or one that dies before replying, ends the call at once with
//!   [`CallError::NoProc`] (the monitor, not the timeout, tells);
//! - a timed-out call forgets its reference, so a late reply is dropped when it arrives and
//!   never taken by a later call or receive.
//!
//! [`Server`] is the callback form, like OTP's `gen_server`: `handle_call` returns the reply.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use crate::process::cell::ProcessCell;
use crate::process::mailbox::Mail;
use crate::process::receive::Select;
use crate::runtime::Handle;
use crate::{
    Addr, Behaviour, Ctx, Down, ExitReason, ExitSignal, Handled, MonitorRef, Pid, Ref, SendError,
};

/// Where a call's reply goes. Reply once with [`ReplyTo::reply`]; dropping it never replies
/// (the caller then times out, or sees the callee's exit).
pub struct ReplyTo<R> {
    /// The caller's cell: a strong reference is two reference-count updates per call where
    /// a weak one is four; it only keeps a dead caller's cell (not its process) in memory
    /// while a server holds the `ReplyTo`.
    caller: Arc<ProcessCell>,
    reference: Ref,
    _reply: PhantomData<fn(R)>,
}

impl<R> std::fmt::Debug for ReplyTo<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ReplyTo({}, {:?})", self.caller.pid, self.reference)
    }
}

impl<R: Send + 'static> ReplyTo<R> {
    /// Sends the reply. A reply to a caller that gave up or died is dropped.
    pub fn reply(self, value: R) {
        self.caller.push_system(Mail::Reply {
            reference: self.reference,
            value: crate::process::mailbox::payload(value),
        });
    }

    /// The calling process.
    pub fn caller(&self) -> Pid {
        self.caller.pid
    }
}

/// Why a call returned no reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// No reply within the timeout.
    #[error("call timed out")]
    Timeout,
    /// The callee was dead (`reason` is `noproc`) or exited before replying (its reason).
    #[error("callee {pid} exited: {reason}")]
    NoProc {
        /// The callee.
        pid: Pid,
        /// Its exit reason.
        reason: ExitReason,
    },
    /// The callee's bounded mailbox refused the request.
    #[error("the mailbox of {0} is full")]
    MailboxFull(Pid),
}

impl<M: Send + 'static> Ctx<M> {
    /// Calls `to`: sends `request(reply_to)` and waits up to `timeout` for the reply.
    ///
    /// ```
    /// use std::time::Duration;
    /// use baobab::{Ctx, Message, Runtime, server::ReplyTo};
    ///
    /// let rt = Runtime::new();
    /// let doubled = rt.block_on(|mut ctx: Ctx<()>| async move {
    ///     let doubler = ctx.spawn(|mut ctx: Ctx<(u32, ReplyTo<u32>)>| async move {
    ///         while let Message::User((n, reply_to)) = ctx.recv().await {
    ///             reply_to.reply(n * 2);
    ///         }
    ///     }).unwrap();
    ///     ctx.call(&doubler, |reply_to| (21, reply_to), Duration::from_secs(1)).await
    /// });
    /// assert_eq!(doubled.unwrap(), Ok(42));
    /// ```
    pub async fn call<T, R>(
        &mut self,
        to: &Addr<T>,
        request: impl FnOnce(ReplyTo<R>) -> T,
        timeout: Duration,
    ) -> Result<R, CallError>
    where
        T: Send + 'static,
        R: Send + 'static,
    {
        let callee = to.pid();
        // One lookup serves the monitor, the send and the demonitor.
        let shared = &self.cell.shared;
        let callee_cell = self
            .last_sent
            .take()
            .filter(|cell| cell.pid == callee)
            .or_else(|| shared.table.get(callee));
        // One fresh reference names both the monitor and the reply.
        let reference = shared.refs.next();
        let monitor = shared.monitor_cell_as(
            &self.cell,
            callee,
            callee_cell.as_ref(),
            MonitorRef(reference),
        );
        let reply_to = ReplyTo {
            caller: Arc::clone(&self.cell),
            reference,
            _reply: PhantomData,
        };
        let request = Mail::User(crate::process::mailbox::payload(request(reply_to)));
        let sent = match &callee_cell {
            Some(cell) => shared.send_to_cell(cell, request),
            None => Ok(()),
        };
        if let Err(SendError::MailboxFull(pid)) = sent {
            self.demonitor_with(monitor, true, |_| callee_cell);
            return Err(CallError::MailboxFull(pid));
        }
        let deadline = self.deadline(timeout);
        let answer = self
            .take(Some(deadline), |envelope| match envelope {
                Mail::Reply { reference: r, .. } if *r == reference => Select::Take,
                Mail::Down(down) if down.reference == monitor => Select::Take,
                // A reply to an earlier call that gave up: nobody waits for it.
                Mail::Reply { .. } => Select::Discard,
                _ => Select::Skip,
            })
            .await;
        // The callee is remembered for the next call or send, as `send` does.
        self.last_sent.set(callee_cell.clone());
        match answer {
            Some(Mail::Reply { value, .. }) => {
                self.demonitor_with(monitor, true, |_| callee_cell);
                Ok(crate::process::mailbox::unwrap_payload::<R>(value)
                    .unwrap_or_else(|_| unreachable!("a reply has the type of its ReplyTo")))
            }
            Some(Mail::Down(down)) => Err(CallError::NoProc {
                pid: callee,
                reason: down.reason,
            }),
            _ => {
                self.demonitor_with(monitor, true, |_| callee_cell);
                Err(CallError::Timeout)
            }
        }
    }

    /// Calls a [`Server`].
    pub async fn call_server<S: Server>(
        &mut self,
        to: &Addr<ServerMsg<S>>,
        request: S::Call,
        timeout: Duration,
    ) -> Result<S::Reply, CallError> {
        self.call(to, |reply_to| ServerMsg::Call(request, reply_to), timeout)
            .await
    }

    /// Casts to a [`Server`]: a message with no reply.
    pub fn cast<S: Server>(
        &self,
        to: &Addr<ServerMsg<S>>,
        message: S::Cast,
    ) -> Result<(), SendError> {
        self.send(to, ServerMsg::Cast(message))
    }
}

impl Handle {
    /// Calls a [`Server`] from outside the runtime, blocking the calling thread.
    pub fn call<S: Server>(
        &self,
        to: &Addr<ServerMsg<S>>,
        request: S::Call,
        timeout: Duration,
    ) -> Result<S::Reply, CallError> {
        let to = *to;
        self.block_on(move |mut ctx: Ctx<()>| async move {
            ctx.call_server(&to, request, timeout).await
        })
        .unwrap_or_else(|reason| {
            Err(CallError::NoProc {
                pid: to.pid(),
                reason,
            })
        })
    }

    /// Casts to a [`Server`] from outside the runtime.
    pub fn cast<S: Server>(
        &self,
        to: &Addr<ServerMsg<S>>,
        message: S::Cast,
    ) -> Result<(), SendError> {
        self.send(to, ServerMsg::Cast(message))
    }
}

/// The messages a [`Server`] receives.
pub enum ServerMsg<S: Server> {
    /// A call, with where its reply goes.
    Call(S::Call, ReplyTo<S::Reply>),
    /// A cast.
    Cast(S::Cast),
}

/// A process written as gen_server callbacks. Every `Server` is a [`Behaviour`] receiving
/// [`ServerMsg`], so it spawns like any behaviour.
///
/// ```
/// use std::time::Duration;
/// use baobab::{Ctx, Handled, Runtime, ExitReason};
/// use baobab::server::{Server, ServerMsg};
///
/// struct Stack(Vec<u32>);
///
/// impl Server for Stack {
///     type Call = ();
///     type Reply = Option<u32>;
///     type Cast = u32;
///     fn handle_call(&mut self, _: (), _: &mut Ctx<ServerMsg<Self>>) -> Result<Option<u32>, ExitReason> {
///         Ok(self.0.pop())
///     }
///     fn handle_cast(&mut self, n: u32, _: &mut Ctx<ServerMsg<Self>>) -> Handled {
///         self.0.push(n);
///         Ok(())
///     }
/// }
///
/// let rt = Runtime::new();
/// let stack = rt.handle().spawn(Stack(vec![])).unwrap();
/// rt.handle().cast(&stack, 7).unwrap();
/// assert_eq!(rt.handle().call(&stack, (), Duration::from_secs(1)), Ok(Some(7)));
/// ```
pub trait Server: Send + Sized + 'static {
    /// Call requests.
    type Call: Send + 'static;
    /// Replies to calls.
    type Reply: Send + 'static;
    /// Casts.
    type Cast: Send + 'static;

    /// Runs first; an error ends the server with that reason.
    fn init(&mut self, _ctx: &mut Ctx<ServerMsg<Self>>) -> Handled {
        Ok(())
    }

    /// A call: the reply, or `Err(reason)` to exit without replying (the caller gets
    /// [`CallError::NoProc`] with that reason).
    fn handle_call(
        &mut self,
        request: Self::Call,
        ctx: &mut Ctx<ServerMsg<Self>>,
    ) -> Result<Self::Reply, ExitReason>;

    /// A cast. The default ignores it.
    fn handle_cast(&mut self, _message: Self::Cast, _ctx: &mut Ctx<ServerMsg<Self>>) -> Handled {
        Ok(())
    }

    /// A trapped exit; as [`Behaviour::handle_exit`].
    fn handle_exit(&mut self, signal: ExitSignal, _ctx: &mut Ctx<ServerMsg<Self>>) -> Handled {
        if signal.reason.is_normal() {
            Ok(())
        } else {
            Err(signal.reason)
        }
    }

    /// A monitor fired. The default ignores it.
    fn handle_down(&mut self, _down: Down, _ctx: &mut Ctx<ServerMsg<Self>>) -> Handled {
        Ok(())
    }

    /// The server is ending; as [`Behaviour::terminate`].
    fn terminate(&mut self, _reason: &ExitReason, _ctx: &mut Ctx<ServerMsg<Self>>) {}
}

impl<S: Server> Behaviour for S {
    type Msg = ServerMsg<S>;

    fn init(&mut self, ctx: &mut Ctx<ServerMsg<S>>) -> Handled {
        Server::init(self, ctx)
    }

    fn handle_message(&mut self, message: ServerMsg<S>, ctx: &mut Ctx<ServerMsg<S>>) -> Handled {
        match message {
            ServerMsg::Call(request, reply_to) => {
                reply_to.reply(self.handle_call(request, ctx)?);
                Ok(())
            }
            ServerMsg::Cast(message) => self.handle_cast(message, ctx),
        }
    }

    fn handle_exit(&mut self, signal: ExitSignal, ctx: &mut Ctx<ServerMsg<S>>) -> Handled {
        Server::handle_exit(self, signal, ctx)
    }

    fn handle_down(&mut self, down: Down, ctx: &mut Ctx<ServerMsg<S>>) -> Handled {
        Server::handle_down(self, down, ctx)
    }

    fn terminate(&mut self, reason: &ExitReason, ctx: &mut Ctx<ServerMsg<S>>) {
        Server::terminate(self, reason, ctx);
    }
}
