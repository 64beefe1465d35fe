//! Escaping: every value that comes from an event, made safe for the format it lands in. This module
//! knows no other room of the daemon: every room may import it.
//!
//! Every field of an event is written by someone we do not trust, and each output format has its own
//! ways of being subverted: a Slack `<!channel>` ping or `<https://evil|text>` link, an HTML `href`
//! with `javascript:`, a CR/LF that starts a new email header, a console or log line that looks like
//! another alert, a bidi override that shows text in another order, an HTTP header value a client
//! refuses to send. This module owns the answer for each; the renderers call it on every value they
//! did not write themselves.
//!
//! Promises:
//! - [`visible`]: no control character (C0, DEL, C1), line or paragraph separator, bidi control or
//!   other invisible format character survives; each is shown as `\n`, `\r`, `\t` or `\u{XXXX}`, so a
//!   value can never start a new line nor reorder or hide text. [`visible_lines`] keeps `\n` only (for
//!   text that is multi-line by design, such as pretty-printed JSON).
//! - [`mrkdwn`]: [`visible`] plus Slack's escaping of `&`, `<` and `>`, so no mention, channel ping or
//!   link can come from content; links are made only by [`slack_link`] from a URL [`https_url`]
//!   accepted.
//! - [`https_url`]: a URL from content is a link only when it parses as an absolute `https:` URL with
//!   a host, no user info, no characters [`visible`] would escape, within [`MAX_URL`].
//! - [`console_url`]: the ECR console link, built only from an AWS region, a 12-digit account, an ECR
//!   repository name and a `sha256:` digest that pass their syntax checks, path parts percent-encoded;
//!   [`console_link`] accepts a URL from content only if it is such a console link.
//! - [`header_value`]: any text as an HTTP header value (visible ASCII; the rest percent-encoded).
//! - [`cap`]: at most N characters, the cut marked with a visible `…`.

use std::borrow::Cow;
use std::fmt::Write as _;

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

/// The longest URL made into a link (Slack's button URL limit is 3000 characters).
pub const MAX_URL: usize = 2000;

/// Characters that must never reach an output as they are: controls, line and paragraph separators,
/// bidi controls and other invisible format characters (Unicode category Cf).
pub fn hidden(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{0600}'..='\u{0605}' | '\u{06DD}' | '\u{070F}' | '\u{0890}' | '\u{0891}' | '\u{08E2}'
            | '\u{200B}'..='\u{200F}'
            | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}' | '\u{FEFF}' | '\u{FFA0}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{110BD}' | '\u{110CD}'
            | '\u{13430}'..='\u{1343F}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E0FFF}')
}

fn shown(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c => {
            let _ = write!(out, "\\u{{{:04X}}}", c as u32);
        }
    }
}

fn escape_hidden(s: &str, keep: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !s.chars().any(|c| hidden(c) && !keep(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if hidden(c) && !keep(c) {
            shown(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `s` with every hidden character shown as an escape (see the module doc): one line, in order.
pub fn visible(s: &str) -> Cow<'_, str> {
    escape_hidden(s, |_| false)
}

/// Like [`visible`], keeping line feeds (text that is multi-line by design).
pub fn visible_lines(s: &str) -> Cow<'_, str> {
    escape_hidden(s, |c| c == '\n')
}

/// Every string in `v` (keys too) made visible as [`visible_lines`] makes text: for JSON a receiver
/// shows as it is (PagerDuty's custom details, Opsgenie's details), so no hidden or reordering
/// character from content reaches it.
pub fn visible_json(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::String(s) => {
            if let Cow::Owned(o) = visible_lines(s) {
                *s = o;
            }
        }
        Value::Array(a) => a.iter_mut().for_each(visible_json),
        Value::Object(m) => {
            let entries = std::mem::take(m);
            for (k, mut x) in entries {
                visible_json(&mut x);
                m.insert(visible_lines(&k).into_owned(), x);
            }
        }
        _ => {}
    }
}

/// At most `max` characters of `s`; a longer text ends with `…` (counted in the `max`).
pub fn cap(s: &str, max: usize) -> Cow<'_, str> {
    match s.char_indices().nth(max) {
        None => Cow::Borrowed(s),
        Some(_) => {
            let keep: String = s.chars().take(max.saturating_sub(1)).collect();
            Cow::Owned(keep + "…")
        }
    }
}

/// A value as one line of at most `max` characters: [`visible`], then [`cap`].
pub fn line(s: &str, max: usize) -> String {
    cap(&visible(s), max).into_owned()
}

/// Slack mrkdwn: [`visible`], then `&`, `<`, `>` as entities (Slack's rule), so content cannot make a
/// mention, a ping or a link.
pub fn mrkdwn(s: &str) -> String {
    let v = visible(s);
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// Like [`mrkdwn`], keeping line feeds (a multi-line block of text).
pub fn mrkdwn_lines(s: &str) -> String {
    s.split('\n').map(mrkdwn).collect::<Vec<_>>().join("\n")
}

/// A Slack link to `url` (which must come from [`https_url`] or [`console_url`]) showing `text`
/// (escaped here). `|` and `>` cannot end the URL part early: they are percent-encoded.
pub fn slack_link(url: &str, text: &str) -> String {
    format!("<{}|{}>", slack_url(url), mrkdwn(text))
}

/// `url` as it stands inside a Slack `<url|text>`: `&` as `&amp;`, `|`, `<`, `>` percent-encoded.
pub fn slack_url(url: &str) -> String {
    url.replace('&', "&amp;")
        .replace('|', "%7C")
        .replace('<', "%3C")
        .replace('>', "%3E")
}

/// `s` as a link target, if it is an absolute `https:` URL with a host and no user info, no hidden
/// or space characters, and at most [`MAX_URL`] long; the normalised URL.
pub fn https_url(s: &str) -> Option<String> {
    if s.len() > MAX_URL || s.chars().any(|c| hidden(c) || c.is_whitespace()) {
        return None;
    }
    let u = reqwest::Url::parse(s).ok()?;
    let ok = u.scheme() == "https"
        && u.host_str().is_some_and(|h| !h.is_empty())
        && u.username().is_empty()
        && u.password().is_none();
    let out = u.to_string();
    (ok && out.len() <= MAX_URL).then_some(out)
}

/// An AWS region name: `us-east-1`, `eu-central-2`, `us-gov-west-1`, `cn-north-1`...
pub fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    s.len() <= 32
        && parts.len() >= 3
        && parts[0].len() == 2
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].len() <= 2
        && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
        && !parts[parts.len() - 1].is_empty()
}

