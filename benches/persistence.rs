//! Event-sourced actors on the file store: appends per second for one actor and for 10,000,
//! each against its ceiling measured in the same run (a raw write-and-fsync loop on a plain
//! file), replay speed, and the activation latency of an actor with 10,000 events, cold, with
//! and without a snapshot.
//!
//! ```text
//! cargo bench --bench persistence
//! BAOBAB_BENCH_RUNS=5 BAOBAB_BENCH_APPENDS=2000 cargo bench --bench persistence [-- FILTER]
//! ```
//!
//! The store lives in a directory under `BAOBAB_BENCH_DIR` (the system's temp dir by
//! default): its disk is what the fsync figures measure.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use baobab::persistence::{
    EventSourced, EventStore, FileStore, FileStoreConfig, Fsync, NewEvent, Snapshot, StreamId,
    VirtualActors, VirtualConfig,
};
use baobab::{Ctx, Message, Runtime};
use serde::{Deserialize, Serialize};

mod common;

use common::{env, summary};

#[derive(Default, Serialize, Deserialize)]
struct Counter {
    total: u64,
    last: u64,
}

#[derive(Serialize, Deserialize)]
struct Added {
    n: u64,
}

impl EventSourced for Counter {
    const KIND: &'static str = "counter";
    type Command = u64;
    type Event = Added;
    type Rejection = ();

    fn decide(&self, n: &u64) -> Result<Vec<Added>, ()> {
        Ok(vec![Added { n: *n }])
    }

    fn apply(&mut self, event: &Added) {
        self.total += event.n;
        self.last = event.n;
    }
}

fn scratch(tag: &str) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let base = std::env::var_os("BAOBAB_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = base.join(format!(
        "baobab-bench-{tag}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn event(n: u64) -> NewEvent {
    NewEvent {
        schema: 1,
        payload: serde_json::to_vec(&Added { n }).unwrap(),
    }
}

