//! `NatsStore`: events in NATS JetStream (feature `nats`), with the maintained client,
//! async-nats, on a small tokio runtime of the store's own.
//!
//! # Layout
//! - One JetStream stream per actor type, `{PREFIX}_{kind}` (file storage), taking the
//!   subjects `{prefix}.{kind}.*`; one subject per actor id, `{prefix}.{kind}.{id}`.
//! - One message per append: its events framed one after the other (`schema: u32 LE |
//!   len: u32 LE | bytes`), with the headers `Baobab-First` (the version of its first event)
//!   and `Baobab-Count`. An append's events are one message, so they are stored whole or not
//!   at all.
//! - Optimistic concurrency: an append is published with `Nats-Expected-Last-Subject-Sequence`
//!   set to the stream sequence of the id's last message (0 for a new id), so JetStream
//!   refuses it if another writer appended first; the store reports the refusal as
//!   [`StoreError::Conflict`].
//! - Snapshots in a second stream per actor type, `{PREFIX}_{kind}_SNAPSHOTS`, subject
//!   `{prefix}_snap.{kind}.{id}`, keeping one message per subject: `version: u64 LE |
//!   schema: u32 LE | sequence: u64 LE | payload` (`sequence`: the events stream's message
//!   holding the snapshot's last event, where a replay after it starts). A snapshot replaces
//!   the previous one by compare-and-set on the subject's last sequence, so an older snapshot
//!   never replaces a newer one.
//!
//! A message is limited by the server's `max_payload` (1 MiB by default): a larger append or
//! snapshot fails with [`StoreError::TooLarge`] naming that limit.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream;
use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::consumer::pull::OrderedConfig;
use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::publish::PublishAck;
use async_nats::jetstream::stream::{Config as StreamConfig, LastRawMessageErrorKind, StorageType};
use bytes::{BufMut, Bytes, BytesMut};
use futures_util::StreamExt;

use super::nats_client::{NatsClient, unavailable};
use super::{
    EventRecord, EventStore, NewEvent, Pending, Snapshot, StoreError, StreamId, check_events,
    check_expected, check_name, check_payload,
};
use crate::persistence::lock;

const FIRST: &str = "Baobab-First";
const COUNT: &str = "Baobab-Count";

/// How a [`NatsStore`] names what it creates in JetStream.
#[derive(Debug, Clone)]
pub struct NatsStoreConfig {
    /// The prefix of stream names (upper-cased) and subjects; `baobab` by default.
    /// Stores with different prefixes on one server do not see each other's data.
    pub prefix: String,
    /// How long one JetStream request may take; 10 s by default.
    pub timeout: Duration,
}

impl Default for NatsStoreConfig {
    fn default() -> Self {
        NatsStoreConfig {
            prefix: "baobab".into(),
            timeout: Duration::from_secs(10),
        }
    }
}

/// An [`EventStore`] in NATS JetStream (see the module's documentation for the layout).
///
/// ```no_run
/// use baobab::persistence::{EventStore, NatsStore, NatsStoreConfig, NewEvent, StreamId};
///
/// let store = NatsStore::connect("nats://127.0.0.1:4222", NatsStoreConfig::default()).unwrap();
/// let stream = StreamId::new("account", "alice").unwrap();
/// let version = store.version(&stream).unwrap();
/// let event = NewEvent { schema: 1, payload: br#"{"Deposited":5}"#.to_vec() };
/// store.append(&stream, version, &[event]).unwrap();
/// ```
pub struct NatsStore {
    client: NatsClient,
    nats: Arc<Nats>,
}

/// The client and what the store remembers, shared with the appends it runs as tasks.
struct Nats {
    jetstream: jetstream::Context,
    config: NatsStoreConfig,
    /// Actor types whose streams exist.
    ready: Mutex<HashSet<String>>,
    /// Per stream, what this store last saw of it: its version and the sequence of its last
    /// message, and where earlier appends start (first version → sequence), so reads need
    /// not start at the stream's beginning.
    seen: Mutex<HashMap<StreamId, Seen>>,
}

impl std::fmt::Debug for NatsStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsStore")
            .field("config", &self.nats.config)
            .finish_non_exhaustive()
    }
}