/// A 12-digit AWS account id.
pub fn is_account(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// An ECR repository name: `[a-z0-9]+([._-][a-z0-9]+)*` components joined by `/`, 2 to 256 long.
pub fn is_repository(s: &str) -> bool {
    (2..=256).contains(&s.len())
        && s.split('/').all(|part| {
            let b = part.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"._-".contains(c))
                && !b
                    .windows(2)
                    .any(|w| b"._-".contains(&w[0]) && b"._-".contains(&w[1]))
        })
}

/// An image digest: `sha256:` and 64 lowercase hex digits.
pub fn is_digest(s: &str) -> bool {
    s.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// What a path segment percent-encodes (RFC 3986: anything but unreserved characters and `:@`).
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}')
    .add(b'&')
    .add(b'+')
    .add(b'=')
    .add(b';')
    .add(b',')
    .add(b'$')
    .add(b'!')
    .add(b'\'')
    .add(b'(')
    .add(b')')
    .add(b'*');

fn segment(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// The image's page in the ECR console, when every part passes its syntax check; otherwise `None`
/// (no link is better than a link built from content).
pub fn console_url(region: &str, account: &str, repository: &str, digest: &str) -> Option<String> {
    if !(is_region(region) && is_account(account) && is_repository(repository) && is_digest(digest))
    {
        return None;
    }
    let repo: Vec<String> = repository.split('/').map(segment).collect();
    Some(format!(
        "https://{region}.console.aws.amazon.com/ecr/repositories/private/{}/{}/_/image/{}/details?region={region}",
        segment(account),
        repo.join("/"),
        segment(digest)
    ))
}

/// `url` if it is a link to the ECR console as [`console_url`] builds them (an `https:` URL on
/// `REGION.console.aws.amazon.com` for a valid region, under `/ecr/repositories/private/`): for URLs
/// that claim to be console links, such as a digest event's items (a producer can forge one).
pub fn console_link(url: &str) -> Option<String> {
    let u = https_url(url)?;
    let parsed = reqwest::Url::parse(&u).ok()?;
    let host_ok = parsed
        .host_str()
        .and_then(|h| h.strip_suffix(".console.aws.amazon.com"))
        .is_some_and(is_region);
    (host_ok && parsed.path().starts_with("/ecr/repositories/private/")).then_some(u)
}

/// What a header value percent-encodes: everything but visible ASCII, and `%` itself.
const HEADER: &AsciiSet = &CONTROLS.add(b' ').add(b'%');

/// Any text as an HTTP header value of at most `max` bytes: visible ASCII as it is, everything else
/// percent-encoded (so a control character or a non-ASCII id can never make the request unbuildable
/// nor split a header).
pub fn header_value(s: &str, max: usize) -> String {
    let full = utf8_percent_encode(s, HEADER).to_string();
    if full.len() <= max {
        return full;
    }
    // Cut at a character of the original, never inside a %XX escape.
    let mut out = String::new();
    for c in s.chars() {
        let mut buf = [0u8; 4];
        let one = utf8_percent_encode(c.encode_utf8(&mut buf), HEADER).to_string();
        if out.len() + one.len() + 3 > max {
            break;
        }
        out.push_str(&one);
    }
    out.push_str("...");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_characters_are_shown_never_obeyed() {
        assert_eq!(visible("a\nb\r\tc"), "a\\nb\\r\\tc");
        assert_eq!(
            visible("\u{202E}evil\u{2066}\u{200B}\u{7f}\u{85}\u{0}"),
            "\\u{202E}evil\\u{2066}\\u{200B}\\u{007F}\\u{0085}\\u{0000}"
        );
        assert_eq!(visible("payments/api é 💥"), "payments/api é 💥");
        assert!(matches!(visible("plain"), Cow::Borrowed(_)));
        assert_eq!(visible_lines("a\nb\rc"), "a\nb\\rc");
        assert_eq!(visible("\u{2028}\u{E0041}"), "\\u{2028}\\u{E0041}");
    }

    #[test]
    fn mrkdwn_makes_no_mention_ping_or_link() {
        assert_eq!(
            mrkdwn("<!channel> <@U1> <https://e|x> & \n"),
            "&lt;!channel&gt; &lt;@U1&gt; &lt;https://e|x&gt; &amp; \\n"
        );
        assert_eq!(
            slack_link("https://e.example/a|b?c=1&d=<x>", "<!here>"),
            "<https://e.example/a%7Cb?c=1&amp;d=%3Cx%3E|&lt;!here&gt;>"
        );
    }

    #[test]
    fn only_https_urls_are_links() {
        assert_eq!(
            https_url("https://nvd.nist.gov/vuln/detail/CVE-2026-1").as_deref(),
            Some("https://nvd.nist.gov/vuln/detail/CVE-2026-1")
        );
        for bad in [
            "javascript:alert(1)",
            "http://plain.example/",
            "https://u:p@host/",
            "https://",
            "data:text/html,x",
            "https://ok.example/\u{202E}",
            "https://a b/",
            "//host/x",
            "nvd.nist.gov",
        ] {
            assert_eq!(https_url(bad), None, "{bad:?}");
        }
        assert_eq!(
            https_url(&format!("https://e.example/{}", "a".repeat(MAX_URL))),
            None
        );
    }

    #[test]
    fn console_links_only_from_valid_parts() {
        let d = format!("sha256:{}", "9c1d4f3b8e2a7d6c".repeat(4));
        assert_eq!(
            console_url("us-east-1", "123456789012", "payments/api", &d).as_deref(),
            Some(format!("https://us-east-1.console.aws.amazon.com/ecr/repositories/private/123456789012/payments/api/_/image/{d}/details?region=us-east-1").as_str())
        );
        assert!(console_url("us-gov-west-1", "123456789012", "a/b.c-d_e", &d).is_some());
        for (r, a, n) in [
            ("evil.example/x?", "123456789012", "payments/api"),
            ("us-east-1", "1234", "payments/api"),
            ("us-east-1", "123456789012", "Payments/API"),
            ("us-east-1", "123456789012", "a//b"),
            ("us-east-1", "123456789012", "a/../b"),
            ("us-east-1.evil.example#", "123456789012", "payments/api"),
        ] {
            assert_eq!(console_url(r, a, n, &d), None, "{r} {a} {n}");
        }
        assert_eq!(
            console_url("us-east-1", "123456789012", "a/b", "sha256:é"),
            None
        );
    }

    #[test]
    fn console_links_from_content_must_be_console_links() {
        let ok = "https://us-east-1.console.aws.amazon.com/ecr/repositories/private/123456789012/a/_/image/sha256:x/details";
        assert_eq!(console_link(ok).as_deref(), Some(ok));
        for bad in [
            "https://evil.example/ecr/repositories/private/",
            "javascript:alert(1)",
            "https://evil.example#.console.aws.amazon.com/ecr/repositories/private/",
            "https://us-east-1.console.aws.amazon.com.evil.example/ecr/repositories/private/",
            "https://us-east-1.console.aws.amazon.com/iam/",
        ] {
            assert_eq!(console_link(bad), None, "{bad}");
        }
    }

    #[test]
    fn caps_and_header_values() {
        assert_eq!(cap("abcdef", 4), "abc…");
        assert_eq!(cap("abcd", 4), "abcd");
        assert_eq!(cap("ééééé", 3), "éé…");
        assert_eq!(line("a\nb", 10), "a\\nb");
        assert_eq!(header_value("evt-1", 64), "evt-1");
        assert_eq!(
            header_value("a\r\nX-Evil: 1 é%", 64),
            "a%0D%0AX-Evil:%201%20%C3%A9%25"
        );
        let long = header_value(&"é".repeat(100), 20);
        assert_eq!(long, "%C3%A9%C3%A9...");
        assert!(
            reqwest::header::HeaderValue::from_str(&header_value("\u{0}\u{202E}\n", 64)).is_ok()
        );
    }
}
