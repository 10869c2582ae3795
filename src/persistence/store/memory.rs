//! `MemoryStore`: events and snapshots in memory, for tests and for actors that need no
//! durability.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use super::{
    EventRecord, EventStore, NewEvent, Snapshot, StoreError, StreamId, check_events,
    check_expected, check_payload,
};

/// An [`EventStore`] in memory: everything is lost when it is dropped.
///
/// ```
/// use baobab::persistence::{EventStore, MemoryStore, NewEvent, StreamId};
///
/// let store = MemoryStore::new();
/// let stream = StreamId::new("counter", "c1").unwrap();
/// let event = NewEvent { schema: 1, payload: b"1".to_vec() };
/// assert_eq!(store.append(&stream, 0, &[event.clone()]).unwrap(), 1);
/// assert!(store.append(&stream, 0, &[event]).is_err(), "a stale writer conflicts");
/// assert_eq!(store.read(&stream, 0, 10).unwrap().len(), 1);
/// ```
#[derive(Debug, Default)]
pub struct MemoryStore {
    streams: Mutex<HashMap<StreamId, Stream>>,
}

#[derive(Debug, Default)]
struct Stream {
    events: Vec<EventRecord>,
    snapshot: Option<Snapshot>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore::default()
    }
}

impl EventStore for MemoryStore {
    fn append(
        &self,
        stream: &StreamId,
        expected: u64,
        events: &[NewEvent],
    ) -> Result<u64, StoreError> {
        check_events(events)?;
        let mut streams = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
        let actual = streams.get(stream).map_or(0, |s| s.events.len() as u64);
        check_expected(stream, expected, actual)?;
        if events.is_empty() {
            return Ok(actual);
        }
        let entry = streams.entry(stream.clone()).or_default();
        for (offset, event) in events.iter().enumerate() {
            entry.events.push(EventRecord {
                version: actual + 1 + offset as u64,
                schema: event.schema,
                payload: event.payload.clone(),
            });
        }
        Ok(entry.events.len() as u64)
    }

    fn read(
        &self,
        stream: &StreamId,
        after: u64,
        max: usize,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let streams = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(streams.get(stream).map_or_else(Vec::new, |s| {
            let start = usize::try_from(after)
                .unwrap_or(usize::MAX)
                .min(s.events.len());
            s.events[start..].iter().take(max).cloned().collect()
        }))
    }

    fn version(&self, stream: &StreamId) -> Result<u64, StoreError> {
        let streams = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(streams.get(stream).map_or(0, |s| s.events.len() as u64))
    }

    fn save_snapshot(&self, stream: &StreamId, snapshot: &Snapshot) -> Result<(), StoreError> {
        check_payload(snapshot.payload.len())?;
        let mut streams = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = streams.entry(stream.clone()).or_default();
        if snapshot.version > entry.events.len() as u64 {
            return Err(StoreError::Corrupt(format!(
                "snapshot of {stream} at version {} is past the stream's version {}",
                snapshot.version,
                entry.events.len()
            )));
        }
        if entry
            .snapshot
            .as_ref()
            .is_none_or(|old| old.version <= snapshot.version)
        {
            entry.snapshot = Some(snapshot.clone());
        }
        Ok(())
    }

    fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        let streams = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(streams.get(stream).and_then(|s| s.snapshot.clone()))
    }
}
