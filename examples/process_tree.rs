//! A small process tree without a supervisor: a root process traps exits, links to its
//! workers, watches one with a monitor, and restarts a worker that crashes, by hand.
//!
//! Run it with `cargo run --example process_tree`.

use std::time::Duration;

use baobab::{Addr, Ctx, ExitReason, Message, Runtime};

/// What a worker is asked to do.
enum Job {
    /// Add the numbers and send the sum to the root.
    Sum(Vec<u64>, Addr<RootMsg>),
    /// Fail, to show what the root sees.
    Crash,
}

enum RootMsg {
    Sum { worker: usize, total: u64 },
}

async fn worker(index: usize, mut ctx: Ctx<Job>) -> ExitReason {
    loop {
        match ctx.recv().await {
            Message::User(Job::Sum(numbers, reply_to)) => {
                let total = numbers.iter().sum();
                let _ = ctx.send(
                    &reply_to,
                    RootMsg::Sum {
                        worker: index,
                        total,
                    },
                );
            }
            Message::User(Job::Crash) => panic!("worker {index} was told to crash"),
            Message::Exit(signal) => return signal.reason,
            Message::Down(_) => {}
        }
    }
}

fn spawn_worker(ctx: &Ctx<RootMsg>, index: usize) -> Addr<Job> {
    ctx.spawn_link(move |ctx: Ctx<Job>| worker(index, ctx))
        .expect("spawn a worker")
}

fn main() {
    let rt = Runtime::new();
    let report = rt.block_on(|mut ctx: Ctx<RootMsg>| async move {
        ctx.trap_exit(true);
        let mut workers: Vec<Addr<Job>> = (0..3).map(|i| spawn_worker(&ctx, i)).collect();
        println!(
            "root {} started workers {:?}",
            ctx.pid(),
            workers.iter().map(|w| w.pid()).collect::<Vec<_>>()
        );

        // A watcher that is only monitored, not linked: its end is a Down, not an exit signal.
        let (watcher, _monitor) = ctx
            .spawn_monitor(|mut ctx: Ctx<()>| async move {
                ctx.sleep(Duration::from_millis(5)).await;
            })
            .expect("spawn the watcher");
        println!("root monitors watcher {}", watcher.pid());

        let me = ctx.addr();
        for (i, w) in workers.iter().enumerate() {
            let numbers = (1..=10 * (i as u64 + 1)).collect();
            ctx.send(w, Job::Sum(numbers, me)).unwrap();
        }
        ctx.send(&workers[1], Job::Crash).unwrap();

        let (mut sums, mut restarts, mut downs) = (0, 0, 0);
        while sums < 3 || restarts < 1 || downs < 1 {
            match ctx.recv_timeout(Duration::from_secs(5)).await {
                Some(Message::User(RootMsg::Sum { worker, total })) => {
                    println!("worker {worker} summed to {total}");
                    sums += 1;
                }
                Some(Message::Exit(signal)) => {
                    let index = workers.iter().position(|w| w.pid() == signal.from);
                    println!("root trapped exit of {}: {}", signal.from, signal.reason);
                    if let Some(index) = index {
                        workers[index] = spawn_worker(&ctx, index);
                        println!("root restarted worker {index} as {}", workers[index].pid());
                        ctx.send(&workers[index], Job::Sum(vec![1, 2, 3], me))
                            .unwrap();
                        restarts += 1;
                    }
                }
                Some(Message::Down(down)) => {
                    println!("watcher {} is down: {}", down.pid, down.reason);
                    downs += 1;
                }
                None => return Err("timed out waiting for the tree".to_string()),
            }
        }
        Ok(format!("{sums} sums, {restarts} restart, {downs} down"))
    });
    match report {
        Ok(Ok(summary)) => println!("done: {summary}"),
        Ok(Err(problem)) => {
            eprintln!("{problem}");
            std::process::exit(1);
        }
        Err(reason) => {
            eprintln!("root exited: {reason}");
            std::process::exit(1);
        }
    }
    let stats = rt.handle().stats();
    println!(
        "runtime: {} spawned, {} exited, {} messages",
        stats.spawned, stats.exited, stats.messages_sent
    );
    rt.shutdown();
}
