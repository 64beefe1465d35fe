//! The `email` target: one multipart (text + HTML) message per delivery over SMTP (lettre, tokio,
//! rustls): STARTTLS, implicit TLS, or plain for local relays; optional authentication.
//!
//! Subject and bodies come from the templates (`email/subject.txt`, `email/body.txt`,
//! `email/body.html`; `subject` in the config overrides the subject template for this target). The
//! templates escape every value from the event (no CR/LF, bidi or control character; HTML-escaped in
//! the HTML part; links only to validated https URLs); the subject is one line of at most 200
//! characters, which lettre encodes (RFC 2047) when it is not ASCII. The
//! Message-ID is derived from the delivery id, so a redelivered alert threads with the first one and
//! mail systems can drop the duplicate.
//!
//! Classification: accepted → delivered; SMTP 4xx replies, connection errors, timeouts and TLS
//! failures → retryable; SMTP 5xx replies → permanent; a message we cannot build or a client-side
//! refusal (no usable auth mechanism) → permanent. The password never appears in logs, reasons or
//! Debug output.

use std::sync::Arc;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::AsyncSmtpTransport;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncTransport, Message as Mail, Tokio1Executor};
use serde::Deserialize;

use super::attempt::{Message, Outcome};
use crate::config::{ConfigError, Secret, resolve_secret};
use crate::render::template::Templates;
use crate::retry::RetryOverrides;

/// Longest subject, in characters (RFC 5322 wants lines under 998 bytes; mail clients show ~80).
pub const MAX_SUBJECT: usize = 200;

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain connection upgraded with STARTTLS (required), usually port 587.
    Starttls,
    /// TLS from the first byte ("SMTPS"), usually port 465.
    Tls,
    /// No encryption: only for a relay on the same host or network.
    None,
}

/// `[targets.NAME] type = "email"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// SMTP server host name (checked against its certificate with TLS).
    pub host: String,
    /// SMTP port (default: 587 for starttls, 465 for tls, 25 for none).
    #[serde(default)]
    pub port: Option<u16>,
    /// "starttls" (default), "tls" or "none".
    #[serde(default = "default_tls")]
    pub tls: TlsMode,
    /// Optional authentication; `password` (or `password_file`) goes with it.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<Secret>,
    #[serde(default)]
    pub password_file: Option<std::path::PathBuf>,
    /// Sender mailbox, e.g. "scanbridge <alerts@example.org>".
    pub from: String,
    /// Recipients (at least one).
    pub to: Vec<String>,
    /// Copy recipients.
    #[serde(default)]
    pub cc: Vec<String>,
    /// Subject template for this target (minijinja, escaped and strict like the template files;
    /// default: templates/email/subject.txt).
    #[serde(default)]
    pub subject: Option<String>,
    /// Per-message timeout (connect + send), default 10 s.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Token bucket for this target (`{ per_second = 1, burst = 5 }`); excess deliveries wait in the
    /// outbox, never dropped.
    #[serde(default)]
    pub rate_limit: Option<crate::alerting::RateLimit>,
    /// Deliveries sent to this target at once (default 1).
    #[serde(default)]
    pub concurrency: Option<usize>,
    #[serde(default)]
    pub retry: RetryOverrides,
}

fn default_tls() -> TlsMode {
    TlsMode::Starttls
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

impl EmailConfig {
    pub(crate) fn finish(&mut self, name: &str) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            key: format!("targets.{name}.{key}"),
            message,
        };
        resolve_secret(
            &format!("targets.{name}.password"),
            &mut self.password,
            &self.password_file,
        )?;
        if self.host.trim().is_empty() {
            return Err(invalid("host", "must not be empty".into()));
        }
        if self.password.is_some() != self.username.is_some() {
            return Err(invalid(
                "username",
                "set both `username` and `password` (or neither)".into(),
            ));
        }
        self.from
            .parse::<Mailbox>()
            .map_err(|e| invalid("from", format!("not a mailbox: {e}")))?;
        if self.to.is_empty() {
            return Err(invalid("to", "needs at least one recipient".into()));
        }
        for (key, list) in [("to", &self.to), ("cc", &self.cc)] {
            for (i, a) in list.iter().enumerate() {
                a.parse::<Mailbox>()
                    .map_err(|e| invalid(&format!("{key}[{i}]"), format!("not a mailbox: {e}")))?;
            }
        }
        if let Some(s) = &self.subject {
            minijinja::Environment::new()
                .template_from_str(s)
                .map_err(|e| invalid("subject", format!("invalid template: {e}")))?;
        }
        Ok(())
    }

    /// The port, or the usual one for the TLS mode.
    pub fn effective_port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            TlsMode::Starttls => 587,
            TlsMode::Tls => 465,
            TlsMode::None => 25,
        })
    }
}

