//! [`AsyncServer`]: gen_server callbacks that are `async`, with several typed request kinds
//! and replies that may be deferred.
//!
//! A call is a boxed envelope (the request and its [`ReplyTo`]) that knows which
//! [`Handles::handle`] to run, so one mailbox type, [`AsyncMsg<S>`], carries every request
//! type the server handles while the compiler checks each request against its handler and its
//! reply type. The server runs as one `async` body: it takes a message, awaits its callback to
//! the end, then takes the next; messages that arrive while a callback awaits (a call to
//! another process, a timer, blocking work) wait in the mailbox, in order, as in OTP.

use std::convert::Infallible;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use super::ReplyTo;
use crate::process::outside::block_thread_on;
use crate::process::run::unwind_reason;
use crate::process::{BodyKind, IntoProcess, ProcessCode};
use crate::server::CallError;
use crate::{Addr, Ctx, Down, ExitReason, ExitSignal, Handle, Handled, Message, SendError};

/// A request an [`AsyncServer`] may handle, with the type of its reply.
///
/// ```
/// use baobab::server::Request;
/// struct Get(String);
/// impl Request for Get {
///     type Reply = Option<u64>;
/// }
/// ```
pub trait Request: Send + 'static {
    /// What the server answers.
    type Reply: Send + 'static;
}

/// A process written as `async` gen_server callbacks. Requests are handled by
/// [`Handles<R>`], one implementation per [`Request`] type; casts by
/// [`handle_cast`](AsyncServer::handle_cast). Every `AsyncServer` spawns like any process and
/// is addressed as `Addr<AsyncMsg<Self>>`; call it with [`Ctx::ask`] (from a process),
/// [`Handle::ask`] (from a thread) or [`Handle::ask_async`] (from async code on any
/// executor), and cast with [`Ctx::tell`] or [`Handle::tell`].
///
/// `terminate` runs, and may await, when a callback returns `Err(reason)`, panics (reason
/// `panic: …`) or calls [`Ctx::stop`], as after a gen_server callback that raises; a trapped
/// exit that [`handle_exit`](AsyncServer::handle_exit) turns into a stop included (a
/// supervisor's `shutdown` of a child that traps exits). A server that does not trap exits
/// and is killed by an exit signal ends at once without it, as a gen_server does; so does one
/// whose `init` fails, and one still running when the runtime shuts down (there a
/// [`Server`](super::Server)'s synchronous `terminate` runs: it can).
///
/// ```
/// use std::time::Duration;
/// use baobab::server::{AsyncMsg, AsyncServer, Handles, ReplyTo, Request};
/// use baobab::{Ctx, Handled, Runtime};
///
/// /// A counter; `Add` answers the new total, `Get` the total.
/// struct Counter(u64);
/// struct Add(u64);
/// struct Get;
/// impl Request for Add { type Reply = u64; }
/// impl Request for Get { type Reply = u64; }
///
/// impl AsyncServer for Counter {
///     type Cast = ();
/// }
///
/// impl Handles<Add> for Counter {
///     async fn handle(&mut self, Add(n): Add, reply: ReplyTo<u64>, _: &mut Ctx<AsyncMsg<Self>>) -> Handled {
///         self.0 += n;
///         reply.reply(self.0);
///         Ok(())
///     }
/// }
///
/// impl Handles<Get> for Counter {
///     async fn handle(&mut self, _: Get, reply: ReplyTo<u64>, ctx: &mut Ctx<AsyncMsg<Self>>) -> Handled {
///         // A callback may wait: here for 1 ms of the runtime's clock.
///         ctx.sleep(Duration::from_millis(1)).await;
///         reply.reply(self.0);
///         Ok(())
///     }
/// }
///
/// let rt = Runtime::new();
/// let counter = rt.handle().spawn(Counter(0)).unwrap();
/// let second = Duration::from_secs(1);
/// assert_eq!(rt.handle().ask(&counter, Add(2), second), Ok(2));
/// assert_eq!(rt.handle().ask(&counter, Add(3), second), Ok(5));
/// assert_eq!(rt.handle().ask(&counter, Get, second), Ok(5));
/// ```
pub trait AsyncServer: Send + Sized + 'static {
    /// Casts: messages with no reply.
    type Cast: Send + 'static;

    /// Runs first; an error ends the server with that reason (without `terminate`).
    fn init(&mut self, _ctx: &mut Ctx<AsyncMsg<Self>>) -> impl Future<Output = Handled> + Send {
        async { Ok(()) }
    }

    /// A cast. The default ignores it.
    fn handle_cast(
        &mut self,
        _message: Self::Cast,
        _ctx: &mut Ctx<AsyncMsg<Self>>,
    ) -> impl Future<Output = Handled> + Send {
        async { Ok(()) }
    }

    /// A trapped exit signal (only while trapping exits). The default behaves as if the
    /// server did not trap: it ignores `normal` and stops with any other reason.
    fn handle_exit(
        &mut self,
        signal: ExitSignal,
        _ctx: &mut Ctx<AsyncMsg<Self>>,
    ) -> impl Future<Output = Handled> + Send {
        async move {
            if signal.reason.is_normal() {
                Ok(())
            } else {
                Err(signal.reason)
            }
        }
    }

    /// A monitor fired. The default ignores it.
    fn handle_down(
        &mut self,
        _down: Down,
        _ctx: &mut Ctx<AsyncMsg<Self>>,
    ) -> impl Future<Output = Handled> + Send {
        async { Ok(()) }
    }

    /// The server stops with `reason` (see the trait's docs for when this runs).
    fn terminate(
        &mut self,
        _reason: &ExitReason,
        _ctx: &mut Ctx<AsyncMsg<Self>>,
    ) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// How an [`AsyncServer`] handles requests of type `R`.
