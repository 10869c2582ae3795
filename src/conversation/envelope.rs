//! The unit a conversation carries: an [`Envelope`] with its payload bytes, schema, publisher,
//! time, id and causal context.

use std::fmt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

/// A message id: unique within this OS process (a counter) and, with high probability, across
/// processes (the high 64 bits are drawn once per process from the clock and the process id).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(u128);

impl MessageId {
    /// A fresh id.
    pub fn new() -> Self {
        static NONCE: OnceLock<u64> = OnceLock::new();
        static COUNTER: AtomicU64 = AtomicU64::new(1);
        let nonce = *NONCE.get_or_init(|| {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            // A 64-bit mix (splitmix64's finaliser) of the time and the process id.
            let mut x = nanos ^ (u64::from(std::process::id()) << 32);
            x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            x ^ (x >> 31)
        });
        let count = COUNTER.fetch_add(1, Ordering::Relaxed);
        MessageId((u128::from(nonce) << 64) | u128::from(count))
    }

    /// The id as a number.
    pub fn as_u128(self) -> u128 {
        self.0
    }

    /// An id from a number (as read back from a store or the wire).
    pub fn from_u128(id: u128) -> Self {
        MessageId(id)
    }
}

impl Default for MessageId {
    fn default() -> Self {
        MessageId::new()
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageId({self})")
    }
}

/// Where a message sits in a chain of causes: the trace it belongs to (the id of the message
/// that started the chain) and the message it answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CausalContext {
    /// The id of the first message of the chain.
    pub trace_id: MessageId,
    /// The id of the message this one answers.
    pub parent_id: MessageId,
}

/// The publisher id of an envelope that names none.
pub const ANONYMOUS: &str = "anonymous";

/// A message in a conversation: payload bytes and what describes them.
///
/// ```
/// use baobab::conversation::Envelope;
///
/// let request = Envelope::new("greeting.v1", "hello").with_publisher("alice");
/// let reply = request.reply("greeting.v1", "hello to you");
/// let causal = reply.causal.unwrap();
/// assert_eq!(causal.parent_id, request.message_id);
/// assert_eq!(causal.trace_id, request.message_id);
/// assert_eq!(reply.publisher_id, "anonymous");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// The message itself; cloning an envelope shares these bytes.
    pub payload: Bytes,
    /// What the payload is (a schema name and version, by convention `name.vN`).
    pub schema_id: String,
    /// Who sent it; [`ANONYMOUS`] unless set.
    pub publisher_id: String,
    /// When it was made.
    pub timestamp: SystemTime,
    /// Its own id.
    pub message_id: MessageId,
    /// The chain it belongs to, if any; replies made with [`Envelope::reply`] (or sent by a
    /// participant without one) inherit it.
    pub causal: Option<CausalContext>,
}

impl Envelope {
    /// An anonymous envelope with a fresh id, made now, with no causal context.
    pub fn new(schema_id: impl Into<String>, payload: impl Into<Bytes>) -> Self {
        Envelope {
            payload: payload.into(),
            schema_id: schema_id.into(),
            publisher_id: ANONYMOUS.to_string(),
            timestamp: SystemTime::now(),
            message_id: MessageId::new(),
            causal: None,
        }
    }

    /// Sets the publisher.
    pub fn with_publisher(mut self, publisher_id: impl Into<String>) -> Self {
        self.publisher_id = publisher_id.into();
        self
    }

    /// Sets the causal context.
    pub fn with_causal(mut self, causal: CausalContext) -> Self {
        self.causal = Some(causal);
        self
    }

    /// The causal context a reply to this envelope takes: the same trace (or one that starts
    /// here) with this envelope as parent.
    pub fn reply_context(&self) -> CausalContext {
        CausalContext {
            trace_id: self.causal.map_or(self.message_id, |c| c.trace_id),
            parent_id: self.message_id,
        }
    }

    /// A reply to this envelope: a new envelope whose causal context is
    /// [`reply_context`](Envelope::reply_context).
    pub fn reply(&self, schema_id: impl Into<String>, payload: impl Into<Bytes>) -> Envelope {
        Envelope::new(schema_id, payload).with_causal(self.reply_context())
    }

    /// The payload as UTF-8 text, if it is.
    pub fn text(&self) -> Option<&str> {
        std::str::from_utf8(&self.payload).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_ordered_within_a_process() {
        let a = MessageId::new();
        let b = MessageId::new();
        assert_ne!(a, b);
        assert!(a < b);
        assert_eq!(a.as_u128() >> 64, b.as_u128() >> 64);
    }

    #[test]
    fn replies_keep_the_trace_of_their_chain() {
        let first = Envelope::new("s", "1");
        let second = first.reply("s", "2");
        let third = second.reply("s", "3");
        let causal = third.causal.unwrap();
        assert_eq!(causal.trace_id, first.message_id);
        assert_eq!(causal.parent_id, second.message_id);
        assert_eq!(third.text(), Some("3"));
    }
}
