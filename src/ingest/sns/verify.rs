//! Verifying the signature of an SNS message, as AWS's "Verifying the signatures of Amazon SNS
//! messages" asks: the signing certificate is fetched over HTTPS only from `SigningCertURL`s of AWS's
//! form ([`super::check_url`]), must chain to a trusted root, and its RSA key must verify `Signature`
//! over the message's canonical string — SHA1withRSA for SignatureVersion 1, SHA256withRSA for 2.
//!
//! Promises:
//! - the chain is checked by rustls-webpki against the public roots of `webpki-roots` (and, only with
//!   the test-only `[sns] test_ca_file`, the test's CA), at the current time, for TLS server use (the
//!   extended key usage, when the certificate has one, must allow it);
//! - SNS serves the signing certificate alone, without its intermediate; when the chain stops at an
//!   unknown issuer, the certificate's Authority Information Access "CA Issuers" URL is followed — only
//!   to `*.amazontrust.com` (or the test host) — and the issuer it names must itself chain to a root,
//!   so nothing fetched is trusted for what it says;
//! - verified certificates are cached per URL for `[sns] cert_cache_ttl` (at most [`MAX_CACHED`]); the
//!   signature itself is checked on every message;
//! - RSA arithmetic and hashing are aws-lc-rs's (through rustls-webpki); SHA-1, which webpki does not
//!   offer for signatures, is aws-lc-rs's legacy PKCS#1 v1.5 verifier ([`RSA_PKCS1_SHA1`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{
    AlgorithmIdentifier, CertificateDer, InvalidSignature, SignatureVerificationAlgorithm,
    TrustAnchor, UnixTime, alg_id,
};
use webpki::{EndEntityCert, KeyUsage};

use super::{Message, SnsConfig, SnsError, UrlUse, check_url};
use crate::config::ConfigError;

/// Certificates kept at most (SNS uses one per region at a time).
pub const MAX_CACHED: usize = 64;
/// Largest certificate document fetched.
const MAX_CERT_BYTES: usize = 64 * 1024;
/// Issuer certificates followed at most, one after the other.
const MAX_ISSUERS: usize = 3;

/// `sha1WithRSAEncryption` with NULL parameters (the AlgorithmIdentifier's content).
const SHA1_WITH_RSA: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05, 0x05, 0x00,
];

/// RSA PKCS#1 v1.5 with SHA-1 (keys of 2048–8192 bits), SNS's SignatureVersion 1, verified by aws-lc-rs.
#[derive(Debug)]
pub struct RsaPkcs1Sha1;

/// The SignatureVersion 1 algorithm.
pub static RSA_PKCS1_SHA1: &dyn SignatureVerificationAlgorithm = &RsaPkcs1Sha1;

impl SignatureVerificationAlgorithm for RsaPkcs1Sha1 {
    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature> {
        aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
            public_key,
        )
        .verify(message, signature)
        .map_err(|_| InvalidSignature)
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::RSA_ENCRYPTION
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        AlgorithmIdentifier::from_slice(SHA1_WITH_RSA)
    }
}

/// The algorithm of a SignatureVersion.
pub fn algorithm(version: &str) -> Result<&'static dyn SignatureVerificationAlgorithm, SnsError> {
    match version {
        "1" => Ok(RSA_PKCS1_SHA1),
        "2" => Ok(webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA256),
        other => Err(SnsError::SignatureVersion(other.chars().take(20).collect())),
    }
}

/// Whether `leaf` (with `intermediates`) chains to one of `anchors` at `now`.
pub fn check_chain(
    leaf: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    anchors: &[TrustAnchor<'_>],
    now: UnixTime,
) -> Result<(), webpki::Error> {
    let ee = EndEntityCert::try_from(leaf)?;
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        anchors,
        intermediates,
        now,
        KeyUsage::server_auth(),
        None,
        None,
    )
    .map(|_| ())
}

/// Whether `signature` is `leaf`'s key's signature of `data` with `alg`.
pub fn check_signature(
    leaf: &CertificateDer<'_>,
    alg: &dyn SignatureVerificationAlgorithm,
    data: &[u8],
    signature: &[u8],
) -> Result<(), webpki::Error> {
    EndEntityCert::try_from(leaf)?.verify_signature(alg, data, signature)
}

