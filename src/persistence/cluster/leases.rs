//! Leases: which runtime ("node") holds the live activation of an id.
//!
//! A lease is one message in a JetStream stream kept like a key-value bucket: subject
//! `{prefix}_lease.{kind}.{id}`, one message per subject, the holder's node name as payload.
//! The stream's `max_age` is the lease TTL: JetStream itself deletes a lease nobody renewed
//! for that long, so expiry needs no clock agreement between machines.
//!
//! Every write is a compare-and-set on the subject's last sequence (the lease's revision):
//! - *take* a free lease: publish expecting sequence 0 (no message on the subject);
//! - *renew* a lease held here: publish expecting the sequence of the held message;
//! - *release*: delete the held message by its sequence.
//!
//! A node renews all its leases every third of the TTL. A renewal refused because the
//! message moved on (it expired and another node took it) marks the lease lost here; the
//! activation sees that before its next command and leaves.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{Config as StreamConfig, LastRawMessageErrorKind, StorageType};
use bytes::Bytes;
use tracing::{debug, warn};

use crate::persistence::lock;
use crate::persistence::placement::Owner;
use crate::persistence::store::{StoreError, check_name};

/// The leases of one actor type on one node.
pub(crate) struct Leases {
    jetstream: jetstream::Context,
    stream: jetstream::stream::Stream,
    node: String,
    subject_prefix: String,
    ttl: Duration,
    /// Leases this node holds: id → the sequence of the lease message.
    held: Mutex<HashMap<String, u64>>,
}

fn unavailable(context: &str, error: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("{context}: {error}"))
}

impl Leases {
    /// Opens (creating if missing) the lease stream of `kind` under `prefix`. A stream made
    /// earlier with another TTL keeps its own: the TTL is the stream's, the same for every
    /// node.
    pub(crate) async fn open(
        jetstream: jetstream::Context,
        prefix: &str,
        kind: &str,
        node: String,
        ttl: Duration,
    ) -> Result<Leases, StoreError> {
        let mut stream = jetstream
            .get_or_create_stream(StreamConfig {
                name: format!("{}_{kind}_LEASES", prefix.to_uppercase()),
                subjects: vec![format!("{prefix}_lease.{kind}.*")],
                storage: StorageType::Memory,
                max_messages_per_subject: 1,
                max_age: ttl,
                ..StreamConfig::default()
            })
            .await
            .map_err(|e| unavailable("create the lease stream", e))?;
        let ttl = stream
            .info()
            .await
            .map(|info| info.config.max_age)
            .unwrap_or(ttl);
        if ttl.is_zero() {
            return Err(StoreError::Unavailable(format!(
                "the lease stream of {kind} has no max_age: its leases would never expire"
            )));
        }
        Ok(Leases {
            jetstream,
            stream,
            node,
            subject_prefix: format!("{prefix}_lease.{kind}."),
            ttl,
            held: Mutex::new(HashMap::new()),
        })
    }

    fn subject(&self, id: &str) -> String {
        format!("{}{id}", self.subject_prefix)
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        lock(&self.held)
    }

    /// Whether this node holds `id`'s lease (as far as its last renewal knows).
    pub(crate) fn holds(&self, id: &str) -> bool {
        self.held().contains_key(id)
    }

    /// The lease message of `id`: (holder, sequence), if any.
    async fn read(&self, id: &str) -> Result<Option<(String, u64)>, StoreError> {
        match self
            .stream
            .get_last_raw_message_by_subject(&self.subject(id))
            .await
        {
            Ok(message) => {
                let node = String::from_utf8_lossy(&message.payload).into_owned();
                // Written by something other than a runtime: say so rather than route to it.
                if check_name(&node).is_err() {
                    return Err(StoreError::Corrupt(format!(
                        "the lease of {id} names no valid node ({node:?}); it expires after the TTL"
                    )));
                }
                Ok(Some((node, message.sequence)))
            }
            Err(error) if error.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(error) => Err(unavailable("read a lease", error)),
        }
    }

    /// Who holds `id`'s lease now, as JetStream has it (the caller checks [`Self::holds`]
    /// first).
    pub(crate) async fn owner(&self, id: &str) -> Result<Owner, StoreError> {
        Ok(match self.read(id).await? {
            None => Owner::Free,
            Some((node, _)) if node == self.node => Owner::Here,
            Some((node, _)) => Owner::Node(node),
        })
    }

