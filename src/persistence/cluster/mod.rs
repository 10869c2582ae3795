//! Virtual actors across runtimes (feature `nats`): runtimes connected to one NATS server
//! keep one live activation per id between them, and route a command from any of them to it.
//!
//! - **Leases.** Before an activation replays, it takes its id's lease: a message in a
//!   JetStream stream kept like a key-value bucket, written by compare-and-set on its
//!   revision, with the stream's `max_age` as the TTL. A runtime renews the
//!   leases it holds every third of the TTL and gives a lease up when its activation ends.
//! - **Routing.** A command for an id with no activation here looks the lease up: free (or
//!   held here) → activate here; held by another runtime → send the command to it over core
//!   NATS request/reply, on `{prefix}_node.{node}.{kind}`, as JSON. That runtime runs it as
//!   a local command and answers with its outcome, or that it no longer holds the lease.
//! - **Failure.** A runtime that dies stops renewing: JetStream deletes its leases after the
//!   TTL, and the next command for one of its ids activates the id elsewhere. Meanwhile a
//!   command sent to it finds no responder and is retried (within the caller's
//!   `call_timeout`) until the lease is free. The store's optimistic concurrency still
//!   guards every append, so even two activations that overlap (a runtime cut off from NATS
//!   for longer than the TTL, say) cannot lose or duplicate an event.

pub(crate) mod leases;

use std::collections::{HashMap, HashSet};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::RequestErrorKind;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::task::AbortHandle;
use tracing::{debug, warn};

use super::actors::{VirtualActors, VirtualConfig};
use super::lock;
use super::model::EventSourced;
use super::outcome::{ActorError, Committed};
use super::placement::{Forwarded, Owner, Placement};
use super::store::nats_client::{NatsClient, unavailable};
use super::store::{EventStore, Pending, StoreError, check_name};
use crate::supervisor::ChildSpec;
use crate::{Ctx, ExitReason, Handle};
use leases::Leases;

/// How a [`Cluster`] names itself and its leases.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// This runtime's name among the runtimes sharing the NATS server: unique per running
    /// process (ASCII letters, digits, `-` and `_`). Default: `node-{pid}-{random}`.
    pub node: String,
    /// The prefix of the lease streams and of the subjects runtimes talk on; `baobab` by
    /// default. Runtimes with different prefixes do not see each other.
    pub prefix: String,
    /// How long a lease outlives its last renewal: how long the ids of a runtime that died
    /// wait before another runtime can activate them. Default: 10 s. A lease stream keeps
    /// the TTL it was created with.
    pub lease_ttl: Duration,
    /// How long one request to JetStream may take. Default: 10 s.
    pub timeout: Duration,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        let random = uuid::Uuid::new_v4().simple().to_string();
        ClusterConfig {
            node: format!("node-{}-{}", std::process::id(), &random[..8]),
            prefix: "baobab".into(),
            lease_ttl: Duration::from_secs(10),
            timeout: Duration::from_secs(10),
        }
    }
}

/// A runtime's connection to the NATS server it shares with other runtimes, for
/// [`VirtualActors::start_clustered`] (see the module's documentation).
///
/// ```no_run
/// use std::sync::Arc;
/// use baobab::persistence::{Cluster, ClusterConfig, NatsStore, NatsStoreConfig};
///
/// let url = "nats://127.0.0.1:4222";
/// let store = Arc::new(NatsStore::connect(url, NatsStoreConfig::default()).unwrap());
/// let cluster = Cluster::connect(url, ClusterConfig::default()).unwrap();
/// println!("this runtime is {}", cluster.node());
/// ```
pub struct Cluster {
    nats: NatsClient,
    config: ClusterConfig,
    /// The actor types served through this connection: one `VirtualActors` each.
    kinds: Mutex<HashSet<&'static str>>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The shortest lease TTL.
const MIN_LEASE_TTL: Duration = Duration::from_millis(100);

impl Cluster {
    /// Connects to the NATS server at `url` (with JetStream enabled).
    ///
    /// Fails if the node name or prefix breaks the naming rule of
    /// [`StreamId`](super::StreamId), or if `lease_ttl` is under 100 ms (JetStream's
    /// smallest `max_age`; 0 would mean leases that never expire).
    pub fn connect(url: &str, config: ClusterConfig) -> Result<Arc<Cluster>, StoreError> {
        check_name(&config.node)?;
        check_name(&config.prefix)?;
        if config.lease_ttl < MIN_LEASE_TTL {
            return Err(StoreError::Unavailable(format!(
                "lease_ttl {:?} is under the smallest, {MIN_LEASE_TTL:?}",
                config.lease_ttl
            )));
        }
        Ok(Arc::new(Cluster {
            nats: NatsClient::connect(url, "baobab-cluster", config.timeout)?,
            config,
            kinds: Mutex::new(HashSet::new()),
        }))
    }

