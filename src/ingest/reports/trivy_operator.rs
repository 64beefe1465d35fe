//! trivy-operator's VulnerabilityReport, as its webhook (`operator.webhookBroadcastURL`) posts it →
//! [`Scan`].
//!
//! The webhook posts the report object as JSON; `apiVersion` and `kind` are often absent (the operator's
//! cache strips them), and with `operator.webhookSendDeletedReports` the object comes wrapped as
//! `{"verb": "update"|"delete", "operatorObject": {...}}`. Recognised by a `report` object holding a
//! `vulnerabilities` key (an array, or null for a clean image), with `kind`, when present,
//! VulnerabilityReport or ClusterVulnerabilityReport. The operator sends every report kind to the same
//! URL, so its other reports (ConfigAuditReport, ExposedSecretReport, RbacAssessmentReport...: a
//! `report` without `vulnerabilities`) and deletions are recognised and skipped
//! ([`Parsed::Ignored`]) rather than refused.
//!
//! Findings: each `report.vulnerabilities[]` entry (`vulnerabilityID`, `severity`, `resource`,
//! `installedVersion`, `fixedVersion`, `title` else `description`, `primaryLink` else `links[0]`); the
//! counts come from these entries, not from `report.summary`. The image: `report.registry.server`,
//! `report.artifact.repository`, `tag` and `digest`. The time: `report.updateTimestamp`, else
//! `metadata.creationTimestamp`. `detail.kubernetes` says where the image runs: the workload's
//! `namespace`, `kind` and `name`, the `container` and the `report` name, from the operator's labels.

use serde_json::{Map, Value, json};

use super::report::{
    Finding, Format, Parsed, ReportError, Scan, clip, ecr_severity, non_empty, text,
};

const KINDS: [&str; 2] = ["VulnerabilityReport", "ClusterVulnerabilityReport"];

/// The report object, unwrapped from the `operatorObject` envelope if need be.
fn object(v: &Value) -> &Value {
    v.get("operatorObject").unwrap_or(v)
}

pub(super) fn recognise(v: &Value) -> Result<(), String> {
    let o = object(v);
    let Some(report) = o.get("report") else {
        return Err(match o.get("kind").and_then(Value::as_str) {
            Some(k) => format!("kind is {k:?} and there is no `report` object"),
            None => "no `report` object".into(),
        });
    };
    if !report.is_object() {
        return Err("`report` is not an object".into());
    }
    match o.get("kind") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(k)) if KINDS.contains(&k.as_str()) => Ok(()),
        // Another trivy-operator report kind: recognised, then skipped by `read`.
        Some(Value::String(_))
            if o.get("apiVersion")
                .and_then(Value::as_str)
                .is_some_and(|a| a.starts_with("aquasecurity.github.io/")) =>
        {
            Ok(())
        }
        Some(k) => Err(format!("kind is {k}")),
    }
}

pub(super) fn read(v: &Value) -> Result<Parsed, ReportError> {
    let o = object(v);
    let name = text(o.get("metadata").unwrap_or(&Value::Null), "name");
    let what = match &name {
        Some(n) => format!("trivy-operator report {n:?}"),
        None => "trivy-operator report".to_owned(),
    };
    if v.get("verb").and_then(Value::as_str) == Some("delete") {
        return Ok(Parsed::Ignored(format!(
            "{what} was deleted: nothing to alert on"
        )));
    }
    let kind = o.get("kind").and_then(Value::as_str);
    let report = &o["report"];
    if kind.is_some_and(|k| !KINDS.contains(&k)) || report.get("vulnerabilities").is_none() {
        return Ok(Parsed::Ignored(format!(
            "{what} is a {} without vulnerabilities: only VulnerabilityReports become events",
            kind.unwrap_or("report")
        )));
    }
    let mut findings = Vec::new();
    match &report["vulnerabilities"] {
        Value::Null => {}
        Value::Array(vulns) => {
            for (i, x) in vulns.iter().enumerate() {
                findings.push(finding(x).ok_or_else(|| ReportError::Invalid {
                    format: "trivy-operator",
                    field: format!("report.vulnerabilities[{i}]"),
                    why: "not an object with a vulnerabilityID string".into(),
                })?);
            }
        }
        _ => {
            return Err(ReportError::Invalid {
                format: "trivy-operator",
                field: "report.vulnerabilities".into(),
                why: "not an array".into(),
            });
        }
    }
    let artifact = report.get("artifact").unwrap_or(&Value::Null);
    let registry = non_empty(report.pointer("/registry/server").and_then(Value::as_str));
    let repository = text(artifact, "repository");
    let tag = text(artifact, "tag");
    let digest = text(artifact, "digest");
    let reference = repository.as_ref().map(|r| {
        let mut s = match &registry {
            Some(h) => format!("{h}/{r}"),
            None => r.clone(),
        };
        if let Some(t) = &tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &digest {
            s.push('@');
            s.push_str(d);
        }
        s
    });
    let image = super::report::Image {
        repository,
        registry,
        tags: tag.into_iter().collect(),
        digest,
        image_id: None,
        artifact: reference,
    };
    let meta = o.get("metadata").unwrap_or(&Value::Null);
    let labels = meta.get("labels").unwrap_or(&Value::Null);
    let label = |k: &str| text(labels, &format!("trivy-operator.{k}"));
    let mut k8s = Map::new();
    let place = [
        (
            "namespace",
            label("resource.namespace").or_else(|| text(meta, "namespace")),
        ),
        ("kind", label("resource.kind")),
        ("name", label("resource.name")),
        ("container", label("container.name")),
        ("report", name),
    ];
    for (key, value) in place {
        if let Some(value) = value {
            k8s.insert(key.into(), json!(clip(&value, 253)));
        }
    }
    let mut extra = Map::new();
    if !k8s.is_empty() {
        extra.insert("kubernetes".into(), Value::Object(k8s));
    }
    let s = report.get("scanner").unwrap_or(&Value::Null);
    let mut scanner = Map::new();
    scanner.insert(
        "name".into(),
        json!(text(s, "name").map_or_else(|| "Trivy".to_owned(), |n| clip(&n, 64))),
    );
    if let Some(version) = text(s, "version") {
        scanner.insert("version".into(), json!(clip(&version, 64)));
    }
    scanner.insert("via".into(), json!("trivy-operator"));
    let time = super::report::report_time(report.get("updateTimestamp").and_then(Value::as_str))
        .or_else(|| {
            super::report::report_time(meta.get("creationTimestamp").and_then(Value::as_str))
        });
    Ok(Parsed::Scan(Box::new(Scan {
        format: Format::TrivyOperator,
        id: String::new(),
        image,
        time,
        scanner,
        findings,
        extra,
    })))
}

