//! Values as text, within a size limit and without recursion.
//!
//! Rhai's own `Display`, `Debug` and equality recurse once per level of nesting and build
//! the whole text before anything checks its size: a map holding a hundred references to one
//! 8 MB string turns into 800 MB of text, and a value nested a few thousand levels deep
//! overflows the thread's stack. The job's output, `print`, `debug`, `to_string`, `to_debug`
//! and string interpolation go through here instead: the walk keeps its own stack on the
//! heap and stops as soon as the text reaches its limit.

use std::fmt::{self, Write as _};

use rhai::{Array, Dynamic, FnPtr, Map};

/// How a value is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Style {
    /// As Rhai's `to_string`: text as it is, containers in their debug form.
    Display,
    /// As Rhai's `to_debug`: text quoted, containers in their debug form.
    Debug,
    /// JSON: unit as `null`, maps as objects, other values as JSON strings of their text.
    Json,
}

/// A `String` that takes no more than `limit` bytes: what does not fit is cut (at a
/// character boundary) and the text marked incomplete.
struct Bounded {
    text: String,
    limit: usize,
    complete: bool,
    sizes: Sizes,
}

impl Bounded {
    fn new(limit: usize) -> Self {
        Bounded {
            text: String::new(),
            limit,
            complete: true,
            sizes: Sizes::default(),
        }
    }

    fn push(&mut self, s: &str) -> fmt::Result {
        let room = self.limit - self.text.len();
        if s.len() <= room {
            self.text.push_str(s);
            return Ok(());
        }
        let mut cut = room;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        self.text.push_str(&s[..cut]);
        self.complete = false;
        Err(fmt::Error)
    }
}

impl fmt::Write for Bounded {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push(s)
    }
}

/// Serialises strings as JSON into a [`Bounded`].
struct JsonWriter<'a>(&'a mut Bounded);

impl std::io::Write for JsonWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        // serde_json writes whole UTF-8 sequences and escapes: always valid text.
        let text = std::str::from_utf8(bytes).map_err(std::io::Error::other)?;
        self.0
            .push(text)
            .map_err(|fmt::Error| std::io::Error::other("too long"))?;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What is left to write: the walk's own stack.
enum Step {
    Value(Dynamic, Style),
    Text(&'static str),
    Items(std::vec::IntoIter<Dynamic>, Style),
    Entries(
        std::collections::btree_map::IntoIter<rhai::Identifier, Dynamic>,
        Style,
    ),
}

/// `value` as text in `style`, or `None` if it is longer than `limit` bytes.
pub(crate) fn render(value: Dynamic, style: Style, limit: usize) -> Option<String> {
    let (text, complete) = render_owned(value, style, limit);
    complete.then_some(text)
}

/// What a value holds in all, as Rhai's size limits count it: array (and blob) elements, map
/// entries and string bytes, through every level of nesting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Sizes {
    pub(crate) arrays: usize,
    pub(crate) maps: usize,
    pub(crate) strings: usize,
    /// Bytes of map keys (Rhai's limits do not count them).
    pub(crate) keys: usize,
}

impl Sizes {
    /// About the bytes a copy of the value allocates: a slot per element and entry, the
    /// bytes of every string held by the value alone (shared ones cost nothing to copy, but
    /// are counted here in full), and its keys.
    pub(crate) fn bytes(&self) -> usize {
        const SLOT: usize = 16;
        const ENTRY: usize = 64;
        (self.arrays.saturating_mul(SLOT))
            .saturating_add(self.maps.saturating_mul(ENTRY))
            .saturating_add(self.strings)
            .saturating_add(self.keys)
    }
}

/// What `value` holds in all (see [`Sizes`]), walked without recursion.
pub(crate) fn sizes(value: &Dynamic) -> Sizes {
    let mut total = Sizes::default();
    let mut steps = vec![value.clone()];
    while let Some(value) = steps.pop() {
        count(&value, &mut total);
        if value.is_array() {
            steps.extend(value.cast::<Array>());
        } else if value.is_map() {
            steps.extend(value.cast::<Map>().into_values());
        }
    }
    total
}

