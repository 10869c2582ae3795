//! What an operator does besides submitting: run failed jobs again, purge ended ones, list
//! jobs and runners. Keys are found with `SCAN` (never `KEYS`), and each batch of writes is
//! one Lua script, so no call holds Redis for long.

use std::collections::HashMap;
use std::time::SystemTime;

use redis::Value;

use super::client::Client;
use super::connection::reply;
use super::wire::{iso8601, reply_named_in_hash, status_to_wire};
use crate::jobs::{JobStatus, StoreError};

/// How many keys one `SCAN` step asks for, and one purge script deletes at most.
const BATCH: usize = 1000;

/// A job as [`Client::jobs`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSummary {
    /// Its id.
    pub id: String,
    /// Its status as the wire format spells it (`dispatched`, `started`, `finished`,
    /// `error`; rhailib: `pending`, `processing`, `completed`, `error`).
    pub status: String,
    /// Its actor (empty for a rhailib task, which names none).
    pub actor: String,
    /// How many times a worker started it.
    pub attempts: u32,
    /// When it was made, as stored (ISO 8601).
    pub created_at: String,
    /// When it last changed, as stored (ISO 8601).
    pub updated_at: String,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

/// Which jobs [`Client::jobs`] lists.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    /// Only this actor's (its hash's `actor_id`).
    pub actor: Option<String>,
    /// Only jobs with this status, as the wire format spells it.
    pub status: Option<String>,
    /// Only jobs last changed at least this long ago.
    pub older_than: Option<std::time::Duration>,
    /// Only jobs last changed at most this long ago.
    pub newer_than: Option<std::time::Duration>,
}

/// One page of [`Client::jobs`]: the jobs found, and where the scan goes on (0: done).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobPage {
    /// The jobs of this page that pass the filter.
    pub jobs: Vec<JobSummary>,
    /// The `SCAN` cursor to pass for the next page; 0 when the scan is done.
    pub cursor: u64,
}

/// A runner as it last announced itself ([`Client::runners`]).
#[derive(Debug, Clone, PartialEq)]
pub struct RunnerInfo {
    /// Its id.
    pub id: String,
    /// The actor it serves.
    pub actor: String,
    /// The host it runs on.
    pub host: String,
    /// Its process id there.
    pub pid: u32,
    /// Its worker processes.
    pub workers: u64,
    /// Jobs it has taken and not ended.
    pub running: u64,
    /// Jobs it has ended since it started.
    pub done: u64,
    /// Jobs it ended per second over its last heartbeat interval.
    pub rate: f64,
    /// How long ago its last heartbeat was, by Redis's clock (`None`: its heartbeat has
    /// expired: the runner is dead, or cut off from Redis).
    pub heartbeat_age: Option<std::time::Duration>,
}

impl Client {
    /// Runs job `id`, which ended `error`, again at once: back to its actor's queue (default:
    /// the hash's `actor_id`; a rhailib task's circle must be given), its `attempts` starting
    /// over so it gets its `retries` anew, its `errors` kept, out of the dead set, its hash no
    /// longer expiring. Returns `false` if there is no such job or it has not ended in error.
    pub fn retry(&self, id: &str, actor: Option<&str>) -> Result<bool, StoreError> {
        let actor = match actor {
            Some(actor) => actor.to_owned(),
            None => self.actor_of(id)?,
        };
        let profile = self.keys.profile;
        let mut call = super::store::scripts().revive.call(6);
        call.arg(self.keys.job(id))
            .arg(self.keys.dead(&actor))
            .arg(self.keys.queue(&actor))
            .arg(self.keys.reply(id))
            .arg(self.keys.queue_of(&actor, crate::jobs::Priority::High))
            .arg(self.keys.queue_of(&actor, crate::jobs::Priority::Low))
            .arg(id)
            .arg(status_to_wire(profile, JobStatus::Error))
            .arg(status_to_wire(profile, JobStatus::Dispatched))
            .arg(iso8601(SystemTime::now()))
            .arg(reply_named_in_hash(profile));
        let done = self.store.run("retry", |c| {
            c.eval_one(&super::store::scripts().revive, call.clone())
        })?;
        Ok(reply::int(done).unwrap_or(0) == 1)
    }

    /// Runs every job in `actor`'s dead set again (as [`retry`](Self::retry)); returns how
    /// many.
    pub fn retry_dead(&self, actor: &str) -> Result<u64, StoreError> {
        let mut retried = 0;
        for id in self.dead(actor)? {
            if self.retry(&id, Some(actor))? {
                retried += 1;
            }
        }
        Ok(retried)
    }