/// A ready email target.
pub struct Email {
    /// The target's name (errors of its `subject` template name it).
    name: String,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    cc: Vec<Mailbox>,
    subject: Option<String>,
    templates: Arc<Templates>,
    timeout: Duration,
}

impl std::fmt::Debug for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Email")
            .field("from", &self.from.to_string())
            .field("to", &self.to.len())
            .finish_non_exhaustive()
    }
}

impl Email {
    pub fn new(
        name: &str,
        cfg: &EmailConfig,
        templates: Arc<Templates>,
    ) -> Result<Self, lettre::transport::smtp::Error> {
        let builder = match cfg.tls {
            TlsMode::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&cfg.host)?,
            TlsMode::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&cfg.host)?,
            TlsMode::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&cfg.host),
        };
        let mut builder = builder
            .port(cfg.effective_port())
            .timeout(Some(cfg.timeout));
        if let (Some(u), Some(p)) = (&cfg.username, &cfg.password) {
            builder = builder.credentials(Credentials::new(u.clone(), p.expose().to_owned()));
        }
        let parse = |a: &String| a.parse::<Mailbox>().expect("checked at load");
        Ok(Email {
            name: name.to_owned(),
            transport: builder.build(),
            from: parse(&cfg.from),
            to: cfg.to.iter().map(parse).collect(),
            cc: cfg.cc.iter().map(parse).collect(),
            subject: cfg.subject.clone(),
            templates,
            timeout: cfg.timeout,
        })
    }

    /// Renders subject, text and HTML for `msg` (a resolve: the `email/resolved_*` templates; the
    /// target's `subject` applies to alerts only).
    pub fn render(&self, msg: &Message<'_>) -> Result<(String, String, String), String> {
        let ctx = msg.context();
        let names = if msg.is_resolve() {
            [
                "email/resolved_subject.txt",
                "email/resolved_body.txt",
                "email/resolved_body.html",
            ]
        } else {
            ["email/subject.txt", "email/body.txt", "email/body.html"]
        };
        let render = |name: &str| self.templates.render(name, &ctx).map_err(|e| e.to_string());
        // The target's own subject is escaped and strict like the files.
        let subject = match &self.subject {
            Some(t) if !msg.is_resolve() => self
                .templates
                .render_inline(&format!("targets.{}.subject", self.name), t, &ctx)
                .map_err(|e| e.to_string())?,
            _ => render(names[0])?,
        };
        // A subject is one line (the templates already show CR/LF from content as `\r\n`; this folds
        // the template's own whitespace), of at most MAX_SUBJECT characters.
        let subject = subject.split_whitespace().collect::<Vec<_>>().join(" ");
        let subject = crate::escape::cap(&subject, MAX_SUBJECT).into_owned();
        Ok((subject, render(names[1])?, render(names[2])?))
    }

    /// The message as a person reads it: envelope headers, subject, then both parts.
    pub fn preview(&self, msg: &Message<'_>) -> Result<String, String> {
        let (subject, text, html) = self.render(msg)?;
        let mut t = format!(
            "From: {}\nTo: {}\n",
            self.from,
            mailboxes(&self.to).join(", ")
        );
        if !self.cc.is_empty() {
            t.push_str(&format!("Cc: {}\n", mailboxes(&self.cc).join(", ")));
        }
        t.push_str(&format!(
            "Subject: {subject}\nMessage-ID: {}\n\n--- text/plain ---\n{text}\n\n--- text/html ---\n{html}",
            message_id(msg)
        ));
        Ok(t)
    }

    /// The message as data for the UI: `{"from", "to", "cc", "subject", "message_id", "text",
    /// "html"}` (the server and its credentials are not shown).
    pub fn preview_data(&self, msg: &Message<'_>) -> Result<serde_json::Value, String> {
        let (subject, text, html) = self.render(msg)?;
        Ok(serde_json::json!({
            "from": self.from.to_string(),
            "to": mailboxes(&self.to),
            "cc": mailboxes(&self.cc),
            "subject": subject,
            "message_id": message_id(msg),
            "text": text,
            "html": html,
        }))
    }

    /// Builds the whole message.
    pub fn build(&self, msg: &Message<'_>) -> Result<Mail, String> {
        let (subject, text, html) = self.render(msg)?;
        let mut b = Mail::builder()
            .from(self.from.clone())
            .subject(subject)
            .message_id(Some(message_id(msg)));
        for m in &self.to {
            b = b.to(m.clone());
        }
        for m in &self.cc {
            b = b.cc(m.clone());
        }
        b.multipart(MultiPart::alternative_plain_html(text, html))
            .map_err(|e| format!("cannot build the message: {e}"))
    }

    pub async fn notify(&self, msg: &Message<'_>) -> Outcome {
        let mail = match self.build(msg) {
            Ok(m) => m,
            Err(reason) => return Outcome::Permanent { reason },
        };
        // lettre's timeout bounds each command; bound the whole exchange too.
        match tokio::time::timeout(self.timeout * 2, self.transport.send(mail)).await {
            Ok(Ok(_)) => Outcome::Delivered,
            Ok(Err(e)) => classify(&e),
            Err(_) => Outcome::Retryable {
                retry_after: None,
                reason: "SMTP timeout".into(),
            },
        }
    }
}

