//! Operator families, one data-driven case file: the awkward cases (null vs missing, empty arrays,
//! exists on objects, escapes, IPv6, numbers at extremes, array consistency). Each case is checked
//! through both `Pattern::matches` (serde_json value) and `Pattern::matches_bytes` (raw text); an error
//! case checks AWS's reason and, where given, the JSON pointer of the node at fault; an
//! event written as a JSON string is raw text, for numbers serde_json cannot hold (`1e400`).

use scanbridge_pattern::Pattern;
use serde_json::Value;

#[test]
fn operator_cases() {
    let text = include_str!("cases/operators.json");
    let cases: Vec<Value> = serde_json::from_str(text).expect("cases/operators.json is valid JSON");
    assert!(cases.len() > 50);
    let mut failures = Vec::new();
    for c in &cases {
        let name = c["name"].as_str().unwrap();
        let pattern = match &c["pattern"] {
            Value::String(raw) => raw.clone(),
            other => other.to_string(),
        };
        let expect = c["expect"].as_str().unwrap();
        match (Pattern::parse(&pattern), expect) {
            (Err(e), "error") => {
                if Some(e.reason()) != c["reason"].as_str() {
                    failures.push(format!(
                        "{name}: reason {:?}, expected {:?}",
                        e.reason(),
                        c["reason"]
                    ));
                }
                if let Some(want) = c["pointer"].as_str()
                    && e.pointer() != want
                {
                    failures.push(format!(
                        "{name}: pointer {:?}, expected {want:?}",
                        e.pointer()
                    ));
                }
            }
            (Err(e), _) => failures.push(format!("{name}: unexpected error {e}")),
            (Ok(_), "error") => failures.push(format!("{name}: expected an error")),
            (Ok(p), _) => {
                // An event given as a string is raw text (for numbers serde_json cannot hold).
                let raw = match &c["event"] {
                    Value::String(raw) => raw.clone(),
                    other => other.to_string(),
                };
                let by_bytes = p.matches_bytes(raw.as_bytes()).unwrap();
                let by_value = match serde_json::from_str::<Value>(&raw) {
                    Ok(v) => p.matches(&v),
                    Err(_) => by_bytes,
                };
                let want = expect == "match";
                if by_value != want || by_bytes != want {
                    failures.push(format!(
                        "{name}: value {by_value}, bytes {by_bytes}, expected {expect}"
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
