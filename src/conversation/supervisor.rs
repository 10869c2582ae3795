//! [`ConversationSupervisor`]: spawns conversations under a dynamic supervisor that restarts a
//! crashed conversation process at once, with its state.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tracing::warn;

use super::ConversationId;
use super::actor::{self, ConvMsg};
use super::config::{ChannelMode, ConversationConfig, CrashPolicy};
use super::core::{Core, Index};
use super::error::ConversationError;
use super::handle::ConversationHandle;
use super::participant::{self, ParticipantBehaviour, ParticipantRequest};
use super::slot::Slot;
use crate::supervisor::{DynamicSpec, DynamicSupervisor, Restart, Shutdown, SupervisorError};
use crate::{Addr, Ctx, ExitReason, Handle, Message, Pid};

/// Starts conversations and keeps them running.
///
/// Each conversation is a `transient` child of a dynamic supervisor: a crashed conversation
/// process is restarted at once (bounded by the restart intensity) and goes on with the state
/// it had; a conversation that closes or fails ends normally and is forgotten. If the
/// intensity is exceeded the supervisor stops, and every conversation still open fails with
/// [`ConversationError::SupervisorDown`].
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use baobab::Runtime;
/// use baobab::conversation::{ChannelMode, ConversationSupervisor, CrashPolicy, Envelope, Phase};
///
/// let rt = Runtime::new();
/// let conversations = ConversationSupervisor::start(rt.handle()).unwrap();
/// let (conversation, participant) = conversations
///     .spawn_with_participant(
///         Arc::new(|request: &Envelope| Some(request.reply("echo.v1", request.payload.clone()))),
///         Some(Duration::from_secs(60)),
///         ChannelMode::Ephemeral,
///         CrashPolicy::Fail,
///     )
///     .unwrap();
/// conversation.send(Envelope::new("echo.v1", "hello")).unwrap();
/// let reply = conversation.receive_timeout(Duration::from_secs(5)).unwrap();
/// assert_eq!(reply.text(), Some("hello"));
///
/// let state = conversation.query_state();
/// assert_eq!(state.phase, Phase::Active);
/// assert_eq!(state.participants[0].pid, participant);
/// assert_eq!(state.log.len(), 2); // sent, received
///
/// assert!(conversation.close().unwrap().is_empty());
/// assert_eq!(conversation.query_state().phase, Phase::Closed);
/// assert_eq!(conversations.open_conversations(), 0);
/// conversations.shutdown();
/// ```
#[derive(Clone)]
pub struct ConversationSupervisor {
    inner: Arc<Inner>,
}

struct Inner {
    handle: Handle,
    dynamic: DynamicSupervisor<Arc<Core>>,
    keeper: Addr<KeeperMsg>,
    index: Arc<Index>,
    next_id: AtomicU64,
    log_limit: usize,
}

impl std::fmt::Debug for ConversationSupervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ConversationSupervisor({})", self.inner.dynamic.pid())
    }
}

/// Options of a [`ConversationSupervisor`].
#[derive(Clone, Debug)]
pub struct ConversationSupervisorBuilder {
    max_restarts: u32,
    period: Duration,
    log_limit: usize,
}

/// The default number of entries a conversation's context log keeps.
pub const DEFAULT_LOG_LIMIT: usize = 10_000;

impl Default for ConversationSupervisorBuilder {
    fn default() -> Self {
        ConversationSupervisorBuilder {
            max_restarts: 10,
            period: Duration::from_secs(1),
            log_limit: DEFAULT_LOG_LIMIT,
        }
    }
}

impl ConversationSupervisorBuilder {
    /// More than `max_restarts` restarts of conversation processes (all conversations
    /// together) within `period` stop the supervisor. Default: 10 in 1 s.
    pub fn intensity(mut self, max_restarts: u32, period: Duration) -> Self {
        self.max_restarts = max_restarts;
        self.period = period;
        self
    }

    /// How many entries each conversation's context log keeps (the newest; older ones are
    /// counted in [`ConversationState::log_dropped`](super::ConversationState::log_dropped)).
    /// Default: [`DEFAULT_LOG_LIMIT`].
    pub fn log_limit(mut self, entries: usize) -> Self {
        self.log_limit = entries;
        self
    }

