//! baobab's runtime benchmarks: spawn, ping-pong, call, server-call (a `Server`),
//! async-server-call (an `AsyncServer`), ring, restart, fan-in, `ask` through a
//! conversation (median and p99 per ask), and hog (timers and a call timeout while a process
//! spins); `docs/benchmarks.md` defines each workload. Each runs several times; the table shows the median and the range.
//!
//! ```text
//! cargo bench --bench runtime              # everything
//! cargo bench --bench runtime -- ring      # workloads whose name contains "ring"
//! cargo bench --bench runtime -- =call     # the workload named exactly "call"
//! BAOBAB_BENCH_RUNS=9 BAOBAB_BENCH_SPAWN_N=1000000 BAOBAB_BENCH_RING_LAPS=1000 \
//!     BAOBAB_BENCH_THREADS=2 cargo bench --bench runtime
//! ```

use std::time::{Duration, Instant};

use std::sync::Arc;

use baobab::conversation::{
    ChannelMode, ConversationHandle, ConversationSupervisor, CrashPolicy, Envelope,
};
use baobab::server::{AsyncMsg, AsyncServer, Handles, ReplyTo, Request, Server, ServerMsg};
use baobab::supervisor::{ChildSpec, Strategy, Supervisor, SupervisorSpec};
use baobab::{Addr, Ctx, ExitReason, Handled, Message, Runtime};

mod common;

use common::env;

fn resident_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// One run's figures: nanoseconds per operation, and an optional second figure.
struct Sample {
    ns_per_op: f64,
    extra: Option<f64>,
}

struct Workload {
    name: &'static str,
    unit: &'static str,
    extra_unit: &'static str,
    run: fn(&Runtime) -> Sample,
}

