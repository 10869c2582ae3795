//! Executor interop (feature `tokio`): a process awaits a future that needs tokio (its
//! reactor, its timers: an HTTP or database client) by running it as a task on a tokio
//! runtime and awaiting the task's end, which any executor can do. The process keeps no
//! scheduler thread while it waits; the tokio task is aborted if the process exits first.
//!
//! The runtime is the one given to [`Builder::tokio`](crate::Builder::tokio), else one the
//! crate starts on first use (one worker thread, every driver the build of tokio has).

use std::sync::OnceLock;

use super::context::Ctx;
use crate::signal::ExitReason;
use crate::signal::reason::panic_message;

/// The tokio runtime the crate starts when none was given; never dropped.
fn own_runtime() -> tokio::runtime::Handle {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("baobab-tokio")
                .enable_all()
                .build()
                .expect("start a tokio runtime")
        })
        .handle()
        .clone()
}

/// Aborts the task when dropped: a process that exits while it waits leaves no work behind.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<M: Send + 'static> Ctx<M> {
    /// Runs `future` as a task on the runtime's tokio runtime and waits for its output without
    /// holding a scheduler thread: the way for a process to use a client built on tokio. A
    /// panic in `future` ends this process with reason `panic`; if this process exits first,
    /// the task is aborted.
    ///
    /// ```
    /// let rt = baobab::Runtime::new();
    /// let n = rt.block_on(|mut ctx: baobab::Ctx<()>| async move {
    ///     ctx.tokio(async {
    ///         tokio::task::yield_now().await;
    ///         7
    ///     })
    ///     .await
    /// });
    /// assert_eq!(n.unwrap(), 7);
    /// ```
    pub async fn tokio<F>(&mut self, future: F) -> F::Output
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let handle = self
            .shared()
            .tokio
            .get()
            .cloned()
            .unwrap_or_else(own_runtime);
        let mut task = AbortOnDrop(handle.spawn(future));
        match (&mut task.0).await {
            Ok(output) => output,
            Err(error) if error.is_panic() => {
                let payload = error.into_panic();
                self.stop(ExitReason::Panic(panic_message(&*payload)))
            }
            Err(_) => self.stop(ExitReason::error("the tokio task was cancelled")),
        }
    }
}
