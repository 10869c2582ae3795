//! Conversation actors: request/reply envelopes forwarded to participant processes under a
//! crash policy.
//!
//! A conversation is a process that traps exits and links to its participants. Requests sent
//! through its [`ConversationHandle`] are forwarded to the first live participant, whose
//! behaviour may reply; replies queue in the conversation and are taken with `receive`, or
//! with `ask` (send, then wait for the reply to that request). When a participant exits, the
//! conversation's [`CrashPolicy`] decides what happens: `Fail`, `RouteToNext` or
//! `Compensate`. The conversation process is supervised: a crash restarts it at once and its
//! state (phase, queues, waiting receivers, log) survives, because it lives outside the
//! process.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use baobab::Runtime;
//! use baobab::conversation::{
//!     ChannelMode, ConversationError, ConversationSupervisor, CrashPolicy, Envelope,
//! };
//!
//! let rt = Runtime::new();
//! let conversations = ConversationSupervisor::start(rt.handle()).unwrap();
//! let (conversation, _) = conversations
//!     .spawn_with_participant(
//!         Arc::new(|request: &Envelope| match request.text() {
//!             Some("crash") => panic!("participant crashed"),
//!             _ => Some(request.reply("answer.v1", "42")),
//!         }),
//!         None,
//!         ChannelMode::Ephemeral,
//!         CrashPolicy::Fail,
//!     )
//!     .unwrap();
//! let timeout = Duration::from_secs(5);
//! assert_eq!(conversation.ask(Envelope::new("q.v1", "question"), timeout).unwrap().text(), Some("42"));
//! let crashed = conversation.ask(Envelope::new("q.v1", "crash"), timeout);
//! assert!(matches!(crashed, Err(ConversationError::ParticipantCrashed { .. })));
//! ```
//!
//! See `docs/conversations.md`.

mod actor;
mod config;
mod core;
mod envelope;
mod error;
mod handle;
mod participant;
mod phase;
mod slot;
mod supervisor;

pub use config::{
    ChannelMode, Compensation, ConversationConfig, ConversationId, Crash, CrashPolicy,
};
pub use envelope::{ANONYMOUS, CausalContext, Envelope, MessageId};
pub use error::ConversationError;
pub use handle::{ConversationHandle, ExitNotice, ParticipantExit};
pub use participant::{Blocking, ParticipantBehaviour, ParticipantRequest};
pub use phase::{ConversationState, LogEntry, ParticipantHealth, Phase};
pub use supervisor::{ConversationSupervisor, ConversationSupervisorBuilder, DEFAULT_LOG_LIMIT};
