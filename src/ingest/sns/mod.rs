//! Amazon SNS HTTP/HTTPS subscriptions: the messages SNS posts to an endpoint, what AWS signs in each,
//! and which URLs in them may be fetched. [`verify`] checks the signatures.
//!
//! Promises:
//! - [`Message::parse`] accepts the three JSON message types SNS sends (`SubscriptionConfirmation`,
//!   `Notification`, `UnsubscribeConfirmation`) with every field AWS signs present and a string;
//! - [`Message::string_to_sign`] is AWS's canonical string ("Verifying the signatures of Amazon SNS
//!   messages"): each signed field's name and value on their own lines, in AWS's order — for a
//!   Notification `Message`, `MessageId`, `Subject` (only if present), `Timestamp`, `TopicArn`, `Type`;
//!   for the confirmations `Message`, `MessageId`, `SubscribeURL`, `Timestamp`, `Token`, `TopicArn`,
//!   `Type`;
//! - [`check_url`] allows only URLs of AWS's form: `https://sns.<region>.amazonaws.com[.cn]/...`, a
//!   `.pem` path for signing certificates, `Action=ConfirmSubscription` for subscribe URLs, and
//!   `*.amazontrust.com` for the issuer certificates a signing certificate points to. The test-only
//!   `[sns] test_cert_host` adds one `host:port` to these, nothing else;
//! - the configuration ([`SnsConfig`]) names the topic ARNs whose subscriptions are confirmed and whose
//!   messages are accepted; with none, every SNS message is refused.

pub mod door;
pub mod verify;

use serde_json::Value;

pub use crate::config::SnsConfig;

/// The SNS message types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    SubscriptionConfirmation,
    Notification,
    UnsubscribeConfirmation,
}

/// One message SNS posted (JSON, not raw delivery).
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub kind: Kind,
    pub message_id: String,
    pub topic_arn: String,
    pub message: String,
    pub timestamp: String,
    pub signature_version: String,
    pub signature: String,
    pub signing_cert_url: String,
    pub subject: Option<String>,
    pub subscribe_url: Option<String>,
    pub token: Option<String>,
}

/// Why a message was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SnsError {
    #[error("not an SNS message: {0}")]
    Malformed(String),
    #[error(
        "SNS message type {0:?} is not SubscriptionConfirmation, Notification or UnsubscribeConfirmation"
    )]
    UnknownType(String),
    #[error("topic {0} is not in [sns] topic_arns")]
    TopicNotAllowed(String),
    #[error("SignatureVersion {0:?} is not supported (1: SHA1withRSA, 2: SHA256withRSA)")]
    SignatureVersion(String),
    #[error("{field} {url:?} refused: {why}")]
    Url {
        field: &'static str,
        url: String,
        why: String,
    },
    /// The certificate could not be fetched for a reason that may pass (network, 5xx): SNS may retry.
    #[error("cannot fetch the signing certificate: {0}")]
    Unavailable(String),
    #[error("signing certificate refused: {0}")]
    Certificate(String),
    #[error("the signature does not match the message (SignatureVersion {0})")]
    BadSignature(String),
}

impl SnsError {
    /// The HTTP status `POST /sns` answers with.
    pub fn status(&self) -> u16 {
        match self {
            SnsError::Malformed(_) | SnsError::UnknownType(_) => 400,
            SnsError::Unavailable(_) => 503,
            _ => 403,
        }
    }
}

fn field(o: &serde_json::Map<String, Value>, key: &'static str) -> Result<String, SnsError> {
    match o.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(SnsError::Malformed(format!("`{key}` is not a string"))),
        None => Err(SnsError::Malformed(format!("`{key}` is missing"))),
    }
}

fn optional(
    o: &serde_json::Map<String, Value>,
    key: &'static str,
) -> Result<Option<String>, SnsError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(SnsError::Malformed(format!("`{key}` is not a string"))),
    }
}

impl Message {
    /// Reads the JSON body SNS posts.
    pub fn parse(body: &[u8]) -> Result<Message, SnsError> {
        let text = std::str::from_utf8(body).map_err(|e| {
            SnsError::Malformed(format!("invalid UTF-8 at byte {}", e.valid_up_to()))
        })?;
        let v =
            crate::strict_json::from_str(text).map_err(|e| SnsError::Malformed(e.to_string()))?;
        let Value::Object(o) = v else {
            return Err(SnsError::Malformed("the body is not a JSON object".into()));
        };
        let kind = match field(&o, "Type")?.as_str() {
            "SubscriptionConfirmation" => Kind::SubscriptionConfirmation,
            "Notification" => Kind::Notification,
            "UnsubscribeConfirmation" => Kind::UnsubscribeConfirmation,
            other => return Err(SnsError::UnknownType(other.to_owned())),
        };
        let confirmation = kind != Kind::Notification;
        Ok(Message {
            kind,
            message_id: field(&o, "MessageId")?,
            topic_arn: field(&o, "TopicArn")?,
            message: field(&o, "Message")?,
            timestamp: field(&o, "Timestamp")?,
            signature_version: field(&o, "SignatureVersion")?,
            signature: field(&o, "Signature")?,
            signing_cert_url: field(&o, "SigningCertURL")?,
            subject: if confirmation {
                None
            } else {
                optional(&o, "Subject")?
            },
            subscribe_url: if confirmation {
                Some(field(&o, "SubscribeURL")?)
            } else {
                None
            },
            token: if confirmation {
                Some(field(&o, "Token")?)
            } else {
                None
            },
        })
    }