fn count(value: &Dynamic, sizes: &mut Sizes) {
    if let Ok(blob) = value.as_blob_ref() {
        sizes.arrays += blob.len();
    } else if let Some(text) = value.read_lock::<rhai::ImmutableString>() {
        sizes.strings += text.len();
    } else if let Ok(array) = value.as_array_ref() {
        sizes.arrays += array.len();
    } else if let Ok(map) = value.as_map_ref() {
        sizes.maps += map.len();
        sizes.keys += map.keys().map(|key| key.len()).sum::<usize>();
    }
}

/// `value` as text in `style` within `limit` bytes (`None` past it), and what it holds.
pub(crate) fn render_counted(
    value: Dynamic,
    style: Style,
    limit: usize,
) -> (Option<String>, Sizes) {
    let mut out = Bounded::new(limit);
    if value.is_array() || value.is_map() {
        let _ = walk(value, style, &mut out);
    } else {
        // One value: no walk.
        count(&value, &mut out.sizes);
        let _ = match style {
            Style::Json => json_leaf(&value, &mut out),
            Style::Display => leaf(&value, false, &mut out),
            Style::Debug => leaf(&value, true, &mut out),
        };
    }
    let sizes = out.sizes;
    (out.complete.then_some(out.text), sizes)
}

/// `value` as text in `style`, cut at `limit` bytes; `false` if it was cut. The value is
/// cloned (a clone recurses no deeper than dropping it does).
pub(crate) fn render_bounded(value: &Dynamic, style: Style, limit: usize) -> (String, bool) {
    render_owned(value.clone(), style, limit)
}

fn render_owned(value: Dynamic, style: Style, limit: usize) -> (String, bool) {
    let mut out = Bounded::new(limit);
    let _ = walk(value, style, &mut out);
    (out.text, out.complete)
}

fn walk(value: Dynamic, style: Style, out: &mut Bounded) -> fmt::Result {
    let mut steps = vec![Step::Value(value, style)];
    while let Some(step) = steps.pop() {
        match step {
            Step::Text(text) => out.push(text)?,
            Step::Value(value, style) => open(value, style, out, &mut steps)?,
            Step::Items(mut items, style) => {
                if let Some(item) = items.next() {
                    let more = items.len() > 0;
                    steps.push(Step::Items(items, style));
                    if more {
                        steps.push(Step::Text(separator(style)));
                    }
                    steps.push(Step::Value(item, inner(style)));
                }
            }
            Step::Entries(mut entries, style) => {
                if let Some((key, item)) = entries.next() {
                    let more = entries.len() > 0;
                    steps.push(Step::Entries(entries, style));
                    if more {
                        steps.push(Step::Text(separator(style)));
                    }
                    steps.push(Step::Value(item, inner(style)));
                    match style {
                        Style::Json => {
                            json_string(&key, out)?;
                            out.push(":")?;
                        }
                        Style::Display | Style::Debug => write!(out, "{key:?}: ")?,
                    }
                }
            }
        }
    }
    Ok(())
}

fn separator(style: Style) -> &'static str {
    if style == Style::Json { "," } else { ", " }
}

/// The style of a container's items.
fn inner(style: Style) -> Style {
    match style {
        Style::Json => Style::Json,
        Style::Display | Style::Debug => Style::Debug,
    }
}

fn json_string(text: &str, out: &mut Bounded) -> fmt::Result {
    serde_json::to_writer(JsonWriter(out), text).map_err(|_| fmt::Error)
}

/// Writes `value` if it holds no other value, or opens it and queues its contents.
fn open(value: Dynamic, style: Style, out: &mut Bounded, steps: &mut Vec<Step>) -> fmt::Result {
    count(&value, &mut out.sizes);
    if value.is_array() {
        let items = value.cast::<Array>();
        out.push("[")?;
        steps.push(Step::Text("]"));
        steps.push(Step::Items(items.into_iter(), style));
        return Ok(());
    }
    if value.is_map() {
        let entries = value.cast::<Map>();
        out.push(if style == Style::Json { "{" } else { "#{" })?;
        steps.push(Step::Text("}"));
        steps.push(Step::Entries(entries.into_iter(), style));
        return Ok(());
    }
    match style {
        Style::Json => json_leaf(&value, out),
        Style::Display => leaf(&value, false, out),
        Style::Debug => leaf(&value, true, out),
    }
}

