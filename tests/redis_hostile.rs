//! Hostile data in Redis against a real, in-process runner (property test, a private
//! redis-server): arbitrary bytes in every field of job hashes (the Hero profile's fields,
//! and the rhailib profile's with `reply_queue_name`), arbitrary bytes as queued ids (some
//! with a hash, some without), job keys and reply keys of the wrong type, then a good job
//! queued behind them. Every hostile entry must end in a terminal status, or be dropped
//! from both the queue and the runner's processing list with a `warn!` line naming it; the
//! good job must finish.
//!
//! One runner per test serves every case; a case that fails gets a fresh runner (and actor)
//! for the cases after it, so shrinking reruns each candidate against a runner that nothing
//! before it has wedged.
#![cfg(all(feature = "redis", feature = "cli"))]

mod common;

use std::cell::RefCell;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use baobab::bridge::{Profile, RedisConfig, Runner, RunnerConfig};
use baobab::jobs::{Job, JobStore, PoolConfig};
use baobab::script::SandboxConfig;
use common::redis_server::{TestRedis, unique};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use redis::Commands;

/// How long a case may take to settle (the jobs are trivial: a working runner needs
/// milliseconds).
const SETTLE: Duration = Duration::from_secs(5);

// ---- the log, captured ----

#[derive(Clone)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The `warn!` lines (and worse) of this test process.
fn log() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = Captured(buffer.clone());
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .init();
        buffer
    })
}

fn log_since(offset: usize) -> String {
    let log = log().lock().unwrap_or_else(PoisonError::into_inner);
    String::from_utf8_lossy(&log[offset.min(log.len())..]).into_owned()
}

fn log_len() -> usize {
    log().lock().unwrap_or_else(PoisonError::into_inner).len()
}

/// An id as the runner logs it: quoted, anything not printable escaped.
fn shown(id: &[u8]) -> String {
    match std::str::from_utf8(id) {
        Ok(text) => format!("{text:?}"),
        Err(_) => format!("b\"{}\"", id.escape_ascii()),
    }
}

// ---- the cases ----

const HERO_FIELDS: [&str; 21] = [
    "id",
    "caller_id",
    "context_id",
    "actor_id",
    "script",
    "timeout",
    "retries",
    "concurrent",
    "log_path",
    "env_vars",
    "prerequisites",
    "dependents",
    "created_at",
    "updated_at",
    "started_at",
    "finished_at",
    "status",
    "output",
    "result",
    "error",
    "requeues",
];

const RHAILIB_FIELDS: [&str; 9] = [
    "script",
    "status",
    "output",
    "error",
    "caller_id",
    "context_id",
    "reply_queue_name",
    "created_at",
    "updated_at",
];

/// A value a runner might accept for `field`, so that some hostile jobs run.
fn plausible(field: &'static str) -> BoxedStrategy<Vec<u8>> {
    let values: &[&str] = match field {
        "script" => &["1", "40 + 2", "throw \"no\"", "`${CALLER_ID}`", ""],
        "status" => &[
            "dispatched",
            "started",
            "finished",
            "error",
            "pending",
            "processing",
            "completed",
        ],
        "timeout" => &["10", "0", "-1", "1e3"],
        "retries" | "requeues" => &["0", "1", "4294967296"],
        "env_vars" => &["{}", "{\"A\":\"1\"}", "[1]", "{\"JOB_ID\":\"x\"}"],
        "created_at" | "updated_at" | "started_at" | "finished_at" => {
            &["2026-01-01T00:00:00Z", "1795742788", "yesterday"]
        }
        "caller_id" | "context_id" | "actor_id" | "id" => &["alice", "with space", ""],
        "reply_queue_name" => &["rhai_reply:hostile"],
        _ => &["", "x"],
    };
    prop::sample::select(values)
        .prop_map(|v| v.as_bytes().to_vec())
        .boxed()
}

