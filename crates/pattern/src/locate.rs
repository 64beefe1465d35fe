//! Where a JSON pointer lands in JSON text: the byte range of the node a [`crate::PatternError`]
//! points at, so that an editor can highlight the offending part of the pattern as the person wrote it.
//!
//! Promises: never panics on any input (malformed text or a pointer that names nothing gives the
//! deepest node that could be reached, or `None` when not even the root is a value); runs in one pass
//! over the text without recursion; a repeated object key resolves to its last occurrence, the one AWS
//! keeps (see [`crate::json`]).

use std::ops::Range;

/// The byte range of the node at `pointer` (RFC 6901) in `text`, or of the deepest ancestor that
/// exists when the pointer names something absent. `""` is the whole document.
pub fn locate(text: &str, pointer: &str) -> Option<Range<usize>> {
    let b = text.as_bytes();
    let mut at = skip_ws(b, 0);
    let mut node = at..skip_value(b, at)?;
    let tokens = match pointer.strip_prefix('/') {
        Some(rest) => rest.split('/').map(unescape).collect(),
        None => Vec::new(),
    };
    for token in tokens {
        let child = match b.get(at) {
            Some(b'{') => member(b, at, &token),
            Some(b'[') => token.parse().ok().and_then(|n| element(b, at, n)),
            _ => None,
        };
        let Some(start) = child else { break };
        let Some(end) = skip_value(b, start) else {
            break;
        };
        at = start;
        node = start..end;
    }
    Some(node)
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

/// The end of the string starting at `i` (just past its closing quote).
fn string_end(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    while j < b.len() {
        match b[j] {
            b'\\' => j += 2,
            b'"' => return Some(j + 1),
            _ => j += 1,
        }
    }
    None
}

/// The end of the value starting at `i`.
fn skip_value(b: &[u8], i: usize) -> Option<usize> {
    match b.get(i)? {
        b'"' => string_end(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            while j < b.len() {
                match b[j] {
                    b'"' => {
                        j = string_end(b, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            None
        }
        _ => {
            let mut j = i;
            while j < b.len() && !matches!(b[j], b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
            {
                j += 1;
            }
            (j > i).then_some(j)
        }
    }
}

/// The start of the value of the last member named `key` of the object at `i`.
fn member(b: &[u8], i: usize, key: &str) -> Option<usize> {
    let mut j = skip_ws(b, i + 1);
    let mut found = None;
    while b.get(j) == Some(&b'"') {
        let key_end = string_end(b, j)?;
        let name: Option<String> = std::str::from_utf8(&b[j..key_end])
            .ok()
            .and_then(|s| serde_json::from_str(s).ok());
        j = skip_ws(b, key_end);
        if b.get(j) != Some(&b':') {
            break;
        }
        let start = skip_ws(b, j + 1);
        let end = skip_value(b, start)?;
        if name.as_deref() == Some(key) {
            found = Some(start);
        }
        j = skip_ws(b, end);
        if b.get(j) != Some(&b',') {
            break;
        }
        j = skip_ws(b, j + 1);
    }
    found
}

/// The start of element `n` of the array at `i`.
fn element(b: &[u8], i: usize, n: usize) -> Option<usize> {
    let mut j = skip_ws(b, i + 1);
    let mut k = 0;
    loop {
        if matches!(b.get(j), None | Some(b']')) {
            return None;
        }
        if k == n {
            return Some(j);
        }
        j = skip_ws(b, skip_value(b, j)?);
        if b.get(j) != Some(&b',') {
            return None;
        }
        j = skip_ws(b, j + 1);
        k += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at<'a>(text: &'a str, pointer: &str) -> &'a str {
        &text[locate(text, pointer).unwrap()]
    }

    #[test]
    fn finds_members_elements_and_the_last_duplicate() {
        let t = r#" {"detail": {"scan-status": [], "a/b": {"~x": [1, "two", {"k": true}]}}, "dup": 1, "dup": [2]} "#;
        assert_eq!(at(t, ""), &t[1..t.len() - 1]);
        assert_eq!(at(t, "/detail/scan-status"), "[]");
        assert_eq!(at(t, "/detail/a~1b/~0x/1"), r#""two""#);
        assert_eq!(at(t, "/detail/a~1b/~0x/2/k"), "true");
        assert_eq!(at(t, "/dup"), "[2]");
    }

    #[test]
    fn absent_nodes_give_the_deepest_ancestor() {
        let t = r#"{"detail": {"x": [1]}}"#;
        assert_eq!(at(t, "/detail/nope"), r#"{"x": [1]}"#);
        assert_eq!(at(t, "/detail/x/5"), "[1]");
        assert_eq!(at(t, "/detail/x/0/deeper"), "1");
    }

    #[test]
    fn escaped_keys_and_strings_with_brackets() {
        let t = r#"{"a\"b": ["]", "}"], "c": {"d\u0065": 1}}"#;
        assert_eq!(at(t, "/a\"b/1"), r#""}""#);
        assert_eq!(at(t, "/c/de"), "1");
    }

    #[test]
    fn never_panics_on_broken_text() {
        for t in [
            "",
            "{",
            "[1,",
            "{\"a\":",
            "\"",
            "{\"a\" 1}",
            "}",
            "[[[",
            "{\"a\":[1,]}",
        ] {
            let _ = locate(t, "/a/0/b");
        }
        assert_eq!(locate("   ", ""), None);
    }

    #[test]
    fn agrees_with_the_parser_on_pattern_errors() {
        let cases = [
            r#"{"detail": {"scan-status": []}}"#,
            r#"{"source": ["aws.ecr"], "detail": {"n": [{"numeric": [">", "x"]}]}}"#,
            r#"{"detail": {"repository-name": [{"prefix": 5}]}}"#,
            r#"{"$or": [{"a": ["x"]}, {"b": [{"wildcard": "a**"}]}]}"#,
        ];
        for text in cases {
            let e = crate::Pattern::parse(text).unwrap_err();
            let span = locate(text, e.pointer()).unwrap();
            assert!(
                span.len() < text.len(),
                "{text}: {} points at the whole pattern",
                e.pointer()
            );
        }
    }
}
