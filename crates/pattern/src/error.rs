//! Errors of this crate: a rejected pattern ([`PatternError`]) and an unreadable event ([`EventError`]).
//!
//! A `PatternError` displays exactly as AWS words it (`Event pattern is not valid. Reason: ...`), so
//! scripts comparing against EventBridge see the same text; it also carries the JSON pointer of the node
//! at fault (RFC 6901, `""` for the whole pattern), which our own human-readable output adds.

use std::fmt;

use crate::json::JsonError;

/// A pattern AWS would reject, with AWS's reason and where in the pattern the fault is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError {
    reason: String,
    pointer: String,
    position: Option<(usize, usize)>,
    /// Byte offset of a JSON syntax error.
    offset: Option<usize>,
}

impl PatternError {
    pub(crate) fn new(reason: impl Into<String>, pointer: impl Into<String>) -> Self {
        PatternError {
            reason: reason.into(),
            pointer: pointer.into(),
            position: None,
            offset: None,
        }
    }

    pub(crate) fn syntax(e: JsonError) -> Self {
        PatternError {
            reason: e.message,
            pointer: String::new(),
            position: Some((e.line, e.column)),
            offset: Some(e.offset),
        }
    }

    /// AWS's reason, e.g. `Empty arrays are not allowed`.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// JSON pointer (RFC 6901) of the node at fault; empty for the pattern as a whole.
    pub fn pointer(&self) -> &str {
        &self.pointer
    }

    /// Line and column of a JSON syntax error, when the text is not JSON at all.
    pub fn position(&self) -> Option<(usize, usize)> {
        self.position
    }

    /// The byte range of `text` (the pattern text that was parsed) at fault: the character where a
    /// JSON syntax error was noticed, else the node at [`PatternError::pointer`] (see
    /// [`crate::locate`]). `None` when the text holds no value at all.
    pub fn span(&self, text: &str) -> Option<std::ops::Range<usize>> {
        match self.offset {
            Some(at) => {
                let at = (0..=at.min(text.len()))
                    .rev()
                    .find(|&i| text.is_char_boundary(i))
                    .unwrap_or(0);
                let len = text[at..].chars().next().map_or(0, char::len_utf8);
                Some(at..at + len)
            }
            None => crate::locate::locate(text, &self.pointer),
        }
    }

    /// The AWS message plus where the fault is, for people: `... (at /detail/state/0)`.
    pub fn detailed(&self) -> String {
        match (self.position, self.pointer.is_empty()) {
            (Some((l, c)), _) => format!("{self} (at line {l}, column {c})"),
            (None, false) => format!("{self} (at {})", self.pointer),
            (None, true) => self.to_string(),
        }
    }
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Event pattern is not valid. Reason: {}", self.reason)
    }
}

impl std::error::Error for PatternError {}

/// An event that cannot be matched: not JSON, or not a JSON object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("event is not valid JSON: {0}")]
    Syntax(#[from] JsonError),
    #[error("event is not a JSON object (it is {0})")]
    NotAnObject(&'static str),
}

/// Appends one reference token to a JSON pointer, escaping `~` and `/` as RFC 6901 requires.
pub(crate) fn pointer_push(base: &str, token: &str) -> String {
    let mut p = String::with_capacity(base.len() + token.len() + 1);
    p.push_str(base);
    p.push('/');
    for c in token.chars() {
        match c {
            '~' => p.push_str("~0"),
            '/' => p.push_str("~1"),
            c => p.push(c),
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_as_aws_and_points_at_the_node() {
        let e = PatternError::new("Empty arrays are not allowed", "/resources");
        assert_eq!(
            e.to_string(),
            "Event pattern is not valid. Reason: Empty arrays are not allowed"
        );
        assert_eq!(
            e.detailed(),
            "Event pattern is not valid. Reason: Empty arrays are not allowed (at /resources)"
        );
    }

    #[test]
    fn spans_cover_the_node_or_the_bad_character() {
        let text = r#"{"detail": {"scan-status": []}}"#;
        let e = crate::Pattern::parse(text).unwrap_err();
        assert_eq!(&text[e.span(text).unwrap()], "[]");
        let text = "{\"détail\": [\"x\"] oops}";
        let e = crate::Pattern::parse(text).unwrap_err();
        assert!(e.position().is_some());
        assert_eq!(&text[e.span(text).unwrap()], "o");
        let e = crate::Pattern::parse("{\"a\": [\"x\"]").unwrap_err();
        assert_eq!(
            e.span("{\"a\": [\"x\"]"),
            Some(11..11),
            "end of input: an empty span at the end"
        );
    }

    #[test]
    fn pointer_tokens_are_escaped() {
        assert_eq!(pointer_push("/a", "b/c~d"), "/a/b~1c~0d");
    }
}