/// How many append starts a store remembers per stream (at least; at most twice as many).
const STARTS_KEPT: usize = 64;

/// How many streams a store remembers; past that it forgets them all and asks JetStream
/// again.
const STREAMS_KEPT: usize = 100_000;

#[derive(Default, Clone)]
struct Seen {
    /// Whether `version` and `sequence` were read from JetStream or written by this store
    /// (a stream with no message is known at version 0, sequence 0).
    known: bool,
    version: u64,
    sequence: u64,
    /// (first version of an append, its stream sequence), in order.
    starts: Vec<(u64, u64)>,
}

impl Seen {
    fn record(&mut self, first: u64, count: u64, sequence: u64) {
        self.hint(first, sequence);
        if !self.known || first + count > self.version {
            self.known = true;
            self.version = first + count - 1;
            self.sequence = sequence;
        }
    }

    /// Notes that the message at `sequence` holds event `first` (and perhaps later ones).
    /// Only the latest [`STARTS_KEPT`] are kept: a read from further back starts at the
    /// stream's beginning.
    fn hint(&mut self, first: u64, sequence: u64) {
        if let Err(i) = self.starts.binary_search_by_key(&first, |&(f, _)| f) {
            self.starts.insert(i, (first, sequence));
            if self.starts.len() > 2 * STARTS_KEPT {
                self.starts.drain(..STARTS_KEPT);
            }
        }
    }

    /// The sequence to read from for the events after `after`: the start of the append
    /// holding event `after + 1`, as far as this store knows.
    fn start_for(&self, after: u64) -> u64 {
        let i = self
            .starts
            .partition_point(|&(first, _)| first <= after + 1);
        if i == 0 { 1 } else { self.starts[i - 1].1 }
    }
}

impl NatsStore {
    /// Connects to the NATS server at `url` (with JetStream enabled).
    pub fn connect(url: &str, config: NatsStoreConfig) -> Result<Self, StoreError> {
        check_name(&config.prefix)?;
        let client = NatsClient::connect(url, "baobab-nats", config.timeout)?;
        Ok(NatsStore {
            nats: Arc::new(Nats {
                jetstream: client.jetstream.clone(),
                config,
                ready: Mutex::new(HashSet::new()),
                seen: Mutex::new(HashMap::new()),
            }),
            client,
        })
    }
}

impl Nats {
    fn stream_name(&self, kind: &str) -> String {
        format!("{}_{kind}", self.config.prefix.to_uppercase())
    }

    fn snapshot_stream_name(&self, kind: &str) -> String {
        format!("{}_{kind}_SNAPSHOTS", self.config.prefix.to_uppercase())
    }

    fn snapshot_subject(&self, stream: &StreamId) -> String {
        format!(
            "{}_snap.{}.{}",
            self.config.prefix,
            stream.kind(),
            stream.id()
        )
    }

    /// The id's latest snapshot message: (snapshot, sequence of the append holding its last
    /// event, the message's own sequence in the snapshot stream).
    async fn last_snapshot(
        &self,
        stream: &StreamId,
    ) -> Result<Option<(Snapshot, u64, u64)>, StoreError> {
        self.ensure(stream.kind()).await?;
        let snapshots = self
            .js_stream(self.snapshot_stream_name(stream.kind()))
            .await?;
        match snapshots
            .get_last_raw_message_by_subject(&self.snapshot_subject(stream))
            .await
        {
            Ok(message) => {
                let (snapshot, sequence) = decode_snapshot(&message.payload)
                    .map_err(|why| StoreError::Corrupt(format!("{stream}: snapshot {why}")))?;
                Ok(Some((snapshot, sequence, message.sequence)))
            }
            Err(error) if error.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(error) => Err(unavailable("read a snapshot", error)),
        }
    }

    fn subject(&self, stream: &StreamId) -> String {
        format!("{}.{}.{}", self.config.prefix, stream.kind(), stream.id())
    }

