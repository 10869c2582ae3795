//! Blocking work owned by a process: [`Ctx::blocking`] and [`Ctx::spawn_blocking`] run it on
//! the runtime's blocking pool (the BEAM's dirty schedulers). Its result comes back to the
//! process (the `await` resumes, or a message); its panic becomes the process's exit with
//! reason `panic`. If the process exits first, the work is abandoned: it runs to its end and
//! its result is dropped (a thread cannot be killed safely).

use std::future::poll_fn;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;

use super::context::Ctx;
use super::mailbox::{Mail, payload};
use crate::signal::ExitReason;
use crate::signal::reason::panic_message;
use crate::signal::rules::SignalKind;

impl<M: Send + 'static> Ctx<M> {
    /// Runs `work` on the blocking pool and waits for its result without holding a scheduler
    /// thread. A panic in `work` ends this process with reason `panic`.
    ///
    /// ```
    /// let rt = baobab::Runtime::new();
    /// let n = rt.block_on(|mut ctx: baobab::Ctx<()>| async move {
    ///     ctx.blocking(|| { std::thread::sleep(std::time::Duration::from_millis(1)); 7 }).await
    /// });
    /// assert_eq!(n.unwrap(), 7);
    /// ```
    pub async fn blocking<T: Send + 'static>(
        &mut self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> T {
        let slot: Arc<Mutex<Option<std::thread::Result<T>>>> = Arc::default();
        let filled = Arc::clone(&slot);
        let owner = Arc::downgrade(&self.cell);
        self.shared().blocking.spawn(Box::new(move || {
            let result = catch_unwind(AssertUnwindSafe(work));
            *filled.lock().unwrap_or_else(PoisonError::into_inner) = Some(result);
            if let Some(cell) = owner.upgrade() {
                cell.schedule();
            }
        }));
        let this = &mut *self;
        poll_fn(move |_| {
            let result = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
            match result {
                Some(Ok(value)) => Poll::Ready(value),
                Some(Err(payload)) => this.stop(ExitReason::Panic(panic_message(&*payload))),
                None => Poll::Pending,
            }
        })
        .await
    }

    /// Runs `work` on the blocking pool and sends `into_message(result)` to this process when it
    /// is done: the way for a [`Behaviour`](crate::Behaviour) to do blocking work. A panic in
    /// `work` ends this process with reason `panic`.
    pub fn spawn_blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
        into_message: impl FnOnce(T) -> M + Send + 'static,
    ) {
        let owner = Arc::downgrade(&self.cell);
        let pid = self.pid();
        self.shared().blocking.spawn(Box::new(move || {
            let result = catch_unwind(AssertUnwindSafe(work));
            let Some(cell) = owner.upgrade() else { return };
            match result {
                Ok(value) => {
                    let envelope = Mail::User(payload(into_message(value)));
                    let _ = cell.shared.send(pid, envelope);
                }
                Err(payload) => {
                    let reason = ExitReason::Panic(panic_message(&*payload));
                    cell.signal_exit(pid, &reason, SignalKind::Forced);
                }
            }
        }));
    }
}
