//! A three-level supervision tree: a worker crashes and is restarted, then a restart storm
//! escalates level by level until the top supervisor gives up. Prints what happens, and the
//! crash reports the runtime logs by default (through `tracing`, at error level): a
//! supervisor report for each child exit, with its reason and its restarts so far.
//!
//! ```text
//! cargo run --example supervision_tree
//! ```

use std::time::Duration;

use baobab::supervisor::{ChildSpec, Strategy, Supervisor, SupervisorSpec};
use baobab::{Ctx, ExitReason, Handle, Message, Runtime};

/// A worker registered as `name`, waiting for work that never comes.
fn worker(name: &'static str) -> ChildSpec {
    ChildSpec::worker(name, move |start| {
        start.spawn(move |mut ctx: Ctx<()>| async move {
            ctx.register(name).unwrap();
            while let Message::User(()) = ctx.recv().await {}
        })
    })
}

/// Waits until `name` is registered by a process other than `not`; returns its pid.
fn registered(handle: &Handle, name: &str, not: Option<baobab::Pid>) -> baobab::Pid {
    loop {
        if let Some(pid) = handle.whereis_pid(name)
            && Some(pid) != not
        {
            return pid;
        }
        std::thread::yield_now();
    }
}

fn crash(handle: &Handle, pid: baobab::Pid) {
    let watch = handle.watch(pid);
    handle.exit(pid, ExitReason::error("disk on fire"));
    watch.wait();
}

fn main() {
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_target(false)
        .init();
    let rt = Runtime::new();
    let h = rt.handle();

    // top (one_for_one, gives up at the first restart)
    //  └ middle (one_for_one, 1 restart per minute)
    //     ├ leaf (rest_for_one, 1 restart per minute)
    //     │  ├ reader
    //     │  └ writer
    //     └ logger
    let leaf = SupervisorSpec::new(Strategy::RestForOne)
        .intensity(1, Duration::from_secs(60))
        .child(worker("reader"))
        .child(worker("writer"));
    let middle = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(1, Duration::from_secs(60))
        .child(ChildSpec::supervisor("leaf", leaf))
        .child(worker("logger"));
    let top = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(0, Duration::from_secs(60))
        .child(ChildSpec::supervisor("middle", middle));
    let sup = Supervisor::start(h, top).expect("the tree starts");
    println!("tree started: {} processes", h.stats().live);

    // One crash: rest_for_one restarts the reader and the writer started after it.
    let reader = registered(h, "reader", None);
    let writer = registered(h, "writer", None);
    crash(h, reader);
    let new_reader = registered(h, "reader", Some(reader));
    let new_writer = registered(h, "writer", Some(writer));
    println!(
        "reader {reader} crashed: reader is now {new_reader}, writer {writer} -> {new_writer}"
    );

    // A storm: keep crashing the reader. The leaf gives up after one more restart, the middle
    // restarts the leaf once, and gives up too; the top (intensity 0) then stops.
    let watch = h.watch(sup.pid());
    let mut crashes = 1;
    while h.is_alive(sup.pid()) {
        // A name is released when its process exits: whatever answers is a live reader.
        match h.whereis_pid("reader") {
            Some(pid) => {
                crash(h, pid);
                crashes += 1;
                println!("crash {crashes}: reader {pid}");
            }
            None => std::thread::yield_now(),
        }
    }
    let reason = watch.wait();
    println!(
        "the storm reached the top: it exited with {reason} after {crashes} crashes; \
         {} processes alive, {} restarts in all",
        h.stats().live,
        h.stats().restarts
    );
    assert_eq!(reason, ExitReason::Shutdown);
}