/// Arbitrary bytes: mostly short, sometimes not UTF-8 for sure, rarely large.
fn bytes() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        6 => prop::collection::vec(any::<u8>(), 0..48),
        2 => prop::collection::vec(any::<u8>(), 0..8).prop_map(|mut v| {
            v.extend_from_slice(b"\xc3\x28\xff");
            v
        }),
        1 => prop::collection::vec(any::<u8>(), 0..16 * 1024),
    ]
    .boxed()
}

fn value(field: &'static str) -> BoxedStrategy<Option<Vec<u8>>> {
    prop_oneof![
        2 => Just(None),
        3 => plausible(field).prop_map(Some),
        3 => bytes().prop_map(Some),
    ]
    .boxed()
}

/// An id: arbitrary bytes (after the case's tag), a plausible one, or the empty id.
#[derive(Clone, Debug)]
enum Id {
    Tagged(Vec<u8>),
    Plain(u8),
    Empty,
}

fn id() -> impl Strategy<Value = Id> {
    prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 0..300).prop_map(Id::Tagged),
        4 => any::<u8>().prop_map(Id::Plain),
        1 => Just(Id::Empty),
    ]
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    List,
    String,
    Hash,
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![Just(Kind::List), Just(Kind::String), Just(Kind::Hash)]
}

/// A hash's fields, each absent or any bytes.
type Fields = Vec<(&'static str, Option<Vec<u8>>)>;

/// One hostile entry of the queue.
#[derive(Clone, Debug)]
enum Entry {
    /// A job hash of these fields, queued under the id.
    Job(Id, Fields),
    /// An id with no hash.
    Bare(Id),
    /// An id whose job key holds a list or a string.
    WrongJobKey(Id, Kind),
    /// A good job whose reply list (Hero) or named reply queue (rhailib) holds something
    /// else.
    WrongReplyKey(Kind),
}

fn fields(names: &'static [&'static str]) -> BoxedStrategy<Fields> {
    names
        .iter()
        .map(|&name| value(name).prop_map(move |v| (name, v)))
        .collect::<Vec<_>>()
        .boxed()
}

fn entry(profile: Profile) -> impl Strategy<Value = Entry> {
    let names: &'static [&'static str] = match profile {
        Profile::Hero => &HERO_FIELDS,
        Profile::Rhailib => &RHAILIB_FIELDS,
    };
    prop_oneof![
        5 => (id(), fields(names)).prop_map(|(id, fields)| Entry::Job(id, fields)),
        1 => id().prop_map(Entry::Bare),
        1 => (id(), prop_oneof![Just(Kind::List), Just(Kind::String)])
            .prop_map(|(id, kind)| Entry::WrongJobKey(id, kind)),
        1 => kind().prop_map(Entry::WrongReplyKey),
    ]
}

// ---- the harness ----

/// A private Redis and the runner serving the current actor.
struct Harness {
    rt: baobab::Runtime,
    redis: TestRedis,
    profile: Profile,
    runner: Option<(Runner, String)>,
    cases: usize,
}

impl Harness {
    fn new(profile: Profile) -> Harness {
        log();
        Harness {
            rt: common::runtime(),
            redis: TestRedis::private(),
            profile,
            runner: None,
            cases: 0,
        }
    }

    /// The runner and its actor, started if there is none.
    fn runner(&mut self) -> (&Runner, String) {
        if self.runner.is_none() {
            let actor = unique("hostile");
            let mut pool = PoolConfig::new(&actor);
            pool.workers = 2;
            let mut redis = RedisConfig::new(&self.redis.url);
            redis.profile = self.profile;
            let config = RunnerConfig {
                redis,
                actor: actor.clone(),
                pool,
                sandbox: SandboxConfig::default(),
                actors: None,
            };
            let runner = Runner::start(self.rt.handle(), config).unwrap();
            self.runner = Some((runner, actor));
        }
        let (runner, actor) = self.runner.as_ref().unwrap();
        (runner, actor.clone())
    }

