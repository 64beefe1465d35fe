//! EventBridge-style JSONPath: the dotted form users write (`$.detail.repository-name`,
//! `$.detail.resources[0].id`, `$.detail.items[*].name`) rewritten to RFC 9535 bracket form before it
//! reaches jsonpath-rust (which rejects hyphens in dotted names).
//!
//! Promise: [`Path::parse`] rejects what jsonpath-rust cannot parse, so a rule with a bad path fails at
//! load, never at delivery. A *definite* path (only names and indices) selects at most one value; any
//! wildcard, descendant, slice, union or filter makes the path indefinite and [`Path::select`] then
//! returns every match as an array (EventBridge's "a list when the path selects several").

use jsonpath_rust::JsonPath;
use serde_json::Value;

/// A parsed, rewritten path.
#[derive(Debug, Clone, PartialEq)]
pub struct Path {
    /// As the user wrote it (for messages).
    pub original: String,
    /// RFC 9535 bracket form.
    pub rfc: String,
    /// Only names and indices: at most one match.
    pub definite: bool,
}

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid JSON path {path:?}: {reason}")]
pub struct PathError {
    pub path: String,
    pub reason: String,
}

impl Path {
    /// Parses `$`, `$.a.b-c`, `$.a[0]`, `$.a[*].b`, `$..b`, `$['a']` and mixtures.
    pub fn parse(text: &str) -> Result<Path, PathError> {
        let err = |reason: &str| PathError {
            path: text.to_owned(),
            reason: reason.to_owned(),
        };
        let rest = text
            .trim()
            .strip_prefix('$')
            .ok_or_else(|| err("must start with `$`"))?;
        let mut rfc = String::from("$");
        let mut definite = true;
        let chars: Vec<char> = rest.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                '.' => {
                    i += 1;
                    if chars.get(i) == Some(&'.') {
                        rfc.push_str("..");
                        definite = false;
                        i += 1;
                        if chars.get(i) == Some(&'[') {
                            continue;
                        }
                    }
                    let start = i;
                    while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                        i += 1;
                    }
                    let name: String = chars[start..i].iter().collect();
                    if name.is_empty() {
                        return Err(err("empty name after `.`"));
                    }
                    if name == "*" {
                        rfc.push_str("[*]");
                        definite = false;
                    } else {
                        rfc.push_str("['");
                        rfc.push_str(&name.replace('\\', "\\\\").replace('\'', "\\'"));
                        rfc.push_str("']");
                    }
                }
                '[' => {
                    let start = i;
                    let mut quote: Option<char> = None;
                    i += 1;
                    while i < chars.len() {
                        let c = chars[i];
                        match quote {
                            Some(_) if c == '\\' => i += 1,
                            Some(q) if c == q => quote = None,
                            Some(_) => {}
                            None if c == '\'' || c == '"' => quote = Some(c),
                            None if c == ']' => break,
                            None => {}
                        }
                        i += 1;
                    }
                    if i >= chars.len() {
                        return Err(err("unclosed `[`"));
                    }
                    i += 1;
                    let seg: String = chars[start..i].iter().collect();
                    let inner = &seg[1..seg.len() - 1];
                    let is_index = inner.trim().parse::<i64>().is_ok();
                    let is_name = (inner.starts_with('\'') && inner.ends_with('\'')
                        || inner.starts_with('"') && inner.ends_with('"'))
                        && !inner.contains(',');
                    if !(is_index || is_name) {
                        definite = false;
                    }
                    rfc.push_str(&seg);
                }
                _ => return Err(err("expected `.name` or `[...]` after `$`")),
            }
        }
        jsonpath_rust::parser::parse_json_path(&rfc).map_err(|e| err(&e.to_string()))?;
        Ok(Path {
            original: text.to_owned(),
            rfc,
            definite,
        })
    }

    /// The value at this path: for a definite path the one match; for an indefinite one an array of all
    /// matches (None when there are none). None when nothing matches.
    pub fn select(&self, event: &Value) -> Option<Value> {
        let found = event.query(&self.rfc).ok()?;
        if self.definite {
            found.into_iter().next().cloned()
        } else if found.is_empty() {
            None
        } else {
            Some(Value::Array(found.into_iter().cloned().collect()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rewrites_dotted_paths_to_brackets() {
        let cases = [
            ("$", "$", true),
            ("$.detail", "$['detail']", true),
            (
                "$.detail.repository-name",
                "$['detail']['repository-name']",
                true,
            ),
            (
                "$.detail.finding-severity-counts.CRITICAL",
                "$['detail']['finding-severity-counts']['CRITICAL']",
                true,
            ),
            ("$.resources[0]", "$['resources'][0]", true),
            (
                "$.detail.items[*].name",
                "$['detail']['items'][*]['name']",
                false,
            ),
            ("$.detail.*", "$['detail'][*]", false),
            ("$..name", "$..['name']", false),
            ("$.detail['odd.key']", "$['detail']['odd.key']", true),
            ("$.a[0:2]", "$['a'][0:2]", false),
        ];
        for (input, want, definite) in cases {
            let p = Path::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(p.rfc, want, "{input}");
            assert_eq!(p.definite, definite, "{input}");
        }
    }

    #[test]
    fn rejects_bad_paths() {
        for bad in ["detail", "$.", "$.a[", "$x", "$.a[?(@.b ==]"] {
            assert!(Path::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn selects_values() {
        let e = json!({"detail":{"repository-name":"r","image-tags":["a","b"],
            "items":[{"name":"x"},{"name":"y"}]}});
        let sel = |p: &str| Path::parse(p).unwrap().select(&e);
        assert_eq!(sel("$.detail.repository-name"), Some(json!("r")));
        assert_eq!(sel("$.detail.image-tags[1]"), Some(json!("b")));
        assert_eq!(sel("$.detail.items[*].name"), Some(json!(["x", "y"])));
        assert_eq!(sel("$.detail.nope"), None);
        assert_eq!(sel("$.detail.nope[*]"), None);
        assert_eq!(sel("$"), Some(e.clone()));
    }
}
