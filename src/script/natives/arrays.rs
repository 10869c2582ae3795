//! Array functions: `pad` with its size arithmetic checked before anything grows, and the
//! sorts and `dedup` with a comparer, which stop at an error the script cannot catch (Rhai's
//! ignore every error from the comparer, the timeout included, and go on comparing).

use std::cell::RefCell;
use std::cmp::Ordering;

use rhai::{
    Array, Dynamic, Engine, EvalAltResult, FnPtr, INT, ImmutableString, NativeCallContext, Position,
};

use super::{Outcome, over, too_large};
use crate::script::render::sizes;
use crate::script::run;

/// The longest function name a comparer may have (a long name is hashed at every
/// comparison).
const MAX_FN_NAME: usize = 1024;

pub(super) fn register(engine: &mut Engine) {
    engine.register_fn("pad", pad);
    // The sorts without a comparer compare in native code, with no check between: an array
    // grown by index assignment can refer to one large string many times over.
    engine
        .register_fn("sort", |ctx: NativeCallContext, a: &mut Array| {
            sort_builtin(&ctx, a, false)
        })
        .register_fn("sort_desc", |ctx: NativeCallContext, a: &mut Array| {
            sort_builtin(&ctx, a, true)
        })
        .register_fn("order", |ctx: NativeCallContext, a: &mut Array| {
            let mut copy = a.clone();
            sort_builtin(&ctx, &mut copy, false).map(|()| copy)
        })
        .register_fn("order_desc", |ctx: NativeCallContext, a: &mut Array| {
            let mut copy = a.clone();
            sort_builtin(&ctx, &mut copy, true).map(|()| copy)
        });
    engine
        .register_fn("sort", |ctx: NativeCallContext, a: &mut Array, f: FnPtr| {
            sort(&ctx, a, &f)
        })
        .register_fn(
            "sort_by",
            |ctx: NativeCallContext, a: &mut Array, f: FnPtr| sort(&ctx, a, &f),
        )
        .register_fn(
            "sort",
            |ctx: NativeCallContext, a: &mut Array, name: &str| sort(&ctx, a, &comparer(name)?),
        )
        .register_fn(
            "order",
            |ctx: NativeCallContext, a: &mut Array, f: FnPtr| {
                let mut copy = a.clone();
                sort(&ctx, &mut copy, &f).map(|()| copy)
            },
        )
        .register_fn(
            "order_by",
            |ctx: NativeCallContext, a: &mut Array, f: FnPtr| {
                let mut copy = a.clone();
                sort(&ctx, &mut copy, &f).map(|()| copy)
            },
        )
        .register_fn("dedup", |ctx: NativeCallContext, a: &mut Array| {
            dedup(a, |x, y| ctx.call_native_fn_raw("==", true, &mut [x, y]))
        })
        .register_fn(
            "dedup",
            |ctx: NativeCallContext, a: &mut Array, f: FnPtr| {
                check_name(&f)?;
                dedup(a, |x, y| f.call_raw(&ctx, None, [x.clone(), y.clone()]))
            },
        )
        .register_fn(
            "dedup",
            |ctx: NativeCallContext, a: &mut Array, name: &str| {
                let f = comparer(name)?;
                dedup(a, |x, y| f.call_raw(&ctx, None, [x.clone(), y.clone()]))
            },
        );
}

/// Pads `array` to `len` elements with copies of `item`, once the result is known to be
/// within the limits (counted as Rhai counts them: nested elements, entries and string
/// bytes).
fn pad(ctx: NativeCallContext, array: &mut Array, len: INT, item: Dynamic) -> Outcome<()> {
    let Ok(len) = usize::try_from(len) else {
        return Ok(());
    };
    if len <= array.len() {
        return Ok(());
    }
    let engine = ctx.engine();
    let added = len - array.len();
    let have = sizes(&Dynamic::from_array(array.clone()));
    let each = sizes(&item);
    let total = |have: usize, each: usize, extra: usize| {
        each.checked_add(extra)
            .and_then(|e| e.checked_mul(added))
            .and_then(|e| e.checked_add(have))
    };
    let arrays = total(have.arrays, each.arrays, 1);
    let maps = total(have.maps, each.maps, 0);
    let strings = total(have.strings, each.strings, 0);
    if arrays.is_none_or(|n| over(n, engine.max_array_size())) {
        return Err(too_large("Size of array/BLOB"));
    }
    if maps.is_none_or(|n| over(n, engine.max_map_size())) {
        return Err(too_large("Size of object map"));
    }
    if strings.is_none_or(|n| over(n, engine.max_string_size())) {
        return Err(too_large("Length of string"));
    }
    // Map keys count in no size limit: copies of a map with large keys could take any
    // amount of memory in this one call.
    if added
        .checked_mul(each.bytes())
        .is_none_or(|bytes| run::memory_room().is_some_and(|room| bytes > room))
    {
        run::stop(run::Stop::Limit(crate::script::Limit::Memory));
        return Err(super::terminated());
    }
    array.resize(len, item);
    Ok(())
}

