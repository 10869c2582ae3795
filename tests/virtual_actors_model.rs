//! A state-machine test of virtual actors: random sequences of deposits, withdrawals,
//! crashes, stops and queries over a few accounts, run against real virtual actors (with a
//! cap of activations small enough to evict, and snapshots every other event) on a memory
//! store or the file store, and against a model that is just a balance and a version per
//! account. After every step the reply must be the model's, and at the end every account's
//! stored events must be gap-free and fold to the model's balance.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use baobab::persistence::{
    ActorError, Committed, EventSourced, EventStore, FileStore, MemoryStore, StreamId,
    VirtualActors, VirtualConfig,
};
use baobab::{Ctx, Runtime};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Default, Serialize, Deserialize)]
struct Account {
    balance: i64,
}

#[derive(Clone, Debug)]
enum Command {
    Deposit(i64),
    Withdraw(i64),
    Panic,
}

#[derive(Serialize, Deserialize)]
enum Event {
    Deposited(i64),
    Withdrew(i64),
}

#[derive(Debug, PartialEq)]
enum Rejection {
    Insufficient { balance: i64 },
}

impl EventSourced for Account {
    const KIND: &'static str = "account";
    type Command = Command;
    type Event = Event;
    type Rejection = Rejection;

    fn decide(&self, command: &Command) -> Result<Vec<Event>, Rejection> {
        match *command {
            Command::Deposit(n) => Ok(vec![Event::Deposited(n)]),
            Command::Withdraw(n) if n > self.balance => Err(Rejection::Insufficient {
                balance: self.balance,
            }),
            Command::Withdraw(n) => Ok(vec![Event::Withdrew(n)]),
            Command::Panic => panic!("a bug in decide"),
        }
    }

    fn apply(&mut self, event: &Event) {
        match *event {
            Event::Deposited(n) => self.balance += n,
            Event::Withdrew(n) => self.balance -= n,
        }
    }
}

const IDS: usize = 5;

#[derive(Clone, Debug)]
enum Op {
    Ask(usize, Command),
    Stop(usize),
    Query(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..IDS, 1..20i64).prop_map(|(id, n)| Op::Ask(id, Command::Deposit(n))),
        3 => (0..IDS, 1..30i64).prop_map(|(id, n)| Op::Ask(id, Command::Withdraw(n))),
        1 => (0..IDS).prop_map(|id| Op::Ask(id, Command::Panic)),
        1 => (0..IDS).prop_map(Op::Stop),
        2 => (0..IDS).prop_map(Op::Query),
    ]
}

/// The model: per account, its balance and version.
#[derive(Default)]
struct Model {
    accounts: HashMap<usize, (i64, u64)>,
}

impl Model {
    fn ask(&mut self, id: usize, command: &Command) -> Result<Committed, ActorError<Rejection>> {
        let (balance, version) = self.accounts.entry(id).or_default();
        match *command {
            Command::Deposit(n) => {
                *balance += n;
            }
            Command::Withdraw(n) if n > *balance => {
                return Err(ActorError::Rejected(Rejection::Insufficient {
                    balance: *balance,
                }));
            }
            Command::Withdraw(n) => {
                *balance -= n;
            }
            // Checked apart: the crash's reason carries the panic's message.
            Command::Panic => unreachable!(),
        }
        *version += 1;
        Ok(Committed {
            version: *version,
            events: 1,
        })
    }
}

fn name(id: usize) -> String {
    format!("acct{id}")
}

fn run(rt: &Runtime, store: Arc<dyn EventStore>, ops: &[Op]) -> Result<(), TestCaseError> {
    let accounts = VirtualActors::<Account>::start(
        rt.handle(),
        Arc::clone(&store),
        VirtualConfig {
            max_active: Some(2),
            snapshot_every: Some(2),
            call_timeout: common::SAFETY,
            ..VirtualConfig::default()
        },
    )
    .unwrap();
    let mut model = Model::default();
    for op in ops {
        let actors = accounts.clone();
        match op.clone() {
            Op::Ask(id, Command::Panic) => {
                let got = rt
                    .block_on(move |mut ctx: Ctx<()>| async move {
                        actors.ask(&mut ctx, &name(id), Command::Panic).await
                    })
                    .unwrap();
                prop_assert!(
                    matches!(got, Err(ActorError::Crashed(_))),
                    "a crash: {got:?}"
                );
            }
            Op::Ask(id, command) => {
                let expected = model.ask(id, &command);
                let got = rt
                    .block_on(move |mut ctx: Ctx<()>| async move {
                        actors.ask(&mut ctx, &name(id), command).await
                    })
                    .unwrap();
                prop_assert_eq!(got, expected, "{:?}", op);
            }
            Op::Stop(id) => {
                let got = rt
                    .block_on(move |mut ctx: Ctx<()>| async move {
                        actors.stop(&mut ctx, &name(id)).await
                    })
                    .unwrap();
                prop_assert!(got.is_ok(), "stop: {got:?}");
            }
            Op::Query(id) => {
                let got = rt
                    .block_on(move |mut ctx: Ctx<()>| async move {
                        actors
                            .query(&mut ctx, &name(id), |a: &Account, v| (a.balance, v))
                            .await
                    })
                    .unwrap();
                let expected = model.accounts.get(&id).copied().unwrap_or((0, 0));
                prop_assert_eq!(got, Ok(expected), "{:?}", op);
            }
        }
    }
    accounts.shutdown(rt.handle());
    // The store: every account gap-free, folding to the model's balance.
    for id in 0..IDS {
        let stream = StreamId::new("account", name(id)).unwrap();
        let events = store.read(&stream, 0, usize::MAX).unwrap();
        let mut balance = 0;
        for (i, event) in events.iter().enumerate() {
            prop_assert_eq!(event.version, i as u64 + 1);
            match serde_json::from_slice::<Event>(&event.payload).unwrap() {
                Event::Deposited(n) => balance += n,
                Event::Withdrew(n) => balance -= n,
            }
        }
        let expected = model.accounts.get(&id).copied().unwrap_or((0, 0));
        prop_assert_eq!((balance, events.len() as u64), expected, "account {}", id);
        if let Some(snapshot) = store.load_snapshot(&stream).unwrap() {
            prop_assert!(snapshot.version <= expected.1);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn virtual_actors_on_a_memory_store_match_the_model(ops in proptest::collection::vec(op(), 1..40)) {
        let rt = common::runtime();
        run(&rt, Arc::new(MemoryStore::new()), &ops)?;
    }

    #[test]
    fn virtual_actors_on_the_file_store_match_the_model(ops in proptest::collection::vec(op(), 1..40)) {
        let rt = common::runtime();
        let dir = std::env::temp_dir().join(format!(
            "baobab-va-model-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        let store = Arc::new(FileStore::open(&dir).unwrap());
        let result = run(&rt, store, &ops);
        let _ = std::fs::remove_dir_all(&dir);
        result?;
    }
}
