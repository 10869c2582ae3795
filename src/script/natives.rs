//! The functions the sandbox puts in place of Rhai's own, and why.
//!
//! Functions registered on the engine are found before the standard packages' ones of the
//! same name and parameter types, so each of these replaces Rhai's for every way of calling
//! it (a call, a method call, an operator, `Fn(..).call(..)`, string interpolation).
//!
//! | replaced | Rhai's version | ours |
//! |---|---|---|
//! | `sleep(INT)`, `sleep(FLOAT)` | blocks the thread for any time; panics on a huge or NaN float | sleeps in slices, ends the script at its timeout or cancel; negative and NaN are 0 |
//! | `print`, `debug`, `to_string`, `to_debug` of arrays, maps and function pointers | recurse once per level of nesting and build the whole text first (a map of many references to one large string makes a text far larger than any limit) | write without recursion and stop at the string limit, ending the script |
//! | `==`, `!=` of arrays and of maps | recurse through the engine once per level (~2 KB of stack each) | compare without recursion |
//!
//! Removed outright (the engine refuses them when compiling): `eval` (it compiles text at
//! run time, past the checks made on a script) and `curry` (it nests values inside function
//! pointers with no size check, so a value could nest without bound and overflow the stack
//! when dropped).

use std::time::{Duration, Instant};

use rhai::{Array, Dynamic, Engine, EvalAltResult, FnPtr, Map, NativeCallContext, Position};

use super::render::{Style, render_bounded};
use super::run;

type Outcome<T> = Result<T, Box<EvalAltResult>>;

/// Registers every replacement on `engine`.
pub(crate) fn register(engine: &mut Engine) {
    engine
        .register_fn("sleep", |seconds: rhai::INT| sleep(seconds as f64))
        .register_fn("sleep", sleep);
    register_text::<Array>(engine);
    register_text::<Map>(engine);
    engine
        .register_fn("debug", |f: &mut FnPtr| debug_fn_ptr(f))
        .register_fn("to_debug", |f: &mut FnPtr| debug_fn_ptr(f));
    engine
        .register_fn("==", |ctx: NativeCallContext, a: &mut Array, b: Array| {
            equal(&ctx, Dynamic::from_array(a.clone()), Dynamic::from_array(b))
        })
        .register_fn("!=", |ctx: NativeCallContext, a: &mut Array, b: Array| {
            equal(&ctx, Dynamic::from_array(a.clone()), Dynamic::from_array(b)).map(|e| !e)
        })
        .register_fn("==", |ctx: NativeCallContext, a: &mut Map, b: Map| {
            equal(&ctx, Dynamic::from_map(a.clone()), Dynamic::from_map(b))
        })
        .register_fn("!=", |ctx: NativeCallContext, a: &mut Map, b: Map| {
            equal(&ctx, Dynamic::from_map(a.clone()), Dynamic::from_map(b)).map(|e| !e)
        });
}

fn register_text<T: rhai::Variant + Clone + Default + Into<Dynamic>>(engine: &mut Engine) {
    for (name, style) in [
        ("print", Style::Display),
        ("to_string", Style::Display),
        ("debug", Style::Debug),
        ("to_debug", Style::Debug),
    ] {
        engine.register_fn(name, move |value: &mut T| {
            let (text, complete) = text(&value.clone().into(), style);
            if !complete {
                // Past the limit, and so (Rhai counts each string a value holds) a value
                // over the string limit. Rhai checks the value after this call, and on that
                // error writes it with its own formatting, unbounded: so it is emptied. The
                // script ends at its next operation and never sees it again.
                *value = T::default();
            }
            text
        });
    }
}

/// `value` as text, within the string limit, and whether it is whole. Past the limit, the
/// text is cut and the script is ended at its next operation with
/// `limit exceeded: max-string-size`. (An error returned here would make Rhai write the value
/// with its own formatting instead, which is unbounded.)
fn text(value: &Dynamic, style: Style) -> (rhai::ImmutableString, bool) {
    let limit = run::text_limit();
    let (text, complete) = render_bounded(value, style, limit);
    if !complete {
        run::stop(run::Stop::Limit(super::Limit::StringSize));
    }
    (text.into(), complete)
}

fn debug_fn_ptr(f: &FnPtr) -> rhai::ImmutableString {
    text(&Dynamic::from(f.clone()), Style::Debug).0
}

/// Sleeps `seconds` (negative or NaN: not at all) in slices, so the run's timeout and cancel
/// end the script on time.
fn sleep(seconds: rhai::FLOAT) -> Outcome<()> {
    const SLICE: Duration = Duration::from_millis(10);
    let until = if seconds.is_nan() || seconds <= 0.0 {
        return Ok(());
    } else {
        // Beyond any deadline: `try_from_secs_f64` fails only for what no run waits out.
        Duration::try_from_secs_f64(seconds)
            .ok()
            .and_then(|wait| Instant::now().checked_add(wait))
    };
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

fn terminated() -> Box<EvalAltResult> {
    EvalAltResult::ErrorTerminated(Dynamic::UNIT, Position::NONE).into()
}

/// Equality of two values as Rhai's `==` sees it, without recursion: containers are walked
/// here, pair by pair; other values are compared with the engine's `==` for their types.
fn equal(ctx: &NativeCallContext, a: Dynamic, b: Dynamic) -> Outcome<bool> {
    let mut pairs = vec![(a, b)];
    while let Some((mut a, mut b)) = pairs.pop() {
        if a.is_array() && b.is_array() {
            let (a, b) = (a.cast::<Array>(), b.cast::<Array>());
            if a.len() != b.len() {
                return Ok(false);
            }
            pairs.extend(a.into_iter().zip(b));
        } else if a.is_map() && b.is_map() {
            let (a, mut b) = (a.cast::<Map>(), b.cast::<Map>());
            if a.len() != b.len() {
                return Ok(false);
            }
            for (key, value) in a {
                match b.remove(&key) {
                    Some(other) => pairs.push((value, other)),
                    None => return Ok(false),
                }
            }
        } else {
            let same_type = a.type_id() == b.type_id();
            let equal = match ctx.call_native_fn_raw("==", true, &mut [&mut a, &mut b]) {
                Ok(result) => result.as_bool().unwrap_or(false),
                Err(error)
                    if !same_type && matches!(*error, EvalAltResult::ErrorFunctionNotFound(..)) =>
                {
                    false
                }
                Err(error) => return Err(error),
            };
            if !equal {
                return Ok(false);
            }
        }
    }
    Ok(true)
}
