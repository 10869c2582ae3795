//! Bank accounts as event-sourced virtual actors on the durable file store.
//!
//! The account's state is the fold of its events. The example kills an account's actor in the
//! middle of its work (the supervisor restarts it and it replays its events), then runs a
//! second copy of itself as a child process that makes deposits and is killed with SIGKILL
//! at a random moment; reopened, the store holds every deposit the child had confirmed.
//!
//! ```text
//! cargo run --release --example bank
//! ```

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use baobab::persistence::{
    ActorError, EventSourced, EventStore, FileStore, VirtualActors, VirtualConfig,
};
use baobab::{Ctx, ExitReason, Runtime};
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Serialize, Deserialize)]
struct Account {
    balance: i64,
}

enum AccountCommand {
    Deposit(i64),
    Withdraw(i64),
}

#[derive(Serialize, Deserialize)]
enum Event {
    Deposited(i64),
    Withdrew(i64),
}

#[derive(Debug)]
enum Refused {
    Insufficient { balance: i64, asked: i64 },
}

impl EventSourced for Account {
    const KIND: &'static str = "account";
    type Command = AccountCommand;
    type Event = Event;
    type Rejection = Refused;

    fn decide(&self, command: &AccountCommand) -> Result<Vec<Event>, Refused> {
        match *command {
            AccountCommand::Deposit(amount) => Ok(vec![Event::Deposited(amount)]),
            AccountCommand::Withdraw(asked) if asked > self.balance => Err(Refused::Insufficient {
                balance: self.balance,
                asked,
            }),
            AccountCommand::Withdraw(amount) => Ok(vec![Event::Withdrew(amount)]),
        }
    }

    fn apply(&mut self, event: &Event) {
        match *event {
            Event::Deposited(amount) => self.balance += amount,
            Event::Withdrew(amount) => self.balance -= amount,
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() == Some("--depositor") {
        let dir = args.next().expect("a store directory");
        return depositor(&dir);
    }
    let dir = std::env::temp_dir().join(format!("baobab-bank-{}", std::process::id()));
    let rt = Runtime::new();
    {
        let store: Arc<dyn EventStore> = Arc::new(FileStore::open(&dir).expect("open the store"));
        let bank = VirtualActors::<Account>::start(rt.handle(), store, VirtualConfig::default())
            .expect("start the accounts");
        let (teller, handle) = (bank.clone(), rt.handle().clone());
        rt.block_on(move |mut ctx: Ctx<()>| async move {
            teller
                .ask(&mut ctx, "alice", AccountCommand::Deposit(100))
                .await
                .unwrap();
            teller
                .ask(&mut ctx, "alice", AccountCommand::Withdraw(30))
                .await
                .unwrap();
            match teller
                .ask(&mut ctx, "alice", AccountCommand::Withdraw(500))
                .await
            {
                Err(ActorError::Rejected(Refused::Insufficient { balance, asked })) => {
                    println!("refused: {asked} asked, {balance} in the account")
                }
                other => panic!("expected a refusal, got {other:?}"),
            }
            // Kill the account's actor: its supervisor starts a new one, which replays.
            let pid = teller.pid_of("alice").unwrap();
            handle.exit(pid, ExitReason::Kill);
            while teller.pid_of("alice") == Some(pid) {
                ctx.sleep(Duration::from_millis(1)).await;
            }
            let balance = teller
                .query(&mut ctx, "alice", |a: &Account, version| {
                    (a.balance, version)
                })
                .await
                .unwrap();
            println!(
                "alice after her actor was killed: balance {} at version {}",
                balance.0, balance.1
            );
            assert_eq!(balance, (70, 2));
        })
        .unwrap();
        bank.shutdown(rt.handle());
    }

    // A depositor process, killed with SIGKILL after a while.
    let mut child = Command::new(std::env::current_exe().unwrap())
        .arg("--depositor")
        .arg(&dir)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the depositor");
    let mut confirmed = 0;
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let stop_after = 200 + std::process::id() as i64 % 300;
    while confirmed < stop_after {
        let line = lines.next().expect("the depositor confirms").unwrap();
        confirmed = line.parse().unwrap();
    }
    child.kill().unwrap();
    for line in lines.map_while(Result::ok) {
        confirmed = line.parse().unwrap_or(confirmed);
    }
    child.wait().unwrap();
    println!("the depositor was killed after confirming {confirmed} deposits of 1");

    // Reopened: every confirmed deposit is there.
    let store: Arc<dyn EventStore> = Arc::new(FileStore::open(&dir).expect("reopen the store"));
    let bank = VirtualActors::<Account>::start(rt.handle(), store, VirtualConfig::default())
        .expect("start the accounts");
    let teller = bank.clone();
    let bob = rt
        .block_on(move |mut ctx: Ctx<()>| async move {
            teller
                .query(&mut ctx, "bob", |a: &Account, _| a.balance)
                .await
                .unwrap()
        })
        .unwrap();
    println!("bob after reopening: balance {bob}");
    assert!(bob >= confirmed, "a confirmed deposit was lost");
    bank.shutdown(rt.handle());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The child: deposits 1 into bob's account again and again, printing each confirmed total.
fn depositor(dir: &str) {
    let rt = Runtime::new();
    let store: Arc<dyn EventStore> = Arc::new(FileStore::open(dir).expect("open the store"));
    let bank = VirtualActors::<Account>::start(rt.handle(), store, VirtualConfig::default())
        .expect("start the accounts");
    rt.block_on(move |mut ctx: Ctx<()>| async move {
        for n in 1.. {
            bank.ask(&mut ctx, "bob", AccountCommand::Deposit(1))
                .await
                .unwrap();
            // Standard output is line-buffered: each line leaves at once.
            println!("{n}");
        }
    })
    .unwrap();
}