    /// This runtime's node name.
    pub fn node(&self) -> &str {
        &self.config.node
    }

    /// The configuration.
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.nats.runtime()
    }

    /// Runs `future` on the cluster's runtime (see [`NatsClient::run`]).
    fn run<T: Send + 'static>(
        &self,
        future: impl Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> Pending<T> {
        self.nats.run(future)
    }

    fn node_subject(&self, node: &str, kind: &str) -> String {
        format!("{}_node.{node}.{kind}", self.config.prefix)
    }
}

/// A command forwarded to the runtime holding its id's lease.
#[derive(Serialize)]
struct WireCommand<'a, C> {
    id: &'a str,
    command: &'a C,
}

#[derive(Deserialize)]
struct WireCommandOwned<C> {
    id: String,
    command: C,
}

/// The outcome of a forwarded command, as JSON.
#[derive(Serialize, Deserialize)]
enum WireReply<R> {
    Committed {
        version: u64,
        events: usize,
    },
    Rejected(R),
    NotHere,
    Conflict {
        actor: String,
        retries: u32,
    },
    Replay {
        actor: String,
        version: u64,
        reason: String,
    },
    Encode {
        actor: String,
        reason: String,
    },
    Store(StoreError),
    Crashed(String),
    Timeout,
    Down,
}

impl<R> WireReply<R> {
    fn from_outcome(outcome: Forwarded<R>) -> Self {
        let result = match outcome {
            Forwarded::Done(result) => result,
            Forwarded::NotHere => return WireReply::NotHere,
        };
        match result {
            Ok(Committed { version, events }) => WireReply::Committed { version, events },
            Err(ActorError::Rejected(rejection)) => WireReply::Rejected(rejection),
            Err(ActorError::Conflict { actor, retries }) => WireReply::Conflict { actor, retries },
            Err(ActorError::Replay {
                actor,
                version,
                reason,
            }) => WireReply::Replay {
                actor,
                version,
                reason,
            },
            Err(ActorError::Encode { actor, reason }) => WireReply::Encode { actor, reason },
            Err(ActorError::Store(error)) => WireReply::Store(error),
            Err(ActorError::Crashed(reason)) => WireReply::Crashed(reason.to_string()),
            Err(ActorError::Timeout) => WireReply::Timeout,
            Err(ActorError::Down) => WireReply::Down,
        }
    }

    fn into_outcome(self, node: &str) -> Forwarded<R> {
        Forwarded::Done(match self {
            WireReply::NotHere => return Forwarded::NotHere,
            WireReply::Committed { version, events } => Ok(Committed { version, events }),
            WireReply::Rejected(rejection) => Err(ActorError::Rejected(rejection)),
            WireReply::Conflict { actor, retries } => Err(ActorError::Conflict { actor, retries }),
            WireReply::Replay {
                actor,
                version,
                reason,
            } => Err(ActorError::Replay {
                actor,
                version,
                reason,
            }),
            WireReply::Encode { actor, reason } => Err(ActorError::Encode { actor, reason }),
            WireReply::Store(error) => Err(ActorError::Store(error)),
            WireReply::Crashed(reason) => Err(ActorError::Crashed(ExitReason::error(format!(
                "on node {node}: {reason}"
            )))),
            WireReply::Timeout => Err(ActorError::Timeout),
            WireReply::Down => Err(ActorError::Down),
        })
    }
}

/// The NATS placement of one actor type on one runtime.
struct NatsPlacement<A> {
    cluster: Arc<Cluster>,
    leases: Arc<Leases>,
    /// The holders of ids last found elsewhere, so a steady stream of commands to an id
    /// active on another runtime skips the lease lookup. An entry goes when that runtime
    /// does not take a command; a stale entry costs one refused forward.
    owners: Arc<Mutex<HashMap<String, String>>>,
    /// The renewal task.
    renewal: Mutex<Option<AbortHandle>>,
    /// The task serving other runtimes, and what tells it to stop.
    serving: Mutex<Option<Serving>>,
    _actor: PhantomData<fn() -> A>,
}

/// The task serving other runtimes' commands.
struct Serving {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
    /// Forwarded commands taken and not yet answered.
    in_flight: Arc<AtomicUsize>,
}

/// How many forwarded commands a runtime runs at once; past that it answers `Down`.
const MAX_FORWARDED_IN_FLIGHT: usize = 10_000;

