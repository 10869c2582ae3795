//! Connections to Redis: a pool of idle connections, retries with backoff while Redis is
//! unreachable, every socket call bounded in time, and failures told apart by what they mean.
//!
//! - **Lost** (an I/O error: refused, reset, end of file, timeout): the connection is dropped
//!   and the request retried with backoff (100 ms doubling to 5 s) on a fresh connection
//!   that first answers `PING`, until it works, the store closes, or the wind-down's deadline
//!   passes.
//! - **Rejected**: the request dropped the connection twice in a row on connections that had
//!   just answered `PING`. Redis is there, so the request itself is at fault (over
//!   `proto-max-bulk-len` or `client-query-buffer-limit`): not retried.
//! - **Poisoned**: the reply could not be parsed. The connection is dropped; not retried.
//! - **Server**: Redis answered with an error (`WRONGTYPE`, `OOM`, a script's error): the
//!   item's own failure. Errors that say Redis is busy for a while (`LOADING`, `BUSY`,
//!   `TRYAGAIN`, `MASTERDOWN`, `READONLY`, `CLUSTERDOWN`) are retried as a lost connection.
//!
//! Replies are read as [`Value`]s and converted by the caller, so bad data is a failure of
//! the item that holds it, never of the connection.
//!
//! Requests are sent in chunks of [`CHUNK`] bytes and replies read one at a time, with the
//! socket's timeouts set before each call to at most [`IO_TIMEOUT`], and during a wind-down
//! to the time left (a `send` that moved some bytes returns at its timeout and the next one
//! waits again, so a chunk gets half of it). A call under way when the wind-down begins ends
//! within [`IO_TIMEOUT`] plus a blocking command's own wait (at most [`MAX_BLOCK`]): less than
//! the wind-down's margin.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use redis::{
    Cmd, Connection, ConnectionLike, ErrorKind, IntoConnectionInfo, Pipeline, RedisError, Value,
};
use tracing::{debug, info, warn};

use crate::jobs::StoreError;

/// The backoff between attempts: 100 ms, doubling, at most 5 s.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// A Redis that sends no byte of a reply, or takes no byte of a request, for this long is
/// lost: the connection is dropped and the request retried.
pub(super) const IO_TIMEOUT: Duration = Duration::from_secs(4);
/// The longest wait of a blocking command (`BLMOVE`, `BLPOP`); longer waits are made of
/// several.
pub(super) const MAX_BLOCK: Duration = Duration::from_secs(1);
/// How long connecting may take (with `AUTH` and `SELECT`, up to three times this).
const CONNECT_TIMEOUT: Duration = Duration::from_millis(1500);
/// Requests are written this many bytes at a time.
pub(super) const CHUNK: usize = 64 * 1024;
/// A request that drops this many fresh connections in a row, each of which had answered
/// `PING`, is rejected.
const REJECTIONS: u32 = 2;

/// Why a Redis operation failed.
#[derive(Debug)]
pub(super) enum Failure {
    /// Redis could not be reached (retried until the store closed, the caller stopped, or
    /// the wind-down's deadline passed).
    Closed,
    /// Redis closed the connection on this request each time it was sent, while answering
    /// `PING` on a fresh connection: the request is at fault.
    Rejected(RedisError),
    /// The reply could not be parsed (the connection was dropped).
    Poisoned(RedisError),
    /// Redis answered with an error.
    Server(RedisError),
    /// Something else (a client-side error).
    Other(RedisError),
}

impl Failure {
    /// As a store error: [`StoreError::Closed`], or a backend error saying what failed.
    pub(super) fn store_error(&self, what: &str) -> StoreError {
        match self {
            Failure::Closed => StoreError::Closed,
            Failure::Rejected(error) => StoreError::Backend(format!(
                "{what}: Redis closed the connection on this request each time: {error}"
            )),
            Failure::Poisoned(error) => {
                StoreError::Backend(format!("{what}: unreadable reply: {error}"))
            }
            Failure::Server(error) | Failure::Other(error) => {
                StoreError::Backend(format!("{what}: {error}"))
            }
        }
    }
}

