//! The state of the script running on this thread, as the engine's callbacks and the
//! sandbox's own functions see it: its deadline and cancel flag, its log, its memory ceiling,
//! and why it was stopped.
//!
//! The engine calls the progress callback before every operation. The checks made there each
//! time (a stop requested, the memory ceiling, the stack floor) read thread-local cells only;
//! the clock and the cancel flag are read when the [`ticker`]'s coarse clock has moved (at
//! most once a millisecond), and every [`CLOCK_EVERY`] operations in any case.

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use rhai::Dynamic;

use super::{Limit, Limits, memory, stack, ticker};

/// How often (in operations) the progress callback looks at the clock and the cancel flag.
const CLOCK_EVERY: u64 = 1024;

/// Why a run was stopped from outside the engine's own checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    /// Its wall-clock timeout passed.
    Timeout,
    /// Its cancel flag was set.
    Cancelled,
    /// It reached a limit the sandbox checks itself.
    Limit(Limit),
}

/// The run's state, kept by the thread running it.
pub(crate) struct Run {
    deadline: Instant,
    cancel: Option<Arc<AtomicBool>>,
    log: Log,
    stopped: Option<Stop>,
    text_limit: usize,
}

/// A job's log, within its limit in bytes.
struct Log {
    lines: Vec<String>,
    bytes: usize,
    limit: usize,
    dropped_lines: u64,
    dropped_bytes: u64,
}

impl Log {
    fn push(&mut self, line: &str) {
        if self.bytes + line.len() <= self.limit {
            self.bytes += line.len();
            self.lines.push(line.to_string());
        } else {
            self.dropped_lines += 1;
            self.dropped_bytes += line.len() as u64;
        }
    }

    fn finish(mut self) -> Vec<String> {
        if self.dropped_lines > 0 {
            self.lines.push(format!(
                "[log truncated: {} more lines ({} bytes) past {} ({} bytes)]",
                self.dropped_lines,
                self.dropped_bytes,
                Limit::LogSize,
                self.limit
            ));
        }
        self.lines
    }
}

thread_local! {
    static RUN: RefCell<Option<Run>> = const { RefCell::new(None) };
    /// Set when the run must end at its next operation.
    static STOP_NOW: Cell<bool> = const { Cell::new(false) };
    /// The allocation count past which the run is over its memory limit.
    static CEILING: Cell<i64> = const { Cell::new(i64::MAX) };
    /// The ticker's count when the clock and the cancel flag were last looked at.
    static LAST_TICK: Cell<u64> = const { Cell::new(0) };
}

/// What a finished run leaves.
pub(crate) struct Ended {
    pub(crate) log: Vec<String>,
    pub(crate) stopped: Option<Stop>,
}

/// A run in progress on this thread; dropping it (even while unwinding) ends it and puts
/// back the state of any run it interrupted.
pub(crate) struct Guard {
    previous: Option<Run>,
    previous_stop: bool,
    previous_ceiling: i64,
    previous_floor: usize,
    ended: bool,
}

/// Starts a run on this thread under `limits`, keeping `keep` bytes of stack free below the
/// guard ([`stack::keep`]).
pub(crate) fn start(
    limits: &Limits,
    keep: usize,
    deadline: Instant,
    cancel: Option<Arc<AtomicBool>>,
) -> Guard {
    let text_limit = limits.max_string_size;
    let run = Run {
        deadline,
        cancel,
        log: Log {
            lines: Vec::new(),
            bytes: 0,
            limit: limits.max_log_size,
            dropped_lines: 0,
            dropped_bytes: 0,
        },
        stopped: None,
        text_limit,
    };
    let ceiling = if limits.max_memory == 0 || !memory::memory_counted() {
        i64::MAX
    } else {
        memory::net().saturating_add(limits.max_memory as i64)
    };
    ticker::begin();
    LAST_TICK.set(ticker::ticks());
    Guard {
        previous: RUN.with(|cell| cell.borrow_mut().replace(run)),
        previous_stop: STOP_NOW.replace(false),
        previous_ceiling: CEILING.replace(ceiling),
        previous_floor: stack::arm(keep),
        ended: false,
    }
}

impl Guard {
    /// Ends the run: its log and why it was stopped.
    pub(crate) fn end(mut self) -> Ended {
        self.restore().expect("a run in progress")
    }