/// How long stopping waits for the forwarded commands already taken to be answered.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

impl<A: EventSourced> Placement<A> for NatsPlacement<A>
where
    A::Command: Serialize + DeserializeOwned,
    A::Rejection: Serialize + DeserializeOwned,
{
    fn owner(&self, id: &str, timeout: Duration) -> Pending<Owner> {
        if self.leases.holds(id) {
            return Box::pin(std::future::ready(Ok(Owner::Here)));
        }
        if let Some(node) = lock(&self.owners).get(id) {
            return Box::pin(std::future::ready(Ok(Owner::Node(node.clone()))));
        }
        let (leases, owners, id) = (
            Arc::clone(&self.leases),
            Arc::clone(&self.owners),
            id.to_owned(),
        );
        self.cluster.run(async move {
            let owner = tokio::time::timeout(timeout, leases.owner(&id))
                .await
                .map_err(|_| unavailable("read a lease", "timed out"))??;
            if let Owner::Node(node) = &owner {
                let mut owners = lock(&owners);
                if owners.len() >= MAX_OWNERS_CACHED {
                    owners.clear();
                }
                owners.insert(id, node.clone());
            }
            Ok(owner)
        })
    }

    fn acquire(&self, id: &str) -> Pending<Owner> {
        let (leases, id) = (Arc::clone(&self.leases), id.to_owned());
        self.cluster.run(async move { leases.acquire(&id).await })
    }

    fn holds(&self, id: &str) -> bool {
        self.leases.holds(id)
    }

    fn release(&self, id: &str) -> Pending<()> {
        let (leases, id) = (Arc::clone(&self.leases), id.to_owned());
        self.cluster.run(async move {
            leases.release(&id).await;
            Ok(())
        })
    }

    fn release_unused(&self, active: HashSet<String>) {
        let leases = Arc::clone(&self.leases);
        self.cluster
            .runtime()
            .spawn(async move { leases.release_unused(&active).await });
    }

    fn stop_serving(&self) {
        let Some(serving) = lock(&self.serving).take() else {
            return;
        };
        let _ = serving.stop.send(());
        let deadline = std::time::Instant::now() + DRAIN_TIMEOUT;
        // The subscription drains: what the server sent before it ended is taken, then
        // the task ends.
        let drained = self.cluster.runtime().block_on(async {
            tokio::time::timeout(DRAIN_TIMEOUT, serving.task)
                .await
                .is_ok()
        });
        while serving.in_flight.load(Ordering::Acquire) > 0 && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        if !drained || serving.in_flight.load(Ordering::Acquire) > 0 {
            warn!(
                kind = A::KIND,
                "virtual actors: forwarded commands still running at shutdown"
            );
        }
    }

    fn close(&self) {
        if let Some(renewal) = lock(&self.renewal).take() {
            renewal.abort();
        }
        let leases = Arc::clone(&self.leases);
        self.cluster
            .runtime()
            .spawn(async move { leases.release_unused(&HashSet::new()).await });
        lock(&self.cluster.kinds).remove(A::KIND);
    }

    fn forward(
        &self,
        node: &str,
        id: &str,
        command: &A::Command,
        timeout: Duration,
    ) -> Pending<Forwarded<A::Rejection>> {
        let payload = match serde_json::to_vec(&WireCommand { id, command }) {
            Ok(payload) => payload,
            Err(error) => {
                let encode = ActorError::Encode {
                    actor: format!("{}/{id}", A::KIND),
                    reason: format!("the command does not serialise: {error}"),
                };
                return Box::pin(std::future::ready(Ok(Forwarded::Done(Err(encode)))));
            }
        };
        let client = self.cluster.nats.client.clone();
        let subject = self.cluster.node_subject(node, A::KIND);
        let (owners, id) = (Arc::clone(&self.owners), id.to_owned());
        let node = node.to_owned();
        self.cluster.run(async move {
            let outcome = forward::<A::Rejection>(client, subject, &node, payload, timeout).await;
            if let Ok(Forwarded::NotHere) = outcome {
                let mut owners = lock(&owners);
                if owners.get(&id) == Some(&node) {
                    owners.remove(&id);
                }
            }
            outcome
        })
    }
}

/// How many ids' holders a runtime remembers before it forgets them all.
const MAX_OWNERS_CACHED: usize = 100_000;