/// The "CA Issuers" URLs of a certificate's Authority Information Access extension.
pub fn issuer_urls(cert: &CertificateDer<'_>) -> Vec<String> {
    use x509_parser::extensions::{GeneralName, ParsedExtension};
    let Ok((_, c)) = x509_parser::parse_x509_certificate(cert.as_ref()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for ext in c.extensions() {
        if let ParsedExtension::AuthorityInfoAccess(aia) = ext.parsed_extension() {
            for d in aia.iter() {
                if d.access_method
                    == x509_parser::oid_registry::OID_PKIX_ACCESS_DESCRIPTOR_CA_ISSUERS
                    && let GeneralName::URI(u) = d.access_location
                {
                    out.push(u.to_owned());
                }
            }
        }
    }
    out
}

/// Certificates in a fetched document: PEM (any number), else one DER certificate.
fn certificates(body: &[u8]) -> Vec<CertificateDer<'static>> {
    let pem: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(body)
        .filter_map(Result::ok)
        .collect();
    if !pem.is_empty() || body.starts_with(b"-----") {
        return pem;
    }
    vec![CertificateDer::from(body.to_vec())]
}

struct Cached {
    leaf: CertificateDer<'static>,
    at: Instant,
}

/// Fetches, checks and caches signing certificates; verifies messages.
pub struct Verifier {
    client: reqwest::Client,
    anchors: Vec<TrustAnchor<'static>>,
    test_host: Option<String>,
    ttl: Duration,
    cache: Mutex<HashMap<String, Cached>>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("anchors", &self.anchors.len())
            .field("test_host", &self.test_host)
            .finish_non_exhaustive()
    }
}

fn invalid(key: &str, message: impl std::fmt::Display) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        message: message.to_string(),
    }
}

impl Verifier {
    /// The public roots, plus the test CA of `[sns] test_ca_file` if set.
    pub fn new(cfg: &SnsConfig) -> Result<Verifier, ConfigError> {
        let mut anchors: Vec<TrustAnchor<'static>> = webpki_roots::TLS_SERVER_ROOTS.to_vec();
        let mut client = reqwest::Client::builder()
            .timeout(cfg.fetch_timeout)
            .connect_timeout(cfg.fetch_timeout)
            // A redirect could lead anywhere: the URL checked is the URL fetched.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("scanbridge/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &cfg.test_ca_file {
            let key = "sns.test_ca_file";
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| invalid(key, format!("{}: {e}", path.display())))?
                .collect::<Result<_, _>>()
                .map_err(|e| invalid(key, format!("{}: {e}", path.display())))?;
            if certs.is_empty() {
                return Err(invalid(
                    key,
                    format!("{}: no PEM certificate", path.display()),
                ));
            }
            for c in &certs {
                let anchor = webpki::anchor_from_trusted_cert(c)
                    .map_err(|e| invalid(key, format!("{}: {e:?}", path.display())))?;
                anchors.push(anchor.to_owned());
                client = client.add_root_certificate(
                    reqwest::Certificate::from_der(c.as_ref())
                        .map_err(|e| invalid(key, format!("{}: {e}", path.display())))?,
                );
            }
            tracing::warn!(file = %path.display(), "TEST-ONLY setting sns.test_ca_file is set: SNS signing certificates from this CA are trusted");
        }
        if let Some(h) = &cfg.test_cert_host {
            tracing::warn!(host = %h, "TEST-ONLY setting sns.test_cert_host is set: SNS certificates and confirmations are fetched from this host");
        }
        let client = client
            .build()
            .map_err(|e| invalid("sns", format!("cannot build the HTTP client: {e}")))?;
        Ok(Verifier {
            client,
            anchors,
            test_host: cfg.test_cert_host.clone(),
            ttl: cfg.cert_cache_ttl,
            cache: Mutex::default(),
        })
    }

    /// Verifies `m`'s signature (fetching its certificate when it is not cached).
    pub async fn verify(&self, m: &Message) -> Result<(), SnsError> {
        let alg = algorithm(&m.signature_version)?;
        let bad = || SnsError::BadSignature(m.signature_version.clone());
        let signature = base64::engine::general_purpose::STANDARD
            .decode(m.signature.trim())
            .map_err(|_| bad())?;
        let leaf = self.signing_certificate(&m.signing_cert_url).await?;
        check_signature(&leaf, alg, m.string_to_sign().as_bytes(), &signature).map_err(|_| bad())
    }

    /// Visits a `SubscribeURL` (which must be of AWS's form), confirming the subscription.
    pub async fn confirm(&self, subscribe_url: &str) -> Result<(), SnsError> {
        let u = check_url(subscribe_url, UrlUse::Subscribe, self.test_host.as_deref())?;
        let resp = self
            .client
            .get(u)
            .send()
            .await
            .map_err(|e| SnsError::Unavailable(format!("SubscribeURL: {}", without_url(&e))))?;
        if !resp.status().is_success() {
            return Err(SnsError::Unavailable(format!(
                "SubscribeURL answered HTTP {}",
                resp.status()
            )));
        }
        Ok(())
    }

    async fn fetch(&self, url: reqwest::Url, what: &str) -> Result<Vec<u8>, SnsError> {
        let resp = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| SnsError::Unavailable(format!("{what}: {}", without_url(&e))))?;
        let status = resp.status();
        if status.is_server_error() {
            return Err(SnsError::Unavailable(format!("{what}: HTTP {status}")));
        }
        if !status.is_success() {
            return Err(SnsError::Certificate(format!("{what}: HTTP {status}")));
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| SnsError::Unavailable(format!("{what}: {}", without_url(&e))))?;
        if body.len() > MAX_CERT_BYTES {
            return Err(SnsError::Certificate(format!(
                "{what}: over {MAX_CERT_BYTES} bytes"
            )));
        }
        Ok(body.to_vec())
    }

    async fn signing_certificate(&self, url: &str) -> Result<CertificateDer<'static>, SnsError> {
        let checked = check_url(url, UrlUse::SigningCert, self.test_host.as_deref())?;
        {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(c) = cache.get(url).filter(|c| c.at.elapsed() < self.ttl) {
                return Ok(c.leaf.clone());
            }
        }
        let body = self.fetch(checked, "SigningCertURL").await?;
        let mut certs = certificates(&body);
        if certs.is_empty() {
            return Err(SnsError::Certificate(
                "no certificate at SigningCertURL".into(),
            ));
        }
        let leaf = certs.remove(0);
        self.chain(&leaf, certs).await?;
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= MAX_CACHED {
            let oldest = cache
                .iter()
                .min_by_key(|(_, c)| c.at)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                cache.remove(&k);
            }
        }
        cache.insert(
            url.to_owned(),
            Cached {
                leaf: leaf.clone(),
                at: Instant::now(),
            },
        );
        Ok(leaf)
    }

    /// Checks the chain, following issuer URLs while the issuer is unknown.
    async fn chain(
        &self,
        leaf: &CertificateDer<'static>,
        mut intermediates: Vec<CertificateDer<'static>>,
    ) -> Result<(), SnsError> {
        for round in 0..=MAX_ISSUERS {
            match check_chain(leaf, &intermediates, &self.anchors, UnixTime::now()) {
                Ok(()) => return Ok(()),
                Err(webpki::Error::UnknownIssuer) if round < MAX_ISSUERS => {
                    let last = intermediates.last().unwrap_or(leaf);
                    let Some(url) = issuer_urls(last)
                        .into_iter()
                        .find(|u| check_url(u, UrlUse::Issuer, self.test_host.as_deref()).is_ok())
                    else {
                        return Err(SnsError::Certificate(
                            "it does not chain to a trusted root, and names no issuer certificate on an Amazon Trust Services host".into(),
                        ));
                    };
                    let u = check_url(&url, UrlUse::Issuer, self.test_host.as_deref())?;
                    let body = self.fetch(u, "issuer certificate").await?;
                    let fetched = certificates(&body);
                    if fetched.is_empty() {
                        return Err(SnsError::Certificate(format!(
                            "no certificate at the issuer URL {url}"
                        )));
                    }
                    intermediates.extend(fetched);
                }
                Err(e) => {
                    return Err(SnsError::Certificate(format!(
                        "it does not chain to a trusted root: {e:?}"
                    )));
                }
            }
        }
        Err(SnsError::Certificate("too many issuer certificates".into()))
    }
}

