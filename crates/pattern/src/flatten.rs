//! Event → the leaf fields that patterns name: `(dotted path, scalar value, array positions)`.
//!
//! Patterns match leaf values only, as EventBridge does: an object is not a value (so `exists: true` on a
//! path that holds an object does not hold), an empty array contributes nothing, and every element of an
//! array contributes a value at the array's own path. Each leaf remembers which element of which array it
//! came from, so that matching never combines fields drawn from different elements of one array.
//!
//! Keys join with `.`, so an event key `a.b` and nested keys `a` → `b` give the same path (as in AWS).
//! When an object repeats a key, the last one counts (as serde_json and most readers do).

use std::collections::HashSet;

use crate::json::Json;
use crate::number::Number;

/// A scalar value found in an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Leaf {
    String(String),
    Number(Number),
    Bool(bool),
    Null,
}

impl std::fmt::Display for Leaf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Leaf::String(s) => write!(f, "{}", serde_json::Value::String(s.clone())),
            Leaf::Number(n) => f.write_str(&n.text),
            Leaf::Bool(b) => write!(f, "{b}"),
            Leaf::Null => f.write_str("null"),
        }
    }
}

/// One leaf of an event.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub path: String,
    pub value: Leaf,
    /// `(array id, element index)` for every array enclosing this leaf, outermost first. Array ids are
    /// unique within one event.
    pub arrays: Vec<(u32, u32)>,
}

impl Field {
    /// Whether two leaves can be used together: wherever they sit in the same array, they sit in the
    /// same element of it.
    pub fn consistent_with(&self, other: &Field) -> bool {
        self.arrays
            .iter()
            .all(|(id, ix)| other.arrays.iter().all(|(oid, oix)| oid != id || oix == ix))
    }
}

/// All leaves of an event, in document order.
pub fn flatten(event: &Json) -> Vec<Field> {
    let mut out = Vec::new();
    let mut next_array = 0u32;
    let mut trail = Vec::new();
    walk(
        event,
        &mut String::new(),
        &mut trail,
        &mut next_array,
        &mut out,
    );
    out
}

fn walk(
    v: &Json,
    path: &mut String,
    trail: &mut Vec<(u32, u32)>,
    next_array: &mut u32,
    out: &mut Vec<Field>,
) {
    let leaf = |value: Leaf, path: &str, trail: &[(u32, u32)], out: &mut Vec<Field>| {
        out.push(Field {
            path: path.to_string(),
            value,
            arrays: trail.to_vec(),
        })
    };
    match v {
        Json::Object(members) => {
            // Last duplicate wins: walk only the last occurrence of each key.
            let mut seen = HashSet::new();
            let keep: Vec<bool> = members
                .iter()
                .rev()
                .map(|(k, _)| seen.insert(k.as_str()))
                .collect();
            for ((k, child), keep) in members.iter().zip(keep.into_iter().rev()) {
                if !keep {
                    continue;
                }
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                walk(child, path, trail, next_array, out);
                path.truncate(len);
            }
        }
        Json::Array(items) => {
            let id = *next_array;
            *next_array += 1;
            for (i, item) in items.iter().enumerate() {
                trail.push((id, i as u32));
                walk(item, path, trail, next_array, out);
                trail.pop();
            }
        }
        Json::String(s) => leaf(Leaf::String(s.clone()), path, trail, out),
        Json::Number(t) => leaf(Leaf::Number(Number::new(t)), path, trail, out),
        Json::Bool(b) => leaf(Leaf::Bool(*b), path, trail, out),
        Json::Null => leaf(Leaf::Null, path, trail, out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::parse;

    type Flat = Vec<(String, String, Vec<(u32, u32)>)>;

    fn paths(s: &str) -> Flat {
        flatten(&parse(s.as_bytes()).unwrap())
            .into_iter()
            .map(|f| (f.path, f.value.to_string(), f.arrays))
            .collect()
    }

    #[test]
    fn leaves_with_array_positions() {
        assert_eq!(
            paths(r#"{"a": {"b": [1, {"c": null}], "d": "x"}, "e": [], "f": {}}"#),
            vec![
                ("a.b".into(), "1".into(), vec![(0, 0)]),
                ("a.b.c".into(), "null".into(), vec![(0, 1)]),
                ("a.d".into(), "\"x\"".into(), vec![]),
            ]
        );
    }

    #[test]
    fn dotted_keys_join_like_nesting() {
        assert_eq!(paths(r#"{"a.b": 1}"#), paths(r#"{"a": {"b": 1}}"#));
    }

    #[test]
    fn last_duplicate_key_wins() {
        assert_eq!(
            paths(r#"{"a": 1, "a": 2}"#),
            vec![("a".into(), "2".into(), vec![])]
        );
    }

    #[test]
    fn consistency() {
        let f = flatten(&parse(br#"{"x": [{"a": 1, "b": 2}, {"a": 3, "b": 4}], "c": 5}"#).unwrap());
        assert!(f[0].consistent_with(&f[1])); // a=1, b=2: same element
        assert!(!f[0].consistent_with(&f[3])); // a=1, b=4: different elements
        assert!(f[0].consistent_with(&f[4])); // c is outside the array
    }
}