    /// The events stream and the snapshot stream of `kind`, created if missing.
    async fn ensure(&self, kind: &str) -> Result<(), StoreError> {
        if lock(&self.ready).contains(kind) {
            return Ok(());
        }
        self.jetstream
            .get_or_create_stream(StreamConfig {
                name: self.stream_name(kind),
                subjects: vec![format!("{}.{kind}.*", self.config.prefix)],
                storage: StorageType::File,
                ..StreamConfig::default()
            })
            .await
            .map_err(|e| unavailable("create the JetStream stream", e))?;
        self.jetstream
            .get_or_create_stream(StreamConfig {
                name: self.snapshot_stream_name(kind),
                subjects: vec![format!("{}_snap.{kind}.*", self.config.prefix)],
                storage: StorageType::File,
                // Only the latest snapshot of each id is kept.
                max_messages_per_subject: 1,
                ..StreamConfig::default()
            })
            .await
            .map_err(|e| unavailable("create the snapshot stream", e))?;
        lock(&self.ready).insert(kind.to_owned());
        Ok(())
    }

    /// The id's last message as JetStream has it now: (version, sequence), (0, 0) if none.
    async fn last(&self, stream: &StreamId) -> Result<(u64, u64), StoreError> {
        self.ensure(stream.kind()).await?;
        let js_stream = self.js_stream(self.stream_name(stream.kind())).await?;
        match js_stream
            .get_last_raw_message_by_subject(&self.subject(stream))
            .await
        {
            Ok(message) => {
                let (first, count) = append_headers(&message.headers).ok_or_else(|| {
                    StoreError::Corrupt(format!(
                        "{stream}: message {} has no Baobab-First/Baobab-Count headers",
                        message.sequence
                    ))
                })?;
                self.seen_mut(stream, |seen| seen.record(first, count, message.sequence));
                Ok((first + count - 1, message.sequence))
            }
            Err(error) if error.kind() == LastRawMessageErrorKind::NoMessageFound => {
                self.seen_mut(stream, |seen| seen.known = true);
                Ok((0, 0))
            }
            Err(error) => Err(unavailable("read the last message", error)),
        }
    }

    /// A JetStream stream by name, without asking the server for its info.
    async fn js_stream(&self, name: String) -> Result<jetstream::stream::Stream<()>, StoreError> {
        self.jetstream
            .get_stream_no_info(name)
            .await
            .map_err(|e| unavailable("open a JetStream stream", e))
    }

    fn seen_mut<T>(&self, stream: &StreamId, f: impl FnOnce(&mut Seen) -> T) -> T {
        let mut seen = lock(&self.seen);
        if seen.len() >= STREAMS_KEPT && !seen.contains_key(stream) {
            seen.clear();
        }
        f(seen.entry(stream.clone()).or_default())
    }

    async fn append_async(
        &self,
        stream: &StreamId,
        expected: u64,
        events: &[NewEvent],
    ) -> Result<u64, StoreError> {
        self.ensure(stream.kind()).await?;
        // What this store saw last, if it is the version the caller expects: publish on it
        // without asking; JetStream refuses the append if another writer got there first.
        let known = {
            let seen = lock(&self.seen);
            seen.get(stream)
                .filter(|s| s.known && s.version == expected)
                .map(|s| (s.version, s.sequence))
        };
        let (actual, sequence) = match known {
            Some(known) => known,
            None => self.last(stream).await?,
        };
        check_expected(stream, expected, actual)?;
        if events.is_empty() {
            return Ok(actual);
        }
        let mut payload = BytesMut::new();
        for event in events {
            payload.put_u32_le(event.schema);
            payload.put_u32_le(event.payload.len() as u32);
            payload.put_slice(&event.payload);
        }
        let first = expected + 1;
        let publish = PublishMessage::build()
            .payload(payload.freeze())
            .header(FIRST, first.to_string().as_str())
            .header(COUNT, events.len().to_string().as_str())
            .expected_last_subject_sequence(sequence);
        match self.publish(self.subject(stream), publish).await {
            Ok(ack) => {
                let count = events.len() as u64;
                self.seen_mut(stream, |seen| seen.record(first, count, ack.sequence));
                Ok(expected + count)
            }
            Err(error) if error.kind() == PublishErrorKind::WrongLastSequence => {
                let (actual, _) = self.last(stream).await?;
                check_expected(stream, expected, actual)?;
                // Refused although the version is the one expected: the message that moved
                // the subject on was deleted since. Nothing was written: still a conflict.
                Err(StoreError::Conflict {
                    stream: stream.to_string(),
                    expected,
                    actual,
                })
            }
            Err(error) if error.kind() == PublishErrorKind::MaxPayloadExceeded => {
                Err(StoreError::TooLarge {
                    len: events.iter().map(|e| e.payload.len() + 8).sum(),
                    limit: self.max_payload(),
                })
            }
            Err(error) => Err(unavailable("publish an append", error)),
        }
    }

