//! Event-sourced virtual actors: activation and replay, rejections, passivation, stop,
//! crashes under the supervisor, conflicts between two runtimes on one store, schema
//! upcasting and unreadable events.

mod common;

use std::sync::Arc;
use std::time::Duration;

use baobab::persistence::{
    ActorError, EventSourced, EventStore, MemoryStore, NewEvent, StoreError, StreamId,
    VirtualActors, VirtualConfig,
};
use baobab::{Ctx, Runtime};
use serde::{Deserialize, Serialize};

#[derive(Default, Serialize, Deserialize)]
struct Account {
    balance: i64,
    deposits: u32,
}

#[derive(Debug, Clone)]
enum Command {
    Deposit(i64),
    Withdraw(i64),
    /// Deposits `n` twice, as two events of one append.
    DoubleDeposit(i64),
    Nothing,
    Panic,
}

#[derive(Debug, Serialize, Deserialize)]
enum Event {
    Deposited { amount: i64 },
    Withdrew { amount: i64 },
}

#[derive(Debug, PartialEq)]
enum Rejection {
    Insufficient { balance: i64 },
    NotPositive,
}

impl EventSourced for Account {
    const KIND: &'static str = "account";
    type Command = Command;
    type Event = Event;
    type Rejection = Rejection;

    fn decide(&self, command: &Command) -> Result<Vec<Event>, Rejection> {
        match *command {
            Command::Deposit(n) | Command::Withdraw(n) | Command::DoubleDeposit(n) if n <= 0 => {
                Err(Rejection::NotPositive)
            }
            Command::Deposit(amount) => Ok(vec![Event::Deposited { amount }]),
            Command::DoubleDeposit(amount) => Ok(vec![
                Event::Deposited { amount },
                Event::Deposited { amount },
            ]),
            Command::Withdraw(amount) if amount > self.balance => Err(Rejection::Insufficient {
                balance: self.balance,
            }),
            Command::Withdraw(amount) => Ok(vec![Event::Withdrew { amount }]),
            Command::Nothing => Ok(vec![]),
            Command::Panic => panic!("a bug in decide"),
        }
    }

    fn apply(&mut self, event: &Event) {
        match *event {
            Event::Deposited { amount } => {
                self.balance += amount;
                self.deposits += 1;
            }
            Event::Withdrew { amount } => self.balance -= amount,
        }
    }
}

fn config() -> VirtualConfig {
    VirtualConfig {
        call_timeout: common::SAFETY,
        ..VirtualConfig::default()
    }
}

fn start(
    rt: &Runtime,
    store: Arc<dyn EventStore>,
    config: VirtualConfig,
) -> VirtualActors<Account> {
    VirtualActors::start(rt.handle(), store, config).unwrap()
}

fn balance(rt: &Runtime, accounts: &VirtualActors<Account>, id: &str) -> (i64, u64) {
    let accounts = accounts.clone();
    let id = id.to_owned();
    rt.block_on(move |mut ctx: Ctx<()>| async move {
        accounts
            .query(&mut ctx, &id, |a: &Account, version| (a.balance, version))
            .await
            .unwrap()
    })
    .unwrap()
}

fn ask(
    rt: &Runtime,
    accounts: &VirtualActors<Account>,
    id: &str,
    command: Command,
) -> Result<baobab::persistence::Committed, ActorError<Rejection>> {
    let accounts = accounts.clone();
    let id = id.to_owned();
    rt.block_on(move |mut ctx: Ctx<()>| async move { accounts.ask(&mut ctx, &id, command).await })
        .unwrap()
}

