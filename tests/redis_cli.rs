//! The runner binary against a real, private Redis: `baobab run --redis` serving, `baobab
//! submit` and `baobab status` as clients, and the `redis-cli` session of
//! `docs/wire-format.md` replayed line by line, so the documented format is the tested one.
#![cfg(feature = "cli")]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::SAFETY;
use common::redis_server::{TestRedis, unique};

fn baobab() -> Command {
    Command::new(env!("CARGO_BIN_EXE_baobab"))
}

/// A runner serving `actor`, stopped with SIGTERM when dropped.
struct ServingRunner(Child);

impl ServingRunner {
    fn start(redis: &TestRedis, actor: &str) -> ServingRunner {
        Self::start_with(redis, actor, &[])
    }

    fn start_with(redis: &TestRedis, actor: &str, extra: &[&str]) -> ServingRunner {
        let child = baobab()
            .args([
                "run",
                "--redis",
                &redis.url,
                "--actor",
                actor,
                "--workers",
                "2",
            ])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        ServingRunner(child)
    }

    fn stop(mut self) -> std::process::Output {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let child = std::mem::replace(&mut self.0, Command::new("true").spawn().unwrap());
        child.wait_with_output().unwrap()
    }
}

impl Drop for ServingRunner {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `redis-cli` against the test server, with formatted (not raw) replies.
fn redis_cli(redis: &TestRedis, args: &[String]) -> String {
    let mut command = Command::new("redis-cli");
    match redis.url.strip_prefix("redis+unix://") {
        Some(path) => command.args(["-s", path]),
        None => command.args(["-u", &redis.url]),
    };
    let output = command
        .arg("--no-raw")
        .args(args)
        .output()
        .expect("redis-cli runs");
    String::from_utf8_lossy(&output.stdout)
        .trim_end()
        .to_string()
}

/// Splits a `redis-cli` command line into words, honouring double quotes and `\"`.
fn words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let (mut quoted, mut in_word) = (false, false);
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' if quoted => {
                if let Some(next) = chars.next() {
                    word.push(next);
                }
            }
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            ' ' if !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

#[test]
fn the_documented_redis_cli_session_works_against_a_real_runner() {
    let redis = TestRedis::start();
    for key in [
        "hero:job:demo-1",
        "hero:job:demo-2",
        "hero:reply:demo-1",
        "hero:reply:demo-2",
    ] {
        redis_cli(&redis, &["DEL".into(), key.into()]);
    }
    let runner = ServingRunner::start(&redis, "demo");
    let doc = std::fs::read_to_string("docs/wire-format.md").unwrap();
    let session = doc
        .split("## A session with `redis-cli`")
        .nth(1)
        .and_then(|s| s.split("```text").nth(1))
        .and_then(|s| s.split("```").next())
        .expect("the session block");
    let mut steps: Vec<(String, Vec<String>)> = Vec::new();
    for line in session.lines().filter(|l| !l.is_empty()) {
        match line.strip_prefix("redis> ") {
            Some(command) => steps.push((command.to_string(), Vec::new())),
            None => steps
                .last_mut()
                .expect("a command first")
                .1
                .push(line.to_string()),
        }
    }
    assert!(steps.len() >= 8);
    for (command, expected) in steps {
        let got = redis_cli(&redis, &words(&command));
        assert_eq!(got, expected.join("\n"), "`{command}`");
    }
    let output = runner.stop();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn submit_and_status_talk_to_a_serving_runner() {
    let redis = TestRedis::start();
    let actor = unique("actor");
    let runner = ServingRunner::start(&redis, &actor);
    let output = baobab()
        .args([
            "submit",
            "examples/jobs/01_answer.rhai",
            "examples/jobs/06_thrown_error.rhai",
        ])
        .args(["--redis", &redis.url, "--actor", &actor, "--wait", "--json"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        output.status.code(),
        Some(1),
        "one job fails on purpose: {text}"
    );
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["status"], "finished");
    assert_eq!(lines[0]["output"], "42");
    assert_eq!(lines[1]["status"], "error");
    let id = lines[0]["id"].as_str().unwrap();
    let status = baobab()
        .args(["status", id, "--redis", &redis.url])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("status: finished") && text.contains("output: 42"),
        "{text}"
    );
    let missing = baobab()
        .args(["status", "no-such-job", "--redis", &redis.url])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    let stopped = runner.stop();
    assert_eq!(stopped.status.code(), Some(0));
}

