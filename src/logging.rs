//! Logging setup: tracing-subscriber on stderr (stdout is reserved for command output and console
//! alerts), human-readable or JSON per `[log] format`; RUST_LOG, when set, overrides `[log] level`.
//!
//! Promise: no value logged can forge a log line. Log fields carry event content (event ids, rejection
//! reasons, template errors), so:
//! - the human format writes every field, the message included, through [`escape::visible`]: CR/LF,
//!   control characters (ANSI escapes from content among them), bidi overrides and invisible
//!   characters are shown as escapes, and each value is capped at [`MAX_FIELD`] characters; the
//!   formatter's own colours are untouched;
//! - the JSON format is serde_json's (CR/LF and C0 controls escaped) with the characters JSON allows
//!   raw but a terminal obeys (DEL, C1, bidi, invisibles) rewritten as `\uXXXX` escapes, so every line
//!   is one valid JSON object;
//! - a panic is logged through tracing (escaped like any field) instead of the raw default message.

use std::io::{IsTerminal, Write};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::format::debug_fn;

use crate::config::{LogConfig, LogFormat};
use crate::escape;

/// The longest field value written, in characters.
pub const MAX_FIELD: usize = 4096;

/// Installs the global subscriber (a second call is a no-op).
pub fn init(cfg: &LogConfig) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&cfg.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal());
    let installed = match cfg.format {
        LogFormat::Human => builder
            .with_writer(std::io::stderr)
            .fmt_fields(
                debug_fn(|w, field, value| {
                    let text = escape::line(&format!("{value:?}"), MAX_FIELD);
                    if field.name() == "message" {
                        write!(w, "{text}")
                    } else {
                        write!(w, "{}={text}", field.name())
                    }
                })
                .delimited(" "),
            )
            .try_init(),
        LogFormat::Json => builder
            .with_writer(|| JsonEscaping(std::io::stderr()))
            .json()
            .try_init(),
    };
    if installed.is_ok() {
        std::panic::set_hook(Box::new(|info| {
            let location = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_default();
            tracing::error!(panic = %crate::compute::panic_message(info.payload()), %location, "panicked");
        }));
    }
}

/// Rewrites, in JSON log lines, the characters serde_json leaves raw that a terminal or a log viewer
/// would obey, as `\uXXXX` escapes (UTF-16 pairs above U+FFFF). They can only occur inside JSON
/// strings, so the line stays valid JSON with the same value.
struct JsonEscaping<W>(W);

impl<W: Write> Write for JsonEscaping<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        if !text.chars().any(|c| escape::hidden(c) && c != '\n') {
            self.0.write_all(buf)?;
            return Ok(buf.len());
        }
        let mut out = String::with_capacity(text.len() + 16);
        for c in text.chars() {
            if escape::hidden(c) && c != '\n' {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            } else {
                out.push(c);
            }
        }
        self.0.write_all(out.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}
