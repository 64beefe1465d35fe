//! Grype's JSON report (`grype -o json`) → [`Scan`].
//!
//! Recognised by a `matches` array and a `descriptor` object. Every match is one finding:
//! `vulnerability.id`, `vulnerability.severity` (Negligible → INFORMATIONAL, Unknown → UNDEFINED),
//! `artifact.name` and `artifact.version`, `vulnerability.fix.versions` (joined with ", ", only when
//! the fix state is `fixed` or versions are listed), `vulnerability.description` (else the first related
//! vulnerability's), and `vulnerability.dataSource` (else the first of `urls`). For an `image` source
//! the image comes from `source.target.userInput`, `tags`, `repoDigests`, `manifestDigest` and `imageID`
//! by the rules of [`super::reference::resolve`]; for a directory or file source, `repository-name` is
//! the path scanned. The time is `descriptor.timestamp` when it is set.

use serde_json::{Map, Value, json};

use super::report::{
    Finding, Format, ReportError, Scan, clip, ecr_severity, non_empty, strings, text,
};

pub(super) fn recognise(v: &Value) -> Result<(), String> {
    let Some(o) = v.as_object() else {
        return Err("the body is not a JSON object".into());
    };
    if !o.get("matches").is_some_and(Value::is_array) {
        return Err("no `matches` array".into());
    }
    if !o.get("descriptor").is_some_and(Value::is_object) {
        return Err("no `descriptor` object".into());
    }
    Ok(())
}

pub(super) fn read(v: &Value) -> Result<Scan, ReportError> {
    let source = v.get("source").unwrap_or(&Value::Null);
    let target = source.get("target").unwrap_or(&Value::Null);
    let image = if source.get("type").and_then(Value::as_str) == Some("image") {
        super::reference::resolve(
            target
                .get("userInput")
                .and_then(Value::as_str)
                .unwrap_or_default(),
            &strings(target.get("tags")),
            &strings(target.get("repoDigests")),
            target.get("manifestDigest").and_then(Value::as_str),
            target.get("imageID").and_then(Value::as_str),
        )
    } else {
        // A directory, a file or an SBOM: name what was scanned.
        let path = match target {
            Value::String(s) => non_empty(Some(s)),
            t => text(t, "userInput").or_else(|| text(t, "path")),
        };
        super::report::Image {
            repository: path.clone(),
            artifact: path,
            ..Default::default()
        }
    };
    let matches = v["matches"].as_array().expect("recognised");
    let mut findings = Vec::with_capacity(matches.len());
    for (i, m) in matches.iter().enumerate() {
        findings.push(finding(m).ok_or_else(|| ReportError::Invalid {
            format: "Grype",
            field: format!("matches[{i}].vulnerability"),
            why: "not an object with an id string".into(),
        })?);
    }
    let d = &v["descriptor"];
    let mut scanner = Map::new();
    scanner.insert(
        "name".into(),
        json!(text(d, "name").map_or_else(|| "grype".to_owned(), |n| clip(&n, 64))),
    );
    if let Some(version) = text(d, "version") {
        scanner.insert("version".into(), json!(clip(&version, 64)));
    }
    Ok(Scan {
        format: Format::Grype,
        id: String::new(),
        image,
        time: super::report::report_time(d.get("timestamp").and_then(Value::as_str)),
        scanner,
        findings,
        extra: Map::new(),
    })
}

fn finding(m: &Value) -> Option<Finding> {
    let v = m.get("vulnerability")?;
    let id = text(v, "id")?;
    let related = m
        .pointer("/relatedVulnerabilities/0")
        .unwrap_or(&Value::Null);
    let artifact = m.get("artifact").unwrap_or(&Value::Null);
    let fix = v.get("fix").unwrap_or(&Value::Null);
    let versions = strings(fix.get("versions"));
    let fixed = (!versions.is_empty()).then(|| versions.join(", "));
    Some(Finding {
        id,
        severity: ecr_severity(v.get("severity").and_then(Value::as_str).unwrap_or("")),
        package: text(artifact, "name"),
        installed_version: text(artifact, "version"),
        fixed_version: fixed,
        title: text(v, "description").or_else(|| text(related, "description")),
        url: text(v, "dataSource")
            .or_else(|| non_empty(v.pointer("/urls/0").and_then(Value::as_str)))
            .or_else(|| text(related, "dataSource")),
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{fixture, rules};
    use super::super::{Parsed, parse};
    use super::*;

    #[test]
    fn grype_image_report() {
        let Parsed::Scan(s) = parse(&fixture("grype-image.json"), None).unwrap() else {
            panic!()
        };
        assert_eq!(s.format, Format::Grype);
        assert_eq!(s.image.repository.as_deref(), Some("user-input"));
        assert!(s.image.tags.is_empty());
        assert_eq!(
            s.image.digest.as_deref(),
            Some("sha256:ca738abb87a8d58f112d3400ebb079b61ceae7dc290beb34bda735be4b1941d5"),
            "no repo digests: the manifest digest"
        );
        assert!(s.time.is_none(), "empty timestamp");
        assert_eq!(s.findings.len(), 2);
        let low = &s.findings[0];
        assert_eq!((low.id.as_str(), low.severity), ("CVE-1999-0001", "LOW"));
        assert_eq!(low.package.as_deref(), Some("package-1"));
        assert_eq!(low.installed_version.as_deref(), Some("1.1.1"));
        assert_eq!(low.fixed_version.as_deref(), Some("1.2.1, 2.1.3, 3.4.0"));
        let crit = &s.findings[1];
        assert_eq!(crit.severity, "CRITICAL");
        assert_eq!(crit.fixed_version, None);
        let ev = super::super::event(&s, &rules());
        assert_eq!(ev["source"], "scanbridge.grype");
        assert_eq!(
            ev["detail"]["finding-severity-counts"],
            json!({"CRITICAL": 1, "LOW": 1})
        );
        assert_eq!(
            ev["detail"]["findings"][0]["id"], "CVE-1999-0002",
            "CRITICAL first"
        );
        assert_eq!(
            ev["detail"]["scanner"],
            json!({"name": "grype", "version": "[not provided]"})
        );
    }

    #[test]
    fn negligible_unknown_and_directories() {
        let body = br#"{"matches":[
            {"vulnerability":{"id":"CVE-1","severity":"Negligible","fix":{"versions":[],"state":"not-fixed"}},"artifact":{"name":"a","version":"1"}},
            {"vulnerability":{"id":"GHSA-2","severity":"Unknown","urls":["https://github.com/advisories/GHSA-2"]},"artifact":{"name":"b","version":"2"}}],
            "source":{"type":"directory","target":"/src/app"},
            "descriptor":{"name":"grype","version":"0.87.0","timestamp":"2025-01-10T09:15:02.123456789Z"}}"#;
        let Parsed::Scan(s) = parse(body, None).unwrap() else {
            panic!()
        };
        assert_eq!(s.findings[0].severity, "INFORMATIONAL");
        assert_eq!(s.findings[1].severity, "UNDEFINED");
        assert_eq!(
            s.findings[1].url.as_deref(),
            Some("https://github.com/advisories/GHSA-2")
        );
        assert_eq!(s.image.repository.as_deref(), Some("/src/app"));
        assert_eq!(s.image.digest, None);
        assert_eq!(s.time.as_deref(), Some("2025-01-10T09:15:02Z"));
    }
}
