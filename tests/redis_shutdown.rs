//! A runner binary told to stop while Redis is paused in the middle of a large result write
//! still exits within its grace plus 5 s, as `docs/wire-format.md` promises.
#![cfg(feature = "cli")]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::SAFETY;
use common::cli::RunnerProcess;
use common::redis_server::{TestRedis, unique};
use redis::Commands;

/// Sends `signal` (`STOP`, `CONT`, `TERM`) to `pid`.
fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} {pid}");
}

/// Resumes a paused redis-server even if the test fails, so it can be killed and cleaned up.
struct Resume(u32);

impl Drop for Resume {
    fn drop(&mut self) {
        signal(self.0, "CONT");
    }
}

#[test]
fn a_runner_stops_within_its_grace_plus_five_seconds_with_a_large_write_blocked() {
    let redis = TestRedis::private();
    let redis_pid = redis.pid().expect("a private server");
    let actor = unique("shutdown");
    let log_path = std::env::temp_dir().join(format!("{actor}.log"));
    let mut runner = RunnerProcess(
        Command::new(env!("CARGO_BIN_EXE_baobab"))
            .args(["run", "--redis", &redis.url, "--actor", &actor])
            .args(["--workers", "1", "--grace", "2", "--timeout", "60"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log_path).unwrap())
            .spawn()
            .unwrap(),
    );
    // A job that sleeps a second, then ends with an 8 MiB output (under the 10 MiB limits).
    let id = unique("big");
    let script = "sleep(1); let s = \"x\"; for i in 0..23 { s += s; } s";
    let mut conn = redis.conn();
    let _: () = conn
        .hset_multiple(
            format!("hero:job:{id}"),
            &[
                ("id", id.as_str()),
                ("actor_id", actor.as_str()),
                ("script", script),
                ("timeout", "60"),
                ("status", "dispatched"),
            ],
        )
        .unwrap();
    let _: () = conn
        .lpush(format!("hero:job:actor_queue:{actor}"), &id)
        .unwrap();
    let start = Instant::now();
    loop {
        let status: Option<String> = conn.hget(format!("hero:job:{id}"), "status").unwrap();
        if status.as_deref() == Some("started") {
            break;
        }
        assert!(
            start.elapsed() < SAFETY,
            "the job did not start: {status:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // Redis pauses: the job ends, and its result write blocks.
    signal(redis_pid, "STOP");
    let resume = Resume(redis_pid);
    std::thread::sleep(Duration::from_secs(3));
    signal(runner.0.id(), "TERM");
    let stopping = Instant::now();
    let limit = Duration::from_secs(2 + 5) + Duration::from_millis(1500);
    let exited = loop {
        if let Some(status) = runner.0.try_wait().unwrap() {
            break Some(status);
        }
        if stopping.elapsed() > limit + Duration::from_secs(20) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = stopping.elapsed();
    drop(conn);
    drop(resume);
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let _ = std::fs::remove_file(&log_path);
    eprintln!("the runner exited {took:?} after SIGTERM; its log:\n{log}");
    assert!(
        took <= limit,
        "the runner took {took:?} to exit (limit {limit:?}; exited: {exited:?}); its log:\n{log}"
    );
    // Its shutdown ended on its own (the binary does not give up on it and exit 1).
    assert!(
        exited.is_some_and(|status| status.success()),
        "{exited:?}; its log:\n{log}"
    );
    // The result was not written, but the job is not lost: its id waits in the runner's
    // processing list for another runner's reaper.
    let mut conn = redis.conn();
    let status: Option<String> = conn.hget(format!("hero:job:{id}"), "status").unwrap();
    let processing: Vec<String> = conn.keys(format!("hero:processing:{actor}:*")).unwrap();
    let held: Vec<String> = conn.lrange(&processing[0], 0, -1).unwrap();
    assert_eq!((status.as_deref(), held), (Some("started"), vec![id]));
}
