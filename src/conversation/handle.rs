//! [`ConversationHandle`]: what users hold to talk through a conversation.

use std::sync::Arc;
use std::time::Duration;

use super::ConversationId;
use super::core::{CloseSlot, Core, ExitSlot, ReplySlot};
use super::envelope::{Envelope, MessageId};
use super::error::ConversationError;
use super::phase::ConversationState;
use super::slot::Slot;
use crate::process::on_scheduler_thread;
use crate::{Ctx, ExitReason, Pid};

/// A cloneable, `Send + Sync` handle to one conversation.
///
/// The blocking methods (`receive`, `receive_timeout`, `ask`, `close`) are for threads
/// outside the runtime, and wait on the wall clock; inside a process use
/// [`receive_in`](Self::receive_in) and [`ask_in`](Self::ask_in), which wait on the runtime
/// clock without blocking a scheduler thread. When the last clone is dropped, the conversation
/// is closed.
///
/// A closed or failed conversation refuses every operation but
/// [`query_state`](Self::query_state): with [`ConversationError::Closed`], or with the
/// reason it failed.
#[derive(Clone)]
pub struct ConversationHandle {
    inner: Arc<Inner>,
}

struct Inner {
    core: Arc<Core>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if !self.core.is_final() {
            let _ = self.core.close(&Arc::new(Slot::new()));
        }
    }
}

impl std::fmt::Debug for ConversationHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ConversationHandle({})", self.inner.core.id)
    }
}

fn assert_not_on_scheduler(operation: &str) {
    assert!(
        !on_scheduler_thread(),
        "{operation} blocks: inside a process use an `_in` form, or `try_get`"
    );
}

impl ConversationHandle {
    pub(crate) fn new(core: Arc<Core>) -> Self {
        ConversationHandle {
            inner: Arc::new(Inner { core }),
        }
    }

    fn core(&self) -> &Arc<Core> {
        &self.inner.core
    }

    /// The conversation's id.
    pub fn id(&self) -> ConversationId {
        self.core().id
    }

    /// The conversation's current process (a new one after each restart).
    pub fn pid(&self) -> Result<Pid, ConversationError> {
        self.core().pid()
    }

    /// Sends a request: the conversation forwards it to its first live participant. Returns
    /// the request's id at once; the reply is taken with a receive.
    pub fn send(&self, request: Envelope) -> Result<MessageId, ConversationError> {
        let id = request.message_id;
        self.core().submit(request, None)?;
        Ok(id)
    }

    /// Takes the next reply, waiting as long as it takes (or until the conversation ends).
    ///
    /// # Panics
    /// On a scheduler thread (use [`receive_in`](Self::receive_in)).
    pub fn receive(&self) -> Result<Envelope, ConversationError> {
        assert_not_on_scheduler("ConversationHandle::receive");
        self.receive_blocking(None)
    }

    /// Takes the next reply, waiting up to `timeout`. A receive that times out withdraws: the
    /// next reply goes to the next receive.
    ///
    /// # Panics
    /// On a scheduler thread (use [`receive_in`](Self::receive_in)).
    pub fn receive_timeout(&self, timeout: Duration) -> Result<Envelope, ConversationError> {
        assert_not_on_scheduler("ConversationHandle::receive_timeout");
        self.receive_blocking(Some(timeout))
    }

    fn receive_blocking(&self, timeout: Option<Duration>) -> Result<Envelope, ConversationError> {
        let slot: ReplySlot = Arc::new(Slot::new());
        match self.core().receive_or_wait(&slot)? {
            Some(reply) => Ok(reply),
            None => self.wait_blocking(&slot, timeout),
        }
    }

    /// Sends `request` and waits up to `timeout` for the reply to it (not for any reply: other
    /// replies stay for other receives).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use baobab::Runtime;
    /// use baobab::conversation::{ChannelMode, ConversationSupervisor, CrashPolicy, Envelope};
    ///
    /// let rt = Runtime::new();
    /// let conversations = ConversationSupervisor::start(rt.handle()).unwrap();
    /// let (conversation, _participant) = conversations
    ///     .spawn_with_participant(
    ///         Arc::new(|request: &Envelope| Some(request.reply("pong.v1", "pong"))),
    ///         None,
    ///         ChannelMode::Ephemeral,
    ///         CrashPolicy::Fail,
    ///     )
    ///     .unwrap();
    /// let reply = conversation.ask(Envelope::new("ping.v1", "ping"), Duration::from_secs(5)).unwrap();
    /// assert_eq!(reply.text(), Some("pong"));
    /// conversation.close().unwrap();
    /// ```
    ///
    /// # Panics
    /// On a scheduler thread (use [`ask_in`](Self::ask_in)).
    pub fn ask(&self, request: Envelope, timeout: Duration) -> Result<Envelope, ConversationError> {
        assert_not_on_scheduler("ConversationHandle::ask");
        let slot: ReplySlot = Arc::new(Slot::new());
        self.core().submit(request, Some(&slot))?;
        self.wait_blocking(&slot, Some(timeout))
    }

    fn wait_blocking(
        &self,
        slot: &ReplySlot,
        timeout: Option<Duration>,
    ) -> Result<Envelope, ConversationError> {
        if !slot.wait(Core::wait_deadline(timeout)) && self.core().withdraw(slot) {
            return Err(ConversationError::ReceiveTimeout);
        }
        // Filled (before the timeout, or while it was being withdrawn).
        slot.take()
            .expect("a waiter that was not withdrawn has been answered")
    }