    fn restore(&mut self) -> Option<Ended> {
        if self.ended {
            return None;
        }
        self.ended = true;
        ticker::end();
        stack::disarm(self.previous_floor);
        CEILING.set(self.previous_ceiling);
        STOP_NOW.set(self.previous_stop);
        let run = RUN.with(|cell| std::mem::replace(&mut *cell.borrow_mut(), self.previous.take()));
        run.map(|run| Ended {
            log: run.log.finish(),
            stopped: run.stopped,
        })
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.restore();
    }
}

fn with_run<R>(f: impl FnOnce(&mut Run) -> R) -> Option<R> {
    RUN.with(|cell| cell.borrow_mut().as_mut().map(f))
}

/// Adds a line to the running script's log.
pub(crate) fn log_line(line: &str) {
    with_run(|run| run.log.push(line));
}

/// Ends the running script at its next operation, for `why` (the first reason stays).
/// Nothing happens when no run is in progress on this thread.
pub(crate) fn stop(why: Stop) {
    let running = with_run(|run| {
        run.stopped.get_or_insert(why);
    });
    if running.is_some() {
        STOP_NOW.set(true);
    }
}

/// The bytes the running script may still allocate before it is over its memory limit
/// (`None`: no limit, or allocations not counted).
pub(crate) fn memory_room() -> Option<usize> {
    let ceiling = CEILING.get();
    (ceiling != i64::MAX).then(|| usize::try_from(ceiling - memory::net()).unwrap_or(0))
}

/// Whether the running script has been told to stop (it ends at its next operation).
pub(crate) fn stopping() -> bool {
    STOP_NOW.get()
}

/// The longest text a value may become on this thread's run (`to_string`, `print`...).
pub(crate) fn text_limit() -> usize {
    with_run(|run| run.text_limit).unwrap_or(usize::MAX)
}

/// Why the running script should stop now, looking at the clock and the cancel flag.
pub(crate) fn should_stop() -> Option<Stop> {
    with_run(|run| {
        if let Some(stopped) = &run.stopped {
            return Some(stopped.clone());
        }
        if run
            .cancel
            .as_ref()
            .is_some_and(|flag| flag.load(Ordering::Relaxed))
        {
            return Some(Stop::Cancelled);
        }
        (Instant::now() >= run.deadline).then_some(Stop::Timeout)
    })
    .flatten()
}

/// Why the running script was stopped, if it was.
pub(crate) fn stopped() -> Option<Stop> {
    with_run(|run| run.stopped.clone()).flatten()
}

/// How often (in tokens) the tokenizer's hook looks at the clock and the cancel flag.
const TOKENS_BETWEEN_CHECKS: u64 = 64;

thread_local! {
    static TOKENS: Cell<u64> = const { Cell::new(0) };
}

/// Whether the clock and the cancel flag should be looked at now: the ticker moved since the
/// last look, or `step` is a multiple of `every` (should the ticker not run).
#[inline]
fn time_to_look(step: u64, every: u64) -> bool {
    let tick = ticker::ticks();
    if tick != LAST_TICK.get() {
        LAST_TICK.set(tick);
        return true;
    }
    step % every == 0
}

/// The check made at every step of a run (an operation, or a token while compiling): `true`
/// if the run must end now (and why is recorded). `step` counts the steps.
#[inline]
fn must_end(step: u64, every: u64) -> bool {
    let why = if STOP_NOW.get() {
        return true;
    } else if memory::net() > CEILING.get() {
        Stop::Limit(Limit::Memory)
    } else if stack::exhausted() {
        Stop::Limit(Limit::Stack)
    } else if time_to_look(step, every)
        && let Some(why) = should_stop()
    {
        why
    } else {
        return false;
    };
    stop(why);
    true
}

/// For a native function's own long loop, at each of its steps: whether the run must end
/// now (the same checks as between operations).
pub(crate) fn interrupted(step: u64) -> bool {
    RUN.with(|run| run.borrow().is_some()) && must_end(step, CLOCK_EVERY)
}

/// The tokenizer's hook, while a script compiles: past the run's timeout, a cancel, its
/// memory or its stack, the token becomes an error that ends the compile.
pub(crate) fn parse_token(token: rhai::Token) -> rhai::Token {
    let tokens = TOKENS.get().wrapping_add(1);
    TOKENS.set(tokens);
    if !must_end(tokens, TOKENS_BETWEEN_CHECKS) {
        return token;
    }
    rhai::Token::LexError(Box::new(rhai::LexError::Runtime(
        "compiling stopped".into(),
    )))
}

/// The engine's progress callback: `Some` ends the script (see [`Ended::stopped`] for why).
pub(crate) fn progress(operations: u64) -> Option<Dynamic> {
    must_end(operations, CLOCK_EVERY).then_some(Dynamic::UNIT)
}