/// What an error from a request says, before any conversion of its reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    /// The connection failed.
    Transport,
    /// The reply stream could not be parsed.
    Poisoned,
    /// Redis is busy or loading for a while: retried like a lost connection.
    Busy,
    /// Redis answered with an error.
    Server,
    /// A client-side error.
    Other,
}

fn classify(error: &RedisError) -> Class {
    match error.kind() {
        ErrorKind::Io => Class::Transport,
        ErrorKind::Parse => Class::Poisoned,
        ErrorKind::Server(_) | ErrorKind::Extension if is_busy(error) => Class::Busy,
        ErrorKind::Server(_) | ErrorKind::Extension => Class::Server,
        _ => Class::Other,
    }
}

/// A server error that says Redis cannot serve anyone for a while.
pub(super) fn is_busy(error: &RedisError) -> bool {
    matches!(
        error.code(),
        Some("LOADING" | "BUSY" | "TRYAGAIN" | "MASTERDOWN" | "READONLY" | "CLUSTERDOWN")
    )
}

/// A server error after which Redis closes the connection (it says so, but the client still
/// thinks it open).
fn closes_connection(error: &RedisError) -> bool {
    error
        .detail()
        .is_some_and(|detail| detail.starts_with("Protocol error"))
}

/// A connection and the timeouts its socket has now (set only when they change).
struct Conn {
    inner: Connection,
    read: Option<Duration>,
    write: Option<Duration>,
    /// Unusable after the current request (Redis said it closes it).
    broken: bool,
}

impl Conn {
    fn set_read(&mut self, timeout: Duration) -> redis::RedisResult<()> {
        if self.read != Some(timeout) {
            self.inner.set_read_timeout(Some(timeout))?;
            self.read = Some(timeout);
        }
        Ok(())
    }

    fn set_write(&mut self, timeout: Duration) -> redis::RedisResult<()> {
        if self.write != Some(timeout) {
            self.inner.set_write_timeout(Some(timeout))?;
            self.write = Some(timeout);
        }
        Ok(())
    }
}

/// The connections of a store and the policy of its retries.
pub(super) struct Connections {
    client: redis::Client,
    idle: Mutex<Vec<Conn>>,
    closed: AtomicBool,
    /// Set by a wind-down: no socket call lasts past it, no attempt starts after it.
    give_up_at: Mutex<Option<Instant>>,
}

impl Connections {
    /// Connections to the Redis at `url` (none is opened yet).
    pub(super) fn new(url: &str) -> Result<Self, StoreError> {
        let bad = |e: RedisError| StoreError::Backend(format!("bad Redis URL {url:?}: {e}"));
        let info = url.into_connection_info().map_err(bad)?;
        // No `CLIENT SETINFO` round trip on each connect: one that blocks is one more wait.
        let settings = info.redis_settings().clone().set_skip_set_lib_name();
        let client = redis::Client::open(info.set_redis_settings(settings)).map_err(bad)?;
        Ok(Connections {
            client,
            idle: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
            give_up_at: Mutex::new(None),
        })
    }

