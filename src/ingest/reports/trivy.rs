//! Trivy's JSON report (`trivy image --format json`, SchemaVersion 2) → [`Scan`].
//!
//! Recognised by `SchemaVersion` 2 and a string `ArtifactName`. Every entry of every
//! `Results[].Vulnerabilities` is one finding (Trivy lists a CVE once per affected package, and counts
//! it so in its own summary): `VulnerabilityID`, `Severity`, `PkgName`, `InstalledVersion`,
//! `FixedVersion`, `Title` (else the start of `Description`) and `PrimaryURL`. The image comes from
//! `ArtifactName` and `Metadata.RepoTags` / `RepoDigests` / `ImageID` by the rules of
//! [`super::reference::resolve`]; the time from `CreatedAt` (Trivy 0.4x and later).

use serde_json::{Map, Value, json};

use super::report::{
    Finding, Format, ReportError, Scan, clip, ecr_severity, non_empty, strings, text,
};

pub(super) fn recognise(v: &Value) -> Result<(), String> {
    let Some(o) = v.as_object() else {
        return Err("the body is not a JSON object".into());
    };
    match o.get("SchemaVersion") {
        None => return Err("no SchemaVersion (Trivy JSON has SchemaVersion 2)".into()),
        Some(s) if s.as_u64() == Some(2) => {}
        Some(s) => {
            return Err(format!(
                "SchemaVersion is {s} (scanbridge reads Trivy's SchemaVersion 2)"
            ));
        }
    }
    match o.get("ArtifactName") {
        Some(Value::String(_)) => Ok(()),
        _ => Err("no ArtifactName string".into()),
    }
}

fn invalid(field: &str, why: &str) -> ReportError {
    ReportError::Invalid {
        format: "Trivy",
        field: field.to_owned(),
        why: why.to_owned(),
    }
}

pub(super) fn read(v: &Value) -> Result<Scan, ReportError> {
    let meta = v.get("Metadata").unwrap_or(&Value::Null);
    let artifact = v["ArtifactName"].as_str().unwrap_or_default();
    let image = super::reference::resolve(
        artifact,
        &strings(meta.get("RepoTags")),
        &strings(meta.get("RepoDigests")),
        None,
        meta.get("ImageID").and_then(Value::as_str),
    );
    let mut findings = Vec::new();
    match v.get("Results") {
        None | Some(Value::Null) => {}
        Some(Value::Array(results)) => {
            for (i, r) in results.iter().enumerate() {
                match r.get("Vulnerabilities") {
                    None | Some(Value::Null) => {}
                    Some(Value::Array(vulns)) => {
                        for (j, x) in vulns.iter().enumerate() {
                            findings.push(finding(x).ok_or_else(|| {
                                invalid(
                                    &format!("Results[{i}].Vulnerabilities[{j}]"),
                                    "not an object with a VulnerabilityID string",
                                )
                            })?);
                        }
                    }
                    Some(_) => {
                        return Err(invalid(
                            &format!("Results[{i}].Vulnerabilities"),
                            "not an array",
                        ));
                    }
                }
            }
        }
        Some(_) => return Err(invalid("Results", "not an array")),
    }
    let mut scanner = Map::new();
    scanner.insert("name".into(), json!("trivy"));
    if let Some(version) = v.pointer("/Trivy/Version").and_then(Value::as_str) {
        scanner.insert("version".into(), json!(clip(version, 64)));
    }
    Ok(Scan {
        format: Format::Trivy,
        id: String::new(),
        image,
        time: super::report::report_time(v.get("CreatedAt").and_then(Value::as_str)),
        scanner,
        findings,
        extra: Map::new(),
    })
}

