//! YAML documents to JSON values, with CloudFormation's short-form tags spelled out as CloudFormation
//! reads them.
//!
//! `!Ref X` becomes `{"Ref": "X"}`, `!Condition C` becomes `{"Condition": "C"}`, `!GetAtt A.B` becomes
//! `{"Fn::GetAtt": ["A", "B"]}`, and any other tag `!Name v` becomes `{"Fn::Name": v}` (`!Sub`, `!Join`,
//! `!If`, `!Select`, ...; a tool's own tag such as `!Rain::Embed` too, which is harmless outside a
//! pattern). Keys that are not strings (numbers, booleans) become their text. A file may hold several
//! documents (`---`, as Kubernetes manifests do); each is returned. The parse errors are serde_norway's,
//! with the line.

use serde::Deserialize;
use serde_json::{Map, Value};
use serde_norway::Value as Yaml;

/// A YAML syntax error, with the line where the parser says.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("not valid YAML: {message}")]
pub struct YamlError {
    pub message: String,
    pub line: Option<usize>,
}

/// Every document of the text, as JSON.
pub fn documents(text: &str) -> Result<Vec<Value>, YamlError> {
    let mut out = Vec::new();
    for doc in serde_norway::Deserializer::from_str(text) {
        let value = Yaml::deserialize(doc).map_err(|e| YamlError {
            line: e.location().map(|l| l.line()),
            message: e.to_string(),
        })?;
        out.push(to_json(value));
    }
    Ok(out)
}

/// One YAML value as JSON, tags spelled out.
pub fn to_json(v: Yaml) -> Value {
    match v {
        Yaml::Null => Value::Null,
        Yaml::Bool(b) => Value::Bool(b),
        Yaml::Number(n) => number(&n),
        Yaml::String(s) => Value::String(s),
        Yaml::Sequence(items) => Value::Array(items.into_iter().map(to_json).collect()),
        Yaml::Mapping(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| (key_text(k), to_json(v)))
                .collect::<Map<_, _>>(),
        ),
        Yaml::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.trim_start_matches('!');
            let value = to_json(tagged.value);
            let (key, value) = match (name, value) {
                ("Ref" | "Condition", v) => (name.to_owned(), v),
                ("GetAtt", Value::String(s)) => {
                    let parts = match s.split_once('.') {
                        Some((a, b)) => vec![Value::from(a), Value::from(b)],
                        None => vec![Value::from(s)],
                    };
                    ("Fn::GetAtt".to_owned(), Value::Array(parts))
                }
                (other, v) => (format!("Fn::{other}"), v),
            };
            let mut m = Map::new();
            m.insert(key, value);
            Value::Object(m)
        }
    }
}

fn number(n: &serde_norway::Number) -> Value {
    if let Some(i) = n.as_i64() {
        Value::from(i)
    } else if let Some(u) = n.as_u64() {
        Value::from(u)
    } else {
        let f = n.as_f64().unwrap_or(f64::NAN);
        serde_json::Number::from_f64(f).map_or_else(|| Value::String(n.to_string()), Value::Number)
    }
}

fn key_text(k: Yaml) -> String {
    match k {
        Yaml::String(s) => s,
        Yaml::Bool(b) => b.to_string(),
        Yaml::Number(n) => n.to_string(),
        Yaml::Null => "null".to_owned(),
        other => serde_json::to_string(&to_json(other)).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn short_form_tags_become_what_cloudformation_reads() {
        let docs = documents(
            "a: !Ref Env\nb: !GetAtt Queue.Arn\nc: !Sub '${AWS::Region}-x'\nd: !Join ['', [a, !Ref B]]\ne: !Condition IsProd\nf: !Rain::Embed file.yaml\n",
        )
        .unwrap();
        assert_eq!(
            docs,
            [json!({
                "a": {"Ref": "Env"},
                "b": {"Fn::GetAtt": ["Queue", "Arn"]},
                "c": {"Fn::Sub": "${AWS::Region}-x"},
                "d": {"Fn::Join": ["", ["a", {"Ref": "B"}]]},
                "e": {"Condition": "IsProd"},
                "f": {"Fn::Rain::Embed": "file.yaml"},
            })]
        );
    }

    #[test]
    fn several_documents_numbers_and_odd_keys() {
        let docs = documents("x: 1\n---\n1: [2.5, true, null]\n").unwrap();
        assert_eq!(docs, [json!({"x": 1}), json!({"1": [2.5, true, null]})]);
    }

    #[test]
    fn syntax_errors_carry_the_line() {
        let e = documents("a: b\nc: [unclosed\n").unwrap_err();
        assert!(e.line.is_some(), "{e:?}");
        assert!(e.to_string().starts_with("not valid YAML: "), "{e}");
    }
}
