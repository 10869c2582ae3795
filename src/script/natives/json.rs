//! `parse_json`: JSON text to a Rhai value with a JSON parser (Rhai's own evaluates the text
//! as a script expression). The value is checked against the size limits as it is built, so
//! no text makes more than the limits allow; nesting is at most 128 deep (the parser's own
//! limit).

use std::fmt;

use rhai::{Array, Dynamic, Engine, ImmutableString, Map, NativeCallContext};
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use super::{Outcome, over, too_large};

pub(super) fn register(engine: &mut Engine) {
    engine.register_fn("parse_json", |ctx: NativeCallContext, text: &str| {
        parse_json(&ctx, text)
    });
}

fn parse_json(ctx: &NativeCallContext, text: &str) -> Outcome<Dynamic> {
    let engine = ctx.engine();
    let mut budget = Budget {
        arrays: engine.max_array_size(),
        maps: engine.max_map_size(),
        strings: engine.max_string_size(),
        used: [0; 3],
        over: None,
    };
    let mut parser = serde_json::Deserializer::from_str(text);
    let value = Value(&mut budget)
        .deserialize(&mut parser)
        .and_then(|value| {
            parser.end()?;
            Ok(value)
        });
    match (value, budget.over) {
        (_, Some(what)) => Err(too_large(what)),
        (Ok(value), None) => Ok(value),
        (Err(error), None) => Err(rhai::EvalAltResult::ErrorRuntime(
            format!("invalid JSON: {error}").into(),
            rhai::Position::NONE,
        )
        .into()),
    }
}

/// What the value built so far holds, against the limits (0: none).
struct Budget {
    arrays: usize,
    maps: usize,
    strings: usize,
    /// Array elements, map entries, string bytes.
    used: [usize; 3],
    /// The limit passed, as Rhai names it.
    over: Option<&'static str>,
}

impl Budget {
    fn add<E: de::Error>(&mut self, kind: usize, n: usize) -> Result<(), E> {
        self.used[kind] = self.used[kind].saturating_add(n);
        let (limit, what) = match kind {
            0 => (self.arrays, "Size of array/BLOB"),
            1 => (self.maps, "Size of object map"),
            _ => (self.strings, "Length of string"),
        };
        if over(self.used[kind], limit) {
            self.over = Some(what);
            return Err(E::custom(what));
        }
        Ok(())
    }
}

/// Builds one JSON value as a [`Dynamic`].
struct Value<'a>(&'a mut Budget);

impl<'de> DeserializeSeed<'de> for Value<'_> {
    type Value = Dynamic;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Dynamic, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Value<'_> {
    type Value = Dynamic;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Dynamic, E> {
        Ok(Dynamic::UNIT)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Dynamic, E> {
        Ok(v.into())
    }

    fn visit_i64<E>(self, v: i64) -> Result<Dynamic, E> {
        Ok(v.into())
    }

    fn visit_u64<E>(self, v: u64) -> Result<Dynamic, E> {
        Ok(match i64::try_from(v) {
            Ok(v) => v.into(),
            Err(_) => (v as f64).into(),
        })
    }

    fn visit_f64<E>(self, v: f64) -> Result<Dynamic, E> {
        Ok(v.into())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Dynamic, E> {
        self.0.add(2, v.len())?;
        Ok(ImmutableString::from(v).into())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Dynamic, A::Error> {
        let mut array = Array::new();
        while let Some(item) = seq.next_element_seed(Value(self.0))? {
            self.0.add(0, 1)?;
            array.push(item);
        }
        Ok(array.into())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<Dynamic, A::Error> {
        let mut map = Map::new();
        while let Some(key) = entries.next_key::<String>()? {
            self.0.add(1, 1)?;
            self.0.add(2, key.len())?;
            let value = entries.next_value_seed(Value(self.0))?;
            map.insert(key.into(), value);
        }
        Ok(map.into())
    }
}