/// A job that runs until it is stopped (or for a minute).
#[test]
fn a_jobs_log_reaches_its_hash_status_and_submit_and_ended_jobs_expire_as_configured() {
    let redis = TestRedis::start();
    let actor = unique("actor");
    let runner = ServingRunner::start_with(
        &redis,
        &actor,
        &["--result-ttl", "300", "--dead-ttl", "3000"],
    );
    let dir = std::env::temp_dir().join(unique("logs"));
    std::fs::create_dir_all(&dir).unwrap();
    let printing = dir.join("printing.rhai");
    std::fs::write(&printing, "print(\"first\");\nprint(\"second\");\n40 + 2\n").unwrap();
    let failing = dir.join("failing.rhai");
    std::fs::write(&failing, "print(\"about to fail\");\nthrow \"bad\"\n").unwrap();
    let output = baobab()
        .arg("submit")
        .arg(&printing)
        .arg(&failing)
        .args(["--redis", &redis.url, "--actor", &actor, "--wait", "--json"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(lines[0]["log"], serde_json::json!(["first", "second"]));
    assert_eq!(lines[1]["log"], serde_json::json!(["about to fail"]));
    // How long it ran, from the times in its hash (taken, ended; whole milliseconds, so a
    // trivial job may show 0).
    let ran = lines[0]["time_ms"].as_f64().expect("a run time");
    assert!((0.0..10_000.0).contains(&ran), "{ran}");
    let (done, failed) = (
        lines[0]["id"].as_str().unwrap(),
        lines[1]["id"].as_str().unwrap(),
    );
    // In the hash, one line each; and `status` shows it.
    let mut conn = redis.conn();
    let log: String = redis::Commands::hget(&mut conn, format!("hero:job:{done}"), "log").unwrap();
    assert_eq!(log, "first\nsecond");
    let status = baobab()
        .args(["status", done, "--redis", &redis.url])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&status.stdout);
    assert!(shown.contains("log:\n  first\n  second"), "{shown}");
    // The runner's --result-ttl and --dead-ttl.
    let mut ttl =
        |id: &str| -> i64 { redis::Commands::ttl(&mut conn, format!("hero:job:{id}")).unwrap() };
    let (done_ttl, failed_ttl) = (ttl(done), ttl(failed));
    assert!((270..=300).contains(&done_ttl), "{done_ttl}");
    assert!((2970..=3000).contains(&failed_ttl), "{failed_ttl}");
    assert_eq!(runner.stop().status.code(), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn submit_sets_a_jobs_id_env_and_retries() {
    let redis = TestRedis::start();
    let actor = unique("actor");
    let runner = ServingRunner::start(&redis, &actor);
    let dir = std::env::temp_dir().join(unique("submit-flags"));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("greet.rhai");
    std::fs::write(&script, "GREETING + \", \" + WHO\n").unwrap();
    let id = unique("chosen");
    let output = baobab()
        .arg("submit")
        .arg(&script)
        .args(["--redis", &redis.url, "--actor", &actor, "--wait", "--json"])
        .args(["--id", &id, "--env", "GREETING=hello", "--env", "WHO=world"])
        .args(["--retries", "3"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    let job: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(job["id"], id.as_str(), "{text}");
    assert_eq!(job["output"], "hello, world", "{text}");
    let mut conn = redis.conn();
    let retries: String =
        redis::Commands::hget(&mut conn, format!("hero:job:{id}"), "retries").unwrap();
    assert_eq!(retries, "3");
    // --delay keeps the job out of the queue for that long.
    let started = std::time::Instant::now();
    let delayed = baobab()
        .arg("submit")
        .arg(&script)
        .args(["--redis", &redis.url, "--actor", &actor, "--wait", "--json"])
        .args([
            "--env",
            "GREETING=later",
            "--env",
            "WHO=you",
            "--delay",
            "1",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&delayed.stdout);
    assert!(text.contains("later, you"), "{text}");
    assert!(started.elapsed() >= std::time::Duration::from_secs(1));
    let bad_at = baobab()
        .arg("submit")
        .arg(&script)
        .args(["--redis", &redis.url, "--at", "tomorrow"])
        .output()
        .unwrap();
    assert_eq!(bad_at.status.code(), Some(2));
    // The id is taken now: a second submit under it is refused.
    let again = baobab()
        .arg("submit")
        .arg(&script)
        .args(["--redis", &redis.url, "--actor", &actor, "--id", &id])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1));
    // --id names one job.
    let other = dir.join("other.rhai");
    std::fs::write(&other, "1\n").unwrap();
    let two = baobab()
        .arg("submit")
        .arg(&script)
        .arg(&other)
        .args(["--redis", &redis.url, "--actor", &actor, "--id", "x"])
        .output()
        .unwrap();
    assert_eq!(two.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&two.stderr).contains("--id names one job"));
    assert_eq!(runner.stop().status.code(), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn queues_counts_queued_delayed_and_running_jobs_per_actor() {
    let redis = TestRedis::start();
    let (a, b) = (unique("qa"), unique("qb"));
    let client = baobab::bridge::Client::new(&redis.url, baobab::bridge::Profile::Hero).unwrap();
    for _ in 0..3 {
        client
            .submit(
                baobab::jobs::Job::builder("1")
                    .actor_id(&a)
                    .build()
                    .unwrap(),
            )
            .unwrap();
    }
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
    for _ in 0..2 {
        client
            .submit(
                baobab::jobs::Job::builder("1")
                    .actor_id(&b)
                    .run_at(later)
                    .build()
                    .unwrap(),
            )
            .unwrap();
    }
    let output = baobab()
        .args(["queues", "--redis", &redis.url, "--json"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let text = String::from_utf8_lossy(&output.stdout);
    let rows: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let row = |actor: &str| {
        rows.iter()
            .find(|r| r["actor"] == actor)
            .unwrap_or_else(|| panic!("{actor} missing: {text}"))
            .clone()
    };
    assert_eq!(
        row(&a),
        serde_json::json!({"actor": a, "queued": 3, "delayed": 0, "running": 0, "dead": 0, "runners": 0})
    );
    assert_eq!(
        row(&b),
        serde_json::json!({"actor": b, "queued": 0, "delayed": 2, "running": 0, "dead": 0, "runners": 0})
    );
    // A runner for `a` holding an endless job: one running, one runner.
    let runner = ServingRunner::start(&redis, &a);
    client.submit(endless(&a)).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let queues = client.queues().unwrap();
        let mine = queues.iter().find(|q| q.actor == a).unwrap();
        if mine.running == 1 && mine.queued == 0 && mine.runners == 1 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{mine:?}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let table = baobab()
        .args(["queues", "--redis", &redis.url])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.starts_with("ACTOR"), "{text}");
    assert!(text.lines().any(|l| l.starts_with(a.as_str())), "{text}");
    drop(runner);
}

fn endless(actor: &str) -> baobab::jobs::Job {
    baobab::jobs::Job::builder("loop {}")
        .actor_id(actor)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// Submits an endless job and waits until a runner has started it; returns its id.
fn submit_endless(client: &baobab::bridge::Client, actor: &str) -> String {
    let id = client.submit(endless(actor)).unwrap();
    let start = Instant::now();
    while client.status(&id).unwrap() != Some(baobab::jobs::JobStatus::Started) {
        assert!(start.elapsed() < SAFETY, "the job did not start");
        std::thread::sleep(Duration::from_millis(5));
    }
    id
}

#[test]
fn stop_cancels_a_running_job_and_a_queued_one() {
    let redis = TestRedis::start();
    let actor = unique("actor");
    let client = baobab::bridge::Client::new(&redis.url, baobab::bridge::Profile::Hero).unwrap();
    // Stopped while queued, with no runner yet: the first runner cancels it without running it.
    let queued = client.submit(endless(&actor)).unwrap();
    let stop = baobab()
        .args(["stop", &queued, "--redis", &redis.url])
        .output()
        .unwrap();
    assert_eq!(stop.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&stop.stdout).contains("stop requested"));
    let runner = ServingRunner::start(&redis, &actor);
    let job = client.await_result(&queued, SAFETY).unwrap();
    assert_eq!(job.error.as_deref(), Some("cancelled"), "{job:?}");

    // Stopped while running, waiting for the end.
    let running = submit_endless(&client, &actor);
    let stop = baobab()
        .args(["stop", &running, "--redis", &redis.url, "--wait", "10"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&stop.stdout);
    assert_eq!(stop.status.code(), Some(0), "{text}");
    assert_eq!(text.trim(), format!("{running}: error (cancelled)"));

    let missing = baobab()
        .args(["stop", "no-such-job", "--redis", &redis.url])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(runner.stop().status.code(), Some(0));
}

#[test]
fn a_runner_stops_on_sigterm_even_with_its_redis_gone() {
    let dir = std::env::temp_dir().join(unique("gone-redis"));
    std::fs::create_dir_all(&dir).unwrap();
    let server = TestRedis::at(dir);
    let url = server.url.clone();
    let actor = unique("actor");
    let client = baobab::bridge::Client::new(&url, baobab::bridge::Profile::Hero).unwrap();
    let mut runner = baobab()
        .args(["run", "--redis", &url, "--actor", &actor, "--workers", "1"])
        .args(["--grace", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    submit_endless(&client, &actor);
    // Redis goes away with a job running, then the runner is told to stop.
    drop(server);
    let _ = Command::new("kill")
        .args(["-TERM", &runner.id().to_string()])
        .status();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = runner.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = runner.kill();
            panic!("the runner did not stop within 30 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // The grace (1 s), then at most the wind-down margin (5 s) of retries.
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "{:?}",
        start.elapsed()
    );
    let output = runner.wait_with_output().unwrap();
    let logs = String::from_utf8_lossy(&output.stderr);
    assert_eq!(status.code(), Some(0), "{logs}");
    assert!(logs.contains("giving up"), "{logs}");
}

#[test]
fn a_runner_waits_out_an_unreachable_redis_then_serves() {
    // Start the runner against a socket where no Redis listens yet.
    let dir = std::env::temp_dir().join(unique("late-redis"));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("redis+unix://{}", TestRedis::socket_in(&dir).display());
    let actor = unique("actor");
    let mut runner = baobab()
        .args(["run", "--redis", &url, "--actor", &actor, "--workers", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    assert!(
        runner.try_wait().unwrap().is_none(),
        "no crash loop: it keeps trying"
    );
    let server = TestRedis::at(dir);
    let start = Instant::now();
    let output = loop {
        let output = baobab()
            .args([
                "submit",
                "examples/jobs/01_answer.rhai",
                "--redis",
                &url,
                "--actor",
                &actor,
            ])
            .args(["--wait", "--json", "--timeout", "5"])
            .output()
            .unwrap();
        if output.status.success() || start.elapsed() > Duration::from_secs(20) {
            break output;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("\"output\":\"42\""), "{text}");
    let _ = Command::new("kill")
        .args(["-TERM", &runner.id().to_string()])
        .status();
    let runner_output = runner.wait_with_output().unwrap();
    let logs = String::from_utf8_lossy(&runner_output.stderr);
    assert!(logs.contains("Redis unreachable; retrying"), "{logs}");
    drop(server);
}
