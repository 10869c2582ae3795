//! One workload (spawn, ping-pong, ring, fan-in or restart, as `docs/benchmarks.md` defines
//! them) on one framework, once:
//! `baobab-compare FRAMEWORK WORKLOAD` prints `ns_per_op [bytes_per_process]`.
//! `run.sh` runs every pair several times, each in a fresh process, and prints the table.

mod actix_impl;
mod baobab_impl;
mod kameo_impl;
mod ractor_impl;

use std::time::Duration;

/// Sizes, overridable from the environment; `run.sh` spawns 1M processes on Erlang and
/// baobab, 100k on the other Rust peers.
pub fn size(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn resident_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(0)
        * 4096
}

/// A measured run: nanoseconds per operation and, for spawn, bytes per process.
pub struct Figure {
    pub ns: f64,
    pub bytes: Option<f64>,
}

impl Figure {
    pub fn per(elapsed: Duration, ops: usize) -> Figure {
        Figure {
            ns: elapsed.as_nanos() as f64 / ops as f64,
            bytes: None,
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (framework, workload) = match args.as_slice() {
        [_, f, w] => (f.as_str(), w.as_str()),
        _ => {
            eprintln!(
                "usage: baobab-compare baobab|ractor|kameo|actix spawn|ping-pong|ring|fan-in|restart"
            );
            std::process::exit(2);
        }
    };
    let figure = match framework {
        "baobab" => baobab_impl::run(workload),
        "ractor" => ractor_impl::run(workload),
        "kameo" => kameo_impl::run(workload),
        "actix" => actix_impl::run(workload),
        other => panic!("unknown framework {other}"),
    };
    match figure.bytes {
        Some(bytes) => println!("{:.1} {:.0}", figure.ns, bytes),
        None => println!("{:.1}", figure.ns),
    }
}