/// Sends a forwarded command's payload to `subject` (node `node`) and reads the outcome.
async fn forward<R: DeserializeOwned>(
    client: async_nats::Client,
    subject: String,
    node: &str,
    payload: Vec<u8>,
    timeout: Duration,
) -> Result<Forwarded<R>, StoreError> {
    let request = async_nats::Request::new()
        .payload(payload.into())
        .timeout(Some(timeout.max(Duration::from_millis(1))));
    match client.send_request(subject, request).await {
        Ok(message) => match serde_json::from_slice::<WireReply<R>>(&message.payload) {
            Ok(reply) => Ok(reply.into_outcome(node)),
            Err(error) => Err(StoreError::Corrupt(format!(
                "a reply from node {node} does not decode: {error}"
            ))),
        },
        Err(error) if error.kind() == RequestErrorKind::NoResponders => Ok(Forwarded::NotHere),
        Err(error) if error.kind() == RequestErrorKind::TimedOut => {
            Ok(Forwarded::Done(Err(ActorError::Timeout)))
        }
        Err(error) => Err(unavailable(
            &format!("send a command to node {node}"),
            error,
        )),
    }
}

impl<A: EventSourced> VirtualActors<A>
where
    A::Command: Serialize + DeserializeOwned,
    A::Rejection: Serialize + DeserializeOwned,
{
    /// Starts virtual actors that share their ids with the other runtimes connected to
    /// `cluster`'s NATS server (see the module's documentation): one live activation per id
    /// among them all, and a command from any runtime reaches it. `store` must be shared by
    /// them too (a [`NatsStore`](super::NatsStore) on the same server, typically).
    ///
    /// Commands and rejections cross between runtimes as JSON, hence the `serde` bounds.
    /// [`shutdown`](VirtualActors::shutdown) stops serving the other runtimes. One
    /// `VirtualActors` per actor type per `Cluster`: a second fails. Call it from outside
    /// any tokio runtime (it waits for the lease stream and the subscription).
    pub fn start_clustered(
        handle: &Handle,
        store: Arc<dyn EventStore>,
        config: VirtualConfig,
        cluster: &Arc<Cluster>,
    ) -> Result<Self, ExitReason> {
        let actors = Self::clustered(handle, store, config, cluster)?;
        actors.spawn_router(handle)?;
        Ok(actors)
    }

    /// [`start_clustered`](Self::start_clustered), as a child of the caller's supervisor
    /// (see [`child_spec`](VirtualActors::child_spec)). This runtime serves the other
    /// runtimes from now on, until [`shutdown`](VirtualActors::shutdown); while the child
    /// is not running, commands forwarded here are turned back (nothing runs, and the
    /// sender looks for the id again).
    ///
    /// One `VirtualActors` per actor type per `Cluster`: a second fails.
    pub fn clustered_child_spec(
        handle: &Handle,
        id: impl Into<String>,
        store: Arc<dyn EventStore>,
        config: VirtualConfig,
        cluster: &Arc<Cluster>,
    ) -> Result<(ChildSpec, Self), ExitReason> {
        let actors = Self::clustered(handle, store, config, cluster)?;
        Ok((actors.spec(id), actors))
    }

    /// The clustered handle, its router not started: the leases opened, other runtimes
    /// served.
    fn clustered(
        handle: &Handle,
        store: Arc<dyn EventStore>,
        config: VirtualConfig,
        cluster: &Arc<Cluster>,
    ) -> Result<Self, ExitReason> {
        if !lock(&cluster.kinds).insert(A::KIND) {
            return Err(ExitReason::error(format!(
                "virtual actors of kind {} already run on this cluster connection",
                A::KIND
            )));
        }
        let opened = Self::clustered_unchecked(handle, store, config, cluster);
        if opened.is_err() {
            lock(&cluster.kinds).remove(A::KIND);
        }
        opened
    }

    fn clustered_unchecked(
        handle: &Handle,
        store: Arc<dyn EventStore>,
        config: VirtualConfig,
        cluster: &Arc<Cluster>,
    ) -> Result<Self, ExitReason> {
        let leases = cluster
            .runtime()
            .block_on(Leases::open(
                cluster.nats.jetstream.clone(),
                &cluster.config.prefix,
                A::KIND,
                cluster.config.node.clone(),
                cluster.config.lease_ttl,
            ))
            .map_err(|error| ExitReason::error(error.to_string()))?;
        let leases = Arc::new(leases);
        let subscriber = cluster
            .runtime()
            .block_on(
                cluster
                    .nats
                    .client
                    .subscribe(cluster.node_subject(cluster.node(), A::KIND)),
            )
            .map_err(|error| ExitReason::error(format!("subscribe for commands: {error}")))?;
        let placement = Arc::new(NatsPlacement::<A> {
            cluster: Arc::clone(cluster),
            leases: Arc::clone(&leases),
            owners: Arc::new(Mutex::new(HashMap::new())),
            renewal: Mutex::new(None),
            serving: Mutex::new(None),
            _actor: PhantomData,
        });
        let actors = Self::unstarted(
            store,
            config,
            Some(Arc::clone(&placement) as Arc<dyn Placement<A>>),
        );
        let renewal = cluster.runtime().spawn(leases.renew_forever());
        *lock(&placement.renewal) = Some(renewal.abort_handle());
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let in_flight = Arc::new(AtomicUsize::new(0));
        let task = cluster.runtime().spawn(serve(
            actors.clone(),
            handle.clone(),
            cluster.nats.client.clone(),
            subscriber,
            stopped,
            Arc::clone(&in_flight),
        ));
        *lock(&placement.serving) = Some(Serving {
            stop,
            task,
            in_flight,
        });
        Ok(actors)
    }
}

