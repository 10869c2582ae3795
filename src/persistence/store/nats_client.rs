//! A NATS connection on a small tokio runtime of its own (one worker thread), shared by the
//! JetStream store and the cluster of virtual actors.

use std::time::Duration;

use async_nats::jetstream;

use super::{Pending, StoreError};

/// A NATS client, its JetStream context and the runtime their tasks run on.
pub(crate) struct NatsClient {
    /// `None` only while dropping.
    runtime: Option<tokio::runtime::Runtime>,
    pub(crate) client: async_nats::Client,
    pub(crate) jetstream: jetstream::Context,
}

pub(crate) fn unavailable(context: &str, error: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("{context}: {error}"))
}

impl NatsClient {
    /// Connects to the NATS server at `url`; the runtime's thread is named `thread`, and a
    /// JetStream request may take `timeout`.
    pub(crate) fn connect(url: &str, thread: &str, timeout: Duration) -> Result<Self, StoreError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(thread)
            .enable_all()
            .build()
            .map_err(|e| StoreError::io("start the NATS client's runtime", e))?;
        let client = runtime
            .block_on(async_nats::connect(url))
            .map_err(|e| unavailable(&format!("connect to {url}"), e))?;
        // The context spawns a task of its own: make it inside the runtime.
        let mut jetstream = {
            let _inside = runtime.enter();
            jetstream::new(client.clone())
        };
        jetstream.set_timeout(timeout);
        Ok(NatsClient {
            runtime: Some(runtime),
            client,
            jetstream,
        })
    }

    /// The client's runtime.
    pub(crate) fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime
            .as_ref()
            .expect("the runtime lives as long as the client")
    }

    /// Polls `future` where the returned future is polled (any executor: a baobab process, a
    /// thread's `block_on`), inside the client's runtime's context, so its timers and I/O are
    /// that runtime's: no task of its own, and no hop through the runtime's thread to start
    /// or to finish it.
    pub(crate) fn in_place<T: Send + 'static>(
        &self,
        future: impl Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> Pending<T> {
        let handle = self.runtime().handle().clone();
        let mut future = Box::pin(future);
        Box::pin(std::future::poll_fn(move |cx| {
            let _inside = handle.enter();
            future.as_mut().poll(cx)
        }))
    }

    /// Runs `future` on the client's runtime; the returned future waits for it from any
    /// executor (a baobab process, a thread's `block_on`).
    pub(crate) fn run<T: Send + 'static>(
        &self,
        future: impl Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> Pending<T> {
        let task = self.runtime().spawn(future);
        Box::pin(async move {
            task.await
                .unwrap_or_else(|error| Err(unavailable("a NATS client task", error)))
        })
    }
}

impl Drop for NatsClient {
    fn drop(&mut self) {
        // The last reference may go from a task of a tokio runtime (even this one), where
        // waiting for the runtime's threads is not allowed.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