///
/// The handler gets the request's [`ReplyTo`]: answer with [`ReplyTo::reply`] (once: it
/// consumes the `ReplyTo`), now or later. A handler may keep the `ReplyTo` in the server's
/// state and answer from a later callback, or move it to another process or thread; the
/// caller waits until then or its timeout, and if the server exits first the caller's monitor
/// ends the call with [`CallError::NoProc`] and the server's reason. Dropping a `ReplyTo`
/// without answering leaves the caller to its timeout.
pub trait Handles<R: Request>: AsyncServer {
    /// Handles one request; `Err(reason)` stops the server with that reason.
    fn handle(
        &mut self,
        request: R,
        reply: ReplyTo<R::Reply>,
        ctx: &mut Ctx<AsyncMsg<Self>>,
    ) -> impl Future<Output = Handled> + Send;
}

/// The messages an [`AsyncServer`] receives: calls of any request type it handles, and casts.
pub struct AsyncMsg<S: AsyncServer>(Kind<S>);

enum Kind<S: AsyncServer> {
    Call(Box<dyn Envelope<S>>),
    Cast(S::Cast),
}

impl<S: AsyncServer> AsyncMsg<S> {
    /// A cast, to send with [`Ctx::send`] where [`Ctx::tell`] does not fit.
    pub fn cast(message: S::Cast) -> Self {
        AsyncMsg(Kind::Cast(message))
    }

    fn call<R: Request>(request: R, reply: ReplyTo<R::Reply>) -> Self
    where
        S: Handles<R>,
    {
        AsyncMsg(Kind::Call(Box::new(Call { request, reply })))
    }
}

impl<S: AsyncServer> std::fmt::Debug for AsyncMsg<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Kind::Call(_) => f.write_str("AsyncMsg::Call(..)"),
            Kind::Cast(_) => f.write_str("AsyncMsg::Cast(..)"),
        }
    }
}

/// A request with its reply handle, which knows the server's handler for its type.
trait Envelope<S>: Send {
    fn handle<'a>(
        self: Box<Self>,
        server: &'a mut S,
        ctx: &'a mut Ctx<AsyncMsg<S>>,
    ) -> Pin<Box<dyn Future<Output = Handled> + Send + 'a>>
    where
        S: AsyncServer;
}

struct Call<R: Request> {
    request: R,
    reply: ReplyTo<R::Reply>,
}

impl<S: Handles<R>, R: Request> Envelope<S> for Call<R> {
    fn handle<'a>(
        self: Box<Self>,
        server: &'a mut S,
        ctx: &'a mut Ctx<AsyncMsg<S>>,
    ) -> Pin<Box<dyn Future<Output = Handled> + Send + 'a>> {
        let Call { request, reply } = *self;
        Box::pin(server.handle(request, reply, ctx))
    }
}

/// Marks an [`AsyncServer`] for [`IntoProcess`].
pub struct AsyncServerKind;

impl<S: AsyncServer> IntoProcess<AsyncMsg<S>, AsyncServerKind> for S {
    fn into_runnable(self, ctx: Ctx<AsyncMsg<S>>) -> ProcessCode {
        let body = move |ctx: Ctx<AsyncMsg<S>>| run(self, ctx);
        IntoProcess::<AsyncMsg<S>, BodyKind<ExitReason>>::into_runnable(body, ctx)
    }
}

