//! Event stores: where an event-sourced actor's events and snapshots live.
//!
//! One trait, [`EventStore`], with three implementations: [`MemoryStore`] (tests), the
//! embedded durable [`FileStore`] (the default) and, with feature `nats`, NATS JetStream. A
//! store keeps one *stream* per actor ([`StreamId`]: the actor type and its id). Events in a
//! stream are numbered from 1 with no gaps: the number of the last one is the stream's
//! *version*. Every append states the version it expects; when the stream moved on (another
//! writer got there first), the append fails with [`StoreError::Conflict`] and writes nothing.

mod file;
mod memory;
#[cfg(feature = "nats")]
mod nats;
#[cfg(feature = "nats")]
pub(crate) mod nats_client;

use std::fmt;

pub use file::{FileStore, FileStoreConfig, Fsync};
pub use memory::MemoryStore;
#[cfg(feature = "nats")]
pub use nats::{NatsStore, NatsStoreConfig};

/// The longest actor type or id a stream may have, in bytes.
pub const MAX_NAME_LEN: usize = 128;

/// The largest event or snapshot payload a store accepts, in bytes (16 MiB).
pub const MAX_PAYLOAD_LEN: usize = 16 << 20;

/// The stream of one actor: its type (`kind`, e.g. `"account"`) and its id.
///
/// Both are 1 to [`MAX_NAME_LEN`] bytes of ASCII letters, digits, `-` and `_`: the same rule
/// for every store, so a stream's name is a file-safe and NATS-subject-safe token everywhere.
///
/// ```
/// use baobab::persistence::StreamId;
///
/// let stream = StreamId::new("account", "alice-42").unwrap();
/// assert_eq!(stream.to_string(), "account/alice-42");
/// assert!(StreamId::new("account", "alice.42").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId {
    kind: String,
    id: String,
}

impl StreamId {
    /// The stream of actor `id` of type `kind`, if both names are valid.
    pub fn new(kind: impl Into<String>, id: impl Into<String>) -> Result<Self, StoreError> {
        let (kind, id) = (kind.into(), id.into());
        check_name(&kind)?;
        check_name(&id)?;
        Ok(StreamId { kind, id })
    }

    /// The actor type.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The actor id.
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind, self.id)
    }
}

/// Checks an actor type or id against the naming rule of [`StreamId`].
pub fn check_name(name: &str) -> Result<(), StoreError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(StoreError::InvalidName(name.chars().take(160).collect()))
    }
}

/// An event to append: its schema version and its serialised form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// The schema version the payload was written with.
    pub schema: u32,
    /// The serialised event (JSON for the actors of this crate).
    pub payload: Vec<u8>,
}

/// An event as stored: its number in the stream, its schema version and its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    /// Its number in the stream, from 1.
    pub version: u64,
    /// The schema version the payload was written with.
    pub schema: u32,
    /// The serialised event.
    pub payload: Vec<u8>,
}

/// A snapshot: the state after event `version`, serialised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The version of the last event folded into it.
    pub version: u64,
    /// The schema version the payload was written with.
    pub schema: u32,
    /// The serialised state.
    pub payload: Vec<u8>,
}

/// What a store can fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum StoreError {
    /// The stream's version was not the one the append expected: nothing was written.
    #[error("version conflict on {stream}: expected version {expected}, the stream is at {actual}")]
    Conflict {
        /// The stream.
        stream: String,
        /// The version the append expected.
        expected: u64,
        /// The stream's version.
        actual: u64,
    },
    /// An actor type or id breaks the naming rule of [`StreamId`].
    #[error("invalid actor type or id {0:?}: 1 to 128 bytes of ASCII letters, digits, '-' and '_'")]
    InvalidName(String),
    /// A payload over [`MAX_PAYLOAD_LEN`].
    #[error("payload of {len} bytes is over the limit of {limit} bytes")]
    TooLarge {
        /// The payload's length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// Stored data failed its checksum or could not be decoded.
    #[error("corrupt store data: {0}")]
    Corrupt(String),
    /// The store could not be read or written (a file system error, a lost connection).
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

impl StoreError {
    pub(crate) fn io(context: &str, error: std::io::Error) -> Self {
        StoreError::Unavailable(format!("{context}: {error}"))
    }
}

/// Where event-sourced actors keep their events and snapshots.
///
/// Methods block the calling thread (a file write, a network round trip); the virtual actors
/// call them on the runtime's blocking pool. Implementations must be safe to share between
/// threads, and every method is atomic: an append writes all of its events or none.
pub trait EventStore: Send + Sync + 'static {
    /// Appends `events` to `stream` if its version is `expected` (0 for a new stream), and
    /// returns the new version; [`StoreError::Conflict`] writes nothing. An empty `events`
    /// checks the version and returns it.
    fn append(
        &self,
        stream: &StreamId,
        expected: u64,
        events: &[NewEvent],
    ) -> Result<u64, StoreError>;

    /// The events of `stream` after version `after`, in order: at most `max` of them.
    fn read(
        &self,
        stream: &StreamId,
        after: u64,
        max: usize,
    ) -> Result<Vec<EventRecord>, StoreError>;

    /// The version of `stream`: the number of its last event, 0 if it has none.
    fn version(&self, stream: &StreamId) -> Result<u64, StoreError>;

    /// Keeps `snapshot` as the latest snapshot of `stream` (replacing an older one). A
    /// snapshot of a version the stream has not reached is refused as corrupt.
    fn save_snapshot(&self, stream: &StreamId, snapshot: &Snapshot) -> Result<(), StoreError>;

    /// The latest snapshot of `stream`, if any.
    fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError>;

    /// [`append`](Self::append) as a future that needs no thread of its caller's to wait on,
    /// for a store whose client is asynchronous: the virtual actors await it in place of
    /// running `append` on the blocking pool, which spares two thread hand-overs per
    /// command. `Err` with the events (the default): use `append`.
    fn append_without_blocking(
        &self,
        stream: &StreamId,
        expected: u64,
        events: Vec<NewEvent>,
    ) -> Result<Pending<u64>, Vec<NewEvent>> {
        let _ = (stream, expected);
        Err(events)
    }
}

/// A store operation under way, for [`EventStore::append_without_blocking`]: any executor may
/// poll it (it is driven by the store's own runtime and only wakes its poller).
pub type Pending<T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, StoreError>> + Send>>;

/// `Ok` if a stream at version `actual` takes an append that expects `expected`.
pub(crate) fn check_expected(
    stream: &StreamId,
    expected: u64,
    actual: u64,
) -> Result<(), StoreError> {
    if actual == expected {
        Ok(())
    } else {
        Err(StoreError::Conflict {
            stream: stream.to_string(),
            expected,
            actual,
        })
    }
}

/// Checks every payload of an append against [`MAX_PAYLOAD_LEN`]; returns their size framed
/// as the stores frame them (8 bytes of schema and length each).
pub(crate) fn check_events(events: &[NewEvent]) -> Result<usize, StoreError> {
    events.iter().try_fold(0usize, |size, event| {
        check_payload(event.payload.len())?;
        Ok(size.saturating_add(8 + event.payload.len()))
    })
}

pub(crate) fn check_payload(len: usize) -> Result<(), StoreError> {
    if len > MAX_PAYLOAD_LEN {
        Err(StoreError::TooLarge {
            len,
            limit: MAX_PAYLOAD_LEN,
        })
    } else {
        Ok(())
    }
}
