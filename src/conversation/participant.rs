//! Participants: the processes a conversation forwards its requests to.
//!
//! A participant is any process whose mailbox takes [`ParticipantRequest`]s and that answers
//! each with [`ParticipantRequest::reply`]. [`ParticipantBehaviour`] is the easy way to write
//! one: the conversation supervisor runs it in a process of its own
//! ([`spawn_with_participant`](super::ConversationSupervisor::spawn_with_participant)).

use std::sync::{Arc, OnceLock};

use super::ConversationId;
use super::core::Core;
use super::envelope::Envelope;
use crate::{Ctx, ExitReason, Message, Pid};

/// What a participant does with a request: `Some(reply)` or `None` (handled, no reply).
///
/// A behaviour runs inside a baobab process: it must not block the scheduler thread unless
/// [`blocking`](ParticipantBehaviour::blocking) says it does, in which case each request runs
/// on the blocking pool. A panic is the participant's crash: its exit reason is the panic
/// message and the conversation's crash policy takes over.
///
/// Closures implement it:
///
/// ```
/// use baobab::conversation::{Envelope, ParticipantBehaviour};
///
/// let echo = |request: &Envelope| Some(request.reply("echo.v1", request.payload.clone()));
/// let reply = echo.handle(&Envelope::new("echo.v1", "hi")).unwrap();
/// assert_eq!(reply.text(), Some("hi"));
/// ```
pub trait ParticipantBehaviour: Send + Sync + 'static {
    /// Handles one request.
    fn handle(&self, request: &Envelope) -> Option<Envelope>;

    /// Whether `handle` blocks (disk, network, long computation): it then runs on the
    /// runtime's blocking pool. `false` unless overridden.
    fn blocking(&self) -> bool {
        false
    }
}

impl<F> ParticipantBehaviour for F
where
    F: Fn(&Envelope) -> Option<Envelope> + Send + Sync + 'static,
{
    fn handle(&self, request: &Envelope) -> Option<Envelope> {
        self(request)
    }
}

/// Marks a behaviour as blocking: each request runs on the blocking pool.
///
/// ```
/// use baobab::conversation::{Blocking, Envelope, ParticipantBehaviour};
///
/// let slow = Blocking(|request: &Envelope| {
///     std::thread::sleep(std::time::Duration::from_millis(1));
///     Some(request.reply("slow.v1", "done"))
/// });
/// assert!(slow.blocking());
/// ```
pub struct Blocking<B>(pub B);

impl<B: ParticipantBehaviour> ParticipantBehaviour for Blocking<B> {
    fn handle(&self, request: &Envelope) -> Option<Envelope> {
        self.0.handle(request)
    }

    fn blocking(&self) -> bool {
        true
    }
}

/// A request forwarded to a participant. Answer it once with [`reply`](Self::reply); a
/// participant that exits without answering leaves it to the conversation's crash policy.
///
/// A process of the user's own can be a participant:
///
/// ```
/// use baobab::conversation::ParticipantRequest;
/// use baobab::{Ctx, Message};
///
/// async fn upper(mut ctx: Ctx<ParticipantRequest>) {
///     while let Message::User(request) = ctx.recv().await {
///         let text = request.envelope().text().unwrap_or("").to_uppercase();
///         let reply = request.envelope().reply("upper.v1", text);
///         request.reply(Some(reply));
///     }
/// }
/// # let _ = upper;
/// ```
pub struct ParticipantRequest {
    pub(crate) envelope: Envelope,
    pub(crate) seq: u64,
    pub(crate) core: Arc<Core>,
}

impl ParticipantRequest {
    /// The request.
    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    /// The conversation it comes from.
    pub fn conversation(&self) -> ConversationId {
        self.core.id
    }

    /// Answers the request: `Some(reply)` queues the reply in the conversation (a reply with
    /// no causal context inherits the request's); `None` says it was handled with no reply.
    /// An answer to a conversation that has ended, or to a request that was rerouted
    /// meanwhile, is dropped.
    pub fn reply(self, reply: Option<Envelope>) {
        self.core.deliver(self.seq, reply);
    }
}

impl std::fmt::Debug for ParticipantRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParticipantRequest")
            .field("conversation", &self.core.id)
            .field("envelope", &self.envelope)
            .finish()
    }
}

/// The process that runs a [`ParticipantBehaviour`] for one conversation.
///
/// It traps exits, so a crash of the conversation process does not take it down (the restarted
/// conversation links to it again); it stops when the conversation it serves stops it
/// (`shutdown` or `normal` from the conversation's current process) or when the conversation
/// supervisor goes (it monitors it). Any other exit signal (from an earlier incarnation of
/// the conversation, or from a stranger) is ignored.
pub(crate) async fn run(
    mut ctx: Ctx<ParticipantRequest>,
    behaviour: Arc<dyn ParticipantBehaviour>,
    supervisor: Pid,
    conversation: Arc<OnceLock<Arc<Core>>>,
) -> ExitReason {
    ctx.trap_exit(true);
    ctx.monitor(supervisor);
    loop {
        match ctx.recv().await {
            Message::User(request) => {
                let reply = if behaviour.blocking() {
                    let behaviour = Arc::clone(&behaviour);
                    let envelope = request.envelope.clone();
                    ctx.blocking(move || behaviour.handle(&envelope)).await
                } else {
                    behaviour.handle(&request.envelope)
                };
                request.reply(reply);
            }
            Message::Exit(signal) => {
                // The conversation is made after its participant: until it exists, no exit
                // signal can come from it.
                let from_current = conversation
                    .get()
                    .is_some_and(|core| core.current_pid() == Some(signal.from));
                let planned = matches!(
                    signal.reason,
                    ExitReason::Normal | ExitReason::Shutdown | ExitReason::ShutdownWith(_)
                );
                if from_current && planned {
                    return ExitReason::Shutdown;
                }
            }
            Message::Down(_) => return ExitReason::Shutdown,
        }
    }
}
