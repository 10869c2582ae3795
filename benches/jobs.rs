//! Job throughput: trivial jobs (`40 + 2`) through the embedded store and the supervised
//! worker pool, and the sandbox's own cost per job. Each runs several times; the table shows
//! the median and the range.
//!
//! ```text
//! cargo bench --bench jobs
//! BAOBAB_BENCH_JOBS=1000000 BAOBAB_BENCH_RUNS=5 cargo bench --bench jobs
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use baobab::Runtime;
use baobab::jobs::{Job, JobActor, JobStore, MemoryStore, PoolConfig, WorkerPool};
use baobab::script::RhaiActor;
use baobab::script::{CountingAllocator, Limits, Sandbox, SandboxConfig};

mod common;

/// As the `baobab` binary runs: allocations counted for the sandbox's memory limit.
#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

use common::{env, summary};

/// Jobs per second through the pool: all jobs are queued first, then the clock runs from the
/// pool's start until the last one has ended.
fn pool(n: usize, workers: usize) -> f64 {
    // As the `baobab` binary runs: blocking threads with the stack the limits need.
    let rt = Runtime::builder()
        .blocking_stack_size(Sandbox::stack_size(&Limits::default()))
        .build();
    let store = Arc::new(MemoryStore::new());
    for _ in 0..n {
        store
            .submit(Job::builder("40 + 2").build().expect("valid job"))
            .expect("submitted");
    }
    let mut config = PoolConfig::new("rhai");
    config.workers = workers;
    config.max_batch = 256;
    let factory: baobab::jobs::ActorFactory = Arc::new(|| {
        Arc::new(RhaiActor::new("rhai", SandboxConfig::default())) as Arc<dyn JobActor>
    });
    let start = Instant::now();
    let pool = WorkerPool::start(rt.handle(), store.clone(), factory, config).expect("pool");
    loop {
        let stats = pool.stats().expect("stats");
        if stats.finished + stats.failed >= n as u64 {
            assert_eq!(stats.failed, 0);
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let elapsed = start.elapsed();
    pool.shutdown(Duration::from_secs(1)).expect("shutdown");
    n as f64 / elapsed.as_secs_f64()
}

/// Nanoseconds per `Sandbox::run` of `40 + 2` (compiled once, then cached).
fn sandbox(n: usize) -> f64 {
    // On a thread with the stack the limits need, as a runner's blocking threads have.
    std::thread::Builder::new()
        .stack_size(Sandbox::stack_size(&Limits::default()))
        .spawn(move || {
            let sandbox = Sandbox::new(SandboxConfig::default());
            let job = Job::builder("40 + 2").build().expect("valid job");
            let start = Instant::now();
            for _ in 0..n {
                let out = sandbox.run(&job, None).expect("runs");
                std::hint::black_box(out);
            }
            start.elapsed().as_nanos() as f64 / n as f64
        })
        .expect("a thread")
        .join()
        .expect("the bench ran")
}

fn main() {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let chosen = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()));
    let runs = env("BAOBAB_BENCH_RUNS", 5).max(1);
    let n = env("BAOBAB_BENCH_JOBS", 1_000_000);
    let workers = env(
        "BAOBAB_BENCH_WORKERS",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );
    println!(
        "# baobab job benchmarks: {n} jobs of `40 + 2`, {workers} workers, median of {runs} runs"
    );
    println!("# reproduce: cargo bench --bench jobs   (env BAOBAB_BENCH_JOBS, _RUNS, _WORKERS)");
    println!(
        "{:<10} {:>12} {:>12} {:>12}  unit",
        "workload", "median", "min", "max"
    );
    if chosen("pool") {
        let (median, min, max) = summary((0..runs).map(|_| pool(n, workers)).collect());
        println!(
            "{:<10} {median:>12.0} {min:>12.0} {max:>12.0}  jobs/s",
            "pool"
        );
    }
    if chosen("sandbox") {
        let (median, min, max) = summary((0..runs).map(|_| sandbox(n / 10)).collect());
        println!(
            "{:<10} {median:>12.0} {min:>12.0} {max:>12.0}  ns/job (one thread, no pool)",
            "sandbox"
        );
    }
}