/// Waits until the supervisor has started a router other than `old`, and it runs.
fn wait_for_a_new_router(rt: &Runtime, accounts: &VirtualActors<Account>, old: baobab::Pid) {
    let deadline = std::time::Instant::now() + common::SAFETY;
    while accounts
        .router()
        .is_none_or(|now| now == old || !rt.handle().is_alive(now))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the router was not restarted"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The version of the latest snapshot of account `id`, if any.
fn snapshot_at(store: &dyn EventStore, id: &str) -> Option<u64> {
    let stream = StreamId::new("account", id).unwrap();
    store.load_snapshot(&stream).unwrap().map(|s| s.version)
}

#[test]
fn commands_become_events_and_a_reply_says_the_new_version() {
    let rt = common::runtime();
    let store = Arc::new(MemoryStore::new());
    let accounts = start(&rt, store.clone(), config());
    let committed = ask(&rt, &accounts, "alice", Command::Deposit(10)).unwrap();
    assert_eq!((committed.version, committed.events), (1, 1));
    let committed = ask(&rt, &accounts, "alice", Command::DoubleDeposit(5)).unwrap();
    assert_eq!((committed.version, committed.events), (3, 2));
    let committed = ask(&rt, &accounts, "alice", Command::Nothing).unwrap();
    assert_eq!((committed.version, committed.events), (3, 0));
    assert_eq!(balance(&rt, &accounts, "alice"), (20, 3));
    assert_eq!(accounts.active(), ["alice"]);
    // The store holds exactly those events.
    let stream = StreamId::new("account", "alice").unwrap();
    assert_eq!(store.version(&stream).unwrap(), 3);
}

#[test]
fn a_rejected_command_stores_nothing_and_says_why() {
    let rt = common::runtime();
    let store = Arc::new(MemoryStore::new());
    let accounts = start(&rt, store.clone(), config());
    ask(&rt, &accounts, "bob", Command::Deposit(3)).unwrap();
    assert_eq!(
        ask(&rt, &accounts, "bob", Command::Withdraw(5)),
        Err(ActorError::Rejected(Rejection::Insufficient { balance: 3 }))
    );
    assert_eq!(
        ask(&rt, &accounts, "bob", Command::Deposit(0)),
        Err(ActorError::Rejected(Rejection::NotPositive))
    );
    let stream = StreamId::new("account", "bob").unwrap();
    assert_eq!(store.version(&stream).unwrap(), 1);
}

#[test]
fn an_invalid_id_is_refused_before_anything_starts() {
    let rt = common::runtime();
    let accounts = start(&rt, Arc::new(MemoryStore::new()), config());
    for bad in ["", "a.b", "a b", "../x"] {
        assert!(matches!(
            ask(&rt, &accounts, bad, Command::Deposit(1)),
            Err(ActorError::Store(StoreError::InvalidName(_)))
        ));
    }
    assert!(accounts.active().is_empty());
}

#[test]
fn an_idle_actor_is_passivated_with_a_snapshot_and_reactivated_by_its_next_command() {
    let rt = common::runtime();
    let store = Arc::new(MemoryStore::new());
    let accounts = start(
        &rt,
        store.clone(),
        VirtualConfig {
            idle_after: Some(Duration::from_millis(50)),
            snapshot_every: None,
            ..config()
        },
    );
    ask(&rt, &accounts, "carol", Command::Deposit(7)).unwrap();
    let first = accounts.pid_of("carol").unwrap();
    common::exit_of(rt.handle(), first);
    assert!(accounts.active().is_empty(), "passivated");
    assert_eq!(
        snapshot_at(&*store, "carol"),
        Some(1),
        "passivation saves a snapshot"
    );
    let committed = ask(&rt, &accounts, "carol", Command::Deposit(1)).unwrap();
    assert_eq!(committed.version, 2);
    assert_ne!(accounts.pid_of("carol"), Some(first), "a new activation");
    assert_eq!(balance(&rt, &accounts, "carol"), (8, 2));
}

#[test]
fn stop_saves_a_snapshot_and_says_whether_the_actor_was_active() {
    let rt = common::runtime();
    let store = Arc::new(MemoryStore::new());
    let accounts = start(
        &rt,
        store.clone(),
        VirtualConfig {
            snapshot_every: None,
            ..config()
        },
    );
    ask(&rt, &accounts, "dave", Command::DoubleDeposit(2)).unwrap();
    let stopper = accounts.clone();
    let (was, again) = rt
        .block_on(move |mut ctx: Ctx<()>| async move {
            let was = stopper.stop(&mut ctx, "dave").await.unwrap();
            let again = stopper.stop(&mut ctx, "dave").await.unwrap();
            (was, again)
        })
        .unwrap();
    assert!(was);
    assert!(!again);
    assert!(accounts.active().is_empty());
    let stream = StreamId::new("account", "dave").unwrap();
    assert_eq!(store.load_snapshot(&stream).unwrap().unwrap().version, 2);
    assert_eq!(balance(&rt, &accounts, "dave"), (4, 2));
}

#[test]
fn snapshots_are_taken_every_n_events_and_activation_starts_from_the_latest() {
    let rt = common::runtime();
    let store = Arc::new(MemoryStore::new());
    let accounts = start(
        &rt,
        store.clone(),
        VirtualConfig {
            snapshot_every: Some(10),
            ..config()
        },
    );
    for _ in 0..25 {
        ask(&rt, &accounts, "erin", Command::Deposit(1)).unwrap();
    }
    let stream = StreamId::new("account", "erin").unwrap();
    assert_eq!(store.load_snapshot(&stream).unwrap().unwrap().version, 20);
    accounts.shutdown(rt.handle());
    assert_eq!(
        store.load_snapshot(&stream).unwrap().unwrap().version,
        25,
        "a shutdown saves the last snapshot"
    );
    // A new host on the same store starts from the snapshot.
    let accounts = start(&rt, store.clone(), config());
    assert_eq!(balance(&rt, &accounts, "erin"), (25, 25));
    // ... and not from the events: a snapshot that disagrees with them is what it reads.
    accounts.shutdown(rt.handle());
    let marked = baobab::persistence::Snapshot {
        version: 25,
        schema: 1,
        payload: br#"{"balance":1000,"deposits":25}"#.to_vec(),
    };
    store.save_snapshot(&stream, &marked).unwrap();
    let accounts = start(&rt, store.clone(), config());
    assert_eq!(balance(&rt, &accounts, "erin"), (1000, 25));
}

#[test]
fn a_crash_is_reported_to_its_caller_and_the_restarted_actor_replays() {
    let rt = common::runtime();
    let store = Arc::new(MemoryStore::new());
    let accounts = start(&rt, store.clone(), config());
    ask(&rt, &accounts, "frank", Command::Deposit(5)).unwrap();
    let before = accounts.pid_of("frank").unwrap();
    match ask(&rt, &accounts, "frank", Command::Panic) {
        Err(ActorError::Crashed(reason)) => {
            assert!(reason.to_string().contains("a bug in decide"), "{reason}")
        }
        other => panic!("expected a crash, got {other:?}"),
    }
    // The supervisor restarted it: a new pid in the registry, the state replayed.
    let restarted = (0..1000)
        .find_map(|_| {
            let pid = accounts.pid_of("frank").filter(|pid| *pid != before);
            if pid.is_none() {
                std::thread::sleep(Duration::from_millis(2));
            }
            pid
        })
        .expect("restarted");
    assert!(rt.handle().is_alive(restarted));
    assert_eq!(balance(&rt, &accounts, "frank"), (5, 1));
    assert_eq!(
        ask(&rt, &accounts, "frank", Command::Deposit(1))
            .unwrap()
            .version,
        2
    );
}

#[test]
fn commands_sent_to_an_actor_that_is_passivating_are_not_lost() {
    // Passivation after 1 ms of idling races with a stream of commands from many callers:
    // every command is answered once, and the versions are exactly 1..=N.
    let rt = common::runtime();
    let store = Arc::new(MemoryStore::new());
    let accounts = start(
        &rt,
        store.clone(),
        VirtualConfig {
            idle_after: Some(Duration::from_millis(1)),
            ..config()
        },
    );
    let callers = 8;
    let per_caller = 40;
    let mut versions: Vec<u64> = rt
        .block_on(move |mut ctx: Ctx<Vec<u64>>| async move {
            for _ in 0..callers {
                let (accounts, me) = (accounts.clone(), ctx.addr());
                ctx.spawn(move |mut ctx: Ctx<()>| async move {
                    let mut versions = Vec::new();
                    for i in 0..per_caller {
                        if i % 5 == 0 {
                            ctx.sleep(Duration::from_millis(2)).await;
                        }
                        let committed = accounts
                            .ask(&mut ctx, "gina", Command::Deposit(1))
                            .await
                            .unwrap();
                        versions.push(committed.version);
                    }
                    ctx.send(&me, versions).unwrap();
                })
                .unwrap();
            }
            let mut all = Vec::new();
            for _ in 0..callers {
                if let baobab::Message::User(versions) = ctx.recv().await {
                    all.extend(versions);
                }
            }
            all
        })
        .unwrap();
    versions.sort_unstable();
    let expected: Vec<u64> = (1..=(callers * per_caller) as u64).collect();
    assert_eq!(versions, expected);
    let stream = StreamId::new("account", "gina").unwrap();
    assert_eq!(
        store.version(&stream).unwrap(),
        (callers * per_caller) as u64
    );
}

#[test]
fn two_runtimes_on_one_store_resolve_conflicts_with_no_gap_and_no_lost_event() {
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let runtimes = [common::runtime(), common::runtime()];
    let hosts: Vec<VirtualActors<Account>> = runtimes
        .iter()
        .map(|rt| {
            start(
                rt,
                Arc::clone(&store),
                VirtualConfig {
                    conflict_retries: 1000,
                    ..config()
                },
            )
        })
        .collect();
    let ids = ["h0", "h1", "h2"];
    let threads: Vec<_> = runtimes
        .iter()
        .zip(&hosts)
        .map(|(rt, host)| {
            let (handle, host) = (rt.handle().clone(), host.clone());
            std::thread::spawn(move || {
                let mut ok = 0u64;
                for i in 0..150 {
                    let id = ids[i % ids.len()];
                    let host = host.clone();
                    let done = handle
                        .block_on(move |mut ctx: Ctx<()>| async move {
                            host.ask(&mut ctx, id, Command::Deposit(1)).await
                        })
                        .unwrap();
                    done.unwrap();
                    ok += 1;
                }
                ok
            })
        })
        .collect();
    let committed: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(committed, 300);
    let mut total = 0;
    for id in ids {
        let stream = StreamId::new("account", id).unwrap();
        let events = store.read(&stream, 0, usize::MAX).unwrap();
        for (i, e) in events.iter().enumerate() {
            assert_eq!(e.version, i as u64 + 1, "no gap");
        }
        total += events.len();
        // Each runtime's replayed state equals the fold of the stored events.
        for (rt, host) in runtimes.iter().zip(&hosts) {
            let stopper = host.clone();
            rt.block_on(move |mut ctx: Ctx<()>| async move { stopper.stop(&mut ctx, id).await })
                .unwrap()
                .unwrap();
            assert_eq!(
                balance(rt, host, id),
                (events.len() as i64, events.len() as u64)
            );
        }
    }
    assert_eq!(total, 300, "every acknowledged command's event, once");
}

/// Version 2 of the account's events: `Deposited` carries `cents`; version 1 had `amount`.
#[derive(Default, Serialize, Deserialize)]
struct AccountV2 {
    cents: i64,
}

#[derive(Serialize, Deserialize)]
enum EventV2 {
    Deposited { cents: i64 },
}

impl EventSourced for AccountV2 {
    const KIND: &'static str = "account";
    const EVENT_SCHEMA: u32 = 2;
    type Command = i64;
    type Event = EventV2;
    type Rejection = ();

    fn decide(&self, cents: &i64) -> Result<Vec<EventV2>, ()> {
        Ok(vec![EventV2::Deposited { cents: *cents }])
    }

    fn apply(&mut self, EventV2::Deposited { cents }: &EventV2) {
        self.cents += cents;
    }

    fn upcast_event(schema: u32, event: serde_json::Value) -> Result<serde_json::Value, String> {
        match schema {
            1 => {
                let amount = event["Deposited"]["amount"]
                    .as_i64()
                    .ok_or("a v1 event that is not a deposit")?;
                Ok(serde_json::json!({ "Deposited": { "cents": amount * 100 } }))
            }
            2 => Ok(event),
            other => Err(format!("unknown schema {other}")),
        }
    }
}

#[test]
fn old_events_are_upcast_on_replay_and_unreadable_ones_name_the_actor_and_version() {
    let rt = common::runtime();
    let store = Arc::new(MemoryStore::new());
    let v1 = start(&rt, store.clone(), config());
    ask(&rt, &v1, "ivan", Command::Deposit(3)).unwrap();
    ask(&rt, &v1, "ivan", Command::Withdraw(1)).unwrap();
    v1.shutdown(rt.handle());
    // Version 2 of the code reads the v1 deposit through the upcast; the withdrawal has no
    // upcast: the activation is refused with a clear error, every time.
    let v2: VirtualActors<AccountV2> = VirtualActors::start(
        rt.handle(),
        store.clone(),
        VirtualConfig {
            snapshot_every: None,
            ..config()
        },
    )
    .unwrap();
    let deposit_only = StreamId::new("account", "judy").unwrap();
    store
        .append(
            &deposit_only,
            0,
            &[NewEvent {
                schema: 1,
                payload: br#"{"Deposited":{"amount":2}}"#.to_vec(),
            }],
        )
        .unwrap();
    let read = v2.clone();
    let (judy, ivan, again) = rt
        .block_on(move |mut ctx: Ctx<()>| async move {
            read.ask(&mut ctx, "judy", 50).await.unwrap();
            let judy = read
                .query(&mut ctx, "judy", |a: &AccountV2, v| (a.cents, v))
                .await;
            let ivan = read.ask(&mut ctx, "ivan", 1).await;
            let again = read
                .query(&mut ctx, "ivan", |a: &AccountV2, _| a.cents)
                .await;
            (judy, ivan, again)
        })
        .unwrap();
    assert_eq!(judy.unwrap(), (250, 2));
    for error in [
        ivan.map(|_| ()).unwrap_err(),
        again.map(|_| ()).unwrap_err(),
    ] {
        match error {
            ActorError::Replay {
                actor,
                version,
                reason,
            } => {
                assert_eq!(actor, "account/ivan");
                assert_eq!(version, 2);
                assert!(reason.contains("not a deposit"), "{reason}");
            }
            other => panic!("expected a replay error, got {other:?}"),
        }
    }
    // The refused activation answers with its error while requests come, then leaves the
    // registry after a quiet second.
    let left = (0..500).any(|_| {
        std::thread::sleep(Duration::from_millis(10));
        v2.pid_of("ivan").is_none()
    });
    assert!(left, "a refused activation leaves the registry");
    assert_eq!(v2.active(), ["judy"]);
    // Callers racing a fresh activation that cannot replay all get its reason.
    let racing = v2.clone();
    let errors = rt
        .block_on(move |mut ctx: Ctx<ActorError<()>>| async move {
            let me = ctx.addr();
            for _ in 0..6 {
                let racing = racing.clone();
                ctx.spawn(move |mut ctx: Ctx<()>| async move {
                    let error = racing.ask(&mut ctx, "ivan", 1).await.unwrap_err();
                    ctx.send(&me, error).unwrap();
                })
                .unwrap();
            }
            let mut errors = Vec::new();
            for _ in 0..6 {
                if let baobab::Message::User(error) = ctx.recv().await {
                    errors.push(error);
                }
            }
            errors
        })
        .unwrap();
    assert_eq!(errors.len(), 6);
    for error in errors {
        assert!(
            matches!(&error, ActorError::Replay { version: 2, .. }),
            "{error:?}"
        );
    }
}

#[test]
fn virtual_actors_run_under_the_callers_supervisor_and_the_handle_follows_restarts() {
    use baobab::supervisor::{Strategy, Supervisor, SupervisorSpec};

    let rt = common::runtime();
    let store = Arc::new(MemoryStore::new());
    let (spec, accounts) =
        VirtualActors::<Account>::child_spec("accounts", store.clone(), config());
    assert_eq!(accounts.router(), None, "not started yet");
    assert_eq!(
        ask(&rt, &accounts, "erin", Command::Deposit(1)),
        Err(ActorError::Down)
    );
    let tree = Supervisor::start(
        rt.handle(),
        SupervisorSpec::new(Strategy::OneForOne).child(spec),
    )
    .unwrap();
    let first_router = accounts.router().expect("started by the supervisor");
    let supervisor = tree;
    let children = rt
        .block_on(move |mut ctx: Ctx<()>| async move { supervisor.which_children(&mut ctx).await })
        .unwrap()
        .unwrap();
    assert_eq!(children[0].pid, Some(first_router));
    ask(&rt, &accounts, "erin", Command::Deposit(4)).unwrap();
    let activation = accounts.pid_of("erin").unwrap();

    // The router crashes: its activations go with it, the supervisor starts it again, and
    // the same handle reaches the new one; the actor replays its events.
    rt.handle().exit(first_router, baobab::ExitReason::Kill);
    common::exit_of(rt.handle(), activation);
    wait_for_a_new_router(&rt, &accounts, first_router);
    assert_eq!(
        ask(&rt, &accounts, "erin", Command::Deposit(2))
            .unwrap()
            .version,
        2
    );
    assert_eq!(balance(&rt, &accounts, "erin"), (6, 2));

    // Stopping the tree stops every activation first, each saving its snapshot.
    tree.shutdown(rt.handle());
    assert_eq!(snapshot_at(&*store, "erin"), Some(2));
    assert!(accounts.active().is_empty());
}

#[test]
fn at_the_cap_of_activations_the_least_recently_used_is_passivated_first() {
    let rt = common::runtime();
    let store = Arc::new(MemoryStore::new());
    let accounts = start(
        &rt,
        store.clone(),
        VirtualConfig {
            max_active: Some(3),
            snapshot_every: None,
            ..config()
        },
    );
    for id in ["a", "b", "c"] {
        ask(&rt, &accounts, id, Command::Deposit(1)).unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    // a is used again: b is now the least recently used.
    ask(&rt, &accounts, "a", Command::Deposit(1)).unwrap();
    let b = accounts.pid_of("b").unwrap();
    ask(&rt, &accounts, "d", Command::Deposit(1)).unwrap();
    common::exit_of(rt.handle(), b);
    assert_eq!(accounts.active(), ["a", "c", "d"]);
    assert_eq!(
        snapshot_at(&*store, "b"),
        Some(1),
        "a passivated actor saves its snapshot"
    );
    // b comes back with its state; c, now the least recently used, makes room.
    let c = accounts.pid_of("c").unwrap();
    assert_eq!(
        ask(&rt, &accounts, "b", Command::Deposit(1))
            .unwrap()
            .version,
        2
    );
    common::exit_of(rt.handle(), c);
    assert_eq!(accounts.active(), ["a", "b", "d"]);
    // Many ids through a cap of 3: the passivations run behind the activations, so a few
    // more may be active for a moment, never many.
    for i in 0..30 {
        ask(&rt, &accounts, &format!("m{i}"), Command::Deposit(1)).unwrap();
        assert!(accounts.active().len() <= 6, "{:?}", accounts.active());
    }
    let deadline = std::time::Instant::now() + common::SAFETY;
    while accounts.active().len() > 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            accounts.active()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_restarted_router_forgets_activations_its_old_supervisor_gave_up_on() {
    use baobab::supervisor::{Strategy, Supervisor, SupervisorSpec};

    let rt = common::runtime();
    let store = Arc::new(MemoryStore::new());
    let (spec, accounts) = VirtualActors::<Account>::child_spec(
        "accounts",
        store,
        VirtualConfig {
            max_restarts: 1,
            period: Duration::from_secs(60),
            ..config()
        },
    );
    let tree = Supervisor::start(
        rt.handle(),
        SupervisorSpec::new(Strategy::OneForOne).child(spec),
    )
    .unwrap();
    ask(&rt, &accounts, "pat", Command::Deposit(5)).unwrap();
    let router = accounts.router().unwrap();
    // Two crashes in the period: the activations' supervisor gives up, its router stops,
    // and the tree starts a new router. The crashed activation never left the registry.
    assert!(matches!(
        ask(&rt, &accounts, "pat", Command::Panic),
        Err(ActorError::Crashed(_))
    ));
    assert!(matches!(
        ask(&rt, &accounts, "pat", Command::Panic),
        Err(ActorError::Crashed(_))
    ));
    wait_for_a_new_router(&rt, &accounts, router);
    // The new router activates pat again instead of handing out the dead activation.
    assert_eq!(
        ask(&rt, &accounts, "pat", Command::Deposit(1))
            .unwrap()
            .version,
        2
    );
    assert_eq!(balance(&rt, &accounts, "pat"), (6, 2));
    tree.shutdown(rt.handle());
}