    /// Publishes this node's lease on `id`, expecting the subject's last sequence to be
    /// `expected`: `Ok(Some(sequence))` if taken, `Ok(None)` if another write got there first.
    async fn put(&self, id: &str, expected: u64) -> Result<Option<u64>, StoreError> {
        let publish = PublishMessage::build()
            .payload(Bytes::from(self.node.clone()))
            .expected_last_subject_sequence(expected);
        let sent = self
            .jetstream
            .send_publish(self.subject(id), publish)
            .await
            .map_err(|e| unavailable("write a lease", e))?;
        match sent.await {
            Ok(ack) => Ok(Some(ack.sequence)),
            Err(error) if error.kind() == PublishErrorKind::WrongLastSequence => Ok(None),
            Err(error) => Err(unavailable("write a lease", error)),
        }
    }

    /// Takes `id`'s lease for this node: `Ok(Owner::Here)` if this node holds it now, or the
    /// node that holds it.
    pub(crate) async fn acquire(&self, id: &str) -> Result<Owner, StoreError> {
        if self.holds(id) {
            return Ok(Owner::Here);
        }
        // A few rounds: a lease can expire or be released between the read and the write.
        for _ in 0..5 {
            let expected = match self.read(id).await? {
                None => 0,
                Some((node, sequence)) if node == self.node => sequence,
                Some((node, _)) => return Ok(Owner::Node(node)),
            };
            if let Some(sequence) = self.put(id, expected).await? {
                self.held().insert(id.to_owned(), sequence);
                debug!(id, sequence, "lease taken");
                return Ok(Owner::Here);
            }
        }
        Err(StoreError::Unavailable(format!(
            "the lease of {id} changed hands five times while taking it"
        )))
    }

    /// Gives `id`'s lease up, if this node holds it: from now on this node does not renew
    /// it, and once the call returns other nodes can take it.
    pub(crate) async fn release(&self, id: &str) {
        let Some(sequence) = self.held().remove(id) else {
            return;
        };
        // Deleting by sequence removes this node's message only: if the lease expired and
        // another node took it meanwhile, its message has another sequence.
        if let Err(error) = self.stream.delete_message(sequence).await {
            debug!(id, sequence, %error, "lease not deleted (it expires instead)");
        }
    }

    /// Gives up every lease held here but those of `active` ids.
    pub(crate) async fn release_unused(&self, active: &std::collections::HashSet<String>) {
        let unused: Vec<u64> = {
            let mut held = self.held();
            let unused: Vec<String> = held
                .keys()
                .filter(|id| !active.contains(*id))
                .cloned()
                .collect();
            unused.iter().filter_map(|id| held.remove(id)).collect()
        };
        for sequence in unused {
            let _ = self.stream.delete_message(sequence).await;
        }
    }

    /// Renews every lease held here once. A lease whose message moved on is lost.
    pub(crate) async fn renew_all(&self) {
        let held: Vec<(String, u64)> = self
            .held()
            .iter()
            .map(|(id, sequence)| (id.clone(), *sequence))
            .collect();
        let renewals = held.into_iter().map(|(id, sequence)| async move {
            let result = self.put(&id, sequence).await;
            (id, sequence, result)
        });
        let mut stray = Vec::new();
        for (id, sequence, result) in futures_util::future::join_all(renewals).await {
            let mut held = self.held();
            if held.get(&id) != Some(&sequence) {
                // Released meanwhile: a renewal that landed after the release's delete
                // wrote the lease again; delete that too.
                if let Ok(Some(renewed)) = result {
                    stray.push(renewed);
                }
                continue;
            }
            match result {
                Ok(Some(renewed)) => {
                    held.insert(id, renewed);
                }
                Ok(None) => {
                    held.remove(&id);
                    warn!(id, "lease lost: it expired and moved on before its renewal");
                }
                // The connection is down: try again next round; if it stays down past the
                // TTL, the next renewal finds the lease moved on.
                Err(error) => debug!(id, %error, "lease not renewed"),
            }
        }
        for sequence in stray {
            let _ = self.stream.delete_message(sequence).await;
        }
    }

    /// Renews the leases every third of the TTL, until the task running it is aborted.
    pub(crate) async fn renew_forever(self: Arc<Self>) {
        let every = (self.ttl / 3).max(Duration::from_millis(10));
        loop {
            tokio::time::sleep(every).await;
            self.renew_all().await;
        }
    }
}