/// The ceiling of one writer: write a frame-sized record, `fdatasync`, again.
fn raw_fsync(n: usize) -> f64 {
    let dir = scratch("raw");
    std::fs::create_dir_all(&dir).unwrap();
    let mut file = std::fs::File::create(dir.join("raw")).unwrap();
    let record = [7u8; 48];
    let started = Instant::now();
    for _ in 0..n {
        file.write_all(&record).unwrap();
        file.sync_data().unwrap();
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    std::fs::remove_dir_all(&dir).unwrap();
    rate
}

/// One writer, one stream, one event per append.
fn append_one(n: usize, fsync: Fsync) -> f64 {
    let dir = scratch("one");
    let store = FileStore::open_with(
        &dir,
        FileStoreConfig {
            fsync,
            ..FileStoreConfig::default()
        },
    )
    .unwrap();
    let stream = StreamId::new("counter", "one").unwrap();
    let started = Instant::now();
    for i in 0..n as u64 {
        store.append(&stream, i, &[event(i)]).unwrap();
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    drop(store);
    std::fs::remove_dir_all(&dir).unwrap();
    rate
}

/// Commands per second through `VirtualActors` to 10,000 actors, from 64 callers at once
/// (so appends wait for the disk together), the file store fsyncing every append.
fn actors_10k(rt: &Runtime, n: usize, fsync: Fsync) -> f64 {
    let dir = scratch("many");
    let store: Arc<dyn EventStore> = Arc::new(
        FileStore::open_with(
            &dir,
            FileStoreConfig {
                fsync,
                ..FileStoreConfig::default()
            },
        )
        .unwrap(),
    );
    let actors =
        VirtualActors::<Counter>::start(rt.handle(), store, VirtualConfig::default()).unwrap();
    let callers = 64;
    let ids = 10_000;
    let per_caller = n / callers;
    let started = Instant::now();
    let driver = actors.clone();
    rt.block_on(move |mut ctx: Ctx<()>| async move {
        let me = ctx.addr();
        for c in 0..callers {
            let actors = driver.clone();
            ctx.spawn(move |mut ctx: Ctx<()>| async move {
                for i in 0..per_caller {
                    let id = format!("c{}", (c * per_caller + i) % ids);
                    actors.ask(&mut ctx, &id, 1).await.unwrap();
                }
                ctx.send(&me, ()).unwrap();
            })
            .unwrap();
        }
        for _ in 0..callers {
            let _: Message<()> = ctx.recv().await;
        }
    })
    .unwrap();
    let rate = (per_caller * callers) as f64 / started.elapsed().as_secs_f64();
    actors.shutdown(rt.handle());
    std::fs::remove_dir_all(&dir).unwrap();
    rate
}

/// A store with one stream of `events` events, and a snapshot at its end if asked.
fn prepared(events: u64, snapshot: bool) -> (PathBuf, Arc<dyn EventStore>) {
    let dir = scratch("replay");
    let store = FileStore::open_with(
        &dir,
        FileStoreConfig {
            fsync: Fsync::Never,
            ..FileStoreConfig::default()
        },
    )
    .unwrap();
    let stream = StreamId::new("counter", "long").unwrap();
    let mut version = 0;
    while version < events {
        let batch: Vec<NewEvent> = (version..(version + 100).min(events)).map(event).collect();
        version = store.append(&stream, version, &batch).unwrap();
    }
    if snapshot {
        let state = Counter {
            total: (0..events).sum(),
            last: events - 1,
        };
        let snapshot = Snapshot {
            version: events,
            schema: 1,
            payload: serde_json::to_vec(&state).unwrap(),
        };
        store.save_snapshot(&stream, &snapshot).unwrap();
    }
    (dir, Arc::new(store))
}

/// Microseconds from the first query to an actor with `events` events, cold (a new host,
/// nothing in memory), to its answer.
fn activation_us(rt: &Runtime, events: u64, snapshot: bool) -> f64 {
    let (dir, store) = prepared(events, snapshot);
    let actors =
        VirtualActors::<Counter>::start(rt.handle(), store, VirtualConfig::default()).unwrap();
    let reader = actors.clone();
    let (total, us) = rt
        .block_on(move |mut ctx: Ctx<()>| async move {
            let started = Instant::now();
            let total = reader
                .query(&mut ctx, "long", |c: &Counter, _| c.total)
                .await
                .unwrap();
            (total, started.elapsed().as_secs_f64() * 1e6)
        })
        .unwrap();
    assert_eq!(total, (0..events).sum::<u64>());
    actors.shutdown(rt.handle());
    std::fs::remove_dir_all(&dir).unwrap();
    us
}

fn main() {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let chosen = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()));
    let runs = env("BAOBAB_BENCH_RUNS", 5).max(1);
    let appends = env("BAOBAB_BENCH_APPENDS", 2000);
    let threads = env(
        "BAOBAB_BENCH_THREADS",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );
    let rt = Runtime::builder().threads(threads).build();
    println!("# baobab persistence benchmarks (file store): median of {runs} runs");
    println!("# reproduce: cargo bench --bench persistence [-- FILTER]   (env BAOBAB_BENCH_*)");
    println!(
        "{:<34} {:>12} {:>12} {:>12}  unit",
        "workload", "median", "min", "max"
    );
    let row = |name: &str, unit: &str, run: &dyn Fn() -> f64| {
        if !chosen(name) {
            return;
        }
        let (median, min, max) = summary((0..runs).map(|_| run()).collect());
        println!("{name:<34} {median:>12.0} {min:>12.0} {max:>12.0}  {unit}");
    };
    row("ceiling: raw write+fdatasync", "writes/s", &|| {
        raw_fsync(appends)
    });
    row("append, 1 actor, fsync always", "appends/s", &|| {
        append_one(appends, Fsync::Always)
    });
    row("append, 1 actor, fsync never", "appends/s", &|| {
        append_one(appends * 10, Fsync::Never)
    });
    row("commands, 10k actors, fsync always", "commands/s", &|| {
        actors_10k(&rt, appends * 10, Fsync::Always)
    });
    row("commands, 10k actors, fsync never", "commands/s", &|| {
        actors_10k(&rt, appends * 10, Fsync::Never)
    });
    row("activation, 10k events, no snapshot", "us", &|| {
        activation_us(&rt, 10_000, false)
    });
    row("activation, 10k events, snapshot", "us", &|| {
        activation_us(&rt, 10_000, true)
    });
    row("replay (10k events, cold)", "events/s", &|| {
        10_000.0 / (activation_us(&rt, 10_000, false) / 1e6)
    });
    rt.shutdown();
}