fn finding(x: &Value) -> Option<Finding> {
    Some(Finding {
        id: text(x, "vulnerabilityID")?,
        severity: ecr_severity(x.get("severity").and_then(Value::as_str).unwrap_or("")),
        package: text(x, "resource"),
        installed_version: text(x, "installedVersion"),
        fixed_version: text(x, "fixedVersion"),
        title: text(x, "title").or_else(|| text(x, "description")),
        url: text(x, "primaryLink")
            .or_else(|| non_empty(x.pointer("/links/0").and_then(Value::as_str))),
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{fixture, rules};
    use super::super::{Parsed, parse};
    use super::*;

    /// The documented sample, as the webhook posts it (JSON of the object).
    pub(crate) fn documented_sample_json() -> Vec<u8> {
        let yaml = String::from_utf8(fixture("trivy-operator-vulnerabilityreport.yaml")).unwrap();
        let v: Value = serde_norway::from_str(&yaml).unwrap();
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn the_documented_report() {
        let Parsed::Scan(s) = parse(&documented_sample_json(), None).unwrap() else {
            panic!()
        };
        assert_eq!(s.format, Format::TrivyOperator);
        assert_eq!(s.image.repository.as_deref(), Some("library/nginx"));
        assert_eq!(s.image.registry.as_deref(), Some("index.docker.io"));
        assert_eq!(s.image.tags, ["1.16"]);
        assert_eq!(s.image.digest, None);
        assert_eq!(s.findings.len(), 2);
        let f = &s.findings[0];
        assert_eq!(
            (f.id.as_str(), f.severity, f.package.as_deref()),
            ("CVE-2019-20367", "CRITICAL", Some("libbsd0"))
        );
        assert_eq!(f.fixed_version.as_deref(), Some("0.9.1-2+deb10u1"));
        assert_eq!(f.title, None, "empty title and no description");
        assert_eq!(s.findings[1].fixed_version, None, "'' is no fix");
        let ev = super::super::event(&s, &rules());
        assert_eq!(ev["source"], "scanbridge.trivy-operator");
        assert_eq!(
            ev["detail"]["finding-severity-counts"],
            json!({"CRITICAL": 2})
        );
        assert_eq!(
            ev["detail"]["kubernetes"],
            json!({"namespace": "default", "kind": "ReplicaSet", "name": "nginx-6d4cf56db6",
                   "container": "nginx", "report": "replicaset-nginx-6d4cf56db6-nginx"})
        );
        assert_eq!(
            ev["resources"],
            json!(["index.docker.io/library/nginx:1.16"])
        );
        assert_eq!(
            ev["detail"]["findings"][0]["id"], "CVE-2019-20367",
            "the fixed one first"
        );
    }

    #[test]
    fn the_webhook_body_without_kind_counts_its_vulnerabilities() {
        let Parsed::Scan(s) = parse(&fixture("trivy-operator-webhook-body.json"), None).unwrap()
        else {
            panic!()
        };
        // summary says 0 CRITICAL; the one listed vulnerability is CRITICAL: the list wins.
        let ev = super::super::event(&s, &rules());
        assert_eq!(
            ev["detail"]["finding-severity-counts"],
            json!({"CRITICAL": 1})
        );
        assert!(
            ev["detail"].get("repository-name").is_none(),
            "empty repository"
        );
    }

    #[test]
    fn other_report_kinds_and_deletions_are_skipped_not_refused() {
        let secret = parse(&fixture("trivy-operator-webhook-secret-report.json"), None).unwrap();
        assert!(
            matches!(secret, Parsed::Ignored(ref why) if why.contains("without vulnerabilities")),
            "{secret:?}"
        );
        let audit = br#"{"apiVersion":"aquasecurity.github.io/v1alpha1","kind":"ConfigAuditReport","metadata":{"name":"x"},"report":{"checks":[]}}"#;
        assert!(matches!(parse(audit, None).unwrap(), Parsed::Ignored(_)));
        let doc: Value = serde_json::from_slice(&documented_sample_json()).unwrap();
        let deleted = json!({"verb": "delete", "operatorObject": doc});
        assert!(matches!(
            parse(deleted.to_string().as_bytes(), None).unwrap(),
            Parsed::Ignored(ref why) if why.contains("deleted")
        ));
        let updated = json!({"verb": "update", "operatorObject": doc});
        assert!(matches!(
            parse(updated.to_string().as_bytes(), None).unwrap(),
            Parsed::Scan(_)
        ));
        let foreign = br#"{"kind":"Deployment","report":{"vulnerabilities":[]}}"#;
        let err = parse(foreign, None).unwrap_err().to_string();
        assert!(
            err.contains("not trivy-operator: kind is \"Deployment\""),
            "{err}"
        );
    }
}