    /// AWS's canonical string of this message (see the module doc).
    pub fn string_to_sign(&self) -> String {
        let mut pairs: Vec<(&str, &str)> =
            vec![("Message", &self.message), ("MessageId", &self.message_id)];
        match self.kind {
            Kind::Notification => {
                if let Some(s) = &self.subject {
                    pairs.push(("Subject", s));
                }
                pairs.push(("Timestamp", &self.timestamp));
            }
            Kind::SubscriptionConfirmation | Kind::UnsubscribeConfirmation => {
                pairs.push((
                    "SubscribeURL",
                    self.subscribe_url.as_deref().unwrap_or_default(),
                ));
                pairs.push(("Timestamp", &self.timestamp));
                pairs.push(("Token", self.token.as_deref().unwrap_or_default()));
            }
        }
        pairs.push(("TopicArn", &self.topic_arn));
        let kind = match self.kind {
            Kind::SubscriptionConfirmation => "SubscriptionConfirmation",
            Kind::Notification => "Notification",
            Kind::UnsubscribeConfirmation => "UnsubscribeConfirmation",
        };
        pairs.push(("Type", kind));
        let mut out = String::new();
        for (k, v) in pairs {
            out.push_str(k);
            out.push('\n');
            out.push_str(v);
            out.push('\n');
        }
        out
    }
}

/// What a URL in a message is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlUse {
    SigningCert,
    Subscribe,
    /// An issuer certificate named by a signing certificate (Authority Information Access).
    Issuer,
}

impl UrlUse {
    fn field(self) -> &'static str {
        match self {
            UrlUse::SigningCert => "SigningCertURL",
            UrlUse::Subscribe => "SubscribeURL",
            UrlUse::Issuer => "issuer certificate URL",
        }
    }
}

/// `sns.<region>.amazonaws.com` or `sns.<region>.amazonaws.com.cn`, `<region>` like `us-east-1`,
/// `us-gov-west-1`, `cn-north-1`.
pub fn is_sns_host(host: &str) -> bool {
    let Some(rest) = host.strip_prefix("sns.") else {
        return false;
    };
    let Some(region) = rest
        .strip_suffix(".amazonaws.com")
        .or_else(|| rest.strip_suffix(".amazonaws.com.cn"))
    else {
        return false;
    };
    let parts: Vec<&str> = region.split('-').collect();
    parts.len() >= 3
        && parts
            .last()
            .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
}

