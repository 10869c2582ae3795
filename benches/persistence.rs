//! Event-sourced actors on the file store: appends per second for one actor and for 10,000,
//! each against its ceiling measured in the same run (a raw write-and-fsync loop on a plain
//! file), replay speed, and the activation latency of an actor with 10,000 events, cold, with
//! and without a snapshot.
//!
//! With feature `nats`, the same against NATS JetStream (a private `nats-server -js` the
//! bench starts on a free port), each against a raw JetStream publish loop with acks from the
//! same client library, one at a time and 64 at once, and a loop that publishes as the store
//! appends (10,000 subjects, expected-sequence checks). Two runtimes sharing the server show
//! what a command costs when it is forwarded to the runtime holding its actor.
//!
//! ```text
//! cargo bench --bench persistence
//! cargo bench --bench persistence --features nats
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

/// Per-operation CPU time of the timed part of the runs of the current row: this process,
/// and the NATS server when one runs (µs).
static CPU: std::sync::Mutex<Vec<(f64, Option<f64>)>> = std::sync::Mutex::new(Vec::new());

/// The pid of the NATS server the JetStream rows use (0: none).
static SERVER_PID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// CPU seconds used so far by this process (user + system).
fn process_cpu() -> f64 {
    // SAFETY: getrusage writes the struct it is given; a zeroed rusage is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// CPU seconds used so far by the NATS server, if one runs (from `/proc/PID/stat`).
fn server_cpu() -> Option<f64> {
    let pid = SERVER_PID.load(std::sync::atomic::Ordering::Relaxed);
    if pid == 0 {
        return None;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    Some(ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64)
}

/// Where the CPU counters stood when a timed part began.
struct CpuMark(f64, Option<f64>);

impl CpuMark {
    fn now() -> Self {
        CpuMark(process_cpu(), server_cpu())
    }

    /// Records the CPU per operation since the mark, for `ops` operations.
    fn record(self, ops: usize) {
        let per_op = |from: f64, to: f64| (to - from) * 1e6 / ops.max(1) as f64;
        let server = self.1.zip(server_cpu()).map(|(from, to)| per_op(from, to));
        CPU.lock()
            .unwrap()
            .push((per_op(self.0, process_cpu()), server));
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

/// Commands per second through `VirtualActors` on the file store to 10,000 active actors.
fn actors_10k(rt: &Runtime, n: usize, fsync: Fsync) -> f64 {
    let dir = scratch("many");
    let config = FileStoreConfig {
        fsync,
        ..FileStoreConfig::default()
    };
    let rate = commands_10k(rt, Arc::new(FileStore::open_with(&dir, config).unwrap()), n);
    std::fs::remove_dir_all(&dir).unwrap();
    rate
}

/// Commands per second through `VirtualActors` on `store` to 10,000 active actors
/// (activated first, untimed, so the timed commands measure appends, not activations), from
/// 64 callers at once (so appends wait for the store together).
fn commands_10k(rt: &Runtime, store: Arc<dyn EventStore>, n: usize) -> f64 {
    let actors =
        VirtualActors::<Counter>::start(rt.handle(), store, VirtualConfig::default()).unwrap();
    let (ids, callers) = (10_000, 64);
    from_callers(rt, &actors, callers, move |c| {
        (c..ids).step_by(callers).collect()
    });
    let per_caller = n / callers;
    let started = Instant::now();
    let cpu = CpuMark::now();
    from_callers(rt, &actors, callers, move |c| {
        (0..per_caller)
            .map(|i| (c * per_caller + i) % ids)
            .collect()
    });
    let rate = (per_caller * callers) as f64 / started.elapsed().as_secs_f64();
    cpu.record(per_caller * callers);
    actors.shutdown(rt.handle());
    rate
}

/// Runs `callers` processes at once, caller `c` adding 1 to actors `c{i}` for each `i` of
/// `ids(c)`, one command at a time, and returns when all are done.
fn from_callers(
    rt: &Runtime,
    actors: &VirtualActors<Counter>,
    callers: usize,
    ids: impl Fn(usize) -> Vec<usize> + Send + 'static,
) {
    let driver = actors.clone();
    rt.block_on(move |mut ctx: Ctx<()>| async move {
        let me = ctx.addr();
        for c in 0..callers {
            let (actors, ids) = (driver.clone(), ids(c));
            ctx.spawn(move |mut ctx: Ctx<()>| async move {
                for id in ids {
                    actors.ask(&mut ctx, &format!("c{id}"), 1).await.unwrap();
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

#[cfg(feature = "nats")]
mod jetstream {
    //! The JetStream rows: a private server, the raw publish ceilings, the store.

    use std::net::{TcpListener, TcpStream};
    use std::process::{Child, Command, Stdio};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    use async_nats::jetstream::message::PublishMessage;
    use baobab::persistence::{
        Cluster, ClusterConfig, EventStore, NatsStore, NatsStoreConfig, StreamId, VirtualActors,
        VirtualConfig,
    };
    use baobab::{Ctx, Runtime};

    use super::{event, scratch};

    pub struct Server {
        child: Child,
        dir: std::path::PathBuf,
        pub url: String,
    }

    impl Server {
        pub fn start() -> Server {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let dir = scratch("nats");
            std::fs::create_dir_all(&dir).unwrap();
            let child = Command::new("nats-server")
                .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
                .arg(&dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("nats-server (Debian's nats-server package)");
            let deadline = Instant::now() + Duration::from_secs(10);
            while TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(Instant::now() < deadline, "nats-server did not start");
                std::thread::sleep(Duration::from_millis(20));
            }
            super::SERVER_PID.store(child.id(), std::sync::atomic::Ordering::Relaxed);
            Server {
                child,
                dir,
                url: format!("nats://127.0.0.1:{port}"),
            }
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn prefix() -> String {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        format!("b{}", NEXT.fetch_add(1, Ordering::Relaxed))
    }

    /// The ceiling: `n` publishes, each awaiting its ack, from `writers` tasks at once, with
    /// the client library the store uses. Plain: each writer publishes to one subject of a
    /// fresh stream. `cas`: as the store appends, to 10,000 subjects (writer `w` owns ids
    /// `w`, `w + writers`, …), each publish with the store's headers and the
    /// `Nats-Expected-Last-Subject-Sequence` of its subject, which JetStream checks.
    pub fn raw_publish(url: &str, n: usize, writers: usize, cas: bool) -> f64 {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let client = async_nats::connect(url).await.unwrap();
            let js = async_nats::jetstream::new(client);
            let name = prefix();
            js.get_or_create_stream(async_nats::jetstream::stream::Config {
                name: name.to_uppercase(),
                subjects: vec![format!("{name}.>")],
                storage: async_nats::jetstream::stream::StorageType::File,
                ..Default::default()
            })
            .await
            .unwrap();
            let payload = bytes::Bytes::from(event(1).payload);
            let ids_per_writer = 10_000 / writers;
            let started = Instant::now();
            let cpu = super::CpuMark::now();
            let tasks: Vec<_> = (0..writers)
                .map(|w| {
                    let (js, payload, name) = (js.clone(), payload.clone(), name.clone());
                    tokio::spawn(async move {
                        let mut last = vec![0u64; ids_per_writer];
                        for i in 0..n / writers {
                            if !cas {
                                js.publish(format!("{name}.w{w}"), payload.clone())
                                    .await
                                    .unwrap()
                                    .await
                                    .unwrap();
                                continue;
                            }
                            let slot = i % ids_per_writer;
                            let message = PublishMessage::build()
                                .payload(payload.clone())
                                .header(
                                    "Baobab-First",
                                    (i / ids_per_writer + 1).to_string().as_str(),
                                )
                                .header("Baobab-Count", "1")
                                .expected_last_subject_sequence(last[slot]);
                            let subject = format!("{name}.c{}", w + writers * slot);
                            let ack = js
                                .send_publish(subject, message)
                                .await
                                .unwrap()
                                .await
                                .unwrap();
                            last[slot] = ack.sequence;
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
            let rate = (n / writers * writers) as f64 / started.elapsed().as_secs_f64();
            cpu.record(n / writers * writers);
            rate
        })
    }

    fn store(url: &str) -> NatsStore {
        NatsStore::connect(
            url,
            NatsStoreConfig {
                prefix: prefix(),
                ..NatsStoreConfig::default()
            },
        )
        .unwrap()
    }

    /// One writer, one stream, one event per append.
    pub fn append_one(url: &str, n: usize) -> f64 {
        let store = store(url);
        let stream = StreamId::new("counter", "one").unwrap();
        store.version(&stream).unwrap();
        let started = Instant::now();
        let cpu = super::CpuMark::now();
        for i in 0..n as u64 {
            store.append(&stream, i, &[event(i)]).unwrap();
        }
        let rate = n as f64 / started.elapsed().as_secs_f64();
        cpu.record(n);
        rate
    }

    /// Microseconds per command, one at a time, to an actor active on runtime `a`, sent from
    /// `a` itself or (`forwarded`) from a second runtime `b` whose commands go to `a` over
    /// NATS: the cost of routing across runtimes.
    pub fn cluster_ask_us(url: &str, n: usize, forwarded: bool) -> f64 {
        let name = prefix();
        let start = |node: &str| {
            let rt = Runtime::builder().threads(1).build();
            let cluster = Cluster::connect(
                url,
                ClusterConfig {
                    node: node.into(),
                    prefix: name.clone(),
                    ..ClusterConfig::default()
                },
            )
            .unwrap();
            let store = Arc::new(
                NatsStore::connect(
                    url,
                    NatsStoreConfig {
                        prefix: name.clone(),
                        ..NatsStoreConfig::default()
                    },
                )
                .unwrap(),
            );
            let actors = VirtualActors::<super::Counter>::start_clustered(
                rt.handle(),
                store,
                VirtualConfig::default(),
                &cluster,
            )
            .unwrap();
            (rt, actors, cluster)
        };
        let (a_rt, a, _a_cluster) = start("a");
        let (b_rt, b, _b_cluster) = start("b");
        let first = a.clone();
        a_rt.block_on(move |mut ctx: Ctx<()>| async move {
            first.ask(&mut ctx, "one", 1).await.unwrap();
        })
        .unwrap();
        let (rt, actors) = if forwarded { (&b_rt, b) } else { (&a_rt, a) };
        let us = rt
            .block_on(move |mut ctx: Ctx<()>| async move {
                let started = Instant::now();
                for _ in 0..n {
                    actors.ask(&mut ctx, "one", 1).await.unwrap();
                }
                started.elapsed().as_secs_f64() * 1e6 / n as f64
            })
            .unwrap();
        a_rt.shutdown();
        b_rt.shutdown();
        us
    }

    /// Commands per second through `VirtualActors` on JetStream to 10,000 active actors.
    pub fn actors_10k(rt: &Runtime, url: &str, n: usize) -> f64 {
        super::commands_10k(rt, Arc::new(store(url)), n)
    }
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
        let cpu = std::mem::take(&mut *CPU.lock().unwrap());
        if !cpu.is_empty() {
            let (mine, _, _) = summary(cpu.iter().map(|c| c.0).collect());
            let server: Vec<f64> = cpu.iter().filter_map(|c| c.1).collect();
            match server.is_empty() {
                true => println!("  cpu per op: this process {mine:.1} us"),
                false => println!(
                    "  cpu per op: this process {mine:.1} us, nats-server {:.1} us",
                    summary(server).0
                ),
            }
        }
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
    #[cfg(feature = "nats")]
    {
        let server = jetstream::Server::start();
        let url = server.url.clone();
        row("ceiling: raw JetStream publish, 1", "publishes/s", &|| {
            jetstream::raw_publish(&url, appends, 1, false)
        });
        row("append, 1 actor, JetStream", "appends/s", &|| {
            jetstream::append_one(&url, appends)
        });
        row("ceiling: raw JetStream publish, 64", "publishes/s", &|| {
            jetstream::raw_publish(&url, appends * 5, 64, false)
        });
        row(
            "ceiling: raw CAS publish, 64, 10k ids",
            "publishes/s",
            &|| jetstream::raw_publish(&url, appends * 5, 64, true),
        );
        row("commands, 10k actors, JetStream", "commands/s", &|| {
            jetstream::actors_10k(&rt, &url, appends * 5)
        });
        // The same two measured in turn, run after run, so a slower or faster spell of this
        // shared machine moves both: each pair's ratio, then their median.
        let paired = |name: &str, ours: &dyn Fn() -> f64, ceiling: &dyn Fn() -> f64| {
            if !chosen(name) {
                return;
            }
            let ratios = (0..runs)
                .map(|_| {
                    let ceiling = ceiling();
                    100.0 * ours() / ceiling
                })
                .collect();
            CPU.lock().unwrap().clear();
            let (median, min, max) = summary(ratios);
            println!("{name:<34} {median:>12.0} {min:>12.0} {max:>12.0}  % (pairs in turn)");
        };
        paired(
            "JetStream: 1 actor / raw, 1",
            &|| jetstream::append_one(&url, appends),
            &|| jetstream::raw_publish(&url, appends, 1, false),
        );
        paired(
            "JetStream: 10k actors / raw CAS",
            &|| jetstream::actors_10k(&rt, &url, appends * 5),
            &|| jetstream::raw_publish(&url, appends * 5, 64, true),
        );
        row("cluster: ask, active here", "us", &|| {
            jetstream::cluster_ask_us(&url, appends / 4, false)
        });
        row("cluster: ask, forwarded", "us", &|| {
            jetstream::cluster_ask_us(&url, appends / 4, true)
        });
    }
    rt.shutdown();
}