/// A reqwest error's text without its URL (URLs are in the message already; keep errors short).
fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    match std::error::Error::source(e) {
        Some(s) => format!("{kind}: {s}"),
        None => kind.to_owned(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, CustomExtension, DnType, IsCa, Issuer, KeyPair,
        KeyUsagePurpose,
    };
    use rsa::pkcs8::DecodePrivateKey;
    use rsa::signature::{SignatureEncoding, Signer};

    /// A test PKI: root → intermediate → RSA signing leaf (with an AIA URL to the intermediate).
    pub(crate) struct Pki {
        pub root: CertificateDer<'static>,
        pub intermediate: CertificateDer<'static>,
        pub leaf: CertificateDer<'static>,
        pub leaf_key: KeyPair,
    }

    /// DER of an AuthorityInfoAccess extension value with one caIssuers URI (short lengths only).
    pub(crate) fn aia(uri: &str) -> Vec<u8> {
        assert!(uri.len() < 100);
        let oid = [0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x02];
        let mut name = vec![0x86, uri.len() as u8];
        name.extend_from_slice(uri.as_bytes());
        let mut desc = vec![0x30, (oid.len() + name.len()) as u8];
        desc.extend_from_slice(&oid);
        desc.extend_from_slice(&name);
        let mut seq = vec![0x30, desc.len() as u8];
        seq.extend_from_slice(&desc);
        seq
    }

    fn ca_params(cn: &str) -> CertificateParams {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        p
    }

    impl Pki {
        pub(crate) fn new(issuer_url: Option<&str>) -> Pki {
            let root_key = KeyPair::generate().unwrap();
            let root_cert = ca_params("scanbridge test root")
                .self_signed(&root_key)
                .unwrap();
            let root_issuer = Issuer::new(ca_params("scanbridge test root"), root_key);
            let int_key = KeyPair::generate().unwrap();
            let int_cert = ca_params("scanbridge test intermediate")
                .signed_by(&int_key, &root_issuer)
                .unwrap();
            let int_issuer = Issuer::new(ca_params("scanbridge test intermediate"), int_key);
            let leaf_key = KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
            let mut p = CertificateParams::new(vec!["sns.amazonaws.com".to_owned()]).unwrap();
            p.distinguished_name
                .push(DnType::CommonName, "sns.amazonaws.com");
            if let Some(u) = issuer_url {
                p.custom_extensions.push(CustomExtension::from_oid_content(
                    &[1, 3, 6, 1, 5, 5, 7, 1, 1],
                    aia(u),
                ));
            }
            let leaf = p.signed_by(&leaf_key, &int_issuer).unwrap();
            Pki {
                root: root_cert.der().clone(),
                intermediate: int_cert.der().clone(),
                leaf: leaf.der().clone(),
                leaf_key,
            }
        }

        /// Signs `data` as SNS does for `version` ("1": SHA1withRSA, "2": SHA256withRSA), base64.
        pub(crate) fn sign(&self, version: &str, data: &str) -> String {
            let key = rsa::RsaPrivateKey::from_pkcs8_der(&self.leaf_key.serialize_der()).unwrap();
            let sig = match version {
                "1" => rsa::pkcs1v15::SigningKey::<sha1::Sha1>::new(key)
                    .sign(data.as_bytes())
                    .to_vec(),
                _ => rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(key)
                    .sign(data.as_bytes())
                    .to_vec(),
            };
            base64::engine::general_purpose::STANDARD.encode(sig)
        }

        fn anchors(&self) -> Vec<TrustAnchor<'static>> {
            vec![
                webpki::anchor_from_trusted_cert(&self.root)
                    .unwrap()
                    .to_owned(),
            ]
        }
    }

    #[test]
    fn both_signature_versions_verify_and_tampering_fails() {
        let pki = Pki::new(None);
        let data =
            "Message\nhello\nMessageId\nm1\nTimestamp\nt\nTopicArn\narn\nType\nNotification\n";
        for v in ["1", "2"] {
            let sig = base64::engine::general_purpose::STANDARD
                .decode(pki.sign(v, data))
                .unwrap();
            let alg = algorithm(v).unwrap();
            check_signature(&pki.leaf, alg, data.as_bytes(), &sig).unwrap();
            assert!(
                check_signature(
                    &pki.leaf,
                    alg,
                    data.replace("hello", "hullo").as_bytes(),
                    &sig
                )
                .is_err()
            );
            let other = algorithm(if v == "1" { "2" } else { "1" }).unwrap();
            assert!(
                check_signature(&pki.leaf, other, data.as_bytes(), &sig).is_err(),
                "v{v} is not the other version"
            );
        }
        assert!(matches!(algorithm("3"), Err(SnsError::SignatureVersion(_))));
    }

    #[test]
    fn the_chain_must_reach_a_trusted_root() {
        let pki = Pki::new(None);
        let now = UnixTime::now();
        check_chain(
            &pki.leaf,
            std::slice::from_ref(&pki.intermediate),
            &pki.anchors(),
            now,
        )
        .unwrap();
        assert_eq!(
            check_chain(&pki.leaf, &[], &pki.anchors(), now),
            Err(webpki::Error::UnknownIssuer),
            "without its intermediate"
        );
        let stranger = Pki::new(None);
        assert!(
            check_chain(
                &pki.leaf,
                std::slice::from_ref(&pki.intermediate),
                &stranger.anchors(),
                now
            )
            .is_err(),
            "another CA"
        );
        assert!(
            check_chain(
                &pki.leaf,
                std::slice::from_ref(&pki.intermediate),
                webpki_roots::TLS_SERVER_ROOTS,
                now
            )
            .is_err(),
            "not a public root"
        );
    }

    #[test]
    fn issuer_urls_come_from_authority_information_access() {
        let pki = Pki::new(Some("http://crt.r2m02.amazontrust.com/r2m02.cer"));
        assert_eq!(
            issuer_urls(&pki.leaf),
            ["http://crt.r2m02.amazontrust.com/r2m02.cer"]
        );
        assert!(issuer_urls(&Pki::new(None).leaf).is_empty());
        let pem = format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            base64::engine::general_purpose::STANDARD.encode(&pki.leaf)
        );
        assert_eq!(certificates(pem.as_bytes()), vec![pki.leaf.clone()]);
        assert_eq!(
            certificates(pki.leaf.as_ref()),
            vec![pki.leaf.clone()],
            "DER"
        );
    }
}
