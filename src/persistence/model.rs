//! The model of an event-sourced actor: commands are decided against the state and yield
//! events; events are folded into the state, and that is the only way the state changes.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// An event-sourced actor: its state is the fold of its events.
///
/// The implementing type is the state. [`decide`](Self::decide) checks a command against it
/// and yields the events that record what happened (or a typed rejection, which records
/// nothing); [`apply`](Self::apply) folds one event into the state. Replaying the stored events
/// through `apply` from [`Default::default`] rebuilds the state, so `apply` must not fail and
/// must depend on nothing but the state and the event.
///
/// Events and snapshots are stored as JSON with a schema version
/// ([`EVENT_SCHEMA`](Self::EVENT_SCHEMA), [`SNAPSHOT_SCHEMA`](Self::SNAPSHOT_SCHEMA)); an event
/// or snapshot written with an older version goes through [`upcast_event`](Self::upcast_event)
/// or [`upcast_snapshot`](Self::upcast_snapshot) before it is read.
///
/// ```
/// use baobab::persistence::EventSourced;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Default, Serialize, Deserialize)]
/// struct Account { balance: i64 }
///
/// enum Command { Deposit(i64), Withdraw(i64) }
///
/// #[derive(Serialize, Deserialize)]
/// enum Event { Deposited(i64), Withdrew(i64) }
///
/// #[derive(Debug, PartialEq)]
/// enum Rejection { Insufficient { balance: i64 } }
///
/// impl EventSourced for Account {
///     const KIND: &'static str = "account";
///     type Command = Command;
///     type Event = Event;
///     type Rejection = Rejection;
///
///     fn decide(&self, command: &Command) -> Result<Vec<Event>, Rejection> {
///         match *command {
///             Command::Deposit(n) => Ok(vec![Event::Deposited(n)]),
///             Command::Withdraw(n) if n > self.balance => {
///                 Err(Rejection::Insufficient { balance: self.balance })
///             }
///             Command::Withdraw(n) => Ok(vec![Event::Withdrew(n)]),
///         }
///     }
///
///     fn apply(&mut self, event: &Event) {
///         match *event {
///             Event::Deposited(n) => self.balance += n,
///             Event::Withdrew(n) => self.balance -= n,
///         }
///     }
/// }
///
/// let mut account = Account::default();
/// for event in account.decide(&Command::Deposit(10)).unwrap() {
///     account.apply(&event);
/// }
/// assert_eq!(account.balance, 10);
/// assert_eq!(
///     account.decide(&Command::Withdraw(11)).err(),
///     Some(Rejection::Insufficient { balance: 10 })
/// );
/// ```
pub trait EventSourced: Default + Serialize + DeserializeOwned + Send + 'static {
    /// The actor type: names the streams of these actors in the store (see
    /// [`StreamId`](super::StreamId) for the naming rule).
    const KIND: &'static str;
    /// The schema version new events are written with.
    const EVENT_SCHEMA: u32 = 1;
    /// The schema version new snapshots are written with.
    const SNAPSHOT_SCHEMA: u32 = 1;

    /// What callers ask of an actor.
    type Command: Send + 'static;
    /// What happened, as stored.
    type Event: Serialize + DeserializeOwned + Send + 'static;
    /// Why a command was refused (it records nothing).
    type Rejection: Send + 'static;

    /// The events `command` yields against the current state, or why it is refused.
    fn decide(&self, command: &Self::Command) -> Result<Vec<Self::Event>, Self::Rejection>;

    /// Folds one event into the state.
    fn apply(&mut self, event: &Self::Event);

    /// Turns an event written with schema version `schema` (older than
    /// [`EVENT_SCHEMA`](Self::EVENT_SCHEMA)) into the current form. By default only the
    /// current version is readable: any other is refused with a message saying so.
    fn upcast_event(schema: u32, event: serde_json::Value) -> Result<serde_json::Value, String> {
        if schema == Self::EVENT_SCHEMA {
            Ok(event)
        } else {
            Err(format!(
                "event schema {schema} has no upcast to {} (implement EventSourced::upcast_event)",
                Self::EVENT_SCHEMA
            ))
        }
    }

    /// As [`upcast_event`](Self::upcast_event), for snapshots. A snapshot that cannot be read
    /// is not fatal: the actor replays from its first event instead, with a warning.
    fn upcast_snapshot(
        schema: u32,
        snapshot: serde_json::Value,
    ) -> Result<serde_json::Value, String> {
        if schema == Self::SNAPSHOT_SCHEMA {
            Ok(snapshot)
        } else {
            Err(format!(
                "snapshot schema {schema} has no upcast to {}",
                Self::SNAPSHOT_SCHEMA
            ))
        }
    }
}