/// Spawn N idle processes in a fresh OS process each run (clean heap, honest RSS): the
/// bench runs itself with `BAOBAB_BENCH_CHILD=spawn` and reads the figures it prints.
fn spawn(_rt: &Runtime) -> Sample {
    let exe = std::env::current_exe().expect("the bench's own path");
    let output = std::process::Command::new(exe)
        .env("BAOBAB_BENCH_CHILD", "spawn")
        .output()
        .expect("run the spawn child");
    let text = String::from_utf8_lossy(&output.stdout);
    let mut figures = text
        .split_whitespace()
        .filter_map(|f| f.parse::<f64>().ok());
    match (figures.next(), figures.next()) {
        (Some(ns), Some(bytes)) => Sample {
            ns_per_op: ns,
            extra: Some(bytes),
        },
        _ => panic!(
            "spawn child printed {text:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

/// Spawn N idle processes (each waits in a receive) from one driver process.
fn spawn_in_this_process(rt: &Runtime) -> Sample {
    let n = env("BAOBAB_BENCH_SPAWN_N", 1_000_000);
    let (elapsed, bytes) = rt
        .block_on(move |mut ctx: Ctx<()>| async move {
            let before = resident_bytes();
            let start = Instant::now();
            let mut all = Vec::with_capacity(n);
            for _ in 0..n {
                let idle = ctx.spawn(|mut c: Ctx<()>| async move {
                    c.recv().await;
                });
                all.push(idle.expect("spawn"));
            }
            let elapsed = start.elapsed();
            // Let every new process reach its receive before measuring memory.
            ctx.sleep(Duration::from_millis(200)).await;
            let bytes = resident_bytes().saturating_sub(before) as f64 / n as f64;
            drop(all);
            (elapsed, bytes)
        })
        .expect("driver");
    Sample {
        ns_per_op: elapsed.as_nanos() as f64 / n as f64,
        extra: Some(bytes),
    }
}

/// A driver sends its address with each request; the server answers with a plain send.
fn ping_pong(rt: &Runtime) -> Sample {
    let n = env("BAOBAB_BENCH_PINGPONG_N", 1_000_000) as u32;
    let elapsed = rt
        .block_on(move |mut ctx: Ctx<u32>| async move {
            let server = ctx
                .spawn(|mut ctx: Ctx<(Addr<u32>, u32)>| async move {
                    while let Message::User((from, n)) = ctx.recv().await {
                        ctx.send(&from, n).unwrap();
                    }
                })
                .unwrap();
            let me = ctx.addr();
            let start = Instant::now();
            for i in 0..n {
                ctx.send(&server, (me, i)).unwrap();
                ctx.recv().await;
            }
            let elapsed = start.elapsed();
            ctx.exit(server.pid(), ExitReason::Kill);
            elapsed
        })
        .expect("driver");
    Sample {
        ns_per_op: elapsed.as_nanos() as f64 / f64::from(n),
        extra: None,
    }
}

/// The same round trip through `Ctx::call` (monitor, reply reference, timeout).
fn call(rt: &Runtime) -> Sample {
    let n = env("BAOBAB_BENCH_CALL_N", 1_000_000) as u32;
    let elapsed = rt
        .block_on(move |mut ctx: Ctx<()>| async move {
            let server = ctx
                .spawn(|mut ctx: Ctx<(u32, ReplyTo<u32>)>| async move {
                    while let Message::User((n, reply_to)) = ctx.recv().await {
                        reply_to.reply(n);
                    }
                })
                .unwrap();
            let start = Instant::now();
            for i in 0..n {
                ctx.call(&server, |r| (i, r), Duration::from_secs(5))
                    .await
                    .unwrap();
            }
            let elapsed = start.elapsed();
            ctx.exit(server.pid(), ExitReason::Kill);
            elapsed
        })
        .expect("driver");
    Sample {
        ns_per_op: elapsed.as_nanos() as f64 / f64::from(n),
        extra: None,
    }
}

struct Echo;

impl Server for Echo {
    type Call = u32;
    type Reply = u32;
    type Cast = ();
    fn handle_call(&mut self, n: u32, _: &mut Ctx<ServerMsg<Self>>) -> Result<u32, ExitReason> {
        Ok(n)
    }
}

/// A call to a `Server` behaviour (gen_server style).
fn server_call(rt: &Runtime) -> Sample {
    let n = env("BAOBAB_BENCH_CALL_N", 1_000_000) as u32;
    let elapsed = rt
        .block_on(move |mut ctx: Ctx<()>| async move {
            let server = ctx.spawn(Echo).unwrap();
            let start = Instant::now();
            for i in 0..n {
                ctx.call_server(&server, i, Duration::from_secs(5))
                    .await
                    .unwrap();
            }
            let elapsed = start.elapsed();
            ctx.exit(server.pid(), ExitReason::Kill);
            elapsed
        })
        .expect("driver");
    Sample {
        ns_per_op: elapsed.as_nanos() as f64 / f64::from(n),
        extra: None,
    }
}

/// An `AsyncServer` that echoes: the cost of async callbacks and typed requests (a boxed
/// envelope and a boxed callback future per call) over `server-call`.
struct AsyncEcho;

struct EchoRequest(u32);

impl Request for EchoRequest {
    type Reply = u32;
}

impl AsyncServer for AsyncEcho {
    type Cast = ();
}

impl Handles<EchoRequest> for AsyncEcho {
    async fn handle(
        &mut self,
        EchoRequest(n): EchoRequest,
        reply: ReplyTo<u32>,
        _: &mut Ctx<AsyncMsg<Self>>,
    ) -> Handled {
        reply.reply(n);
        Ok(())
    }
}

/// A call to an `AsyncServer`.
fn async_server_call(rt: &Runtime) -> Sample {
    let n = env("BAOBAB_BENCH_CALL_N", 1_000_000) as u32;
    let elapsed = rt
        .block_on(move |mut ctx: Ctx<()>| async move {
            let server = ctx.spawn(AsyncEcho).unwrap();
            let start = Instant::now();
            for i in 0..n {
                ctx.ask(&server, EchoRequest(i), Duration::from_secs(5))
                    .await
                    .unwrap();
            }
            let elapsed = start.elapsed();
            ctx.exit(server.pid(), ExitReason::Kill);
            elapsed
        })
        .expect("driver");
    Sample {
        ns_per_op: elapsed.as_nanos() as f64 / f64::from(n),
        extra: None,
    }
}

/// R processes in a ring, one token sent round `laps` times, decremented at each hop.
fn ring(rt: &Runtime) -> Sample {
    let size = env("BAOBAB_BENCH_RING_SIZE", 10_000);
    let laps = env("BAOBAB_BENCH_RING_LAPS", 1_000);
    let hops = (size * laps) as u64;
    let elapsed = rt
        .block_on(move |mut ctx: Ctx<u64>| async move {
            let mut next: Addr<u64> = ctx.addr();
            let mut members = vec![];
            for _ in 0..size - 1 {
                let to = next;
                next = ctx
                    .spawn(move |mut c: Ctx<u64>| async move {
                        while let Message::User(token) = c.recv().await {
                            c.send(&to, token.saturating_sub(1)).unwrap();
                            if token == 0 {
                                break;
                            }
                        }
                    })
                    .unwrap();
                members.push(next);
            }
            let start = Instant::now();
            ctx.send(&next, hops).unwrap();
            while let Message::User(token) = ctx.recv().await {
                if token == 0 {
                    break;
                }
                ctx.send(&next, token - 1).unwrap();
            }
            let elapsed = start.elapsed();
            for member in members {
                ctx.exit(member.pid(), ExitReason::Kill);
            }
            elapsed
        })
        .expect("driver");
    Sample {
        ns_per_op: elapsed.as_nanos() as f64 / hops as f64,
        extra: None,
    }
}

/// S senders each send M messages to one receiver.
fn fan_in(rt: &Runtime) -> Sample {
    let senders = env("BAOBAB_BENCH_FANIN_SENDERS", 1_000);
    let each = env("BAOBAB_BENCH_FANIN_MESSAGES", 1_000);
    let total = senders * each;
    let elapsed = rt
        .block_on(move |mut ctx: Ctx<u32>| async move {
            let me = ctx.addr();
            let start = Instant::now();
            for _ in 0..senders {
                ctx.spawn(move |c: Ctx<()>| async move {
                    for n in 0..each {
                        c.send(&me, n as u32).unwrap();
                    }
                })
                .unwrap();
            }
            for _ in 0..total {
                ctx.recv().await;
            }
            start.elapsed()
        })
        .expect("driver");
    let ns = elapsed.as_nanos() as f64 / total as f64;
    Sample {
        ns_per_op: ns,
        extra: Some(1e9 / ns),
    }
}

/// What the restart benchmark's child understands.
enum Cmd {
    Crash,
    Ping(ReplyTo<()>),
}

/// A one-for-one supervisor with one permanent child: the driver makes the child panic, then
/// waits until the restarted child answers a call; time per crash-to-answer. Each child
/// instance announces its address to the driver when it starts. The panic hook is silenced for
/// the run (the default one would print every panic).
fn restart(rt: &Runtime) -> Sample {
    let n = env("BAOBAB_BENCH_RESTART_N", 20_000);
    let previous_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let elapsed = rt
        .block_on(move |mut ctx: Ctx<Addr<Cmd>>| async move {
            let me = ctx.addr();
            let child = ChildSpec::worker("child", move |start| {
                start.spawn(move |mut ctx: Ctx<Cmd>| async move {
                    ctx.send(&me, ctx.addr()).unwrap();
                    while let Message::User(cmd) = ctx.recv().await {
                        match cmd {
                            Cmd::Crash => panic!("crash"),
                            Cmd::Ping(reply) => reply.reply(()),
                        }
                    }
                })
            });
            let spec = SupervisorSpec::new(Strategy::OneForOne)
                .intensity(u32::MAX, Duration::from_secs(3600))
                .child(child);
            Supervisor::start_link(&mut ctx, spec).await.unwrap();
            let mut addr = ctx.recv().await.user().unwrap();
            let start = Instant::now();
            for _ in 0..n {
                ctx.send(&addr, Cmd::Crash).unwrap();
                addr = ctx.recv().await.user().unwrap();
                ctx.call(&addr, Cmd::Ping, Duration::from_secs(5))
                    .await
                    .unwrap();
            }
            start.elapsed()
        })
        .expect("driver");
    std::panic::set_hook(previous_hook);
    Sample {
        ns_per_op: elapsed.as_nanos() as f64 / n as f64,
        extra: None,
    }
}

/// How late timers fire while one process spins: `BAOBAB_BENCH_HOG_SLEEPERS` processes (1,000)
/// each sleep 1 ms in a loop, while one process computes for `BAOBAB_BENCH_HOG_MS` (1,000 ms)
/// without receiving. Each sleep's lateness (its wake-up minus its deadline) is recorded;
/// the median is the sample, the 99th percentile the second figure. Scheduling is
/// cooperative: a sleeper on the spinning process's thread waits until the thread is free
/// or another thread steals it.
fn hog_timers(rt: &Runtime) -> Sample {
    let sleepers = env("BAOBAB_BENCH_HOG_SLEEPERS", 1_000);
    let spin = Duration::from_millis(env("BAOBAB_BENCH_HOG_MS", 1_000) as u64);
    let lateness = rt
        .block_on(move |mut ctx: Ctx<Vec<u64>>| async move {
            let me = ctx.addr();
            let end = Instant::now() + spin;
            for _ in 0..sleepers {
                ctx.spawn(move |mut ctx: Ctx<()>| async move {
                    let mut late = Vec::new();
                    while Instant::now() < end {
                        let due = Instant::now() + Duration::from_millis(1);
                        ctx.sleep(Duration::from_millis(1)).await;
                        late.push(Instant::now().saturating_duration_since(due).as_nanos() as u64);
                    }
                    ctx.send(&me, late).unwrap();
                })
                .unwrap();
            }
            ctx.spawn(move |_ctx: Ctx<()>| async move {
                while Instant::now() < end {
                    std::hint::spin_loop();
                }
            })
            .unwrap();
            let mut all = Vec::new();
            for _ in 0..sleepers {
                all.extend(ctx.recv().await.user().unwrap());
            }
            all
        })
        .expect("driver");
    percentiles(lateness.into_iter().map(|ns| ns as f64).collect())
}

/// How long a call with a 100 ms timeout takes to return while the callee spins for
/// `BAOBAB_BENCH_HOG_MS` (1,000 ms) on receiving the request: 100 ms if the timeout fires on
/// time; as late as the spin's end (when the reply comes) if the caller's timer waits on the
/// spinning thread. The second figure is 1 if it returned by its timeout, 0 if by the reply.
/// The caller then sleeps until the callee is done, so each run starts on idle threads.
fn hog_call(rt: &Runtime) -> Sample {
    let spin = Duration::from_millis(env("BAOBAB_BENCH_HOG_MS", 1_000) as u64);
    let took = rt
        .block_on(move |mut ctx: Ctx<()>| async move {
            let callee = ctx
                .spawn(move |mut ctx: Ctx<ReplyTo<()>>| async move {
                    if let Message::User(reply) = ctx.recv().await {
                        let end = Instant::now() + spin;
                        while Instant::now() < end {
                            std::hint::spin_loop();
                        }
                        reply.reply(());
                    }
                })
                .unwrap();
            let start = Instant::now();
            let answer = ctx
                .call(&callee, |reply| reply, Duration::from_millis(100))
                .await;
            let took = start.elapsed();
            ctx.sleep(spin).await;
            (took, answer.is_err())
        })
        .expect("driver");
    Sample {
        ns_per_op: took.0.as_nanos() as f64,
        extra: Some(if took.1 { 1.0 } else { 0.0 }),
    }
}

/// Per-ask latencies of `n` asks through one conversation whose participant echoes: the
/// median is the sample, the 99th percentile the second figure.
fn percentiles(mut ns: Vec<f64>) -> Sample {
    ns.sort_by(f64::total_cmp);
    let p99 = ns[(ns.len() * 99 / 100).min(ns.len() - 1)];
    Sample {
        ns_per_op: ns[ns.len() / 2],
        extra: Some(p99),
    }
}

fn echo_conversation(rt: &Runtime) -> (ConversationSupervisor, ConversationHandle) {
    let sup = ConversationSupervisor::start(rt.handle()).expect("conversation supervisor");
    let (conversation, _) = sup
        .spawn_with_participant(
            Arc::new(|request: &Envelope| Some(request.reply("pong.v1", request.payload.clone()))),
            None,
            ChannelMode::Ephemeral,
            CrashPolicy::Fail,
        )
        .expect("conversation");
    (sup, conversation)
}

/// `ask` from inside a process (`ask_in`): caller, conversation and participant are all
/// baobab processes.
fn ask(rt: &Runtime) -> Sample {
    let n = env("BAOBAB_BENCH_ASK_N", 200_000);
    let (sup, conversation) = echo_conversation(rt);
    let ns = rt.block_on(move |mut ctx: Ctx<()>| async move {
        let mut ns = Vec::with_capacity(n);
        let request = Envelope::new("ping.v1", "ping");
        for _ in 0..n {
            let start = Instant::now();
            let reply = conversation
                .ask_in(&mut ctx, request.clone(), Duration::from_secs(10))
                .await
                .expect("reply");
            ns.push(start.elapsed().as_nanos() as f64);
            std::hint::black_box(reply);
        }
        conversation.close_in(&mut ctx).await.expect("close");
        ns
    });
    let ns = ns.expect("ask driver");
    sup.shutdown();
    percentiles(ns)
}

/// `ask` from a thread outside the runtime (blocking): each ask wakes a scheduler thread and
/// is woken back.
fn ask_thread(rt: &Runtime) -> Sample {
    let n = env("BAOBAB_BENCH_ASK_N", 200_000) / 4;
    let (sup, conversation) = echo_conversation(rt);
    let request = Envelope::new("ping.v1", "ping");
    let mut ns = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        let reply = conversation
            .ask(request.clone(), Duration::from_secs(10))
            .expect("reply");
        ns.push(start.elapsed().as_nanos() as f64);
        std::hint::black_box(reply);
    }
    conversation.close().expect("close");
    sup.shutdown();
    percentiles(ns)
}

const WORKLOADS: &[Workload] = &[
    Workload {
        name: "spawn",
        unit: "ns/spawn",
        extra_unit: "bytes/process",
        run: spawn,
    },
    Workload {
        name: "ping-pong",
        unit: "ns/round trip",
        extra_unit: "",
        run: ping_pong,
    },
    Workload {
        name: "call",
        unit: "ns/round trip",
        extra_unit: "",
        run: call,
    },
    Workload {
        name: "server-call",
        unit: "ns/round trip",
        extra_unit: "",
        run: server_call,
    },
    Workload {
        name: "async-server-call",
        unit: "ns/round trip",
        extra_unit: "",
        run: async_server_call,
    },
    Workload {
        name: "ring",
        unit: "ns/hop",
        extra_unit: "",
        run: ring,
    },
    Workload {
        name: "restart",
        unit: "ns/restart",
        extra_unit: "",
        run: restart,
    },
    Workload {
        name: "ask",
        unit: "ns/ask (median)",
        extra_unit: "ns p99",
        run: ask,
    },
    Workload {
        name: "ask-thread",
        unit: "ns/ask (median)",
        extra_unit: "ns p99",
        run: ask_thread,
    },
    Workload {
        name: "fan-in",
        unit: "ns/message",
        extra_unit: "messages/s",
        run: fan_in,
    },
    Workload {
        name: "hog-timers",
        unit: "ns late (p50)",
        extra_unit: "ns p99",
        run: hog_timers,
    },
    Workload {
        name: "hog-call",
        unit: "ns to return",
        extra_unit: "timed out",
        run: hog_call,
    },
];

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let runs = env("BAOBAB_BENCH_RUNS", 5).max(1);
    let threads = env(
        "BAOBAB_BENCH_THREADS",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );
    if std::env::var("BAOBAB_BENCH_CHILD").as_deref() == Ok("spawn") {
        let rt = Runtime::builder().threads(threads).build();
        let sample = spawn_in_this_process(&rt);
        println!("{} {}", sample.ns_per_op, sample.extra.unwrap_or(0.0));
        std::process::exit(0);
    }
    println!("# baobab runtime benchmarks: {threads} scheduler threads, median of {runs} runs");
    println!("# reproduce: cargo bench --bench runtime [-- FILTER]   (env BAOBAB_BENCH_*)");
    println!(
        "{:<12} {:>12} {:>12} {:>12}  {:<14} {:>14}",
        "workload", "median", "min", "max", "unit", "second figure"
    );
    for workload in WORKLOADS {
        let chosen = |f: &String| match f.strip_prefix('=') {
            Some(exact) => workload.name == exact,
            None => workload.name.contains(f.as_str()),
        };
        if !filter.is_empty() && !filter.iter().any(chosen) {
            continue;
        }
        let rt = Runtime::builder().threads(threads).build();
        let samples: Vec<Sample> = (0..runs).map(|_| (workload.run)(&rt)).collect();
        let mut ns: Vec<f64> = samples.iter().map(|s| s.ns_per_op).collect();
        let mut extra: Vec<f64> = samples.iter().filter_map(|s| s.extra).collect();
        let (min, max) = (
            ns.iter().copied().fold(f64::INFINITY, f64::min),
            ns.iter().copied().fold(0.0, f64::max),
        );
        let second = if extra.is_empty() {
            String::new()
        } else {
            format!("{:.0} {}", median(&mut extra), workload.extra_unit)
        };
        println!(
            "{:<12} {:>12.1} {:>12.1} {:>12.1}  {:<14} {:>14}",
            workload.name,
            median(&mut ns),
            min,
            max,
            workload.unit,
            second
        );
        rt.shutdown();
    }
}