/// Checks that `url` may be fetched for `purpose` (see the module doc).
pub fn check_url(
    url: &str,
    purpose: UrlUse,
    test_host: Option<&str>,
) -> Result<reqwest::Url, SnsError> {
    let refuse = |why: &str| SnsError::Url {
        field: purpose.field(),
        url: url.chars().take(300).collect(),
        why: why.to_owned(),
    };
    let u = reqwest::Url::parse(url).map_err(|e| refuse(&e.to_string()))?;
    if !u.username().is_empty() || u.password().is_some() {
        return Err(refuse("credentials in the URL"));
    }
    let host = u.host_str().unwrap_or_default();
    let host_port = match u.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    };
    let is_test = test_host.is_some_and(|t| t.eq_ignore_ascii_case(&host_port));
    let scheme_ok = match purpose {
        UrlUse::Issuer => matches!(u.scheme(), "http" | "https"),
        _ => u.scheme() == "https",
    };
    if !scheme_ok {
        return Err(refuse("not https"));
    }
    if !is_test {
        let aws = match purpose {
            UrlUse::Issuer => host.ends_with(".amazontrust.com"),
            _ => is_sns_host(host),
        };
        if !aws || u.port().is_some() {
            return Err(refuse(match purpose {
                UrlUse::Issuer => "not an Amazon Trust Services host (*.amazontrust.com)",
                _ => "not an SNS host of AWS's form (sns.<region>.amazonaws.com)",
            }));
        }
    }
    match purpose {
        UrlUse::SigningCert if !u.path().ends_with(".pem") => {
            Err(refuse("the path does not end in .pem"))
        }
        UrlUse::Subscribe
            if !u
                .query_pairs()
                .any(|(k, v)| k == "Action" && v == "ConfirmSubscription") =>
        {
            Err(refuse("not a ConfirmSubscription URL"))
        }
        _ => Ok(u),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/sns")
                .join(name),
        )
        .unwrap()
    }

    #[test]
    fn aws_examples_parse_and_give_aws_canonical_strings() {
        let c = Message::parse(&fixture("subscription-confirmation.json")).unwrap();
        assert_eq!(c.kind, Kind::SubscriptionConfirmation);
        assert_eq!(c.topic_arn, "arn:aws:sns:us-west-2:123456789012:MyTopic");
        assert_eq!(
            c.string_to_sign(),
            format!(
                "Message\nYou have chosen to subscribe to the topic arn:aws:sns:us-west-2:123456789012:MyTopic.\n\
                 To confirm the subscription, visit the SubscribeURL included in this message.\n\
                 MessageId\n165545c9-2a5c-472c-8df2-7ff2be2b3b1b\nSubscribeURL\n{}\nTimestamp\n2012-04-26T20:45:04.751Z\n\
                 Token\n{}\nTopicArn\narn:aws:sns:us-west-2:123456789012:MyTopic\nType\nSubscriptionConfirmation\n",
                c.subscribe_url.as_deref().unwrap(),
                c.token.as_deref().unwrap()
            )
        );

        let n = Message::parse(&fixture("notification.json")).unwrap();
        assert_eq!(
            n.string_to_sign(),
            "Message\nHello world!\nMessageId\n22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324\nSubject\nMy First Message\n\
             Timestamp\n2012-05-02T00:54:06.655Z\nTopicArn\narn:aws:sns:us-west-2:123456789012:MyTopic\nType\nNotification\n"
        );
        let mut no_subject = n.clone();
        no_subject.subject = None;
        assert!(!no_subject.string_to_sign().contains("Subject"));
    }

    #[test]
    fn malformed_messages_name_the_field() {
        let err = Message::parse(br#"{"Type":"Notification","MessageId":"m"}"#).unwrap_err();
        assert_eq!(err, SnsError::Malformed("`TopicArn` is missing".into()));
        assert_eq!(err.status(), 400);
        assert!(matches!(
            Message::parse(br#"{"Type":"Bogus"}"#),
            Err(SnsError::UnknownType(_))
        ));
        assert!(Message::parse(b"[1]").is_err());
    }

    #[test]
    fn only_urls_of_aws_form_are_fetched() {
        for host in [
            "sns.us-east-1.amazonaws.com",
            "sns.us-gov-west-1.amazonaws.com",
            "sns.cn-north-1.amazonaws.com.cn",
            "sns.ap-southeast-4.amazonaws.com",
        ] {
            assert!(is_sns_host(host), "{host}");
        }
        for host in [
            "sns.amazonaws.com",
            "sns.us-east-1.amazonaws.com.evil.org",
            "evil.org",
            "sns.US-east-1.amazonaws.com",
            "sns.us-east.amazonaws.com",
            "xsns.us-east-1.amazonaws.com",
        ] {
            assert!(!is_sns_host(host), "{host}");
        }
        let ok = "https://sns.us-west-2.amazonaws.com/SimpleNotificationService-f3ecfb7224c7233fe7bb5f59f96de52f.pem";
        assert!(check_url(ok, UrlUse::SigningCert, None).is_ok());
        for bad in [
            "http://sns.us-west-2.amazonaws.com/x.pem",
            "https://sns.us-west-2.amazonaws.com/x.crt",
            "https://sns.us-west-2.amazonaws.com:8443/x.pem",
            "https://user:pw@sns.us-west-2.amazonaws.com/x.pem",
            "https://sns.us-west-2.amazonaws.com.evil.org/x.pem",
            "https://127.0.0.1:8443/x.pem",
            "not a url",
        ] {
            let e = check_url(bad, UrlUse::SigningCert, None).unwrap_err();
            assert_eq!(e.status(), 403, "{bad}");
        }
        assert!(
            check_url(
                "https://127.0.0.1:8443/x.pem",
                UrlUse::SigningCert,
                Some("127.0.0.1:8443")
            )
            .is_ok()
        );
        assert!(
            check_url(
                "https://127.0.0.1:9999/x.pem",
                UrlUse::SigningCert,
                Some("127.0.0.1:8443")
            )
            .is_err()
        );
        let sub = "https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&TopicArn=arn:aws:sns:us-west-2:123456789012:MyTopic&Token=1";
        assert!(check_url(sub, UrlUse::Subscribe, None).is_ok());
        assert!(
            check_url(
                "https://sns.us-west-2.amazonaws.com/?Action=Unsubscribe",
                UrlUse::Subscribe,
                None
            )
            .is_err()
        );
        assert!(
            check_url(
                "http://crt.r2m02.amazontrust.com/r2m02.cer",
                UrlUse::Issuer,
                None
            )
            .is_ok()
        );
        assert!(check_url("http://crt.evil.org/r2m02.cer", UrlUse::Issuer, None).is_err());
    }

    #[test]
    fn allowed_topics() {
        let cfg = SnsConfig {
            topic_arns: vec!["arn:aws:sns:us-west-2:123456789012:MyTopic".into()],
            ..SnsConfig::default()
        };
        assert!(cfg.allows("arn:aws:sns:us-west-2:123456789012:MyTopic"));
        assert!(!cfg.allows("arn:aws:sns:us-west-2:123456789012:Other"));
        assert!(!SnsConfig::default().allows("arn:aws:sns:us-west-2:123456789012:MyTopic"));
    }
}
