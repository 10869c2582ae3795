//! String functions whose result Rhai builds before it checks its size: `pad` with a string,
//! `replace`, `split`, `split_rev` and `to_chars`. Each computes the size of its result first
//! and refuses one over the limits, then gives what Rhai's version gives.

use rhai::{Array, Dynamic, Engine, INT, ImmutableString, NativeCallContext};

use super::{Outcome, over, too_large};

pub(super) fn register(engine: &mut Engine) {
    engine.register_fn("pad", pad);
    engine
        .register_fn(
            "replace",
            |ctx: NativeCallContext, s: &mut ImmutableString, find: &str, with: &str| {
                replace(&ctx, s, find, with)
            },
        )
        .register_fn(
            "replace",
            |ctx: NativeCallContext, s: &mut ImmutableString, find: &str, with: char| {
                replace(&ctx, s, find, with.encode_utf8(&mut [0; 4]))
            },
        )
        .register_fn(
            "replace",
            |ctx: NativeCallContext, s: &mut ImmutableString, find: char, with: &str| {
                replace(&ctx, s, find.encode_utf8(&mut [0; 4]), with)
            },
        )
        .register_fn(
            "replace",
            |ctx: NativeCallContext, s: &mut ImmutableString, find: char, with: char| {
                replace(
                    &ctx,
                    s,
                    find.encode_utf8(&mut [0; 4]),
                    with.encode_utf8(&mut [0; 4]),
                )
            },
        );
    engine
        .register_fn("to_chars", |ctx: NativeCallContext, s: &str| {
            pieces(&ctx, s.chars().count(), || {
                s.chars().map(Dynamic::from).collect()
            })
        })
        .register_fn(
            "split",
            |ctx: NativeCallContext, s: &mut ImmutableString| {
                if s.is_empty() {
                    return Ok(vec![s.clone().into()]);
                }
                let n = s.split_whitespace().count();
                pieces(&ctx, n, || s.split_whitespace().map(Into::into).collect())
            },
        )
        .register_fn(
            "split",
            |ctx: NativeCallContext, s: &mut ImmutableString, d: &str| {
                split(&ctx, s, d, None, false)
            },
        )
        .register_fn(
            "split",
            |ctx: NativeCallContext, s: &mut ImmutableString, d: &str, n: INT| {
                split(&ctx, s, d, Some(n), false)
            },
        )
        .register_fn(
            "split",
            |ctx: NativeCallContext, s: &mut ImmutableString, d: char| {
                split(&ctx, s, d.encode_utf8(&mut [0; 4]), None, false)
            },
        )
        .register_fn(
            "split",
            |ctx: NativeCallContext, s: &mut ImmutableString, d: char, n: INT| {
                split(&ctx, s, d.encode_utf8(&mut [0; 4]), Some(n), false)
            },
        )
        .register_fn(
            "split_rev",
            |ctx: NativeCallContext, s: &mut ImmutableString, d: &str| {
                split(&ctx, s, d, None, true)
            },
        )
        .register_fn(
            "split_rev",
            |ctx: NativeCallContext, s: &mut ImmutableString, d: &str, n: INT| {
                split(&ctx, s, d, Some(n), true)
            },
        )
        .register_fn(
            "split_rev",
            |ctx: NativeCallContext, s: &mut ImmutableString, d: char| {
                split(&ctx, s, d.encode_utf8(&mut [0; 4]), None, true)
            },
        )
        .register_fn(
            "split_rev",
            |ctx: NativeCallContext, s: &mut ImmutableString, d: char, n: INT| {
                split(&ctx, s, d.encode_utf8(&mut [0; 4]), Some(n), true)
            },
        );
}

/// Pads `string` to `len` characters by repeating `padding` (the last repeat cut to fit). An
/// empty padding pads nothing.
fn pad(
    ctx: NativeCallContext,
    string: &mut ImmutableString,
    len: INT,
    padding: &str,
) -> Outcome<()> {
    let padding_chars = padding.chars().count();
    if len <= 0 || padding_chars == 0 {
        return Ok(());
    }
    let limit = ctx.engine().max_string_size();
    let len = usize::try_from(len).map_err(|_| too_large("Length of string"))?;
    if over(len, limit) {
        return Err(too_large("Length of string"));
    }
    let have = string.chars().count();
    if len <= have {
        return Ok(());
    }
    let missing = len - have;
    let whole = missing / padding_chars;
    let rest: String = padding.chars().take(missing % padding_chars).collect();
    let bytes = whole
        .checked_mul(padding.len())
        .and_then(|b| b.checked_add(rest.len() + string.len()))
        .ok_or_else(|| too_large("Length of string"))?;
    if over(bytes, limit) {
        return Err(too_large("Length of string"));
    }
    let mut added = padding.repeat(whole);
    added.push_str(&rest);
    string.make_mut().push_str(&added);
    Ok(())
}

/// Replaces every `find` in `string` with `with`. An empty `find` matches before every
/// character and at the end, as Rust's (and Rhai's) `replace` does.
fn replace(
    ctx: &NativeCallContext,
    string: &mut ImmutableString,
    find: &str,
    with: &str,
) -> Outcome<()> {
    if string.is_empty() {
        return Ok(());
    }
    let matches = if find.is_empty() {
        string.chars().count() + 1
    } else {
        string.matches(find).count()
    };
    let bytes = (string.len() - matches * find.len())
        .checked_add(
            matches
                .checked_mul(with.len())
                .ok_or_else(|| too_large("Length of string"))?,
        )
        .ok_or_else(|| too_large("Length of string"))?;
    if over(bytes, ctx.engine().max_string_size()) {
        return Err(too_large("Length of string"));
    }
    if matches > 0 {
        *string = string.replace(find, with).into();
    }
    Ok(())
}

/// Rhai's `split` and `split_rev` with a delimiter, and `segments` if given.
fn split(
    ctx: &NativeCallContext,
    string: &ImmutableString,
    delimiter: &str,
    segments: Option<INT>,
    reverse: bool,
) -> Outcome<Array> {
    let whole = || vec![string.clone().into()];
    if string.is_empty()
        || segments.is_some_and(|n| n <= 1)
        || (!delimiter.is_empty() && !string.contains(delimiter))
    {
        return Ok(whole());
    }
    // Pieces: matches + 1 (an empty delimiter matches at both ends and between characters).
    let matches = if delimiter.is_empty() {
        string.chars().count() + 1
    } else {
        string.matches(delimiter).count()
    };
    let mut n = matches + 1;
    if let Some(segments) = segments {
        n = n.min(usize::try_from(segments).unwrap_or(usize::MAX));
    }
    pieces(ctx, n, || {
        let to = |piece: &str| Dynamic::from(ImmutableString::from(piece));
        match (
            segments.map(|s| usize::try_from(s).unwrap_or(usize::MAX)),
            reverse,
        ) {
            (None, false) => string.split(delimiter).map(to).collect(),
            (None, true) => string.rsplit(delimiter).map(to).collect(),
            (Some(n), false) => string.splitn(n, delimiter).map(to).collect(),
            (Some(n), true) => string.rsplitn(n, delimiter).map(to).collect(),
        }
    })
}

/// Builds an array of `n` pieces with `make`, unless `n` is over the array limit.
fn pieces(ctx: &NativeCallContext, n: usize, make: impl FnOnce() -> Array) -> Outcome<Array> {
    if over(n, ctx.engine().max_array_size()) {
        return Err(too_large("Size of array/BLOB"));
    }
    Ok(make())
}