    /// Whether the store is closed.
    pub(super) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// Closes: an operation that fails is tried once more at most.
    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
    }

    /// From `deadline` on, no socket call lasts and no attempt starts.
    pub(super) fn wind_down(&self, deadline: Instant) {
        *self
            .give_up_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(deadline);
    }

    fn deadline(&self) -> Option<Instant> {
        *self
            .give_up_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The time left before the wind-down's deadline (`None`: no wind-down).
    fn left(&self) -> Option<Duration> {
        self.deadline()
            .map(|at| at.saturating_duration_since(Instant::now()))
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Conn>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A pooled connection, or a new one; a new one answers `PING` first if `probe`.
    /// Returns it and whether it answered `PING`.
    fn checkout(&self, probe: bool) -> Result<(Conn, bool), RedisError> {
        if !probe && let Some(conn) = self.idle().pop() {
            return Ok((conn, false));
        }
        let timeout = self.left().map_or(CONNECT_TIMEOUT, |left| {
            (left / 3).clamp(Duration::from_millis(1), CONNECT_TIMEOUT)
        });
        let inner = self.client.get_connection_with_timeout(timeout)?;
        let mut conn = Conn {
            inner,
            read: None,
            write: None,
            broken: false,
        };
        if probe {
            let mut link = Link {
                conn: &mut conn,
                pool: self,
            };
            link.query(&redis::cmd("PING"))?;
        }
        Ok((conn, probe))
    }

    /// Runs `op` on a connection, retrying while Redis cannot be reached (see the module's
    /// doc). `stop` ends the retries at once, with [`Failure::Closed`].
    pub(super) fn run<T>(
        &self,
        what: &str,
        stop: impl Fn() -> bool,
        mut op: impl FnMut(&mut Link<'_>) -> redis::RedisResult<T>,
    ) -> Result<T, Failure> {
        let mut backoff = BACKOFF_MIN;
        let mut attempt = 0u32;
        // After a lost connection, the next one answers PING first: a request that then
        // drops it again is suspect.
        let mut probe = false;
        let mut suspect = 0u32;
        let mut last: Option<RedisError> = None;
        loop {
            // No attempt starts past the wind-down's deadline.
            if self.left().is_some_and(|left| left.is_zero()) {
                match &last {
                    Some(error) => {
                        warn!(what, attempt, %error, "Redis unreachable; winding down, giving up")
                    }
                    None => debug!(what, "past the wind-down's deadline: not tried"),
                }
                return Err(Failure::Closed);
            }
            let error = match self.checkout(probe) {
                Err(error) => {
                    // Unreachable: whatever failed before was not the request's fault.
                    suspect = 0;
                    error
                }
                Ok((mut conn, pinged)) => {
                    let result = op(&mut Link {
                        conn: &mut conn,
                        pool: self,
                    });
                    let error = match result {
                        Ok(value) => {
                            self.checkin(conn);
                            if attempt > 0 {
                                info!(what, attempts = attempt + 1, "Redis reachable again");
                            }
                            return Ok(value);
                        }
                        Err(error) => error,
                    };
                    match classify(&error) {
                        Class::Transport => {
                            // The pooled connections are likely as dead as this one.
                            self.idle().clear();
                            if pinged && error.is_connection_dropped() {
                                suspect += 1;
                                if suspect >= REJECTIONS {
                                    warn!(what, %error, "Redis drops the connection on this request each time; giving it up");
                                    return Err(Failure::Rejected(error));
                                }
                            } else {
                                suspect = 0;
                            }
                        }
                        Class::Busy => {
                            suspect = 0;
                            self.checkin(conn);
                        }
                        Class::Poisoned => return Err(Failure::Poisoned(error)),
                        Class::Server => {
                            if !closes_connection(&error) {
                                self.checkin(conn);
                            }
                            return Err(Failure::Server(error));
                        }
                        Class::Other => return Err(Failure::Other(error)),
                    }
                    error
                }
            };
            probe = true;
            attempt += 1;
            if self.is_closed() && attempt > 1 || stop() {
                return Err(Failure::Closed);
            }
            let left = self.left();
            if left.is_some_and(|left| left.is_zero()) {
                warn!(what, attempt, %error, "Redis unreachable; winding down, giving up");
                return Err(Failure::Closed);
            }
            warn!(what, attempt, retry_in = ?backoff, %error, "Redis unreachable; retrying");
            std::thread::sleep(left.map_or(backoff, |left| backoff.min(left)));
            backoff = (backoff * 2).min(BACKOFF_MAX);
            last = Some(error);
        }
    }

    fn checkin(&self, conn: Conn) {
        if !conn.broken && conn.inner.is_open() {
            self.idle().push(conn);
        }
    }
}

/// A connection lent to an operation: requests and replies, each socket call bounded in time.
pub(super) struct Link<'a> {
    conn: &'a mut Conn,
    pool: &'a Connections,
}

impl Link<'_> {
    /// The timeout of the next socket call: `cap`, or less in a wind-down.
    fn timeout(&self, cap: Duration) -> redis::RedisResult<Duration> {
        match self.pool.left() {
            None => Ok(cap),
            Some(left) if left.is_zero() => Err(RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the wind-down's deadline has passed",
            ))),
            // Whole milliseconds, so a timeout is set again only when it has changed.
            Some(left) => Ok(cap
                .min(Duration::from_millis(left.as_millis() as u64))
                .max(Duration::from_millis(1))),
        }
    }

    /// Sends `packed` and reads `replies` replies; a blocking command may wait `wait` for
    /// its reply.
    fn exchange(
        &mut self,
        packed: &[u8],
        replies: usize,
        wait: Duration,
    ) -> redis::RedisResult<Vec<Value>> {
        for chunk in packed.chunks(CHUNK) {
            // A send that moved some bytes returns at the timeout, and the next one waits
            // again: half each.
            let timeout = (self.timeout(IO_TIMEOUT)? / 2).max(Duration::from_millis(1));
            self.conn.set_write(timeout)?;
            self.conn.inner.send_packed_command(chunk)?;
        }
        let mut values = Vec::with_capacity(replies);
        for _ in 0..replies {
            let timeout = self.timeout(IO_TIMEOUT + wait)?;
            self.conn.set_read(timeout)?;
            let value = self.conn.inner.recv_response()?;
            if let Value::ServerError(error) = &value
                && closes_connection(&RedisError::from(error.clone()))
            {
                self.conn.broken = true;
            }
            values.push(value);
        }
        Ok(values)
    }

    /// One command; a server error is an `Err`.
    pub(super) fn query(&mut self, cmd: &Cmd) -> redis::RedisResult<Value> {
        self.query_blocking(cmd, Duration::ZERO)
    }

    /// One blocking command that waits up to `wait` ([`MAX_BLOCK`] at most).
    pub(super) fn query_blocking(
        &mut self,
        cmd: &Cmd,
        wait: Duration,
    ) -> redis::RedisResult<Value> {
        let packed = cmd.get_packed_command();
        let reply = self.exchange(&packed, 1, wait)?.pop().unwrap_or(Value::Nil);
        server_error(reply)
    }

    /// A pipeline (or a transaction): each command's reply, or its server error. The whole
    /// fails only on a lost connection or an unreadable reply (or an aborted transaction).
    pub(super) fn pipeline(
        &mut self,
        pipe: &Pipeline,
    ) -> redis::RedisResult<Vec<redis::RedisResult<Value>>> {
        if pipe.is_empty() {
            return Ok(Vec::new());
        }
        let packed = pipe.get_packed_pipeline();
        let replies: Vec<redis::RedisResult<Value>> = if pipe.is_transaction() {
            // MULTI, a QUEUED per command, then EXEC's array.
            let mut replies = self.exchange(&packed, pipe.len() + 2, Duration::ZERO)?;
            match server_error(replies.pop().unwrap_or(Value::Nil))? {
                Value::Array(items) => items.into_iter().map(server_error).collect(),
                other => return Err(unexpected("a transaction's replies", &other)),
            }
        } else {
            let replies = self.exchange(&packed, pipe.len(), Duration::ZERO)?;
            replies.into_iter().map(server_error).collect()
        };
        // Redis busy for a while refuses everything: the whole is tried again.
        if let Some(Err(busy)) = replies.iter().find(|r| r.as_ref().is_err_and(is_busy)) {
            return Err(busy.clone());
        }
        Ok(replies)
    }

    /// Runs `calls` (each built by [`Lua::call`]) in one pipeline, loading the script first
    /// if Redis does not have it.
    pub(super) fn eval(
        &mut self,
        lua: &Lua,
        calls: &[Cmd],
    ) -> redis::RedisResult<Vec<redis::RedisResult<Value>>> {
        let mut pipe = redis::pipe();
        for call in calls {
            pipe.add_command(call.clone());
        }
        let replies = self.pipeline(&pipe)?;
        let missing =
            |r: &redis::RedisResult<Value>| r.as_ref().is_err_and(|e| e.code() == Some("NOSCRIPT"));
        if !replies.iter().any(missing) {
            return Ok(replies);
        }
        // Not run (Redis restarted, or its scripts were flushed). A call that did run is
        // run again: the scripts are written to allow it.
        self.query(&lua.load())?;
        self.pipeline(&pipe)
    }

    /// One script call.
    pub(super) fn eval_one(&mut self, lua: &Lua, call: Cmd) -> redis::RedisResult<Value> {
        self.eval(lua, &[call])?
            .pop()
            .unwrap_or_else(|| Ok(Value::Nil))
    }
}

