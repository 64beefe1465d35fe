//! AWS Signature Version 4, verified: what the AWS JSON door checks when `server.aws_credentials` is
//! set, so that the access key id (which travels in clear in every request) is not a credential by
//! itself.
//!
//! The signature is recomputed from the request as received, as AWS does (IAM User Guide, "Create a
//! signed AWS API request"): the canonical request (method; the path, each segment URI-encoded, as
//! AWS encodes it for every service but S3; the query parameters URI-encoded and sorted; every header
//! the client lists in `SignedHeaders`, lower-cased, values trimmed and inner runs of spaces folded,
//! repeated headers joined with commas; that list; the SHA-256 of the body as received), the string to
//! sign (`AWS4-HMAC-SHA256`, the request time, the credential scope `DATE/REGION/events/aws4_request`,
//! the hash of the canonical request), and the signing key derived from the secret by HMAC-SHA256 over
//! date, region, service and `aws4_request`. The hashing is the `sha2` and `hmac` crates'; the
//! signatures are compared in constant time (`subtle`).
//!
//! Refused, in AWS's words and shape (`__type` and `message`): no signature
//! (`MissingAuthenticationTokenException`), a malformed one (`IncompleteSignatureException`), an
//! unknown access key id (`UnrecognizedClientException`), a signature that does not match, a scope for
//! another service, or a request time more than 15 minutes from the daemon's clock
//! (`InvalidSignatureException`). Secrets never appear in a message or a log.

use std::collections::HashMap;
use std::fmt::Write as _;

use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::Secret;

/// The signing algorithm this door verifies.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The service a credential must be scoped to.
pub const SERVICE: &str = "events";
/// How far a request's time may be from the daemon's clock, either way.
pub const WINDOW_MS: i64 = 15 * 60 * 1000;

/// The access keys whose signatures are accepted: access key id → secret access key.
#[derive(Debug, Default)]
pub struct Credentials(HashMap<String, Secret>);

impl Credentials {
    pub fn new(keys: impl IntoIterator<Item = (String, Secret)>) -> Credentials {
        Credentials(keys.into_iter().collect())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Why a request's signature was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SigError {
    /// No `Authorization` header (or not SigV4).
    Missing,
    /// The header is not a complete SigV4 authorization: which parts are missing or malformed.
    Incomplete(String),
    /// The access key id is not one of `server.aws_credentials`.
    UnknownKey,
    /// The credential is scoped to another service.
    WrongService,
    /// The signature does not match.
    Mismatch,
    /// The request time is more than 15 minutes before the clock (`(request, now - 15 min, now)`).
    Expired(String, String, String),
    /// The request time is more than 15 minutes after the clock (`(request, now + 15 min, now)`).
    NotYetCurrent(String, String, String),
}

impl SigError {
    /// The HTTP status, `__type` and message AWS answers with.
    pub fn aws(&self) -> (StatusCode, &'static str, String) {
        const MISMATCH: &str = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";
        match self {
            SigError::Missing => (
                StatusCode::FORBIDDEN,
                "MissingAuthenticationTokenException",
                "Missing Authentication Token".into(),
            ),
            SigError::Incomplete(why) => (
                StatusCode::BAD_REQUEST,
                "IncompleteSignatureException",
                why.clone(),
            ),
            SigError::UnknownKey => (
                StatusCode::BAD_REQUEST,
                "UnrecognizedClientException",
                "The security token included in the request is invalid.".into(),
            ),
            SigError::WrongService => (
                StatusCode::BAD_REQUEST,
                "InvalidSignatureException",
                format!("Credential should be scoped to correct service: '{SERVICE}'. "),
            ),
            SigError::Mismatch => (
                StatusCode::BAD_REQUEST,
                "InvalidSignatureException",
                MISMATCH.into(),
            ),
            SigError::Expired(at, bound, now) => (
                StatusCode::BAD_REQUEST,
                "InvalidSignatureException",
                format!("Signature expired: {at} is now earlier than {bound} ({now} - 15 min.)"),
            ),
            SigError::NotYetCurrent(at, bound, now) => (
                StatusCode::BAD_REQUEST,
                "InvalidSignatureException",
                format!(
                    "Signature not yet current: {at} is still later than {bound} ({now} + 15 min.)"
                ),
            ),
        }
    }
}

/// The parts of a SigV4 `Authorization` header.
#[derive(Debug, PartialEq, Eq)]
struct Authorization<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

fn parse_authorization(header: &str) -> Result<Authorization<'_>, SigError> {
    let rest = header
        .strip_prefix(ALGORITHM)
        .and_then(|r| r.strip_prefix(' '))
        .ok_or(SigError::Missing)?;
    let mut parts: HashMap<&str, &str> = HashMap::new();
    for p in rest.split(',') {
        if let Some((k, v)) = p.trim().split_once('=') {
            parts.insert(k.trim(), v.trim());
        }
    }
    let mut missing = String::new();
    for k in ["Credential", "Signature", "SignedHeaders"] {
        if parts.get(k).is_none_or(|v| v.is_empty()) {
            let _ = write!(missing, "Authorization header requires '{k}' parameter. ");
        }
    }
    if !missing.is_empty() {
        return Err(SigError::Incomplete(missing.trim_end().to_owned()));
    }
    let cred: Vec<&str> = parts["Credential"].split('/').collect();
    let [access_key_id, date, region, service, "aws4_request"] = cred[..] else {
        return Err(SigError::Incomplete(
            "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term".into(),
        ));
    };
    let signature = parts["Signature"];
    if signature.len() != 64 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(SigError::Incomplete(
            "Signature must be 64 hexadecimal characters.".into(),
        ));
    }
    Ok(Authorization {
        access_key_id,
        date,
        region,
        service,
        signed_headers: parts["SignedHeaders"].split(';').collect(),
        signature,
    })
}

