//! The functions the sandbox puts in place of Rhai's own, and why.
//!
//! Functions registered on the engine are found before the standard packages' ones with the
//! same name and parameter types, so each of these replaces Rhai's for every way of calling
//! it (a call, a method call, an operator, `Fn(..).call(..)`, a callback of `map`, string
//! interpolation). Each was found by calling every function Rhai registers with hostile
//! arguments (`docs/jobs.md` tells the whole audit).
//!
//! | replaced | Rhai's version | ours |
//! |---|---|---|
//! | `sleep(INT)`, `sleep(FLOAT)` | blocks the thread for any time; panics on a float of 2^64 or more | sleeps in slices and ends the script at its timeout or cancel; negative and NaN are 0 |
//! | `parse_json(string)` | evaluates the text as a Rhai expression (calls included), with a fresh operations count and call depth each time; quadratic on many keys | a JSON parser (nesting at most 128), checked against the size limits as it builds |
//! | `print`, `debug`, `to_string`, `to_debug` of arrays, maps and function pointers; `to_json` of maps | recurse once per level of nesting and build the whole text first (a map of many references to one large string makes a text far larger than any limit) | write without recursion and stop at the string limit, ending the script |
//! | `debug`, `to_debug` of strings | escapes grow a string up to 8 times, unchecked | stop at the string limit |
//! | `==`, `!=` of arrays and of maps | recurse through the engine once per level (~2 KB of stack each) | compare without recursion |
//! | `pad(string, INT, string)` | never returns when the padding is empty | pads nothing with nothing |
//! | `pad(array, INT, any)` | unchecked size arithmetic: panics, or aborts the process on a failed huge allocation | checked arithmetic, sizes checked before growing |
//! | `replace` (4 forms) | builds a result up to length × length before any check (aborts the process) | counts the result first, refuses one over the string limit |
//! | `split`, `split_rev` (8 forms), `to_chars` | build up to 64 times the string before the array limit is checked | count the pieces first, refuse past the array limit |
//! | `sort`, `sort_by`, `order`, `order_by`, `dedup` with a comparer | ignore every error from the comparer, the timeout included, and go on | stop at an error the script cannot catch (the timeout, a cancel, a limit) |
//!
//! Removed outright (the engine refuses them when compiling): `eval` (it compiles text at
//! run time, past the checks made on a script, and its depth is not limited) and `curry` (it
//! nests values inside function pointers, where no size limit counts them, so a value could
//! nest without bound and overflow the stack when dropped).

mod arrays;
mod json;
mod strings;
mod text;

use std::time::{Duration, Instant};

use rhai::{Dynamic, Engine, EvalAltResult, Position};

use super::run;

pub(crate) type Outcome<T> = Result<T, Box<EvalAltResult>>;

/// Registers every replacement on `engine`.
pub(crate) fn register(engine: &mut Engine) {
    engine
        .register_fn("sleep", |seconds: rhai::INT| sleep(seconds as f64))
        .register_fn("sleep", sleep);
    text::register(engine);
    strings::register(engine);
    arrays::register(engine);
    json::register(engine);
}

/// Sleeps `seconds` (negative or NaN: not at all) in slices, so the run's timeout and cancel
/// end the script on time.
fn sleep(seconds: rhai::FLOAT) -> Outcome<()> {
    const SLICE: Duration = Duration::from_millis(10);
    if seconds.is_nan() || seconds <= 0.0 {
        return Ok(());
    }
    // Past what `Duration` holds: longer than any run may last.
    let until = Duration::try_from_secs_f64(seconds)
        .ok()
        .and_then(|wait| Instant::now().checked_add(wait));
    loop {
        if let Some(stop) = run::should_stop() {
            run::stop(stop);
            return Err(terminated());
        }
        let now = Instant::now();
        let left = match until {
            Some(until) if now >= until => return Ok(()),
            Some(until) => until - now,
            None => SLICE,
        };
        std::thread::sleep(left.min(SLICE));
    }
}

/// The error that ends a script the sandbox has stopped (see [`run::stop`]).
pub(crate) fn terminated() -> Box<EvalAltResult> {
    EvalAltResult::ErrorTerminated(Dynamic::UNIT, Position::NONE).into()
}

/// Rhai's error for a value over a size limit; `what` names it as Rhai does ("Length of
/// string", "Size of array/BLOB", "Size of object map"), which is how the sandbox tells
/// which limit it was.
pub(crate) fn too_large(what: &str) -> Box<EvalAltResult> {
    EvalAltResult::ErrorDataTooLarge(what.to_string(), Position::NONE).into()
}

/// Whether `count` is over `limit` (0: no limit).
pub(crate) fn over(count: usize, limit: usize) -> bool {
    limit != 0 && count > limit
}