fn mailboxes(v: &[Mailbox]) -> Vec<String> {
    v.iter().map(ToString::to_string).collect()
}

/// The Message-ID: derived from the delivery id, so a redelivery threads with the first copy.
fn message_id(msg: &Message<'_>) -> String {
    format!("<{}@scanbridge>", msg.delivery_id)
}

/// Classifies an SMTP failure.
pub fn classify(e: &lettre::transport::smtp::Error) -> Outcome {
    let reason = format!("SMTP: {e}");
    if let Some(code) = e.status() {
        let code: u16 = code.to_string().parse().unwrap_or(0);
        return classify_reply(code, reason);
    }
    if e.is_client() {
        return Outcome::Permanent { reason };
    }
    // Connection refused/reset, DNS, timeouts, TLS handshakes: the server may be back soon.
    Outcome::Retryable {
        retry_after: None,
        reason,
    }
}

/// Classifies an SMTP reply code: 2xx/3xx delivered, 4xx retryable, 5xx permanent.
pub fn classify_reply(code: u16, reason: String) -> Outcome {
    match code {
        200..=399 => Outcome::Delivered,
        500..=599 => Outcome::Permanent { reason },
        _ => Outcome::Retryable {
            retry_after: None,
            reason,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_classification_table() {
        let cases = [
            (250, "delivered"),
            (421, "retryable"), // service not available, closing
            (450, "retryable"), // mailbox busy
            (451, "retryable"), // local error
            (452, "retryable"), // insufficient storage
            (500, "permanent"),
            (535, "permanent"), // authentication failed
            (550, "permanent"), // mailbox unavailable
            (552, "permanent"),
            (554, "permanent"),
        ];
        for (code, want) in cases {
            assert_eq!(classify_reply(code, String::new()).label(), want, "{code}");
        }
    }

    #[tokio::test]
    async fn connection_refused_is_retryable_and_hides_the_password() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let cfg: EmailConfig = serde_json::from_value(serde_json::json!({
            "host": "127.0.0.1", "port": port, "tls": "none",
            "username": "u", "password": "pa55-word-xyz",
            "from": "a@example.org", "to": ["b@example.org"], "timeout": "2s"
        }))
        .unwrap();
        assert!(!format!("{cfg:?}").contains("pa55"));
        let email = Email::new("mail", &cfg, Arc::new(Templates::load(None).unwrap())).unwrap();
        let e = serde_json::json!({"id":"e","source":"s","detail-type":"t","detail":{}});
        let msg = Message {
            delivery_id: "d",
            rule: "r",
            event_id: "e",
            event: &e,
            payload: &e,
            delta: None,
            now_ms: 0,
            alert: None,
            replay: None,
        };
        let out = email.notify(&msg).await;
        assert_eq!(out.label(), "retryable", "{out:?}");
        assert!(!format!("{out:?}").contains("pa55"));
    }

    #[test]
    fn config_checks_name_the_key() {
        let mk = |v: serde_json::Value| {
            let mut c: EmailConfig = serde_json::from_value(v).unwrap();
            c.finish("mail").unwrap_err().to_string()
        };
        let e = mk(serde_json::json!({"host":"h","from":"not an address","to":["b@x.org"]}));
        assert!(e.contains("targets.mail.from"), "{e}");
        let e = mk(serde_json::json!({"host":"h","from":"a@x.org","to":[]}));
        assert!(e.contains("targets.mail.to"), "{e}");
        let e = mk(serde_json::json!({"host":"h","from":"a@x.org","to":["b@x.org"],"cc":["??"]}));
        assert!(e.contains("targets.mail.cc[0]"), "{e}");
        let e =
            mk(serde_json::json!({"host":"h","from":"a@x.org","to":["b@x.org"],"password":"p"}));
        assert!(
            e.contains("targets.mail.username") && !e.contains("\"p\""),
            "{e}"
        );
        let e = mk(
            serde_json::json!({"host":"h","from":"a@x.org","to":["b@x.org"],"subject":"{% if %}"}),
        );
        assert!(e.contains("targets.mail.subject"), "{e}");
    }
}
