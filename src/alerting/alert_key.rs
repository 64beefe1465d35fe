//! The alert key: the stable name of one problem over time, so that a pager groups repeated alerts
//! about it into one incident and a later scan can say it is fixed.
//!
//! - A scan (ECR Image Scan, Inspector2 Scan, a scanner report's Image Scan) or an ECR image action
//!   names an image: its key is the
//!   image reference `ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPOSITORY:TAG` with the event's first tag,
//!   or `...REPOSITORY@DIGEST` when the image is untagged (account and region are left out when the
//!   event lacks them or they are not AWS-shaped: `REPOSITORY:TAG`).
//! - An Inspector2 finding's key is its `findingArn`.
//! - Other events (generic events, digests) have no key.
//!
//! Besides the primary key, an image is also known by its other tags and its digest
//! ([`AlertKeys::all`]): a later scan of the same image resolves an alert opened under any of them.
//!
//! Pure: no I/O, never panics on any event.

use serde_json::Value;

use crate::scan::{Facts, Kind};

/// The keys one event is known by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertKeys {
    /// The key an alert about this event is opened under.
    pub primary: String,
    /// Every key of the event, the primary first (other tags, then the digest).
    pub all: Vec<String>,
}

/// Whether `account` is a 12-digit AWS account id and `region` looks like an AWS region.
pub fn aws_shaped(account: &str, region: &str) -> bool {
    account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && !region.is_empty()
        && region.len() <= 32
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The image references of an event's image, first tag first, then the digest; empty when the event
/// names no repository.
fn image_refs(facts: &Facts) -> Vec<String> {
    let Some(repo) = facts.repository.as_deref().filter(|r| !r.is_empty()) else {
        return Vec::new();
    };
    let base = match (facts.account.as_deref(), facts.region.as_deref()) {
        (Some(a), Some(r)) if aws_shaped(a, r) => format!("{a}.dkr.ecr.{r}.amazonaws.com/{repo}"),
        _ => repo.to_owned(),
    };
    let mut all: Vec<String> = facts
        .tags
        .iter()
        .filter(|t| !t.is_empty())
        .map(|t| format!("{base}:{t}"))
        .collect();
    all.extend(
        facts
            .digest
            .iter()
            .filter(|d| !d.is_empty())
            .map(|d| format!("{base}@{d}")),
    );
    all.dedup();
    all
}

/// The image an event is about, as an image reference (`ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPO:TAG`
/// or `...@DIGEST`), for scans, image actions and findings alike.
pub fn image_reference(facts: &Facts) -> Option<String> {
    image_refs(facts).into_iter().next()
}

/// The keys of `event`, or `None` for events that name no image or finding.
pub fn alert_keys(event: &Value) -> Option<AlertKeys> {
    let facts = Facts::of(event);
    match facts.kind {
        Kind::InspectorFinding => {
            let arn = event.pointer("/detail/findingArn")?.as_str()?;
            (!arn.is_empty()).then(|| AlertKeys {
                primary: arn.to_owned(),
                all: vec![arn.to_owned()],
            })
        }
        Kind::EcrScan | Kind::InspectorScan | Kind::ImageScan | Kind::EcrPush => {
            let all = image_refs(&facts);
            let primary = all.first()?.clone();
            Some(AlertKeys { primary, all })
        }
        Kind::Digest | Kind::Generic => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::sample;
    use serde_json::json;

    #[test]
    fn images_by_first_tag_then_digest_findings_by_arn() {
        let k = alert_keys(&sample("ecr-image-scan-critical.json")).unwrap();
        assert_eq!(
            k.primary,
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/payments/api:v2.14.0"
        );
        assert_eq!(k.all.len(), 3, "{k:?}");
        assert!(k.all[1].ends_with("payments/api:latest"));
        assert!(k.all[2].contains("payments/api@sha256:9c1d"));
        let clean = alert_keys(&sample("ecr-image-scan-clean.json")).unwrap();
        assert!(
            clean.primary.ends_with("tools/distroless-base@sha256:0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"),
            "untagged: the digest ({})",
            clean.primary
        );
        let scan = alert_keys(&sample("inspector2-scan.json")).unwrap();
        assert_eq!(
            scan.primary,
            "123456789012.dkr.ecr.us-east-2.amazonaws.com/payments/worker:release-2026.11",
            "the repository ARN gives account, region and name"
        );
        let f = alert_keys(&sample("inspector2-finding.json")).unwrap();
        assert_eq!(
            f.primary,
            "arn:aws:inspector2:us-east-2:123456789012:finding/0f9e8d7c6b5a49382716"
        );
        assert_eq!(
            alert_keys(&json!({"source": "ci", "detail-type": "Build", "detail": {}})),
            None
        );
    }

    #[test]
    fn odd_envelopes_fall_back_to_the_repository() {
        let e = json!({"source": "aws.ecr", "detail-type": "ECR Image Scan", "account": "evil.example/x",
            "region": "us-east-1", "detail": {"repository-name": "r", "image-tags": ["t"], "image-digest": "sha256:00"}});
        assert_eq!(alert_keys(&e).unwrap().primary, "r:t");
        let nothing = json!({"source": "aws.ecr", "detail-type": "ECR Image Scan", "detail": {"repository-name": "r"}});
        assert_eq!(alert_keys(&nothing), None, "no tag and no digest");
    }
}