    /// Publishes `message` to `subject` and waits for JetStream's ack.
    async fn publish(
        &self,
        subject: String,
        message: PublishMessage,
    ) -> Result<PublishAck, PublishError> {
        self.jetstream.send_publish(subject, message).await?.await
    }

    fn max_payload(&self) -> usize {
        self.jetstream.client().server_info().max_payload
    }

    async fn read_async(
        &self,
        stream: &StreamId,
        after: u64,
        max: usize,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let (version, last_sequence) = self.last(stream).await?;
        if version <= after || max == 0 {
            return Ok(Vec::new());
        }
        let start = self.seen_mut(stream, |seen| seen.start_for(after));
        let js_stream = self.js_stream(self.stream_name(stream.kind())).await?;
        let consumer = js_stream
            .create_consumer(OrderedConfig {
                filter_subject: self.subject(stream),
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: start,
                },
                ..OrderedConfig::default()
            })
            .await
            .map_err(|e| unavailable("create a reader", e))?;
        let mut messages = consumer
            .messages()
            .await
            .map_err(|e| unavailable("read the stream", e))?;
        let mut events = Vec::new();
        let mut expect = None;
        while events.len() < max {
            let message = tokio::time::timeout(self.config.timeout, messages.next())
                .await
                .map_err(|_| unavailable("read the stream", "timed out"))?
                .ok_or_else(|| unavailable("read the stream", "the reader ended"))?
                .map_err(|e| unavailable("read the stream", e))?;
            let sequence = message
                .info()
                .map_err(|e| unavailable("read a message's sequence", e))?
                .stream_sequence;
            let (first, count) = message
                .headers
                .as_ref()
                .and_then(append_headers)
                .ok_or_else(|| {
                    StoreError::Corrupt(format!(
                        "{stream}: message {sequence} has no Baobab-First/Baobab-Count headers"
                    ))
                })?;
            if let Some(expected) = expect
                && first != expected
            {
                return Err(StoreError::Corrupt(format!(
                    "{stream}: message {sequence} starts at version {first}, expected {expected}"
                )));
            }
            expect = Some(first + count);
            self.seen_mut(stream, |seen| seen.record(first, count, sequence));
            let records = decode_events(&message.payload, first, count).map_err(|why| {
                StoreError::Corrupt(format!("{stream}: message {sequence}: {why}"))
            })?;
            events.extend(
                records
                    .into_iter()
                    .filter(|r| r.version > after)
                    .take(max - events.len()),
            );
            if sequence >= last_sequence {
                break;
            }
        }
        Ok(events)
    }

    async fn save_snapshot_async(
        &self,
        stream: &StreamId,
        snapshot: &Snapshot,
    ) -> Result<(), StoreError> {
        let (version, _) = self.last(stream).await?;
        if snapshot.version > version {
            return Err(StoreError::Corrupt(format!(
                "snapshot of {stream} at version {} is past the stream's version {version}",
                snapshot.version
            )));
        }
        // The sequence of the append holding the snapshot's last event: a read after the
        // snapshot starts there.
        let sequence = self.seen_mut(stream, |seen| seen.start_for(snapshot.version.max(1) - 1));
        let mut value = BytesMut::with_capacity(20 + snapshot.payload.len());
        value.put_u64_le(snapshot.version);
        value.put_u32_le(snapshot.schema);
        value.put_u64_le(sequence);
        value.put_slice(&snapshot.payload);
        let value = value.freeze();
        loop {
            let previous = self.last_snapshot(stream).await?;
            if previous
                .as_ref()
                .is_some_and(|(old, _, _)| old.version > snapshot.version)
            {
                return Ok(());
            }
            // Replaces the previous one only if it is still the latest (compare-and-set on
            // the subject's last sequence): an older snapshot never replaces a newer one.
            let publish = PublishMessage::build()
                .payload(value.clone())
                .expected_last_subject_sequence(previous.map_or(0, |(_, _, at)| at));
            match self.publish(self.snapshot_subject(stream), publish).await {
                Ok(_) => return Ok(()),
                Err(error) if error.kind() == PublishErrorKind::WrongLastSequence => continue,
                Err(error) if error.kind() == PublishErrorKind::MaxPayloadExceeded => {
                    return Err(StoreError::TooLarge {
                        len: value.len(),
                        limit: self.max_payload(),
                    });
                }
                Err(error) => return Err(unavailable("write a snapshot", error)),
            }
        }
    }

    async fn load_snapshot_async(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        let Some((snapshot, sequence, _)) = self.last_snapshot(stream).await? else {
            return Ok(None);
        };
        if sequence > 0 && snapshot.version > 0 {
            // The message holding the snapshot's last event: a read after it starts there.
            self.seen_mut(stream, |seen| seen.hint(snapshot.version, sequence));
        }
        Ok(Some(snapshot))
    }
}

