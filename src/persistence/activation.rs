//! One activation: the process that holds one actor's state, rebuilt from its snapshot and
//! events, and turns its commands into events, one command at a time.

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tracing::{debug, warn};

use super::actors::{Host, Reader, Slot, take};
use super::model::EventSourced;
use super::outcome::{ActorError, Committed};
use super::placement::Owner;
use super::store::{EventRecord, EventStore, NewEvent, Snapshot, StoreError, StreamId};
use crate::server::ReplyTo;
use crate::{Ctx, Message};

/// What an activation is asked (opaque outside this module's parent).
pub(crate) enum Request<A: EventSourced> {
    Command(
        Slot<A::Command>,
        ReplyTo<Result<Committed, ActorError<A::Rejection>>>,
    ),
    Query(
        Slot<Reader<A>>,
        ReplyTo<Result<Answer, ActorError<A::Rejection>>>,
    ),
    Stop(ReplyTo<Result<(), ActorError<A::Rejection>>>),
    /// Passivate now (the host is at its cap of activations).
    Passivate,
}

/// A query's answer, typed again by the caller.
pub(crate) type Answer = Box<dyn Any + Send>;

/// How many events a replay reads at a time.
const REPLAY_BATCH: usize = 1024;

/// An actor's state and where it stands in its stream.
struct Live<A> {
    state: A,
    version: u64,
    /// The version of the latest snapshot saved (or loaded).
    snapshot_at: u64,
    /// An append failed in a way that may or may not have stored it: read the stream again
    /// before deciding the next command.
    stale: bool,
}

/// The body of the activation of actor `id`.
pub(crate) async fn run_activation<A: EventSourced>(
    mut ctx: Ctx<Request<A>>,
    id: String,
    host: Arc<Host<A>>,
    used: Arc<AtomicU64>,
) {
    // A supervisor's shutdown arrives as a message, so the actor can save its snapshot.
    ctx.trap_exit(true);
    let stream = StreamId::new(A::KIND, id.clone()).expect("ids are checked before activation");
    if let Some(placement) = &host.placement {
        // One live activation per id across the runtimes sharing the store: the one holding
        // the id's lease.
        match placement.acquire(&id).await {
            Ok(Owner::Here) => {}
            Ok(owner) => {
                // Another runtime took it first: leave before taking a request; callers find
                // their requests untaken and route them there.
                debug!(actor = %stream, ?owner, "virtual actor: the lease is held elsewhere");
                host.unregister(&id, ctx.pid());
                return;
            }
            Err(error) => return refuse(ctx, &host, &id, error.into()).await,
        }
    }
    let store = Arc::clone(&host.store);
    let loading = stream.clone();
    let started = std::time::Instant::now();
    let loaded = ctx.blocking(move || Live::load(&*store, &loading)).await;
    let mut live = match loaded {
        Ok(live) => live,
        Err(error) => return refuse(ctx, &host, &id, error).await,
    };
    debug!(
        actor = %stream,
        version = live.version,
        from_snapshot = live.snapshot_at,
        us = started.elapsed().as_micros() as u64,
        "virtual actor activated"
    );
    loop {
        let message = match host.config.idle_after {
            Some(idle) => ctx.recv_timeout(idle).await,
            None => Some(ctx.recv().await),
        };
        if message.is_some() {
            used.store(host.now(), Ordering::Relaxed);
        }
        let asks = matches!(
            message,
            Some(Message::User(Request::Command(..) | Request::Query(..)))
        );
        if asks && host.placement.as_ref().is_some_and(|p| !p.holds(&id)) {
            // The lease expired and moved on (a renewal was refused): another runtime may
            // be writing, and this state may be behind. Leave without taking the request;
            // its caller routes it to the lease's holder (a query reads the store).
            warn!(actor = %stream, "virtual actor: lease lost; leaving");
            host.unregister(&id, ctx.pid());
            return;
        }
        match message {
            None | Some(Message::User(Request::Passivate)) => {
                debug!(actor = %stream, "virtual actor passivated");
                live.snapshot(&mut ctx, &host, &stream).await;
                host.leave(&id, ctx.pid()).await;
                return;
            }
            Some(Message::User(Request::Command(slot, reply))) => {
                let Some(command) = take(&slot) else { continue };
                let result = live.command(&mut ctx, &host, &stream, command).await;
                let broken = match &result {
                    Err(error @ ActorError::Replay { .. }) => Some(replica(error)),
                    _ => None,
                };
                reply.reply(result);
                if let Some(error) = broken {
                    // The stream cannot be read back: this state is no longer the fold of
                    // the stored events.
                    return refuse(ctx, &host, &id, error).await;
                }
                if host
                    .config
                    .snapshot_every
                    .is_some_and(|every| live.version - live.snapshot_at >= every.max(1))
                {
                    live.snapshot(&mut ctx, &host, &stream).await;
                }
            }
            Some(Message::User(Request::Query(slot, reply))) => {
                if let Some(read) = take(&slot) {
                    reply.reply(Ok(read(&live.state, live.version)));
                }
            }
            Some(Message::User(Request::Stop(reply))) => {
                live.snapshot(&mut ctx, &host, &stream).await;
                host.leave(&id, ctx.pid()).await;
                reply.reply(Ok(()));
                return;
            }
            Some(Message::Exit(signal)) => {
                live.snapshot(&mut ctx, &host, &stream).await;
                host.leave(&id, ctx.pid()).await;
                ctx.stop(signal.reason);
            }
            Some(Message::Down(_)) => {}
        }
    }
}