    /// Lets the runner go (a case failed): the next case gets a fresh one.
    fn replace_runner(&mut self) {
        if let Some((runner, _)) = self.runner.take() {
            // A wedged runner may take its grace plus the wind-down margin to stop.
            std::thread::spawn(move || runner.shutdown(Duration::ZERO));
        }
    }

    fn case(&mut self, entries: Vec<Entry>) -> Result<(), TestCaseError> {
        self.cases += 1;
        let tag = format!("c{}-{}-", self.cases, unique("t"));
        let result = self.run_case(&tag, entries);
        if result.is_err() {
            self.replace_runner();
        }
        result
    }

    fn run_case(&mut self, tag: &str, entries: Vec<Entry>) -> Result<(), TestCaseError> {
        let profile = self.profile;
        let mut conn = self.redis.conn();
        let (runner, actor) = self.runner();
        let keys = runner.store().keys();
        let queue = keys.queue(&actor);
        let processing = keys.processing(&actor, runner.store().runner_id());
        let job_key = |id: &[u8]| [keys.job("").as_bytes(), id].concat();
        let log_start = log_len();
        let mut ids: Vec<Vec<u8>> = Vec::new();
        let mut cleanup: Vec<Vec<u8>> = Vec::new();
        for (n, entry) in entries.iter().enumerate() {
            let raw = |id: &Id| match id {
                Id::Tagged(bytes) => [tag.as_bytes(), bytes].concat(),
                Id::Plain(n) => format!("{tag}plain-{n}").into_bytes(),
                Id::Empty => Vec::new(),
            };
            let id = match entry {
                Entry::Job(id, fields) => {
                    let id = raw(id);
                    let mut hset = redis::cmd("HSET");
                    hset.arg(job_key(&id));
                    let mut any = false;
                    for (field, value) in fields {
                        if let Some(value) = value {
                            hset.arg(*field).arg(value.as_slice());
                            any = true;
                        }
                    }
                    // The same id may come twice: the last entry decides its key.
                    let _: () = redis::cmd("DEL")
                        .arg(job_key(&id))
                        .query(&mut conn)
                        .unwrap();
                    if any {
                        let _: () = hset.query(&mut conn).unwrap();
                    }
                    id
                }
                Entry::Bare(id) => {
                    let id = raw(id);
                    let _: () = redis::cmd("DEL")
                        .arg(job_key(&id))
                        .query(&mut conn)
                        .unwrap();
                    id
                }
                Entry::WrongJobKey(id, kind) => {
                    let id = raw(id);
                    put(&mut conn, &job_key(&id), *kind);
                    id
                }
                Entry::WrongReplyKey(kind) => {
                    let id = format!("{tag}reply-{n}").into_bytes();
                    let reply = format!("{tag}reply-key-{n}");
                    let mut hset = redis::cmd("HSET");
                    hset.arg(job_key(&id)).arg("script").arg("1");
                    match profile {
                        Profile::Hero => {
                            put(
                                &mut conn,
                                keys.reply(&String::from_utf8_lossy(&id)).as_bytes(),
                                *kind,
                            );
                        }
                        Profile::Rhailib => {
                            hset.arg("reply_queue_name").arg(&reply);
                            put(&mut conn, reply.as_bytes(), *kind);
                        }
                    }
                    cleanup.push(reply.into_bytes());
                    let _: () = hset.query(&mut conn).unwrap();
                    id
                }
            };
            let _: () = redis::cmd("LPUSH")
                .arg(&queue)
                .arg(id.as_slice())
                .query(&mut conn)
                .unwrap();
            ids.push(id);
        }
        // And a good job behind them.
        let good = Job::builder("6 * 7").actor_id(&actor).build().unwrap();
        let good_id = good.id.clone();
        runner.store().submit(good).unwrap();
        let terminal: &[&str] = match profile {
            Profile::Hero => &["finished", "error"],
            Profile::Rhailib => &["completed", "error"],
        };
        let finished = match profile {
            Profile::Hero => "finished",
            Profile::Rhailib => "completed",
        };
        let start = Instant::now();
        let settled = |conn: &mut redis::Connection, id: &[u8]| -> Result<(), String> {
            let key = job_key(id);
            let kind: String = redis::cmd("TYPE").arg(&key).query(conn).unwrap();
            if kind == "hash" {
                let status: Option<Vec<u8>> = conn.hget(&key, "status").unwrap();
                if status
                    .as_deref()
                    .is_some_and(|s| terminal.iter().any(|t| t.as_bytes() == s))
                {
                    return Ok(());
                }
            }
            let listed = |list: &str, conn: &mut redis::Connection| -> bool {
                let at: Option<i64> = redis::cmd("LPOS").arg(list).arg(id).query(conn).unwrap();
                at.is_some()
            };
            if listed(&queue, conn) || listed(&processing, conn) {
                return Err(format!("{} still listed (key: {kind})", shown(id)));
            }
            if !log_since(log_start).contains(&shown(id)) {
                return Err(format!(
                    "{} dropped (key: {kind}) without a warning naming it",
                    shown(id)
                ));
            }
            Ok(())
        };
        let outcome = loop {
            let good: Option<String> = conn.hget(keys.job(&good_id), "status").unwrap();
            let mut open = Vec::new();
            if good.as_deref() != Some(finished) {
                open.push(format!("the good job: {good:?}"));
            }
            for id in &ids {
                if let Err(why) = settled(&mut conn, id) {
                    open.push(why);
                }
            }
            let held: usize = conn.llen(&processing).unwrap();
            if open.is_empty() && held == 0 {
                break Ok(());
            }
            if start.elapsed() > SETTLE {
                break Err(TestCaseError::fail(format!(
                    "not settled after {SETTLE:?} ({held} in the processing list): {open:?}\nlog:\n{}",
                    log_since(log_start)
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        // Keys of this case go, so the next ones start clean.
        let mut del = redis::cmd("DEL");
        del.arg(keys.job(&good_id)).arg(keys.reply(&good_id));
        for id in &ids {
            del.arg(job_key(id));
            del.arg([keys.reply("").as_bytes(), id].concat());
        }
        for key in &cleanup {
            del.arg(key.as_slice());
        }
        let _: () = del.query(&mut conn).unwrap();
        outcome
    }
}

/// Makes `key` hold a `kind` (not a list where a list is expected, and so on).
fn put(conn: &mut redis::Connection, key: &[u8], kind: Kind) {
    let _: () = redis::cmd("DEL").arg(key).query(conn).unwrap();
    let cmd = match kind {
        Kind::List => redis::cmd("RPUSH").arg(key).arg("not a hash").clone(),
        Kind::String => redis::cmd("SET").arg(key).arg("not a list").clone(),
        Kind::Hash => redis::cmd("HSET").arg(key).arg("not").arg("a list").clone(),
    };
    let _: () = cmd.query(conn).unwrap();
}

fn check(profile: Profile) {
    let config = Config {
        cases: 48,
        // A wedged runner makes each failing candidate wait `SETTLE`.
        max_shrink_iters: 32,
        failure_persistence: None,
        ..Config::default()
    };
    let harness = RefCell::new(Harness::new(profile));
    let strategy = prop::collection::vec(entry(profile), 1..6);
    let result =
        TestRunner::new(config).run(&strategy, |entries| harness.borrow_mut().case(entries));
    if let Some((runner, _)) = harness.borrow_mut().runner.take() {
        runner.shutdown(Duration::from_secs(1)).unwrap();
    }
    if let Err(failure) = result {
        panic!("{failure}");
    }
}

#[test]
fn hostile_hero_jobs_end_or_are_dropped_and_the_queue_goes_on() {
    check(Profile::Hero);
}

#[test]
fn hostile_rhailib_tasks_end_or_are_dropped_and_the_queue_goes_on() {
    check(Profile::Rhailib);
}
