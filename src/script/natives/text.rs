//! Values as text (`print`, `debug`, `to_string`, `to_debug`, `to_json`) and equality of
//! containers, without recursion and within the string limit.

use rhai::{Array, Dynamic, Engine, EvalAltResult, FnPtr, ImmutableString, Map, NativeCallContext};

use super::Outcome;
use crate::script::render::{Style, render_bounded};
use crate::script::{Limit, run};

pub(super) fn register(engine: &mut Engine) {
    register_text::<Array>(engine);
    register_text::<Map>(engine);
    // A function pointer holds no value (`curry` is refused), but Rhai's `debug` of one goes
    // through a formatter that could.
    for name in ["debug", "to_debug"] {
        engine.register_fn(name, |f: &mut FnPtr| {
            let mut unused = ();
            text_of(&Dynamic::from(f.clone()), Style::Debug, &mut unused)
        });
    }
    engine
        .register_fn("to_json", |map: &mut Map| {
            text_of(&map.clone().into(), Style::Json, map)
        })
        .register_fn("debug", |s: ImmutableString| quoted(s))
        .register_fn("to_debug", |s: ImmutableString| quoted(s))
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

fn register_text<T>(engine: &mut Engine)
where
    T: rhai::Variant + Clone + Default + Into<Dynamic>,
{
    for (name, style) in [
        ("print", Style::Display),
        ("to_string", Style::Display),
        ("debug", Style::Debug),
        ("to_debug", Style::Debug),
    ] {
        engine.register_fn(name, move |value: &mut T| {
            text_of(&value.clone().into(), style, value)
        });
    }
}

/// `value` as text in `style`, within the string limit. Past it, the text is cut and the
/// script ends at its next operation with `limit exceeded: max-string-size`; `source` (the
/// argument the value came from) is then emptied: Rhai checks that argument after this call,
/// and on an error (the value is over the string limit) writes it with its own formatting,
/// which is unbounded. The script never sees it again.
fn text_of<T: Default>(value: &Dynamic, style: Style, source: &mut T) -> ImmutableString {
    let (text, complete) = render_bounded(value, style, run::text_limit());
    if !complete {
        run::stop(run::Stop::Limit(Limit::StringSize));
        *source = T::default();
    }
    text.into()
}

/// A string quoted and escaped, as Rhai's `to_debug` writes it, within the string limit.
fn quoted(text: ImmutableString) -> ImmutableString {
    let (quoted, complete) = render_bounded(&text.into(), Style::Debug, run::text_limit());
    if !complete {
        run::stop(run::Stop::Limit(Limit::StringSize));
    }
    quoted.into()
}

/// Equality of two values as Rhai's `==` sees it, without recursion: containers are walked
/// here, pair by pair; other values are compared with the engine's `==` for their types
/// (values of different types without one are not equal).
fn equal(ctx: &NativeCallContext, a: Dynamic, b: Dynamic) -> Outcome<bool> {
    let mut pairs = vec![(a, b)];
    let mut step = 0u64;
    while let Some((mut a, mut b)) = pairs.pop() {
        // A container grown by index assignment can hold far more than the limits count.
        step += 1;
        if run::interrupted(step) {
            return Err(super::terminated());
        }
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