/// How long a refused activation keeps answering with its error after the last request.
const REFUSED_LINGER: Duration = Duration::from_secs(1);

/// The actor cannot be activated (its stream cannot be read back). It stays registered and
/// answers every request with `error` until none came for [`REFUSED_LINGER`], so callers get
/// the reason rather than a race with its exit. Then it leaves the registry and exits
/// normally: the supervisor does not restart it, and the next command reads the stream again
/// (it may have been repaired, or an upcast deployed).
async fn refuse<A: EventSourced>(
    mut ctx: Ctx<Request<A>>,
    host: &Host<A>,
    id: &str,
    error: ActorError<A::Rejection>,
) {
    warn!(kind = A::KIND, id, %error, "virtual actor: activation refused");
    let mut linger = REFUSED_LINGER;
    loop {
        let Some(message) = ctx.recv_timeout(linger).await else {
            if linger.is_zero() {
                return;
            }
            // Quiet for a while: leave, then answer what came in meanwhile.
            host.leave(id, ctx.pid()).await;
            linger = Duration::ZERO;
            continue;
        };
        match message {
            Message::User(Request::Command(slot, reply)) => {
                if take(&slot).is_some() {
                    reply.reply(Err(replica(&error)));
                }
            }
            Message::User(Request::Query(slot, reply)) => {
                if take(&slot).is_some() {
                    reply.reply(Err(replica(&error)));
                }
            }
            Message::User(Request::Stop(reply)) => {
                host.leave(id, ctx.pid()).await;
                reply.reply(Ok(()));
                return;
            }
            Message::User(Request::Passivate) => {
                host.leave(id, ctx.pid()).await;
                return;
            }
            Message::Exit(signal) => {
                host.leave(id, ctx.pid()).await;
                ctx.stop(signal.reason);
            }
            Message::Down(_) => {}
        }
    }
}

impl<A: EventSourced> Live<A> {
    /// The actor as the store has it: its latest snapshot, then the events after it.
    fn load(store: &dyn EventStore, stream: &StreamId) -> Result<Self, ActorError<A::Rejection>> {
        let mut live = Live {
            state: A::default(),
            version: 0,
            snapshot_at: 0,
            stale: false,
        };
        load_snapshot(store, stream, &mut live)?;
        replay(store, stream, &mut live)?;
        Ok(live)
    }