    /// [`receive_timeout`](Self::receive_timeout) from inside a process (`None`: no timeout);
    /// the timeout is on the runtime clock. Dropping the future withdraws it, handing back a
    /// reply it had been given.
    pub async fn receive_in<M: Send + 'static>(
        &self,
        ctx: &mut Ctx<M>,
        timeout: Option<Duration>,
    ) -> Result<Envelope, ConversationError> {
        let slot: ReplySlot = Arc::new(Slot::new());
        match self.core().receive_or_wait(&slot)? {
            Some(reply) => Ok(reply),
            None => self.wait_in(ctx, slot, timeout).await,
        }
    }

    /// [`ask`](Self::ask) from inside a process; the timeout is on the runtime clock.
    pub async fn ask_in<M: Send + 'static>(
        &self,
        ctx: &mut Ctx<M>,
        request: Envelope,
        timeout: Duration,
    ) -> Result<Envelope, ConversationError> {
        let slot: ReplySlot = Arc::new(Slot::new());
        self.core().submit(request, Some(&slot))?;
        self.wait_in(ctx, slot, Some(timeout)).await
    }

    async fn wait_in<M: Send + 'static>(
        &self,
        ctx: &mut Ctx<M>,
        slot: ReplySlot,
        timeout: Option<Duration>,
    ) -> Result<Envelope, ConversationError> {
        let deadline = timeout.map(|t| ctx.deadline(t));
        let mut waiting = Waiting {
            core: self.core(),
            slot,
            done: false,
        };
        let answer = ctx
            .wait_ready(deadline, |cx| waiting.slot.poll_take(cx))
            .await;
        waiting.done = true;
        match answer {
            Some(answer) => answer,
            None if self.core().withdraw(&waiting.slot) => Err(ConversationError::ReceiveTimeout),
            None => waiting
                .slot
                .take()
                .expect("a waiter that was not withdrawn has been answered"),
        }
    }

    /// Closes the conversation: it takes no new requests (`Completing`), stops the
    /// participants it spawned, unlinks the others, and ends `Closed`. Returns the replies that
    /// arrived and were never received, so closing loses none. Pending receives return
    /// [`ConversationError::Closed`].
    ///
    /// # Panics
    /// On a scheduler thread (use [`close_in`](Self::close_in)).
    pub fn close(&self) -> Result<Vec<Envelope>, ConversationError> {
        assert_not_on_scheduler("ConversationHandle::close");
        let slot: CloseSlot = Arc::new(Slot::new());
        self.core().close(&slot)?;
        slot.wait(None);
        slot.take().expect("waited until filled")
    }

    /// [`close`](Self::close) from inside a process.
    pub async fn close_in<M: Send + 'static>(
        &self,
        ctx: &mut Ctx<M>,
    ) -> Result<Vec<Envelope>, ConversationError> {
        let slot: CloseSlot = Arc::new(Slot::new());
        self.core().close(&slot)?;
        ctx.wait_ready(None, |cx| slot.poll_take(cx))
            .await
            .expect("no deadline: only the fill ends the wait")
    }

    /// A snapshot of the conversation: phase, process, participants' health, the context log.
    /// Answers in every phase, so a failed conversation can tell why.
    pub fn query_state(&self) -> ConversationState {
        self.core().snapshot()
    }

    /// A notice that fires when `participant` exits (at once if it already has). It ends with
    /// an error if the conversation ends first.
    pub fn on_participant_exit(&self, participant: Pid) -> Result<ExitNotice, ConversationError> {
        Ok(ExitNotice {
            slot: self.core().on_participant_exit(participant)?,
        })
    }
}

/// Withdraws an abandoned `receive_in`/`ask_in` (its future dropped mid-wait), handing back a
/// reply it was given meanwhile.
struct Waiting<'a> {
    core: &'a Arc<Core>,
    slot: ReplySlot,
    done: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if !self.done
            && !self.core.withdraw(&self.slot)
            && let Some(Ok(reply)) = self.slot.take()
        {
            self.core.put_back(reply);
        }
    }
}

/// A participant's exit, as its conversation saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParticipantExit {
    /// The participant.
    pub participant: Pid,
    /// Its exit reason (`noproc` if it was dead before the conversation linked to it).
    pub reason: ExitReason,
    /// When the conversation saw the exit (runtime clock).
    pub at: Duration,
}

/// Fires when a participant exits: see [`ConversationHandle::on_participant_exit`].
pub struct ExitNotice {
    slot: ExitSlot,
}

impl std::fmt::Debug for ExitNotice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExitNotice")
    }
}

impl ExitNotice {
    /// The exit, if it has happened.
    pub fn try_get(&self) -> Option<Result<ParticipantExit, ConversationError>> {
        self.slot.peek()
    }

    /// Blocks until the participant exits (or the conversation ends).
    ///
    /// # Panics
    /// On a scheduler thread.
    pub fn wait(&self) -> Result<ParticipantExit, ConversationError> {
        assert_not_on_scheduler("ExitNotice::wait");
        self.slot.wait(None);
        self.slot.peek().expect("waited until filled")
    }

    /// Blocks up to `timeout`; `None` if nothing happened by then.
    ///
    /// # Panics
    /// On a scheduler thread.
    pub fn wait_timeout(
        &self,
        timeout: Duration,
    ) -> Option<Result<ParticipantExit, ConversationError>> {
        assert_not_on_scheduler("ExitNotice::wait_timeout");
        self.slot.wait(Core::wait_deadline(Some(timeout)));
        self.slot.peek()
    }
}