    /// The ids in `actor`'s dead set, the most recent first.
    pub fn dead(&self, actor: &str) -> Result<Vec<String>, StoreError> {
        let mut zrange = redis::cmd("ZRANGE");
        zrange.arg(self.keys.dead(actor)).arg(0).arg(-1).arg("REV");
        let ids = self.store.run("dead", |c| c.query(&zrange))?;
        Ok(reply::items(ids)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|id| reply::bytes(id).ok().flatten())
            .filter_map(|id| String::from_utf8(id).ok())
            .collect())
    }

    /// Deletes the dead jobs of `actor`: the hashes its dead set lists (those still ended in
    /// error), their reply lists, and the set. Returns how many jobs.
    pub fn purge_dead(&self, actor: &str) -> Result<u64, StoreError> {
        let ids = self.dead(actor)?;
        let error = status_to_wire(self.keys.profile, JobStatus::Error);
        let mut deleted = 0;
        for chunk in ids.chunks(BATCH) {
            let keys: Vec<String> = chunk.iter().map(|id| self.keys.job(id)).collect();
            deleted += self.purge_keys(&keys, "", &self.keys.dead(actor), &[error])?;
        }
        let mut del = redis::cmd("DEL");
        del.arg(self.keys.dead(actor));
        self.store.run("purge", |c| c.query(&del))?;
        Ok(deleted)
    }

    /// Deletes every job that ended `finished` (of `actor`, if given: its hash's `actor_id`),
    /// with its reply list, found with `SCAN`. Returns how many.
    pub fn purge_finished(&self, actor: Option<&str>) -> Result<u64, StoreError> {
        let finished = status_to_wire(self.keys.profile, JobStatus::Finished);
        let mut deleted = 0;
        let mut cursor = 0;
        loop {
            let (next, keys) = self.scan_jobs(cursor)?;
            if !keys.is_empty() {
                deleted += self.purge_keys(&keys, actor.unwrap_or(""), "", &[finished])?;
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }

    fn purge_keys(
        &self,
        keys: &[String],
        actor: &str,
        dead: &str,
        statuses: &[&str],
    ) -> Result<u64, StoreError> {
        let script = &super::store::scripts().purge;
        let mut call = script.call(keys.len());
        call.arg(keys)
            .arg(self.keys.job(""))
            .arg(self.keys.reply(""))
            .arg(actor)
            .arg(dead)
            .arg(statuses);
        let deleted = self
            .store
            .run("purge", |c| c.eval_one(script, call.clone()))?;
        Ok(reply::int(deleted).unwrap_or(0).max(0) as u64)
    }

    /// One `SCAN` step over job hash keys: the next cursor and the keys found.
    fn scan_jobs(&self, cursor: u64) -> Result<(u64, Vec<String>), StoreError> {
        self.scan_step(cursor, &self.keys.job("*"), Some("hash"))
    }

    /// One `SCAN` step over the keys matching `pattern` (of `kind`, if given): the next
    /// cursor and the keys found (keys that are no UTF-8 are skipped).
    fn scan_step(
        &self,
        cursor: u64,
        pattern: &str,
        kind: Option<&str>,
    ) -> Result<(u64, Vec<String>), StoreError> {
        let mut scan = redis::cmd("SCAN");
        scan.arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(BATCH);
        if let Some(kind) = kind {
            scan.arg("TYPE").arg(kind);
        }
        let found = self.store.run("scan", |c| c.query(&scan))?;
        let mut parts = reply::items(found).unwrap_or_default().into_iter();
        let next = parts
            .next()
            .and_then(|c| reply::bytes(c).ok().flatten())
            .and_then(|c| String::from_utf8(c).ok())
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let keys = parts
            .next()
            .map(|keys| reply::items(keys).unwrap_or_default())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|k| reply::bytes(k).ok().flatten())
            .filter_map(|k| String::from_utf8(k).ok())
            .collect();
        Ok((next, keys))
    }

    /// One page of jobs that pass `filter`, from `SCAN` cursor `cursor` (0 to begin), looking
    /// at about `count` keys. A page may hold fewer jobs than keys looked at (or none) while
    /// the scan goes on: go on until the returned cursor is 0.
    pub fn jobs(
        &self,
        filter: &JobFilter,
        cursor: u64,
        count: usize,
    ) -> Result<JobPage, StoreError> {
        let mut cursor = cursor;
        let mut jobs = Vec::new();
        let now = SystemTime::now();
        let mut looked = 0;
        loop {
            let (next, keys) = self.scan_jobs(cursor)?;
            looked += keys.len();
            let mut pipe = redis::pipe();
            for key in &keys {
                pipe.cmd("HMGET").arg(key).arg(
                    &[
                        "status",
                        "actor_id",
                        "attempts",
                        "created_at",
                        "updated_at",
                        "error",
                    ][..],
                );
            }
            let rows = if keys.is_empty() {
                Vec::new()
            } else {
                self.store.run("jobs", |c| c.pipeline(&pipe))?
            };
            let head = self.keys.job("");
            for (key, row) in keys.iter().zip(rows) {
                let Ok(Value::Array(values)) = row else {
                    continue;
                };
                let mut text = values.into_iter().map(|v| match v {
                    Value::Nil => None,
                    v => Some(reply::lossy(v)),
                });
                let mut next_field = || text.next().flatten();
                let (status, actor, attempts, created_at, updated_at, error) = (
                    next_field().unwrap_or_default(),
                    next_field().unwrap_or_default(),
                    next_field(),
                    next_field().unwrap_or_default(),
                    next_field().unwrap_or_default(),
                    next_field().filter(|e| !e.is_empty()),
                );
                if status.is_empty() {
                    // No job hash (a hash under a job key without a status).
                    continue;
                }
                let summary = JobSummary {
                    id: key[head.len()..].to_owned(),
                    status,
                    actor,
                    attempts: attempts.and_then(|a| a.parse().ok()).unwrap_or(0),
                    created_at,
                    updated_at,
                    error,
                };
                if passes(filter, &summary, now) {
                    jobs.push(summary);
                }
            }
            cursor = next;
            if cursor == 0 || looked >= count {
                break;
            }
        }
        jobs.sort_by(|a, b| a.updated_at.cmp(&b.updated_at).then(a.id.cmp(&b.id)));
        Ok(JobPage { jobs, cursor })
    }

    /// Every runner that announced itself and whose announcement has not expired (a dead
    /// runner's stays some ten heartbeats), sorted by actor and id.
    pub fn runners(&self) -> Result<Vec<RunnerInfo>, StoreError> {
        let template = self.keys.runner_info("*");
        let (head, tail) = template.split_once('*').expect("a pattern");
        let mut cursor = 0u64;
        let mut ids = Vec::new();
        loop {
            let (next, keys) = self.scan_step(cursor, &template, None)?;
            cursor = next;
            ids.extend(
                keys.iter()
                    .filter_map(|key| key.strip_prefix(head)?.strip_suffix(tail))
                    .map(str::to_owned),
            );
            if cursor == 0 {
                break;
            }
        }
        let mut runners = Vec::with_capacity(ids.len());
        for id in ids {
            let mut pipe = redis::pipe();
            pipe.cmd("HGETALL").arg(self.keys.runner_info(&id));
            pipe.cmd("PTTL").arg(self.keys.heartbeat(&id));
            let mut replies = self
                .store
                .run("runners", |c| c.pipeline(&pipe))?
                .into_iter();
            let fields: HashMap<String, String> = match replies.next() {
                Some(Ok(hash)) => {
                    let mut pairs = reply::items(hash).unwrap_or_default().into_iter();
                    let mut fields = HashMap::new();
                    while let (Some(k), Some(v)) = (pairs.next(), pairs.next()) {
                        fields.insert(reply::lossy(k), reply::lossy(v));
                    }
                    fields
                }
                _ => continue,
            };
            if fields.is_empty() {
                continue;
            }
            let left = replies
                .next()
                .and_then(Result::ok)
                .and_then(|v| reply::int(v).ok())
                .unwrap_or(-2);
            let number = |name: &str| fields.get(name).and_then(|v| v.parse::<u64>().ok());
            let ttl = number("heartbeat_ttl_ms").unwrap_or(0);
            let heartbeat_age = (left >= 0)
                .then(|| std::time::Duration::from_millis(ttl.saturating_sub(left as u64)));
            runners.push(RunnerInfo {
                id,
                actor: fields.get("actor").cloned().unwrap_or_default(),
                host: fields.get("host").cloned().unwrap_or_default(),
                pid: number("pid").unwrap_or(0) as u32,
                workers: number("workers").unwrap_or(0),
                running: number("running").unwrap_or(0),
                done: number("done").unwrap_or(0),
                rate: fields
                    .get("rate")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0.0),
                heartbeat_age,
            });
        }
        runners.sort_by(|a, b| a.actor.cmp(&b.actor).then(a.id.cmp(&b.id)));
        Ok(runners)
    }

    /// The actor named in job `id`'s hash.
    fn actor_of(&self, id: &str) -> Result<String, StoreError> {
        let mut hget = redis::cmd("HGET");
        hget.arg(self.keys.job(id)).arg("actor_id");
        let named = self.store.run("retry", |c| c.query(&hget))?;
        match reply::bytes(named).ok().flatten().map(String::from_utf8) {
            Some(Ok(actor)) if !actor.is_empty() => Ok(actor),
            _ => Err(StoreError::Backend(format!(
                "job {id} names no actor: say which actor's runners run it"
            ))),
        }
    }
}

/// Whether `job` passes `filter` at `now`.
fn passes(filter: &JobFilter, job: &JobSummary, now: SystemTime) -> bool {
    if filter.actor.as_ref().is_some_and(|a| *a != job.actor)
        || filter.status.as_ref().is_some_and(|s| *s != job.status)
    {
        return false;
    }
    if filter.older_than.is_none() && filter.newer_than.is_none() {
        return true;
    }
    let Some(age) = super::wire::parse_time(&job.updated_at).and_then(|at| {
        now.duration_since(at)
            .ok()
            .or(Some(std::time::Duration::ZERO))
    }) else {
        return false;
    };
    filter.older_than.is_none_or(|min| age >= min) && filter.newer_than.is_none_or(|max| age <= max)
}