/// Rhai's `sort` without a comparer (elements of one type: numbers, characters, strings,
/// booleans, units), once the array's strings are known to be within the string limit.
fn sort_builtin(ctx: &NativeCallContext, array: &mut Array, descending: bool) -> Outcome<()> {
    if array.len() <= 1 {
        return Ok(());
    }
    if over(
        sizes(&Dynamic::from_array(array.clone())).strings,
        ctx.engine().max_string_size(),
    ) {
        return Err(too_large("Length of string"));
    }
    let first = &array[0];
    let type_id = first.type_id();
    if array.iter().any(|a| a.type_id() != type_id) {
        return Err(EvalAltResult::ErrorFunctionNotFound(
            "elements of different types cannot be sorted".into(),
            Position::NONE,
        )
        .into());
    }
    let order: fn(&Dynamic, &Dynamic) -> Ordering = if first.is_int() {
        |a, b| a.as_int().unwrap_or(0).cmp(&b.as_int().unwrap_or(0))
    } else if first.is_char() {
        |a, b| {
            a.as_char()
                .unwrap_or('\0')
                .cmp(&b.as_char().unwrap_or('\0'))
        }
    } else if first.is_float() {
        |a, b| {
            let (a, b) = (a.as_float().unwrap_or(0.0), b.as_float().unwrap_or(0.0));
            a.partial_cmp(&b).unwrap_or(Ordering::Equal)
        }
    } else if first.is_string() {
        |a, b| match (
            a.read_lock::<ImmutableString>(),
            b.read_lock::<ImmutableString>(),
        ) {
            (Some(a), Some(b)) => a.as_str().cmp(b.as_str()),
            _ => Ordering::Equal,
        }
    } else if first.is_bool() {
        |a, b| {
            a.as_bool()
                .unwrap_or(false)
                .cmp(&b.as_bool().unwrap_or(false))
        }
    } else if first.is_unit() {
        return Ok(());
    } else {
        return Err(EvalAltResult::ErrorFunctionNotFound(
            format!("elements of {} cannot be sorted", first.type_name()),
            Position::NONE,
        )
        .into());
    };
    if descending {
        array.sort_by(|a, b| order(b, a));
    } else {
        array.sort_by(order);
    }
    Ok(())
}

/// A comparer named by a string.
fn comparer(name: &str) -> Outcome<FnPtr> {
    if name.len() > MAX_FN_NAME {
        return Err(long_name());
    }
    FnPtr::new(name)
}

fn check_name(f: &FnPtr) -> Outcome<()> {
    if f.fn_name().len() > MAX_FN_NAME {
        return Err(long_name());
    }
    Ok(())
}

fn long_name() -> Box<EvalAltResult> {
    EvalAltResult::ErrorRuntime(
        format!("a function name longer than {MAX_FN_NAME} bytes").into(),
        Position::NONE,
    )
    .into()
}

/// Whether `error` must end the script: it is one a script cannot catch (a limit, the
/// timeout), or the sandbox has stopped the run.
fn fatal(error: &EvalAltResult) -> bool {
    if run::stopping() {
        return true;
    }
    let mut error = error;
    while let EvalAltResult::ErrorInFunctionCall(_, _, inner, _)
    | EvalAltResult::ErrorInModule(_, inner, _) = error
    {
        error = inner;
    }
    !error.is_catchable()
}

/// Sorts with a comparer that returns a number (its sign is the order) or a bool (`true`:
/// in order), as Rhai's `sort` does; a comparer error the script could catch leaves that pair
/// ordered by type, as in Rhai; one it cannot (a limit, the timeout) ends the sort at once.
fn sort(ctx: &NativeCallContext, array: &mut Array, f: &FnPtr) -> Outcome<()> {
    check_name(f)?;
    if array.len() <= 1 {
        return Ok(());
    }
    let failed: RefCell<Option<Box<EvalAltResult>>> = RefCell::new(None);
    let sorting = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        array.sort_by(|x, y| {
            if failed.borrow().is_some() {
                return Ordering::Equal;
            }
            let order = match f.call_raw(ctx, None, [x.clone(), y.clone()]) {
                Ok(v) => v
                    .as_int()
                    .or_else(|_| v.as_bool().map(|v| if v { -1 } else { 1 }))
                    .ok(),
                Err(error) if fatal(&error) => {
                    *failed.borrow_mut() = Some(error);
                    return Ordering::Equal;
                }
                Err(_) => None,
            };
            match order {
                Some(v) => v.cmp(&0),
                None => x.type_id().cmp(&y.type_id()),
            }
        });
    }));
    if let Some(error) = failed.into_inner() {
        return Err(error);
    }
    // The standard library's sort panics on a comparer that is not a total order.
    sorting.map_err(|_| {
        EvalAltResult::ErrorRuntime("error in comparer for sorting".into(), Position::NONE).into()
    })
}

/// Removes consecutive elements `same` says are equal (`same(next, previous)`); an error the
/// script could catch counts as "not equal", as in Rhai; one it cannot ends at once.
fn dedup(
    array: &mut Array,
    mut same: impl FnMut(&mut Dynamic, &mut Dynamic) -> Result<Dynamic, Box<EvalAltResult>>,
) -> Outcome<()> {
    let mut failed = None;
    array.dedup_by(|x, y| {
        if failed.is_some() {
            return false;
        }
        match same(y, x) {
            Ok(v) => v.as_bool().unwrap_or(false),
            Err(error) if fatal(&error) => {
                failed = Some(error);
                false
            }
            Err(_) => false,
        }
    });
    failed.map_or(Ok(()), Err)
}
