//! The code of a process, as the scheduler sees it: something to run for one slice.
//!
//! Both ways of writing a process end up here. An `async` body is a future polled by our own
//! scheduler (no tokio); a [`Behaviour`](crate::Behaviour) is a struct whose callbacks are
//! called from a loop over its mailbox. Either is boxed once, with the future inline, so an
//! idle process costs one allocation for its code.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::context::Ctx;
use crate::signal::ExitReason;

/// One process's code, pinned in its cell.
pub(crate) trait Runnable: Send {
    /// Runs one slice. `Ready` carries the exit reason when the process is done.
    fn run(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<ExitReason>;

    /// Called once when the process ends for a reason of its own or an exit signal (not for
    /// `killed`), before its links and monitors hear of it.
    fn terminate(self: Pin<&mut Self>, reason: &ExitReason);
}

pin_project_lite::pin_project! {
    /// An `async` body.
    pub(crate) struct BodyCode<F> {
        #[pin]
        future: F,
    }
}

impl<F, R> Runnable for BodyCode<F>
where
    F: Future<Output = R> + Send,
    R: Into<ExitReason>,
{
    fn run(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<ExitReason> {
        self.project().future.poll(cx).map(Into::into)
    }

    fn terminate(self: Pin<&mut Self>, _reason: &ExitReason) {}
}

/// Something that can become a process receiving messages of type `M`: an `async` body
/// (`FnOnce(Ctx<M>) -> impl Future`) or a [`Behaviour`](crate::Behaviour).
///
/// The `Kind` parameter only tells the two apart; it is inferred. A body's output becomes its
/// exit reason: `()` is `normal`, an [`ExitReason`] is itself, `Result<(), E>` is `normal` or
/// `E`'s reason.
///
/// A body that never returns (`async move { loop { .. } }`) has the type `!` in Rust 2024,
/// which stable Rust cannot convert to an exit reason: give the loop a way out
/// (`while let Message::User(m) = ctx.recv().await { .. }`, or `break` with a reason).
pub trait IntoProcess<M, Kind>: Send + 'static {
    #[doc(hidden)]
    fn into_runnable(self, ctx: Ctx<M>) -> ProcessCode;
}

/// A process's code, ready to run (opaque).
#[doc(hidden)]
pub struct ProcessCode(pub(crate) Pin<Box<dyn Runnable>>);

/// Marks an `async` body for [`IntoProcess`].
pub struct BodyKind<R>(PhantomData<R>);

impl<M, F, Fut, R> IntoProcess<M, BodyKind<R>> for F
where
    M: Send + 'static,
    F: FnOnce(Ctx<M>) -> Fut + Send + 'static,
    Fut: Future<Output = R> + Send + 'static,
    R: Into<ExitReason> + 'static,
{
    fn into_runnable(self, ctx: Ctx<M>) -> ProcessCode {
        ProcessCode(Box::pin(BodyCode { future: self(ctx) }))
    }
}
