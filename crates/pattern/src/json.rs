//! A small JSON reader for patterns and events, owned here for three reasons serde_json cannot serve:
//!
//! 1. **AWS's words.** EventBridge answers malformed pattern text with the messages of its Jackson parser
//!    (`Unrecognized token 'this': was expecting (...)`); the conformance corpus checks them verbatim.
//! 2. **Raw number text.** AWS matches a pattern number against an event number by text as well as by
//!    value (`123456789012` beyond the numeric range still matches itself), so numbers keep their text.
//! 3. **Duplicate keys are kept, in order.** AWS lets a later duplicate key override an earlier one in a
//!    pattern; the pattern compiler decides that, so the reader must not.
//!
//! Promises: never panics on any input; nesting is bounded by [`MAX_DEPTH`] (a clear error, no stack
//! overflow); strings must be valid UTF-8 (an error names the byte offset); every error carries the
//! byte offset, line and column where it was noticed.

use std::fmt;

/// Deepest nesting of arrays and objects accepted (events and patterns alike).
pub const MAX_DEPTH: usize = 512;

/// A parsed JSON value. Objects keep every key in document order, duplicates included.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    /// The number exactly as written (validated against the JSON grammar).
    Number(String),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    /// Jackson's `getText()` for the token that starts this value, used in some AWS messages.
    pub(crate) fn token_text(&self) -> String {
        match self {
            Json::Null => "null".into(),
            Json::Bool(b) => b.to_string(),
            Json::Number(t) => t.clone(),
            Json::String(s) => s.clone(),
            Json::Array(_) => "[".into(),
            Json::Object(_) => "{".into(),
        }
    }

    /// Converts a serde_json value (numbers keep serde_json's canonical text, e.g. `300.0`).
    pub fn from_value(v: &serde_json::Value) -> Json {
        match v {
            serde_json::Value::Null => Json::Null,
            serde_json::Value::Bool(b) => Json::Bool(*b),
            serde_json::Value::Number(n) => Json::Number(n.to_string()),
            serde_json::Value::String(s) => Json::String(s.clone()),
            serde_json::Value::Array(a) => Json::Array(a.iter().map(Json::from_value).collect()),
            serde_json::Value::Object(o) => Json::Object(
                o.iter()
                    .map(|(k, v)| (k.clone(), Json::from_value(v)))
                    .collect(),
            ),
        }
    }
}

/// Why text is not JSON, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    /// The message, in Jackson's words where AWS shows them.
    pub message: String,
    /// Byte offset of the fault.
    pub offset: usize,
    /// 1-based line and column (column counts bytes) of the fault.
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (line {}, column {})",
            self.message, self.line, self.column
        )
    }
}

impl std::error::Error for JsonError {}

const EXPECTING_VALUE: &str =
    "was expecting (JSON String, Number, Array, Object or token 'null', 'true' or 'false')";

/// Parses one JSON document; only whitespace may follow it.
pub fn parse(input: &[u8]) -> Result<Json, JsonError> {
    let mut r = Reader {
        b: input,
        i: 0,
        depth: 0,
    };
    r.skip_ws();
    if r.i >= r.b.len() {
        return Err(r.err_at(r.i, "No content to map due to end-of-input".into()));
    }
    let v = r.value()?;
    r.skip_ws();
    if r.i < r.b.len() {
        return Err(r.err_at(
            r.i,
            format!(
                "Unexpected content after the end of the JSON document: {}",
                r.describe_char(r.i)
            ),
        ));
    }
    Ok(v)
}

struct Reader<'a> {
    b: &'a [u8],
    i: usize,
    depth: usize,
}