/// An error as Redis words it (`WRONGTYPE Operation against a key holding…`), for messages
/// stored in a job.
pub(super) fn describe(error: &RedisError) -> String {
    match (error.code(), error.detail()) {
        (Some(code), Some(detail)) => format!("{code} {detail}"),
        _ => error.to_string(),
    }
}

/// A reply that is a server error, as an `Err`.
fn server_error(value: Value) -> redis::RedisResult<Value> {
    match value {
        Value::ServerError(error) => Err(error.into()),
        value => Ok(value),
    }
}

/// An error for a reply of a shape the caller did not expect.
pub(super) fn unexpected(what: &str, value: &Value) -> RedisError {
    RedisError::from((
        ErrorKind::UnexpectedReturnType,
        "unexpected reply",
        format!("{what}: {value:?}"),
    ))
}

/// A Lua script, called by its SHA1 and loaded when Redis does not have it.
pub(super) struct Lua {
    code: &'static str,
    hash: String,
}

impl Lua {
    pub(super) fn new(code: &'static str) -> Lua {
        Lua {
            code,
            hash: redis::Script::new(code).get_hash().to_string(),
        }
    }

    /// `EVALSHA` of this script with `keys` keys: add the keys, then the arguments.
    pub(super) fn call(&self, keys: usize) -> Cmd {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(&self.hash).arg(keys);
        cmd
    }

