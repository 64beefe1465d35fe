//! JSON parsing that refuses duplicate object keys.
//!
//! serde_json (like Jackson) silently keeps the last of two equal keys. For an event that is ambiguous:
//! a producer that writes `{"severity":"LOW","severity":"CRITICAL"}` may mean either, and any consumer
//! that keeps the first one would route it differently from us. So ingest rejects such an event with
//! the key and its position instead of guessing.
//!
//! Everything else is serde_json's own parser: the same grammar, the same recursion limit (128 levels,
//! so 100,000 nested arrays are an error, not a stack overflow), the same positions in errors. Numbers
//! that do not fit an IEEE-754 double (`1e400`) are rejected as "number out of range": keeping their
//! raw text would need serde_json's `arbitrary_precision`, which changes number handling for the whole
//! binary, and EventBridge's numeric matching works on doubles anyway (see RELIABILITY.md).

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Parses one JSON document; an object with a repeated key is an error naming the key.
pub fn from_str(text: &str) -> Result<Value, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    let v = Strict::deserialize(&mut de)?;
    de.end()?;
    Ok(v.0)
}

struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Strict;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Strict, E> {
        Ok(Strict(Value::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Strict, E> {
        Ok(Strict(Value::Number(v.into())))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Strict, E> {
        Ok(Strict(Value::Number(v.into())))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Strict, E> {
        Number::from_f64(v)
            .map(|n| Strict(Value::Number(n)))
            .ok_or_else(|| E::custom("number out of range"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Strict, E> {
        Ok(Strict(Value::String(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Strict, E> {
        Ok(Strict(Value::String(v)))
    }
    fn visit_unit<E>(self) -> Result<Strict, E> {
        Ok(Strict(Value::Null))
    }
    fn visit_none<E>(self) -> Result<Strict, E> {
        Ok(Strict(Value::Null))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(Strict(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Strict(Value::Array(out)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                let shown: String = key.chars().take(64).collect();
                return Err(de::Error::custom(format!("duplicate key {shown:?}")));
            }
            let Strict(v) = map.next_value()?;
            out.insert(key, v);
        }
        Ok(Strict(Value::Object(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_values_as_serde_json() {
        for text in [
            r#"{"a":[1,-2,3.5,-0,1e300,true,null,"x\u00e9"],"b":{"c":{}}}"#,
            "[]",
            "-0",
            "18446744073709551615",
        ] {
            let ours = from_str(text).unwrap();
            let theirs: Value = serde_json::from_str(text).unwrap();
            assert_eq!(ours, theirs, "{text}");
            assert_eq!(ours.to_string(), theirs.to_string(), "{text}");
        }
    }

    #[test]
    fn duplicate_keys_are_errors_with_the_key_and_position() {
        let e = from_str(r#"{"detail":{"sev":"LOW","sev":"CRITICAL"}}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("duplicate key \"sev\""), "{e}");
        assert!(e.contains("column"), "{e}");
        // Equal keys in different objects are fine.
        assert!(from_str(r#"{"a":{"x":1},"b":{"x":2}}"#).is_ok());
    }

    #[test]
    fn the_hostile_cases() {
        let deep = "[".repeat(100_000) + &"]".repeat(100_000);
        let e = from_str(&deep).unwrap_err().to_string();
        assert!(e.contains("recursion limit"), "{e}");
        let e = from_str(r#"{"n":1e400}"#).unwrap_err().to_string();
        assert!(e.contains("number out of range"), "{e}");
        assert!(from_str(r#"{"a":1} x"#).is_err(), "trailing characters");
        assert!(from_str(r#"{"a":"#).is_err(), "truncated");
    }
}