fn finding(x: &Value) -> Option<Finding> {
    let id = text(x, "VulnerabilityID")?;
    Some(Finding {
        id,
        severity: ecr_severity(x.get("Severity").and_then(Value::as_str).unwrap_or("")),
        package: text(x, "PkgName"),
        installed_version: text(x, "InstalledVersion"),
        fixed_version: text(x, "FixedVersion"),
        title: text(x, "Title").or_else(|| text(x, "Description")),
        url: text(x, "PrimaryURL").or_else(|| {
            non_empty(
                x.get("References")
                    .and_then(|r| r.get(0))
                    .and_then(Value::as_str),
            )
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{fixture, rules};
    use super::super::{Parsed, parse};
    use super::*;

    fn scan(name: &str) -> Scan {
        match parse(&fixture(name), None).unwrap() {
            Parsed::Scan(s) => *s,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn registry_image_takes_repo_tags_and_repo_digests() {
        let s = scan("trivy-alpine-310-registry.json");
        assert_eq!(s.image.repository.as_deref(), Some("alpine"));
        assert_eq!(s.image.registry.as_deref(), Some("localhost:53869"));
        assert_eq!(s.image.tags, ["3.10"]);
        assert_eq!(
            s.image.digest.as_deref(),
            Some("sha256:b1c5a500182b21d0bfa5a584a8526b56d8be316f89e87d951be04abed2446e60")
        );
        assert_eq!(
            s.image.image_id.as_deref(),
            Some("sha256:961769676411f082461f9ef46626dd7a2d1e2b2a38e6a44364bcbecf51e66dd4")
        );
        assert_eq!(s.time.as_deref(), Some("2021-08-25T12:20:30Z"));
        assert_eq!(s.findings.len(), 4);
        let f = &s.findings[0];
        assert_eq!(
            (f.id.as_str(), f.severity, f.package.as_deref()),
            ("CVE-2019-1549", "MEDIUM", Some("libcrypto1.1"))
        );
        assert_eq!(f.installed_version.as_deref(), Some("1.1.1c-r0"));
        assert_eq!(f.fixed_version.as_deref(), Some("1.1.1d-r0"));
        assert_eq!(
            f.title.as_deref(),
            Some("openssl: information disclosure in fork()")
        );
        assert_eq!(
            f.url.as_deref(),
            Some("https://avd.aquasec.com/nvd/cve-2019-1549")
        );
        let ev = super::super::event(&s, &rules());
        assert_eq!(
            ev["detail"]["finding-severity-counts"],
            json!({"MEDIUM": 4})
        );
        assert_eq!(ev["detail"]["repository-name"], "alpine");
        assert_eq!(ev["resources"], json!(["localhost:53869/alpine:3.10"]));
        assert_eq!(ev["time"], "2021-08-25T12:20:30Z");
    }

    #[test]
    fn a_tarball_is_named_as_scanned_with_its_image_id() {
        let s = scan("trivy-alpine-39-high-critical.json");
        assert_eq!(
            s.image.repository.as_deref(),
            Some("testdata/fixtures/images/alpine-39.tar.gz")
        );
        assert!(s.image.tags.is_empty());
        assert_eq!(
            s.image.digest.as_deref(),
            Some("sha256:055936d3920576da37aa9bc460d70c5f212028bda1c08c0879aedf03d7a66ea1")
        );
        assert!(s.time.is_none());
        assert_eq!(s.findings.len(), 2);
        assert!(s.findings.iter().all(|f| f.severity == "CRITICAL"));
        // No Title in this report: the description stands in.
        assert!(
            s.findings[0]
                .title
                .as_deref()
                .unwrap()
                .starts_with("musl libc through 1.1.23")
        );
    }

    #[test]
    fn unknown_severity_is_undefined_and_bad_shapes_name_the_field() {
        let body = br#"{"SchemaVersion":2,"ArtifactName":"app:1","Results":[{"Target":"x","Vulnerabilities":[
            {"VulnerabilityID":"CVE-1","Severity":"UNKNOWN","PkgName":"p","InstalledVersion":"1"}]}]}"#;
        let Parsed::Scan(s) = parse(body, None).unwrap() else {
            panic!()
        };
        assert_eq!(s.findings[0].severity, "UNDEFINED");
        assert_eq!(s.findings[0].fixed_version, None);
        let bad = br#"{"SchemaVersion":2,"ArtifactName":"a","Results":[{"Vulnerabilities":[{"Severity":"HIGH"}]}]}"#;
        let err = parse(bad, None).unwrap_err().to_string();
        assert!(err.contains("Results[0].Vulnerabilities[0]"), "{err}");
        let clean = br#"{"SchemaVersion":2,"ArtifactName":"a:1","Results":[{"Target":"x"}]}"#;
        let Parsed::Scan(s) = parse(clean, None).unwrap() else {
            panic!()
        };
        let ev = super::super::event(&s, &rules());
        assert!(
            ev["detail"].get("finding-severity-counts").is_none(),
            "absent when there are no findings, as ECR"
        );
    }
}