    /// Decides `command`, appends its events expecting this version, and applies them; on
    /// a conflict, catches up with the stream and decides again.
    async fn command(
        &mut self,
        ctx: &mut Ctx<Request<A>>,
        host: &Host<A>,
        stream: &StreamId,
        command: A::Command,
    ) -> Result<Committed, ActorError<A::Rejection>> {
        if self.stale {
            self.catch_up(ctx, host, stream).await?;
        }
        let mut retries = 0;
        loop {
            let events = self.state.decide(&command).map_err(ActorError::Rejected)?;
            if events.is_empty() {
                return Ok(Committed {
                    version: self.version,
                    events: 0,
                });
            }
            let encoded = events
                .iter()
                .map(|event| {
                    serde_json::to_vec(event).map(|payload| NewEvent {
                        schema: A::EVENT_SCHEMA,
                        payload,
                    })
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|error| ActorError::Encode {
                    actor: stream.to_string(),
                    reason: error.to_string(),
                })?;
            let expected = self.version;
            let appended = match host
                .store
                .append_without_blocking(stream, expected, encoded)
            {
                Ok(pending) => pending.await,
                Err(encoded) => {
                    let (store, target) = (Arc::clone(&host.store), stream.clone());
                    ctx.blocking(move || store.append(&target, expected, &encoded))
                        .await
                }
            };
            match appended {
                Ok(version) => {
                    for event in &events {
                        self.state.apply(event);
                    }
                    self.version = version;
                    return Ok(Committed {
                        version,
                        events: events.len(),
                    });
                }
                Err(StoreError::Conflict { .. }) if retries < host.config.conflict_retries => {
                    retries += 1;
                    debug!(actor = %stream, retries, "virtual actor: version conflict, catching up");
                    self.catch_up(ctx, host, stream).await?;
                }
                Err(StoreError::Conflict { .. }) => {
                    // Catch up anyway, so the next command starts from the stream's state.
                    self.catch_up(ctx, host, stream).await?;
                    return Err(ActorError::Conflict {
                        actor: stream.to_string(),
                        retries,
                    });
                }
                Err(error) => {
                    self.stale = true;
                    return Err(error.into());
                }
            }
        }
    }

    /// Applies the events stored after this version (written by another writer).
    async fn catch_up(
        &mut self,
        ctx: &mut Ctx<Request<A>>,
        host: &Host<A>,
        stream: &StreamId,
    ) -> Result<(), ActorError<A::Rejection>> {
        let store = Arc::clone(&host.store);
        let target = stream.clone();
        let mut live = Live {
            state: std::mem::take(&mut self.state),
            version: self.version,
            snapshot_at: self.snapshot_at,
            stale: false,
        };
        let (live, result) = ctx
            .blocking(move || {
                let result = replay(&*store, &target, &mut live);
                (live, result)
            })
            .await;
        *self = live;
        if result.is_err() {
            self.stale = true;
        }
        result
    }

    /// Saves a snapshot if there are events since the last one; a failure is logged (the
    /// events are stored: a snapshot only shortens the next replay).
    async fn snapshot(&mut self, ctx: &mut Ctx<Request<A>>, host: &Host<A>, stream: &StreamId) {
        if self.version <= self.snapshot_at || self.stale {
            return;
        }
        let payload = match serde_json::to_vec(&self.state) {
            Ok(payload) => payload,
            Err(error) => {
                warn!(actor = %stream, %error, "virtual actor: the state does not serialise; no snapshot");
                return;
            }
        };
        let snapshot = Snapshot {
            version: self.version,
            schema: A::SNAPSHOT_SCHEMA,
            payload,
        };
        let (store, target) = (Arc::clone(&host.store), stream.clone());
        match ctx
            .blocking(move || store.save_snapshot(&target, &snapshot))
            .await
        {
            Ok(()) => self.snapshot_at = self.version,
            Err(error) => warn!(actor = %stream, %error, "virtual actor: snapshot not saved"),
        }
    }
}

/// Actor `id`'s state and version as the store has them now (its latest snapshot, then the
/// events after it), without activating it.
pub(crate) fn fold<A: EventSourced>(
    store: &dyn EventStore,
    id: &str,
) -> Result<(A, u64), ActorError<A::Rejection>> {
    let live = Live::<A>::load(store, &StreamId::new(A::KIND, id)?)?;
    Ok((live.state, live.version))
}

/// Loads the latest snapshot into `live`; one that cannot be read is skipped with a warning
/// (the events rebuild the state).
fn load_snapshot<A: EventSourced>(
    store: &dyn EventStore,
    stream: &StreamId,
    live: &mut Live<A>,
) -> Result<(), ActorError<A::Rejection>> {
    let Some(snapshot) = store.load_snapshot(stream)? else {
        return Ok(());
    };
    match decode_snapshot::<A>(&snapshot) {
        Ok(state) => {
            live.state = state;
            live.version = snapshot.version;
            live.snapshot_at = snapshot.version;
        }
        Err(reason) => warn!(
            actor = %stream,
            version = snapshot.version,
            schema = snapshot.schema,
            reason,
            "virtual actor: the snapshot cannot be read; replaying every event"
        ),
    }
    Ok(())
}

/// Applies the events stored after `live.version`.
fn replay<A: EventSourced>(
    store: &dyn EventStore,
    stream: &StreamId,
    live: &mut Live<A>,
) -> Result<(), ActorError<A::Rejection>> {
    loop {
        let batch = store.read(stream, live.version, REPLAY_BATCH)?;
        let full = batch.len() == REPLAY_BATCH;
        for record in batch {
            if record.version != live.version + 1 {
                return Err(ActorError::Replay {
                    actor: stream.to_string(),
                    version: live.version + 1,
                    reason: format!("the store returned version {} instead", record.version),
                });
            }
            let event = decode_event::<A>(&record).map_err(|reason| ActorError::Replay {
                actor: stream.to_string(),
                version: record.version,
                reason,
            })?;
            live.state.apply(&event);
            live.version = record.version;
        }
        if !full {
            return Ok(());
        }
    }
}

/// Reads a stored event, through `upcast_event` if it has an older schema.
fn decode_event<A: EventSourced>(record: &EventRecord) -> Result<A::Event, String> {
    if record.schema == A::EVENT_SCHEMA {
        return serde_json::from_slice(&record.payload).map_err(|error| {
            format!(
                "the event (schema {}) does not decode as {}: {error}",
                record.schema,
                std::any::type_name::<A::Event>()
            )
        });
    }
    let value: serde_json::Value = serde_json::from_slice(&record.payload)
        .map_err(|error| format!("the event (schema {}) is not JSON: {error}", record.schema))?;
    let value = A::upcast_event(record.schema, value)?;
    serde_json::from_value(value).map_err(|error| {
        format!(
            "the event upcast from schema {} does not decode as {}: {error}",
            record.schema,
            std::any::type_name::<A::Event>()
        )
    })
}

/// Reads a stored snapshot, through `upcast_snapshot` if it has an older schema.
fn decode_snapshot<A: EventSourced>(snapshot: &Snapshot) -> Result<A, String> {
    if snapshot.schema == A::SNAPSHOT_SCHEMA {
        return serde_json::from_slice(&snapshot.payload)
            .map_err(|error| format!("does not decode: {error}"));
    }
    let value: serde_json::Value = serde_json::from_slice(&snapshot.payload)
        .map_err(|error| format!("is not JSON: {error}"))?;
    let value = A::upcast_snapshot(snapshot.schema, value)?;
    serde_json::from_value(value).map_err(|error| format!("does not decode after upcast: {error}"))
}

/// A copy of an error that carries no rejection (the rejection type need not be `Clone`).
fn replica<R>(error: &ActorError<R>) -> ActorError<R> {
    match error {
        ActorError::Rejected(_) | ActorError::Down => ActorError::Down,
        ActorError::Conflict { actor, retries } => ActorError::Conflict {
            actor: actor.clone(),
            retries: *retries,
        },
        ActorError::Replay {
            actor,
            version,
            reason,
        } => ActorError::Replay {
            actor: actor.clone(),
            version: *version,
            reason: reason.clone(),
        },
        ActorError::Encode { actor, reason } => ActorError::Encode {
            actor: actor.clone(),
            reason: reason.clone(),
        },
        ActorError::Store(error) => ActorError::Store(error.clone()),
        ActorError::Crashed(reason) => ActorError::Crashed(reason.clone()),
        ActorError::Timeout => ActorError::Timeout,
    }
}