    pub(super) fn load(&self) -> Cmd {
        let mut cmd = redis::cmd("SCRIPT");
        cmd.arg("LOAD").arg(self.code);
        cmd
    }
}

/// Reading replies: what a [`Value`] holds, or why not.
pub(super) mod reply {
    use redis::Value;

    /// A bulk or simple string's bytes (`None`: nil).
    pub(in crate::bridge) fn bytes(value: Value) -> Result<Option<Vec<u8>>, Value> {
        match value {
            Value::Nil => Ok(None),
            Value::BulkString(bytes) => Ok(Some(bytes)),
            Value::SimpleString(text) => Ok(Some(text.into_bytes())),
            Value::Okay => Ok(Some(b"OK".to_vec())),
            other => Err(other),
        }
    }

    /// An integer (a string of digits too).
    pub(in crate::bridge) fn int(value: Value) -> Result<i64, Value> {
        match value {
            Value::Int(n) => Ok(n),
            Value::BulkString(ref bytes) => std::str::from_utf8(bytes)
                .ok()
                .and_then(|text| text.parse().ok())
                .ok_or(value),
            other => Err(other),
        }
    }

    /// An array's items (nil: none).
    pub(in crate::bridge) fn items(value: Value) -> Result<Vec<Value>, Value> {
        match value {
            Value::Array(items) | Value::Set(items) => Ok(items),
            Value::Nil => Ok(Vec::new()),
            other => Err(other),
        }
    }

    /// A string read as text, with `U+FFFD` for bytes that are not UTF-8.
    pub(in crate::bridge) fn lossy(value: Value) -> String {
        match bytes(value) {
            Ok(Some(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
            Ok(None) => String::new(),
            Err(other) => format!("{other:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_told_apart_by_what_they_mean() {
        let io = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert_eq!(classify(&io), Class::Transport);
        // A conversion failure is no connection failure.
        let utf8 = redis::from_redis_value::<String>(Value::BulkString(vec![0xff])).unwrap_err();
        assert_eq!(classify(&RedisError::from(utf8)), Class::Poisoned);
        let wrongtype = redis::make_extension_error(
            "WRONGTYPE".into(),
            Some("Operation against a key holding the wrong kind of value".into()),
        );
        assert_eq!(classify(&wrongtype), Class::Server);
        let loading = redis::make_extension_error(
            "LOADING".into(),
            Some("Redis is loading the dataset in memory".into()),
        );
        assert_eq!(classify(&loading), Class::Busy);
    }
}