/// Serves the commands other runtimes forward here: each runs in a process of its own, as a
/// local command that is not forwarded again. When `stopped` fires, the subscription is
/// drained: every command the server sent before it ended is still served (and answered),
/// and later ones find no responder, so their senders look for the id elsewhere.
async fn serve<A: EventSourced>(
    actors: VirtualActors<A>,
    handle: Handle,
    client: async_nats::Client,
    subscriber: async_nats::Subscriber,
    stopped: tokio::sync::oneshot::Receiver<()>,
    in_flight: Arc<AtomicUsize>,
) where
    A::Command: Serialize + DeserializeOwned,
    A::Rejection: Serialize + DeserializeOwned,
{
    let mut messages = subscriber.take_until(stopped);
    while let Some(message) = messages.next().await {
        serve_one(&actors, &handle, &client, message, &in_flight);
    }
    let mut subscriber = messages.into_inner();
    if let Err(error) = subscriber.drain().await {
        debug!(%error, "virtual actors: the command subscription did not drain");
        return;
    }
    while let Some(message) = subscriber.next().await {
        serve_one(&actors, &handle, &client, message, &in_flight);
    }
}

/// Counts a forwarded command from when it is taken until it is answered.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        InFlight(Arc::clone(count))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Runs one forwarded command in a process of its own and answers it.
fn serve_one<A: EventSourced>(
    actors: &VirtualActors<A>,
    handle: &Handle,
    client: &async_nats::Client,
    message: async_nats::Message,
    in_flight: &Arc<AtomicUsize>,
) where
    A::Command: Serialize + DeserializeOwned,
    A::Rejection: Serialize + DeserializeOwned,
{
    let Some(reply_to) = message.reply else {
        return;
    };
    // Shared by the two ways of answering below; out when both are gone.
    let counted = Arc::new(InFlight::new(in_flight));
    let respond = {
        let client = client.clone();
        let runtime = tokio::runtime::Handle::current();
        move |reply: WireReply<A::Rejection>| {
            let payload = serde_json::to_vec(&reply).unwrap_or_else(|error| {
                serde_json::to_vec(&WireReply::<A::Rejection>::Encode {
                    actor: A::KIND.to_owned(),
                    reason: format!("the reply does not serialise: {error}"),
                })
                .expect("a reply without a rejection serialises")
            });
            runtime.spawn(async move {
                if let Err(error) = client.publish(reply_to, payload.into()).await {
                    debug!(%error, "virtual actors: a forwarded command's reply was not sent");
                }
                // Out once the reply is handed to the connection.
                drop(counted);
            });
        }
    };
    if in_flight.load(Ordering::Acquire) > MAX_FORWARDED_IN_FLIGHT {
        // Flooded: refuse rather than pile up processes; nothing ran.
        respond(WireReply::Down);
        return;
    }
    let request = match serde_json::from_slice::<WireCommandOwned<A::Command>>(&message.payload) {
        Ok(request) => request,
        Err(error) => {
            respond(WireReply::Encode {
                actor: A::KIND.to_owned(),
                reason: format!("a forwarded command does not decode: {error}"),
            });
            return;
        }
    };
    let actors = actors.clone();
    let (respond_here, respond_down) = (respond.clone(), respond);
    let spawned = handle.spawn(move |mut ctx: Ctx<()>| async move {
        let outcome = actors
            .ask_here(&mut ctx, &request.id, request.command)
            .await;
        respond_here(WireReply::from_outcome(outcome));
    });
    if let Err(error) = spawned {
        warn!(%error, "virtual actors: cannot run a forwarded command");
        respond_down(WireReply::Down);
    }
}
