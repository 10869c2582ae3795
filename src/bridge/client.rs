//! [`Client`]: submits jobs to a Redis-fed runner and reads their results.

use std::time::{Duration, Instant};

use redis::Commands;

use super::keys::{Keys, Profile};
use super::store::{RedisConfig, RedisStore};
use super::wire::reply_list_in_hash;
use crate::jobs::{Job, JobStatus, JobStore, Priority, StoreError};

/// One actor's jobs in Redis, as [`Client::queues`] counts them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueInfo {
    /// The actor (the rhailib profile's circle).
    pub actor: String,
    /// Jobs in its queues (of every priority), waiting for a runner.
    pub queued: u64,
    /// Jobs in its delayed set, waiting for their time.
    pub delayed: u64,
    /// Jobs its runners have taken and not ended (their processing lists).
    pub running: u64,
    /// Jobs in its dead set: ended `error` after running, their retries used.
    pub dead: u64,
    /// Runners listed as serving it (a dead one stays listed until a reaper removes it).
    pub runners: u64,
}

/// A client of runners that share a Redis.
///
/// `await_result` waits on the job's reply list (`BLPOP`), falling back to the job's hash if
/// the reply was already taken or expired.
pub struct Client {
    pub(super) store: RedisStore,
    pub(super) keys: Keys,
    client: redis::Client,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Client({})", self.keys.profile)
    }
}

impl Client {
    /// A client for the Redis at `url`, in `profile`.
    pub fn new(url: &str, profile: Profile) -> Result<Client, StoreError> {
        let mut config = RedisConfig::new(url);
        config.profile = profile;
        let store = RedisStore::new(config)?;
        let client = redis::Client::open(url).map_err(|e| StoreError::Backend(e.to_string()))?;
        Ok(Client {
            store,
            keys: Keys::new(profile),
            client,
        })
    }

    /// Submits `job` to its actor's queue; returns its id.
    pub fn submit(&self, job: Job) -> Result<String, StoreError> {
        let id = job.id.clone();
        self.store.submit(job)?;
        Ok(id)
    }

    /// The job's status (`None`: no such job).
    pub fn status(&self, id: &str) -> Result<Option<JobStatus>, StoreError> {
        self.store.status(id)
    }

    /// The job as it is now.
    pub fn get(&self, id: &str) -> Result<Option<Job>, StoreError> {
        self.store.get(id)
    }

    /// Asks the runners to stop job `id`: its id goes to the stop queue of `actor` (default:
    /// the `actor_id` in the job's hash; a rhailib task names none, so give its circle).
    /// Whichever runner pops it finds the job: a running one ends `error: cancelled`, a queued
    /// one is taken out of the queue and ends so without running, an ended one is left alone.
    /// Returns `false` (and pushes nothing) if there is no such job. Does not wait: use
    /// [`await_result`](Self::await_result).
    pub fn stop(&self, id: &str, actor: Option<&str>) -> Result<bool, StoreError> {
        let backend = |e: redis::RedisError| StoreError::Backend(e.to_string());
        let mut conn = self.client.get_connection().map_err(backend)?;
        let key = self.keys.job(id);
        // Bytes: a field that is not UTF-8 is an error here, not a failed read.
        let (exists, named): (bool, Option<Vec<u8>>) = redis::pipe()
            .exists(&key)
            .cmd("HGET")
            .arg(&key)
            .arg("actor_id")
            .query(&mut conn)
            .map_err(backend)?;
        if !exists {
            return Ok(false);
        }
        let named = match named.map(String::from_utf8).transpose() {
            Ok(named) => named,
            Err(_) => {
                return Err(StoreError::Backend(format!(
                    "job {id} names an actor that is not UTF-8: say which actor's runners run it"
                )));
            }
        };
        let actor = match (actor, named.as_deref()) {
            (Some(actor), _) => actor,
            (None, Some(named)) if !named.is_empty() => named,
            _ => {
                return Err(StoreError::Backend(format!(
                    "job {id} names no actor: say which actor's runners run it"
                )));
            }
        };
        conn.lpush::<_, _, ()>(self.keys.stop_queue(actor), id)
            .map_err(backend)?;
        Ok(true)
    }

    /// Every actor with a queue, delayed jobs, dead jobs or runners, and their counts, sorted
    /// by actor.
    /// Keys are found with `SCAN` (never `KEYS`), so a large Redis is not held up.
    pub fn queues(&self) -> Result<Vec<QueueInfo>, StoreError> {
        let backend = |e: redis::RedisError| StoreError::Backend(e.to_string());
        let mut conn = self.client.get_connection().map_err(backend)?;
        let mut actors = std::collections::BTreeSet::new();
        for template in [
            self.keys.queue("*"),
            self.keys.queue_of("*", Priority::High),
            self.keys.queue_of("*", Priority::Low),
            self.keys.delayed("*"),
            self.keys.dead("*"),
            self.keys.runners("*"),
        ] {
            let (head, tail) = template.split_once('*').expect("a pattern");
            // A key that is no UTF-8 names no actor this client could serve: skipped.
            let keys: Vec<String> = conn
                .scan_match::<_, String>(&template)
                .map_err(backend)?
                .filter_map(Result::ok)
                .collect();
            for key in keys {
                if let Some(actor) = key.strip_prefix(head).and_then(|k| k.strip_suffix(tail))
                    && !actor.is_empty()
                {
                    actors.insert(actor.to_owned());
                }
            }
        }
        // A key of another type than expected counts as empty.
        let len = |cmd: &str, key: String, conn: &mut redis::Connection| -> u64 {
            redis::cmd(cmd).arg(key).query(conn).unwrap_or(0)
        };
        let mut queues = Vec::with_capacity(actors.len());
        for actor in actors {
            let queued = [Priority::High, Priority::Normal, Priority::Low]
                .into_iter()
                .map(|p| len("LLEN", self.keys.queue_of(&actor, p), &mut conn))
                .sum();
            let delayed = len("ZCARD", self.keys.delayed(&actor), &mut conn);
            let dead = len("ZCARD", self.keys.dead(&actor), &mut conn);
            let runners: Vec<String> = redis::cmd("SMEMBERS")
                .arg(self.keys.runners(&actor))
                .query(&mut conn)
                .unwrap_or_default();
            let mut running = 0;
            for runner in &runners {
                running += len("LLEN", self.keys.processing(&actor, runner), &mut conn);
            }
            queues.push(QueueInfo {
                actor,
                queued,
                delayed,
                dead,
                running,
                runners: runners.len() as u64,
            });
        }
        Ok(queues)
    }

    /// Waits up to `timeout` for the job to end and returns it.
    pub fn await_result(&self, id: &str, timeout: Duration) -> Result<Job, StoreError> {
        let deadline = Instant::now() + timeout;
        let reply = self.keys.reply(id);
        if !reply_list_in_hash(self.keys.profile)
            && let Ok(mut conn) = self.client.get_connection()
        {
            let secs = timeout.as_secs_f64().max(0.01);
            // Bytes: a reply that is not UTF-8 is put back as it was.
            let popped: Result<Option<(Vec<u8>, Vec<u8>)>, _> =
                redis::cmd("BLPOP").arg(&reply).arg(secs).query(&mut conn);
            if let Ok(Some((_, status))) = popped {
                // Put it back for other readers; the hash has the rest.
                let _: Result<(), _> = conn.lpush(&reply, &status);
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        self.store.wait(id, left)
    }
}
