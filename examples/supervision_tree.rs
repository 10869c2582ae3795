//! A three-level supervision tree: a worker crashes and is restarted, then a restart storm
//! escalates level by level until the top supervisor gives up. Prints what happens, and the
//! crash reports the runtime logs by default (through `tracing`, at error level): a
//! supervisor report for each child exit, with its reason and its restarts so far.
//!
//! ```text
//! cargo run --example supervision_tree
//! ```

use std::time::Duration;

use baobab::supervisor::{ChildSpec, Strategy, Supervisor, SupervisorMsg, SupervisorSpec};
use baobab::{Ctx, ExitReason, Handle, Message, Pid, Runtime};

/// A worker waiting for work that never comes.
fn worker(name: &'static str) -> ChildSpec {
    ChildSpec::worker(name, move |start| {
        start.spawn(move |mut ctx: Ctx<()>| async move {
            while let Message::User(()) = ctx.recv().await {}
        })
    })
}

fn crash(handle: &Handle, pid: Pid) {
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

    // References that follow restarts: the middle supervisor, its leaf supervisor, and the
    // leaf's reader and writer.
    let middle = sup.child_ref::<SupervisorMsg>(h, "middle").unwrap();
    let leaf = middle
        .supervisor()
        .unwrap()
        .child_ref::<SupervisorMsg>(h, "leaf")
        .unwrap();
    let leaf_sup = leaf.supervisor().unwrap();
    let reader = leaf_sup.child_ref::<()>(h, "reader").unwrap();
    let writer = leaf_sup.child_ref::<()>(h, "writer").unwrap();

    // One crash: rest_for_one restarts the reader and the writer started after it. A request
    // to the leaf (here for a reference) is answered once it has handled the crash.
    let (old_reader, old_writer) = (reader.pid().unwrap(), writer.pid().unwrap());
    crash(h, old_reader);
    leaf_sup.child_ref::<()>(h, "reader").unwrap();
    println!(
        "reader {old_reader} crashed: reader is now {}, writer {old_writer} -> {}",
        reader.pid().unwrap(),
        writer.pid().unwrap()
    );

    // A storm: keep crashing the reader. The leaf gives up after one more restart, the middle
    // restarts the leaf once (a new leaf, with a new reader), and gives up too; the top
    // (intensity 0) then stops.
    let watch = h.watch(sup.pid());
    let mut crashes = 1;
    while h.is_alive(sup.pid()) {
        // The reader of whichever leaf runs now.
        let current = middle
            .supervisor()
            .ok()
            .and_then(|middle| middle.child_ref::<SupervisorMsg>(h, "leaf").ok())
            .and_then(|leaf| leaf.supervisor().ok())
            .and_then(|leaf| leaf.child_ref::<()>(h, "reader").ok())
            .and_then(|reader| reader.pid());
        if let Some(pid) = current {
            crash(h, pid);
            crashes += 1;
            println!("crash {crashes}: reader {pid}");
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