    /// Starts the supervisor on `handle`'s runtime.
    ///
    /// # Panics
    /// On a scheduler thread.
    pub fn start(self, handle: &Handle) -> Result<ConversationSupervisor, ConversationError> {
        let index = Arc::new(Index::default());
        let spec = DynamicSpec::worker("conversation", |start, core: Arc<Core>| {
            start.spawn(move |ctx: Ctx<ConvMsg>| actor::run(ctx, core))
        })
        .restart(Restart::Transient)
        .shutdown(Shutdown::Timeout(Duration::from_secs(10)))
        .intensity(self.max_restarts, self.period);
        let started: Arc<Slot<Result<DynamicSupervisor<Arc<Core>>, ExitReason>>> =
            Arc::new(Slot::new());
        let reported = Arc::clone(&started);
        let kept = Arc::clone(&index);
        let keeper = handle
            .spawn(move |ctx: Ctx<KeeperMsg>| keep(ctx, spec, reported, kept))
            .map_err(|error| ConversationError::Spawn(error.to_string()))?;
        started.wait(None);
        let dynamic = started
            .take()
            .expect("waited until filled")
            .map_err(|reason| ConversationError::Spawn(reason.to_string()))?;
        Ok(ConversationSupervisor {
            inner: Arc::new(Inner {
                handle: handle.clone(),
                dynamic,
                keeper,
                index,
                next_id: AtomicU64::new(1),
                log_limit: self.log_limit,
            }),
        })
    }
}

impl ConversationSupervisor {
    /// Starts a supervisor with the default options.
    ///
    /// # Panics
    /// On a scheduler thread.
    pub fn start(handle: &Handle) -> Result<Self, ConversationError> {
        ConversationSupervisor::builder().start(handle)
    }

    /// Options.
    pub fn builder() -> ConversationSupervisorBuilder {
        ConversationSupervisorBuilder::default()
    }

    /// The dynamic supervisor's pid (the parent of every conversation process).
    pub fn pid(&self) -> Pid {
        self.inner.dynamic.pid()
    }

    /// Spawns a conversation over existing participant processes.
    ///
    /// # Panics
    /// On a scheduler thread.
    pub fn spawn(
        &self,
        config: ConversationConfig,
    ) -> Result<ConversationHandle, ConversationError> {
        self.start_conversation(config, &[], None)
    }

    /// Spawns a process running `behaviour`, then a conversation with it as its only
    /// participant. Returns the handle and the participant's pid.
    ///
    /// # Panics
    /// On a scheduler thread.
    pub fn spawn_with_participant(
        &self,
        behaviour: Arc<dyn ParticipantBehaviour>,
        timeout: Option<Duration>,
        mode: ChannelMode,
        on_crash: CrashPolicy,
    ) -> Result<(ConversationHandle, Pid), ConversationError> {
        let (handle, pids) =
            self.spawn_with_participants(vec![behaviour], timeout, mode, on_crash)?;
        Ok((handle, pids[0]))
    }

    /// Spawns one process per behaviour, then a conversation with them as participants, in
    /// this order. Returns the handle and the participants' pids.
    ///
    /// # Panics
    /// On a scheduler thread.
    pub fn spawn_with_participants(
        &self,
        behaviours: Vec<Arc<dyn ParticipantBehaviour>>,
        timeout: Option<Duration>,
        mode: ChannelMode,
        on_crash: CrashPolicy,
    ) -> Result<(ConversationHandle, Vec<Pid>), ConversationError> {
        check(mode, behaviours.len())?;
        let conversation: Arc<OnceLock<Arc<Core>>> = Arc::new(OnceLock::new());
        let supervisor = self.pid();
        let mut participants = Vec::with_capacity(behaviours.len());
        for behaviour in behaviours {
            let conversation = Arc::clone(&conversation);
            let spawned = self
                .inner
                .handle
                .spawn(move |ctx: Ctx<ParticipantRequest>| {
                    participant::run(ctx, behaviour, supervisor, conversation)
                });
            match spawned {
                Ok(addr) => participants.push(addr),
                Err(error) => {
                    self.kill_all(&participants);
                    return Err(ConversationError::Spawn(error.to_string()));
                }
            }
        }
        let pids: Vec<Pid> = participants.iter().map(|a| a.pid()).collect();
        let config = ConversationConfig::new(participants.clone(), timeout, mode, on_crash);
        match self.start_conversation(config, &pids, Some(&conversation)) {
            Ok(handle) => Ok((handle, pids)),
            Err(error) => {
                self.kill_all(&participants);
                Err(error)
            }
        }
    }