/// URI-encoding as SigV4 wants it: every byte but `A-Za-z0-9-_.~` as `%XX` (upper case); `/` too
/// unless `keep_slash`.
fn uri_encode(s: &[u8], keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// `%XX` sequences decoded (malformed ones kept as they are).
fn percent_decode(s: &str) -> Vec<u8> {
    percent_encoding::percent_decode_str(s).collect()
}

/// The canonical URI of a path as it arrived on the wire (already percent-encoded): URI-encoded once
/// more, `/` kept, as AWS does for every service but S3 (and as the SDKs sign it: botocore quotes the
/// request's encoded path). An empty path is `/`.
pub fn canonical_uri(path: &str) -> String {
    if path.is_empty() {
        return "/".into();
    }
    uri_encode(path.as_bytes(), true)
}

/// The canonical query string: each parameter decoded and URI-encoded, sorted by name, then value;
/// a parameter without `=` has an empty value.
pub fn canonical_query(query: &str) -> String {
    let mut params: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                uri_encode(&percent_decode(k), false),
                uri_encode(&percent_decode(v), false),
            )
        })
        .collect();
    params.sort();
    params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// A header value in canonical form: trimmed, inner runs of spaces and tabs folded to one space.
fn canonical_value(v: &[u8]) -> String {
    String::from_utf8_lossy(v)
        .split([' ', '\t'])
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The canonical request, from its parts. `signed` lists the lower-case header names, sorted.
pub fn canonical_request(
    method: &str,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    signed: &[&str],
    payload_hash: &str,
) -> Result<String, SigError> {
    let mut creq = format!(
        "{method}\n{}\n{}\n",
        canonical_uri(path),
        canonical_query(query)
    );
    for name in signed {
        let values: Vec<String> = headers
            .get_all(*name)
            .iter()
            .map(|v| canonical_value(v.as_bytes()))
            .collect();
        if values.is_empty() {
            return Err(SigError::Mismatch); // a signed header the request does not carry
        }
        let _ = writeln!(creq, "{name}:{}", values.join(","));
    }
    let _ = write!(creq, "\n{}\n{payload_hash}", signed.join(";"));
    Ok(creq)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// SHA-256, lower-case hex.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// The signature (hex) of `canonical_request` made at `amz_date` with `secret` in the scope
/// `date/region/service`.
pub fn signature(
    secret: &str,
    amz_date: &str,
    date: &str,
    region: &str,
    service: &str,
    canonical_request: &str,
) -> String {
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    );
    let k = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k = hmac(&k, region.as_bytes());
    let k = hmac(&k, service.as_bytes());
    let k = hmac(&k, b"aws4_request");
    hex(&hmac(&k, to_sign.as_bytes()))
}

/// `YYYYMMDDTHHMMSSZ` → milliseconds since the Unix epoch.
fn parse_amz_date(s: &str) -> Option<i64> {
    if s.len() != 16 || s.as_bytes()[8] != b'T' || !s.ends_with('Z') {
        return None;
    }
    let rfc = format!(
        "{}-{}-{}T{}:{}:{}Z",
        s.get(0..4)?,
        s.get(4..6)?,
        s.get(6..8)?,
        s.get(9..11)?,
        s.get(11..13)?,
        s.get(13..15)?
    );
    let t = humantime::parse_rfc3339(&rfc).ok()?;
    Some(t.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis() as i64)
}

/// Milliseconds since the Unix epoch → `YYYYMMDDTHHMMSSZ`.
fn format_amz_date(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(t)
        .to_string()
        .replace(['-', ':'], "")
}

/// Verifies the SigV4 signature of a request as received (`path` and `query` as on the wire) at
/// `now_ms`; the access key id that signed it.
pub fn verify(
    credentials: &Credentials,
    method: &str,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
    now_ms: i64,
) -> Result<String, SigError> {
    let header = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(SigError::Missing)?;
    let auth = parse_authorization(header.trim())?;
    let amz_date = headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            SigError::Incomplete(
                "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
                    .into(),
            )
        })?;
    let at = parse_amz_date(amz_date).ok_or_else(|| {
        SigError::Incomplete(format!(
            "X-Amz-Date must be in the ISO8601 basic format (YYYYMMDD'T'HHMMSS'Z'), got {}",
            crate::escape::line(amz_date, 40)
        ))
    })?;
    if !amz_date.starts_with(auth.date) || auth.date.len() != 8 {
        return Err(SigError::Incomplete(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP".into(),
        ));
    }
    let secret = credentials
        .0
        .get(auth.access_key_id)
        .ok_or(SigError::UnknownKey)?;
    if auth.service != SERVICE {
        return Err(SigError::WrongService);
    }
    if at < now_ms - WINDOW_MS {
        return Err(SigError::Expired(
            amz_date.to_owned(),
            format_amz_date(now_ms - WINDOW_MS),
            format_amz_date(now_ms),
        ));
    }
    if at > now_ms + WINDOW_MS {
        return Err(SigError::NotYetCurrent(
            amz_date.to_owned(),
            format_amz_date(now_ms + WINDOW_MS),
            format_amz_date(now_ms),
        ));
    }
    // The host (and the date) must be signed, or the signature could be replayed elsewhere.
    for needed in ["host", "x-amz-date"] {
        if !auth.signed_headers.contains(&needed) {
            return Err(SigError::Incomplete(format!(
                "'{needed}' must be a 'SignedHeader' in the AWS Authorization."
            )));
        }
    }
    let creq = canonical_request(
        method,
        path,
        query,
        headers,
        &auth.signed_headers,
        &sha256_hex(body),
    )?;
    let want = signature(
        secret.expose(),
        amz_date,
        auth.date,
        auth.region,
        auth.service,
        &creq,
    );
    if bool::from(want.as_bytes().ct_eq(auth.signature.as_bytes())) {
        Ok(auth.access_key_id.to_owned())
    } else {
        Err(SigError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The AWS SigV4 test suite's key and time (aws-sig-v4-test-suite, 2015-08-30).
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const AMZ_DATE: &str = "20150830T123600Z";

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn suite(method: &str, path: &str, query: &str, extra: &[(&str, &str)], body: &[u8]) -> String {
        let mut pairs = vec![("host", "example.amazonaws.com"), ("x-amz-date", AMZ_DATE)];
        pairs.extend_from_slice(extra);
        let h = headers(&pairs);
        let mut signed: Vec<&str> = pairs.iter().map(|(k, _)| *k).collect();
        signed.sort();
        signed.dedup();
        let creq = canonical_request(method, path, query, &h, &signed, &sha256_hex(body)).unwrap();
        signature(SECRET, AMZ_DATE, "20150830", "us-east-1", "service", &creq)
    }

    #[test]
    fn matches_the_aws_test_suite() {
        // get-vanilla
        assert_eq!(
            suite("GET", "/", "", &[], b""),
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
        // get-vanilla-query-order-key-case: parameters sorted before signing.
        assert_eq!(
            suite("GET", "/", "Param2=value2&Param1=value1", &[], b""),
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
        );
        // get-utf8: the suite's canonical URI is `/%E1%88%B4` (encoded once).
        let creq = canonical_request(
            "GET",
            "/%E1%88%B4",
            "",
            &headers(&[("host", "example.amazonaws.com"), ("x-amz-date", AMZ_DATE)]),
            &["host", "x-amz-date"],
            &sha256_hex(b""),
        )
        .unwrap();
        // Every service but S3 encodes it once more (what the SDKs sign): check the suite's form too.
        let suite_form = creq.replace("/%25E1%2588%25B4", "/%E1%88%B4");
        assert_eq!(
            signature(
                SECRET,
                AMZ_DATE,
                "20150830",
                "us-east-1",
                "service",
                &suite_form
            ),
            "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"
        );
        // post-x-www-form-urlencoded, with the body's hash signed.
        let body = b"Param1=value1";
        let h = sha256_hex(body);
        assert_eq!(
            h,
            "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e"
        );
        assert_eq!(
            suite(
                "POST",
                "/",
                "",
                &[
                    ("content-type", "application/x-www-form-urlencoded"),
                    ("content-length", "13"),
                    ("x-amz-content-sha256", &h),
                ],
                body
            ),
            "d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b"
        );
    }

    #[test]
    fn canonical_parts() {
        assert_eq!(canonical_query("b=2&a=1&A=0&c"), "A=0&a=1&b=2&c=");
        assert_eq!(canonical_query("k=a%20b+c&k=%7e"), "k=a%20b%2Bc&k=~");
        assert_eq!(canonical_uri(""), "/");
        assert_eq!(canonical_uri("/a%20b/~x"), "/a%2520b/~x");
        assert_eq!(canonical_uri("/"), "/");
        assert_eq!(canonical_value(b"  a   b \t c  "), "a b c");
        assert_eq!(parse_amz_date(AMZ_DATE), Some(1_440_938_160_000));
        assert_eq!(format_amz_date(1_440_938_160_000), AMZ_DATE);
        assert_eq!(parse_amz_date("2015-08-30T12:36:00Z"), None);
    }

    /// A request signed as the SDKs sign one for this door, at `AMZ_DATE`.
    fn signed(secret: &str, key: &str, service: &str) -> (HeaderMap, Vec<u8>) {
        let body = br#"{"Entries":[]}"#.to_vec();
        let mut h = headers(&[
            ("host", "127.0.0.1:8080"),
            ("x-amz-date", AMZ_DATE),
            ("x-amz-target", "AWSEvents.PutEvents"),
            ("content-type", "application/x-amz-json-1.1"),
        ]);
        let list = ["content-type", "host", "x-amz-date", "x-amz-target"];
        let creq = canonical_request("POST", "/", "", &h, &list, &sha256_hex(&body)).unwrap();
        let sig = signature(secret, AMZ_DATE, "20150830", "us-east-1", service, &creq);
        h.insert(
            axum::http::header::AUTHORIZATION,
            format!("{ALGORITHM} Credential={key}/20150830/us-east-1/{service}/aws4_request, SignedHeaders={}, Signature={sig}", list.join(";"))
                .parse()
                .unwrap(),
        );
        (h, body)
    }

    #[test]
    fn verification_and_aws_errors() {
        let creds = Credentials::new([("AKIDEXAMPLE".to_owned(), Secret::new(SECRET))]);
        let now = parse_amz_date(AMZ_DATE).unwrap() + 60_000;
        let check =
            |(h, b): (HeaderMap, Vec<u8>), now: i64| verify(&creds, "POST", "/", "", &h, &b, now);
        assert_eq!(
            check(signed(SECRET, "AKIDEXAMPLE", "events"), now).as_deref(),
            Ok("AKIDEXAMPLE")
        );
        assert_eq!(
            check(signed("wrong", "AKIDEXAMPLE", "events"), now),
            Err(SigError::Mismatch)
        );
        assert_eq!(
            check(signed(SECRET, "AKIDOTHER", "events"), now),
            Err(SigError::UnknownKey)
        );
        assert_eq!(
            check(signed(SECRET, "AKIDEXAMPLE", "s3"), now),
            Err(SigError::WrongService)
        );
        // The body is signed: a changed body does not verify.
        let (h, mut b) = signed(SECRET, "AKIDEXAMPLE", "events");
        b.push(b' ');
        assert_eq!(
            verify(&creds, "POST", "/", "", &h, &b, now),
            Err(SigError::Mismatch)
        );
        // 15 minutes either way.
        let at = parse_amz_date(AMZ_DATE).unwrap();
        assert!(check(signed(SECRET, "AKIDEXAMPLE", "events"), at + WINDOW_MS).is_ok());
        let late = check(
            signed(SECRET, "AKIDEXAMPLE", "events"),
            at + WINDOW_MS + 1000,
        )
        .unwrap_err();
        assert_eq!(
            late.aws().2,
            "Signature expired: 20150830T123600Z is now earlier than 20150830T123601Z (20150830T125101Z - 15 min.)"
        );
        let early = check(
            signed(SECRET, "AKIDEXAMPLE", "events"),
            at - WINDOW_MS - 1000,
        )
        .unwrap_err();
        assert!(matches!(early, SigError::NotYetCurrent(..)), "{early:?}");
        assert_eq!(SigError::UnknownKey.aws().1, "UnrecognizedClientException");
        assert_eq!(SigError::Mismatch.aws().1, "InvalidSignatureException");
        // Malformed headers.
        let mut h = HeaderMap::new();
        assert_eq!(
            verify(&creds, "POST", "/", "", &h, b"", now),
            Err(SigError::Missing)
        );
        h.insert(
            axum::http::header::AUTHORIZATION,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/events/aws4_request"
                .parse()
                .unwrap(),
        );
        let e = verify(&creds, "POST", "/", "", &h, b"", now).unwrap_err();
        assert!(
            matches!(&e, SigError::Incomplete(m) if m.contains("'Signature'") && m.contains("'SignedHeaders'")),
            "{e:?}"
        );
        for (_, t, m) in [
            SigError::Mismatch.aws(),
            late.aws(),
            SigError::UnknownKey.aws(),
        ] {
            assert!(!m.contains(SECRET) && !t.is_empty());
        }
    }
}
