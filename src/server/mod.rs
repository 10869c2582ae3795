//! gen_server-style calls and casts.
//!
//! [`Ctx::call`] (any process can answer it through a [`ReplyTo`]) sends a request carrying a [`ReplyTo`] (the caller and a fresh reference), monitors
//! the callee, and waits for the reply with that reference, the callee's `Down`, or the
//! timeout, whichever comes first:
//! - a dead callee, or one that dies before replying, ends the call at once with
//!   [`CallError::NoProc`] (the monitor, not the timeout, tells);
//! - a timed-out call forgets its reference, so a late reply is dropped when it arrives and
//!   never taken by a later call or receive.
//!
//! Two callback forms, like OTP's `gen_server`:
//! - [`Server`]: synchronous callbacks; `handle_call` returns the reply. The fastest form, for
//!   servers that never wait inside a callback.
//! - [`AsyncServer`]: `async` callbacks that may await calls to other processes, timers or
//!   blocking work; several request types per server ([`Handles<R>`] for each [`Request`]
//!   type, each with its own reply type, checked at compile time); and replies that may be
//!   deferred: a handler gets the [`ReplyTo`] and may answer at once, keep it and answer from
//!   a later callback, or hand it to another process (OTP's `{noreply, State}` and
//!   `gen_server:reply/2`).

use std::time::Duration;

mod async_server;

pub use crate::process::call::{CallError, ReplyTo};
use crate::process::outside::block_thread_on;
use crate::{Addr, Behaviour, Ctx, Down, ExitReason, ExitSignal, Handle, Handled, SendError};
pub use async_server::{AsyncMsg, AsyncServer, AsyncServerKind, Handles, Request};

impl<M: Send + 'static> Ctx<M> {
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
    /// Calls a [`Server`] from outside the runtime, blocking the calling thread. From async
    /// code, use [`Handle::call_async`].
    ///
    /// # Panics
    /// On a scheduler thread, where blocking would stall the runtime.
    pub fn call<S: Server>(
        &self,
        to: &Addr<ServerMsg<S>>,
        request: S::Call,
        timeout: Duration,
    ) -> Result<S::Reply, CallError> {
        block_thread_on(
            "block_on called on a scheduler thread",
            self.call_async(to, request, timeout),
        )
    }

    /// Calls a [`Server`] from async code outside the runtime (a tokio task, any executor),
    /// without blocking a thread: as [`Handle::call`].
    pub async fn call_async<S: Server>(
        &self,
        to: &Addr<ServerMsg<S>>,
        request: S::Call,
        timeout: Duration,
    ) -> Result<S::Reply, CallError> {
        let to = *to;
        self.call_from_outside(to.pid(), move |mut ctx: Ctx<()>| async move {
            ctx.call_server(&to, request, timeout).await
        })
        .await
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

impl Handle {
    /// A call from outside the runtime: `call` runs as a process of its own, awaited without
    /// blocking a thread; if that process ends without an answer, the call sees the callee's
    /// exit.
    async fn call_from_outside<T, Fut>(
        &self,
        callee: crate::Pid,
        call: impl FnOnce(Ctx<()>) -> Fut + Send + 'static,
    ) -> Result<T, CallError>
    where
        Fut: std::future::Future<Output = Result<T, CallError>> + Send + 'static,
        T: Send + 'static,
    {
        self.run(call).await.unwrap_or_else(|reason| {
            Err(CallError::NoProc {
                pid: callee,
                reason,
            })
        })
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
