//! Calls: a request carrying a [`ReplyTo`] (the caller and a fresh reference), a monitor on
//! the callee, and a wait for the reply with that reference, the callee's `Down`, or the
//! timeout, whichever comes first. The `server` module builds the gen_server form on it.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use super::addr::{Addr, SendError};
use super::cell::ProcessCell;
use super::context::Ctx;
use super::mailbox::{Mail, payload, unwrap_payload};
use super::receive::Select;
use crate::pid::{Pid, Ref};
use crate::signal::{ExitReason, MonitorRef};

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
            value: payload(value),
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
        let request = Mail::User(payload(request(reply_to)));
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
                Ok(unwrap_payload::<R>(value)
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
}