    fn kill_all(&self, participants: &[Addr<ParticipantRequest>]) {
        for addr in participants {
            self.inner.handle.exit(addr.pid(), ExitReason::Kill);
        }
    }

    fn start_conversation(
        &self,
        config: ConversationConfig,
        owned: &[Pid],
        slot: Option<&Arc<OnceLock<Arc<Core>>>>,
    ) -> Result<ConversationHandle, ConversationError> {
        check(config.mode, config.participants.len())?;
        let inner = &self.inner;
        let id = ConversationId(inner.next_id.fetch_add(1, Ordering::Relaxed));
        let core = Arc::new(Core::new(
            id,
            config,
            owned,
            inner.handle.clone(),
            &inner.index,
            inner.log_limit,
        ));
        if let Some(slot) = slot {
            let _ = slot.set(Arc::clone(&core));
        }
        inner.index.insert(&core);
        let dynamic = inner.dynamic;
        let child = Arc::clone(&core);
        let started = inner.handle.block_on(move |mut ctx: Ctx<()>| async move {
            dynamic.start_child(&mut ctx, child).await
        });
        match started {
            Ok(Ok(_pid)) => {
                // Linked to its participants before anyone can see it.
                core.ready.wait(None);
                Ok(ConversationHandle::new(core))
            }
            Ok(Err(error)) => {
                inner.index.remove(id);
                Err(match error {
                    SupervisorError::Call(_) => ConversationError::SupervisorDown,
                    other => ConversationError::Spawn(other.to_string()),
                })
            }
            Err(reason) => {
                inner.index.remove(id);
                Err(ConversationError::Spawn(reason.to_string()))
            }
        }
    }

    /// How many conversations are open (neither closed nor failed).
    pub fn open_conversations(&self) -> usize {
        self.inner.index.len()
    }

    /// The ids of the open conversations, oldest first.
    pub fn conversation_ids(&self) -> Vec<ConversationId> {
        self.inner.index.ids()
    }

    /// Stops the supervisor: every open conversation fails with
    /// [`ConversationError::SupervisorDown`] and its owned participants stop. Returns once
    /// they are all gone.
    ///
    /// # Panics
    /// On a scheduler thread.
    pub fn shutdown(&self) {
        let watch = self.inner.handle.watch(self.inner.keeper.pid());
        let _ = self.inner.handle.send(&self.inner.keeper, KeeperMsg::Stop);
        watch.wait();
    }
}

fn check(mode: ChannelMode, participants: usize) -> Result<(), ConversationError> {
    if mode == ChannelMode::Durable {
        return Err(ConversationError::DurableUnsupported);
    }
    if participants == 0 {
        return Err(ConversationError::NoParticipants);
    }
    Ok(())
}

/// What the keeper receives.
enum KeeperMsg {
    Stop,
}

/// The keeper starts the dynamic supervisor linked to itself and, when it stops (shut down or
/// over its restart intensity), fails every conversation still open, so no receive waits for
/// a conversation that no process will serve again.
async fn keep(
    mut ctx: Ctx<KeeperMsg>,
    spec: DynamicSpec<Arc<Core>>,
    started: Arc<Slot<Result<DynamicSupervisor<Arc<Core>>, ExitReason>>>,
    index: Arc<Index>,
) -> ExitReason {
    ctx.trap_exit(true);
    let dynamic = match DynamicSupervisor::start_link(&mut ctx, spec).await {
        Ok(dynamic) => dynamic,
        Err(reason) => {
            started.fill(Err(reason.clone()));
            return reason;
        }
    };
    started.fill(Ok(dynamic));
    drop(started);
    let reason = loop {
        match ctx.recv().await {
            Message::User(KeeperMsg::Stop) => {
                ctx.exit(dynamic.pid(), ExitReason::Shutdown);
                let exited = ctx
                    .recv_matching(|m| matches!(m, Message::Exit(s) if s.from == dynamic.pid()))
                    .await;
                drop(exited);
                break ExitReason::Normal;
            }
            Message::Exit(signal) if signal.from == dynamic.pid() => {
                warn!(supervisor = %dynamic.pid(), reason = %signal.reason,
                    "conversation supervisor stopped; failing open conversations");
                break signal.reason;
            }
            _ => {}
        }
    };
    for core in index.drain() {
        // A no-op on a conversation that has already ended.
        core.fail(ConversationError::SupervisorDown);
        core.finish();
    }
    reason
}