impl Reader<'_> {
    fn err_at(&self, offset: usize, message: String) -> JsonError {
        let offset = offset.min(self.b.len());
        let before = &self.b[..offset];
        let line = before.iter().filter(|&&c| c == b'\n').count() + 1;
        let column = offset
            - before
                .iter()
                .rposition(|&c| c == b'\n')
                .map_or(0, |p| p + 1)
            + 1;
        JsonError {
            message,
            offset,
            line,
            column,
        }
    }

    /// Jackson's rendering of an unexpected character: `(''' (code 39))`.
    fn describe_char(&self, at: usize) -> String {
        let c = std::str::from_utf8(&self.b[at..])
            .ok()
            .or_else(|| {
                // Take the longest valid UTF-8 prefix.
                let rest = &self.b[at..];
                (1..=4.min(rest.len()))
                    .rev()
                    .find_map(|n| std::str::from_utf8(&rest[..n]).ok())
            })
            .and_then(|s| s.chars().next());
        match c {
            Some(c) => format!("('{}' (code {}))", c, c as u32),
            None => format!("(byte 0x{:02x})", self.b[at]),
        }
    }

    fn skip_ws(&mut self) {
        while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn eof(&self, what: &str) -> JsonError {
        self.err_at(self.b.len(), format!("Unexpected end-of-input: {what}"))
    }

    fn value(&mut self) -> Result<Json, JsonError> {
        self.skip_ws();
        let Some(&c) = self.b.get(self.i) else {
            return Err(self.eof("expected a value"));
        };
        match c {
            b'{' => self.object(),
            b'[' => self.array(),
            b'"' => Ok(Json::String(self.string()?)),
            b'-' | b'0'..=b'9' => self.number(),
            _ => self.keyword(),
        }
    }

    fn enter(&mut self) -> Result<(), JsonError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err_at(
                self.i,
                format!("Nesting is deeper than {MAX_DEPTH} levels of arrays and objects"),
            ));
        }
        Ok(())
    }

    fn object(&mut self) -> Result<Json, JsonError> {
        self.enter()?;
        self.i += 1; // '{'
        let mut members = Vec::new();
        self.skip_ws();
        if self.b.get(self.i) == Some(&b'}') {
            self.i += 1;
            self.depth -= 1;
            return Ok(Json::Object(members));
        }
        loop {
            self.skip_ws();
            match self.b.get(self.i) {
                None => return Err(self.eof("expected close marker for OBJECT")),
                Some(b'"') => {}
                Some(_) => {
                    return Err(self.err_at(
                        self.i,
                        format!(
                            "Unexpected character {}: was expecting double-quote to start field name",
                            self.describe_char(self.i)
                        ),
                    ));
                }
            }
            let key = self.string()?;
            self.skip_ws();
            match self.b.get(self.i) {
                None => return Err(self.eof("expected close marker for OBJECT")),
                Some(b':') => self.i += 1,
                Some(_) => {
                    return Err(self.err_at(
                        self.i,
                        format!(
                            "Unexpected character {}: was expecting a colon to separate field name and value",
                            self.describe_char(self.i)
                        ),
                    ));
                }
            }
            let v = self.value()?;
            members.push((key, v));
            self.skip_ws();
            match self.b.get(self.i) {
                None => return Err(self.eof("expected close marker for OBJECT")),
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    self.depth -= 1;
                    return Ok(Json::Object(members));
                }
                Some(_) => {
                    return Err(self.err_at(
                        self.i,
                        format!(
                            "Unexpected character {}: was expecting comma to separate Object entries",
                            self.describe_char(self.i)
                        ),
                    ));
                }
            }
        }
    }

    fn array(&mut self) -> Result<Json, JsonError> {
        self.enter()?;
        self.i += 1; // '['
        let mut items = Vec::new();
        self.skip_ws();
        if self.b.get(self.i) == Some(&b']') {
            self.i += 1;
            self.depth -= 1;
            return Ok(Json::Array(items));
        }
        loop {
            self.skip_ws();
            match self.b.get(self.i) {
                None => return Err(self.eof("expected close marker for ARRAY")),
                Some(b']') => {
                    return Err(self.err_at(
                        self.i,
                        "Unexpected character (']' (code 93)): expected a value".into(),
                    ));
                }
                Some(_) => {}
            }
            items.push(self.value()?);
            self.skip_ws();
            match self.b.get(self.i) {
                None => return Err(self.eof("expected close marker for ARRAY")),
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    self.depth -= 1;
                    return Ok(Json::Array(items));
                }
                Some(_) => {
                    return Err(self.err_at(
                        self.i,
                        format!(
                            "Unexpected character {}: was expecting comma to separate Array entries",
                            self.describe_char(self.i)
                        ),
                    ));
                }
            }
        }
    }

    /// A bare word: `true`, `false`, `null`, or Jackson's "Unrecognized token".
    fn keyword(&mut self) -> Result<Json, JsonError> {
        let start = self.i;
        let mut end = start;
        while end < self.b.len() {
            let c = self.b[end];
            // Jackson collects the token up to whitespace or a JSON separator.
            if matches!(
                c,
                b' ' | b'\t' | b'\n' | b'\r' | b',' | b':' | b'[' | b']' | b'{' | b'}' | b'"'
            ) {
                break;
            }
            end += 1;
        }
        let word = &self.b[start..end];
        let v = match word {
            b"true" => Json::Bool(true),
            b"false" => Json::Bool(false),
            b"null" => Json::Null,
            // Jackson knows these, and says how to allow them (AWS does not).
            b"NaN" | b"Infinity" => {
                return Err(self.err_at(
                    start,
                    format!(
                        "Non-standard token '{}': enable `JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS` to allow",
                        String::from_utf8_lossy(word)
                    ),
                ));
            }
            _ if word.is_empty() => {
                return Err(self.err_at(
                    start,
                    format!(
                        "Unexpected character {}: expected a value",
                        self.describe_char(start)
                    ),
                ));
            }
            _ => {
                let shown = String::from_utf8_lossy(word);
                return Err(self.err_at(
                    start,
                    format!("Unrecognized token '{shown}': {EXPECTING_VALUE}"),
                ));
            }
        };
        self.i = end;
        Ok(v)
    }

    fn number(&mut self) -> Result<Json, JsonError> {
        let start = self.i;
        let b = self.b;
        let mut i = self.i;
        let digits = |i: &mut usize| {
            let s = *i;
            while *i < b.len() && b[*i].is_ascii_digit() {
                *i += 1;
            }
            *i - s
        };
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        let int_start = i;
        let n = digits(&mut i);
        if n == 0 && b[start] == b'-' && b[int_start..].starts_with(b"Infinity") {
            return Err(self.err_at(
                start,
                "Non-standard token '-Infinity': enable `JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS` to allow".into(),
            ));
        }
        if n == 0 {
            return Err(self.err_at(
                i,
                "Unexpected character after '-': expected digit for a valid numeric value".into(),
            ));
        }
        if n > 1 && b[int_start] == b'0' {
            return Err(self.err_at(
                int_start,
                "Invalid numeric value: Leading zeroes not allowed".into(),
            ));
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            if digits(&mut i) == 0 {
                return Err(self.err_at(
                    i,
                    "Unexpected character in number: Decimal point not followed by a digit".into(),
                ));
            }
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            if digits(&mut i) == 0 {
                return Err(self.err_at(
                    i,
                    "Unexpected character in number: Exponent indicator not followed by a digit"
                        .into(),
                ));
            }
        }
        if let Some(&c) = b.get(i)
            && (c.is_ascii_alphanumeric() || c == b'.' || c == b'+' || c == b'-')
        {
            return Err(self.err_at(
                i,
                format!(
                    "Unexpected character {}: Expected space separating root-level values or end of number",
                    self.describe_char(i)
                ),
            ));
        }
        self.i = i;
        // The slice is ASCII by construction.
        Ok(Json::Number(
            String::from_utf8_lossy(&b[start..i]).into_owned(),
        ))
    }

    fn string(&mut self) -> Result<String, JsonError> {
        let open = self.i;
        self.i += 1; // opening quote
        let mut out: Vec<u8> = Vec::new();
        loop {
            // Copy the run of plain bytes in one go.
            let run_start = self.i;
            while self.i < self.b.len() && !matches!(self.b[self.i], b'"' | b'\\' | 0..=0x1f) {
                self.i += 1;
            }
            out.extend_from_slice(&self.b[run_start..self.i]);
            match self.b.get(self.i) {
                None => {
                    return Err(self.err_at(
                        self.b.len(),
                        format!("Unexpected end-of-input: was expecting closing quote for a string value (opened at byte {open})"),
                    ));
                }
                Some(b'"') => {
                    self.i += 1;
                    return String::from_utf8(out).map_err(|e| {
                        let bad = open + 1 + e.utf8_error().valid_up_to();
                        self.err_at(bad, format!("Invalid UTF-8 in a string, at byte {bad}"))
                    });
                }
                Some(b'\\') => {
                    self.i += 1;
                    let Some(&e) = self.b.get(self.i) else {
                        return Err(self.eof("in an escape sequence"));
                    };
                    self.i += 1;
                    let c = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.unicode_escape()?,
                        _ => {
                            return Err(self.err_at(
                                self.i - 1,
                                format!(
                                    "Unrecognized character escape {}",
                                    self.describe_char(self.i - 1)
                                ),
                            ));
                        }
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                Some(&c) => {
                    return Err(self.err_at(
                        self.i,
                        format!(
                            "Illegal unquoted character ((CTRL-CHAR, code {c})): has to be escaped using backslash to be included in string value"
                        ),
                    ));
                }
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let Some(h) = self.b.get(self.i..self.i + 4) else {
            return Err(self.eof("in a \\u escape"));
        };
        let s = std::str::from_utf8(h)
            .ok()
            .filter(|s| s.bytes().all(|c| c.is_ascii_hexdigit()));
        let Some(v) = s.and_then(|s| u32::from_str_radix(s, 16).ok()) else {
            return Err(self.err_at(
                self.i,
                "Unexpected character in a \\u escape: expected a hex-digit for character escape"
                    .into(),
            ));
        };
        self.i += 4;
        Ok(v)
    }

    /// `\uXXXX`, joining surrogate pairs; a lone surrogate becomes U+FFFD, as Jackson would keep it
    /// as an unpaired char that later turns into a replacement when encoded.
    fn unicode_escape(&mut self) -> Result<char, JsonError> {
        let hi = self.hex4()?;
        if (0xD800..0xDC00).contains(&hi) && self.b.get(self.i..self.i + 2) == Some(b"\\u") {
            let save = self.i;
            self.i += 2;
            let lo = self.hex4()?;
            if (0xDC00..0xE000).contains(&lo) {
                let c = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                return Ok(char::from_u32(c).unwrap_or('\u{FFFD}'));
            }
            self.i = save;
        }
        Ok(char::from_u32(hi).unwrap_or('\u{FFFD}'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(s: &str) -> String {
        parse(s.as_bytes()).unwrap_err().message
    }

    #[test]
    fn keeps_raw_numbers_and_duplicate_keys() {
        let v = parse(br#"{"a": 300.0, "a": -1e3, "b": [true, null, "x"]}"#).unwrap();
        assert_eq!(
            v,
            Json::Object(vec![
                ("a".into(), Json::Number("300.0".into())),
                ("a".into(), Json::Number("-1e3".into())),
                (
                    "b".into(),
                    Json::Array(vec![Json::Bool(true), Json::Null, Json::String("x".into())])
                ),
            ])
        );
    }

    #[test]
    fn jackson_messages_for_the_aws_corpus() {
        assert_eq!(
            msg("this is valid json but not a dict"),
            "Unrecognized token 'this': was expecting (JSON String, Number, Array, Object or token 'null', 'true' or 'false')"
        );
        assert_eq!(
            msg("{'bad': 'quotation'}"),
            "Unexpected character (''' (code 39)): was expecting double-quote to start field name"
        );
        assert_eq!(
            msg("{\"not\": closed mark\""),
            "Unrecognized token 'closed': was expecting (JSON String, Number, Array, Object or token 'null', 'true' or 'false')"
        );
    }

    #[test]
    fn truncated_and_broken_input_is_an_error_with_a_position() {
        let e = parse(b"{\"a\": [1, 2").unwrap_err();
        assert!(e.message.contains("end-of-input"), "{e}");
        assert_eq!(e.offset, 11);
        let e = parse(b"{\n  \"a\": 01}").unwrap_err();
        assert_eq!((e.line, e.column), (2, 8));
        assert!(parse(b"").is_err());
        assert!(parse(b"[1,]").is_err());
        assert!(parse(b"{\"a\":1,}").is_err());
        assert!(parse(b"1.").is_err());
        assert!(parse(b"-").is_err());
        assert!(parse(b"{} x").is_err());
        assert!(parse(b"\"\\x\"").is_err());
        assert!(parse(b"\"a\x01\"").is_err());
    }

    #[test]
    fn invalid_utf8_names_the_byte() {
        let e = parse(b"{\"k\": \"ab\xffcd\"}").unwrap_err();
        assert_eq!(e.offset, 9, "{e}");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = "[".repeat(100_000);
        let e = parse(deep.as_bytes()).unwrap_err();
        assert!(e.message.contains("deeper than"), "{e}");
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(ok.as_bytes()).is_ok());
    }

    #[test]
    fn unicode_escapes_join_surrogate_pairs() {
        assert_eq!(
            parse(br#""\ud83d\ude80 \u00e9""#).unwrap(),
            Json::String("🚀 é".into())
        );
    }
}