fn append_headers(headers: &HeaderMap) -> Option<(u64, u64)> {
    let first = headers.get(FIRST)?.as_str().parse().ok()?;
    let count: u64 = headers.get(COUNT)?.as_str().parse().ok()?;
    (first > 0 && count > 0).then_some((first, count))
}

fn decode_events(payload: &[u8], first: u64, count: u64) -> Result<Vec<EventRecord>, String> {
    let mut rest = payload;
    let mut records = Vec::with_capacity(count.min(1024) as usize);
    for n in 0..count {
        if rest.len() < 8 {
            return Err("an event header cut short".into());
        }
        let schema = u32::from_le_bytes(rest[..4].try_into().expect("4"));
        let len = u32::from_le_bytes(rest[4..8].try_into().expect("4")) as usize;
        let body = rest.get(8..8 + len).ok_or("an event cut short")?;
        records.push(EventRecord {
            version: first + n,
            schema,
            payload: body.to_vec(),
        });
        rest = &rest[8 + len..];
    }
    if !rest.is_empty() {
        return Err(format!("{} bytes after the last event", rest.len()));
    }
    Ok(records)
}

/// A snapshot message: the snapshot, and the sequence of the events stream's message holding
/// its last event.
fn decode_snapshot(value: &Bytes) -> Result<(Snapshot, u64), String> {
    if value.len() < 20 {
        return Err("value cut short".into());
    }
    let version = u64::from_le_bytes(value[..8].try_into().expect("8"));
    let schema = u32::from_le_bytes(value[8..12].try_into().expect("4"));
    let sequence = u64::from_le_bytes(value[12..20].try_into().expect("8"));
    Ok((
        Snapshot {
            version,
            schema,
            payload: value[20..].to_vec(),
        },
        sequence,
    ))
}

impl EventStore for NatsStore {
    fn append(
        &self,
        stream: &StreamId,
        expected: u64,
        events: &[NewEvent],
    ) -> Result<u64, StoreError> {
        check_events(events)?;
        self.client
            .runtime()
            .block_on(self.nats.append_async(stream, expected, events))
    }

    fn append_without_blocking(
        &self,
        stream: &StreamId,
        expected: u64,
        events: Vec<NewEvent>,
    ) -> Result<Pending<u64>, Vec<NewEvent>> {
        let nats = Arc::clone(&self.nats);
        let stream = stream.clone();
        Ok(self.client.in_place(async move {
            check_events(&events)?;
            nats.append_async(&stream, expected, &events).await
        }))
    }

    fn read(
        &self,
        stream: &StreamId,
        after: u64,
        max: usize,
    ) -> Result<Vec<EventRecord>, StoreError> {
        self.client
            .runtime()
            .block_on(self.nats.read_async(stream, after, max))
    }

    fn version(&self, stream: &StreamId) -> Result<u64, StoreError> {
        self.client
            .runtime()
            .block_on(self.nats.last(stream))
            .map(|(v, _)| v)
    }

    fn save_snapshot(&self, stream: &StreamId, snapshot: &Snapshot) -> Result<(), StoreError> {
        check_payload(snapshot.payload.len())?;
        self.client
            .runtime()
            .block_on(self.nats.save_snapshot_async(stream, snapshot))
    }

    fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        self.client
            .runtime()
            .block_on(self.nats.load_snapshot_async(stream))
    }
}