/// A value that holds no array or map. A function pointer is written by name (its curried
/// arguments, which may nest, are not shown).
fn leaf(value: &Dynamic, debug: bool, out: &mut Bounded) -> fmt::Result {
    if let Some(fn_ptr) = value.read_lock::<FnPtr>() {
        return write!(out, "Fn({})", fn_ptr.fn_name());
    }
    if debug {
        write!(out, "{value:?}")
    } else {
        write!(out, "{value}")
    }
}

fn json_leaf(value: &Dynamic, out: &mut Bounded) -> fmt::Result {
    if value.is_unit() {
        return out.push("null");
    }
    if let Ok(b) = value.as_bool() {
        return out.push(if b { "true" } else { "false" });
    }
    if let Ok(i) = value.as_int() {
        return write!(out, "{i}");
    }
    if let Ok(f) = value.as_float() {
        return match serde_json::Number::from_f64(f) {
            Some(number) => write!(out, "{number}"),
            None => out.push("null"),
        };
    }
    if let Some(text) = value.read_lock::<rhai::ImmutableString>() {
        return json_string(&text, out);
    }
    // Any other value: a JSON string of its text, within what room is left.
    let mut text = Bounded::new(out.limit - out.text.len());
    let written = leaf(value, false, &mut text);
    json_string(&text.text, out)?;
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> Dynamic {
        let mut value = Dynamic::from(1 as rhai::INT);
        for i in 0..depth {
            value = if i % 2 == 0 {
                Dynamic::from_array(vec![value])
            } else {
                let mut map = Map::new();
                map.insert("k".into(), value);
                Dynamic::from_map(map)
            };
        }
        value
    }

    #[test]
    fn texts_match_rhais_forms() {
        let mut map = Map::new();
        map.insert("a".into(), Dynamic::from_array(vec![1.into(), "x".into()]));
        map.insert("b".into(), Dynamic::UNIT);
        let value = Dynamic::from_map(map);
        assert_eq!(
            render(value.clone(), Style::Display, 100).unwrap(),
            r#"#{"a": [1, "x"], "b": ()}"#
        );
        assert_eq!(
            render(value.clone(), Style::Json, 100).unwrap(),
            r#"{"a":[1,"x"],"b":null}"#
        );
        assert_eq!(render("q\"".into(), Style::Display, 10).unwrap(), "q\"");
        assert_eq!(render("q\"".into(), Style::Debug, 10).unwrap(), "\"q\\\"\"");
        assert_eq!(
            render(Dynamic::from(f64::NAN), Style::Json, 10).unwrap(),
            "null"
        );
    }

    #[test]
    fn a_text_over_its_limit_is_cut_at_a_character() {
        let shared: rhai::ImmutableString = "é".repeat(1000).into();
        let many: Array = (0..100).map(|_| Dynamic::from(shared.clone())).collect();
        let (text, complete) = render_bounded(&Dynamic::from_array(many), Style::Display, 4001);
        assert!(!complete);
        assert!(text.len() <= 4001 && text.len() > 3990);
        assert!(render(Dynamic::from(shared), Style::Json, 100).is_none());
    }

    #[test]
    fn deep_values_are_written_without_recursion() {
        let depth = 20_000;
        // Room for cloning and dropping (Rhai recurses there), not for a recursive walk.
        std::thread::Builder::new()
            .stack_size(64 << 20)
            .spawn(move || {
                let value = nested(depth);
                let text = render(value.clone(), Style::Json, usize::MAX).unwrap();
                assert_eq!(text.matches('[').count(), depth / 2);
                assert!(render(value, Style::Debug, 1000).is_none());
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