/// The server's life: `init`, then one callback per message until one stops it, then
/// `terminate`.
async fn run<S: AsyncServer>(mut server: S, mut ctx: Ctx<AsyncMsg<S>>) -> ExitReason {
    if let Err(reason) = server.init(&mut ctx).await {
        return reason;
    }
    let Err(reason) = serve(&mut server, &mut ctx).await;
    server.terminate(&reason, &mut ctx).await;
    reason
}

async fn serve<S: AsyncServer>(
    server: &mut S,
    ctx: &mut Ctx<AsyncMsg<S>>,
) -> Result<Infallible, ExitReason> {
    loop {
        match ctx.recv().await {
            Message::User(AsyncMsg(Kind::Call(call))) => caught(call.handle(server, ctx)).await?,
            Message::User(AsyncMsg(Kind::Cast(message))) => {
                caught(server.handle_cast(message, ctx)).await?;
            }
            Message::Exit(signal) => caught(server.handle_exit(signal, ctx)).await?,
            Message::Down(down) => caught(server.handle_down(down, ctx)).await?,
        }
    }
}

pin_project_lite::pin_project! {
    /// A callback whose panic (or [`Ctx::stop`]) becomes `Err(reason)`, so that `terminate`
    /// runs as it does after a gen_server callback raises.
    struct Caught<F> {
        #[pin]
        callback: F,
    }
}

fn caught<F>(callback: F) -> Caught<F> {
    Caught { callback }
}

impl<F: Future<Output = Handled>> Future for Caught<F> {
    type Output = Handled;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Handled> {
        let callback = self.project().callback;
        match catch_unwind(AssertUnwindSafe(|| callback.poll(cx))) {
            Ok(polled) => polled,
            Err(payload) => Poll::Ready(Err(unwind_reason(payload))),
        }
    }
}

impl<M: Send + 'static> Ctx<M> {
    /// Calls an [`AsyncServer`] with a request it [`Handles`], and waits up to `timeout` for
    /// the reply (the call semantics of [`Ctx::call`]: a dead callee, or one that dies before
    /// it replies, ends the call at once with [`CallError::NoProc`]).
    pub async fn ask<S, R>(
        &mut self,
        to: &Addr<AsyncMsg<S>>,
        request: R,
        timeout: Duration,
    ) -> Result<R::Reply, CallError>
    where
        S: Handles<R>,
        R: Request,
    {
        self.call(to, |reply| AsyncMsg::call(request, reply), timeout)
            .await
    }

    /// Casts to an [`AsyncServer`].
    pub fn tell<S: AsyncServer>(
        &self,
        to: &Addr<AsyncMsg<S>>,
        message: S::Cast,
    ) -> Result<(), SendError> {
        self.send(to, AsyncMsg::cast(message))
    }
}

impl Handle {
    /// Calls an [`AsyncServer`] from outside the runtime, blocking the calling thread. See
    /// [`Ctx::ask`].
    ///
    /// # Panics
    /// On a scheduler thread, where blocking would stall the runtime: inside a process, use
    /// [`Ctx::ask`].
    pub fn ask<S, R>(
        &self,
        to: &Addr<AsyncMsg<S>>,
        request: R,
        timeout: Duration,
    ) -> Result<R::Reply, CallError>
    where
        S: Handles<R>,
        R: Request,
    {
        block_thread_on(
            "Handle::ask called on a scheduler thread (use Ctx::ask)",
            self.ask_async(to, request, timeout),
        )
    }

    /// Calls an [`AsyncServer`] from async code outside the runtime (a tokio task, any
    /// executor), without blocking a thread. See [`Ctx::ask`].
    pub async fn ask_async<S, R>(
        &self,
        to: &Addr<AsyncMsg<S>>,
        request: R,
        timeout: Duration,
    ) -> Result<R::Reply, CallError>
    where
        S: Handles<R>,
        R: Request,
    {
        let to = *to;
        self.call_from_outside(to.pid(), move |mut ctx: Ctx<()>| async move {
            ctx.ask(&to, request, timeout).await
        })
        .await
    }

    /// Casts to an [`AsyncServer`] from outside the runtime.
    pub fn tell<S: AsyncServer>(
        &self,
        to: &Addr<AsyncMsg<S>>,
        message: S::Cast,
    ) -> Result<(), SendError> {
        self.send(to, AsyncMsg::cast(message))
    }
}
