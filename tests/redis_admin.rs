//! The operator's commands against a real runner process and a private Redis: `submit` with
//! retries and a backoff, `queues` counting the dead, `jobs` listing by status, `runners`
//! showing the live runner, `retry` of one job and of a dead set, `purge` of dead and of
//! finished jobs; each also as JSON.
#![cfg(feature = "cli")]

mod common;

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::SAFETY;
use common::cli::TempDir;
use common::redis_server::{TestRedis, unique};
use redis::Commands;

fn baobab(redis: &TestRedis, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_baobab"))
        .args(args)
        .args(["--redis", &redis.url])
        .output()
        .unwrap()
}

fn json_lines(output: &Output) -> Vec<serde_json::Value> {
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    lines(output)
}

/// The JSON lines of a command whose exit code says something else (`submit --wait` exits 1
/// when a job failed).
fn lines(output: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

struct Serving(Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < SAFETY * 2,
            "not within {:?}: {what}",
            SAFETY * 2
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn an_operator_sees_dead_jobs_runs_them_again_and_purges_what_ended() {
    let redis = TestRedis::start();
    let mut conn = redis.conn();
    let actor = unique("ops");
    let runner = Serving(
        Command::new(env!("CARGO_BIN_EXE_baobab"))
            .args(["run", "--redis", &redis.url, "--actor", &actor])
            .args(["--workers", "2", "--heartbeat-ttl", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let dir = TempDir::new("ops");
    let bad = dir.write("bad.rhai", r#"throw "broken""#);
    let good = dir.write("good.rhai", "6 * 7");
    let bad = bad.to_str().unwrap();
    let good = good.to_str().unwrap();

    // A job that always fails: two runs (one retry, 0.1 s apart), then dead.
    let submitted = lines(&baobab(
        &redis,
        &[
            "submit",
            bad,
            "--actor",
            &actor,
            "--retries",
            "1",
            "--backoff",
            "0.1",
            "--wait",
            "--json",
        ],
    ));
    // `submit --wait` exits 1 when a job failed; its JSON line says how.
    let line = &submitted[0];
    assert_eq!(line["status"], "error", "{line}");
    assert_eq!(line["attempts"], 2, "{line}");
    assert_eq!(line["errors"].as_array().unwrap().len(), 2, "{line}");
    let dead_id = line["id"].as_str().unwrap().to_string();
    // And one that finishes.
    let finished = json_lines(&baobab(
        &redis,
        &["submit", good, "--actor", &actor, "--wait", "--json"],
    ));
    let good_id = finished[0]["id"].as_str().unwrap().to_string();

    // `queues` counts the dead; `jobs` finds each by status.
    let queues = json_lines(&baobab(&redis, &["queues", "--json"]));
    let mine = queues
        .iter()
        .find(|q| q["actor"] == actor.as_str())
        .unwrap();
    assert_eq!(mine["dead"], 1, "{mine}");
    let errors = json_lines(&baobab(
        &redis,
        &[
            "jobs", "--actor", &actor, "--status", "error", "--all", "--json",
        ],
    ));
    assert_eq!(errors.last().unwrap()["cursor"], 0);
    let listed: Vec<&str> = errors[..errors.len() - 1]
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [dead_id.as_str()]);
    assert_eq!(errors[0]["attempts"], 2);
    assert!(
        errors[0]["error"].as_str().unwrap().contains("broken"),
        "{}",
        errors[0]
    );
    let recent = json_lines(&baobab(
        &redis,
        &[
            "jobs",
            "--actor",
            &actor,
            "--newer-than",
            "3600",
            "--all",
            "--json",
        ],
    ));
    assert_eq!(recent.len(), 3, "two jobs and the cursor: {recent:?}");
    let old = json_lines(&baobab(
        &redis,
        &[
            "jobs",
            "--actor",
            &actor,
            "--older-than",
            "3600",
            "--all",
            "--json",
        ],
    ));
    assert_eq!(old.len(), 1, "only the cursor: {old:?}");

    // `runners` shows the live runner: its pid, its workers, a fresh heartbeat.
    let pid = runner.0.id();
    wait_until(
        "the runner announces its workers and the jobs it ran",
        || {
            json_lines(&baobab(&redis, &["runners", "--json"]))
                .iter()
                .any(|r| r["pid"] == pid && r["workers"] == 2 && r["done"].as_u64() >= Some(2))
        },
    );
    let runners = json_lines(&baobab(&redis, &["runners", "--json"]));
    let me = runners.iter().find(|r| r["pid"] == pid).unwrap();
    assert_eq!(me["actor"], actor.as_str());
    assert_eq!(me["alive"], true);
    assert!(me["heartbeat_age_s"].as_f64().unwrap() <= 1.0, "{me}");
    assert!(me["done"].as_u64().unwrap() >= 2, "{me}");
    let table = baobab(&redis, &["runners"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.starts_with("ID"), "{text}");
    assert!(text.contains(&pid.to_string()), "{text}");

    // `retry ID`: its runs start over (it fails twice more), then it is dead again.
    let retried = baobab(&redis, &["retry", &dead_id, "--json"]);
    assert_eq!(json_lines(&retried)[0]["retried"], true);
    let key = format!("hero:job:{dead_id}");
    wait_until("the retried job fails twice more", || {
        let errors: Option<String> = conn.hget(&key, "errors").unwrap();
        let status: Option<String> = conn.hget(&key, "status").unwrap();
        let n = serde_json::from_str::<Vec<serde_json::Value>>(&errors.unwrap_or_default())
            .map_or(0, |e| e.len());
        n == 4 && status.as_deref() == Some("error")
    });
    let dead: Vec<String> = conn
        .zrange(format!("hero:job:dead:{actor}"), 0, -1)
        .unwrap();
    assert_eq!(dead, std::slice::from_ref(&dead_id));
    // Fixed, then every dead job of the actor again: it finishes.
    let _: () = conn.hset(&key, "script", "1 + 1").unwrap();
    let all = baobab(&redis, &["retry", "--dead", "--actor", &actor, "--json"]);
    assert_eq!(json_lines(&all)[0]["retried"], 1);
    wait_until("the fixed job finishes", || {
        let status: Option<String> = conn.hget(&key, "status").unwrap();
        status.as_deref() == Some("finished")
    });
    let ttl: i64 = conn.ttl(&key).unwrap();
    assert!(ttl > 0, "a finished job expires again: {ttl}");
    let dead: usize = conn.zcard(format!("hero:job:dead:{actor}")).unwrap();
    assert_eq!(dead, 0);
    // A job that has not ended in error cannot be retried.
    let refused = baobab(&redis, &["retry", &good_id]);
    assert_eq!(refused.status.code(), Some(1));
    let missing = baobab(&redis, &["retry", "no-such-job"]);
    assert_eq!(
        missing.status.code(),
        Some(2),
        "no actor to name: a usage error"
    );

    // `purge --finished` deletes both finished jobs, hashes and replies.
    let purged = json_lines(&baobab(
        &redis,
        &["purge", "--finished", "--actor", &actor, "--json"],
    ));
    assert_eq!(purged[0]["finished"], 2);
    for id in [&dead_id, &good_id] {
        let exists: bool = conn.exists(format!("hero:job:{id}")).unwrap();
        assert!(!exists, "{id} purged");
    }

    // `purge --dead`: one more dead job, then none.
    let again = lines(&baobab(
        &redis,
        &["submit", bad, "--actor", &actor, "--wait", "--json"],
    ));
    let id = again[0]["id"].as_str().unwrap().to_string();
    let purged = json_lines(&baobab(
        &redis,
        &["purge", "--dead", "--actor", &actor, "--json"],
    ));
    assert_eq!(purged[0]["dead"], 1);
    let exists: bool = conn.exists(format!("hero:job:{id}")).unwrap();
    assert!(!exists);
    let exists: bool = conn.exists(format!("hero:job:dead:{actor}")).unwrap();
    assert!(!exists);
    // Usage errors: `--dead` needs an actor; `purge` needs something to purge.
    assert_eq!(baobab(&redis, &["purge", "--dead"]).status.code(), Some(2));
    assert_eq!(baobab(&redis, &["purge"]).status.code(), Some(2));
    assert_eq!(baobab(&redis, &["retry"]).status.code(), Some(2));
}
