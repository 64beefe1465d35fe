//! Serverless Framework `serverless.yml`: the `pattern` of every function's `eventBridge` events, the
//! filters of the `serverless-pipes` plugin's `pipes`, and the raw CloudFormation of its
//! `resources.Resources` section.
//!
//! Resources are named `FUNCTION.events[i]` (and `pipes.PIPE.filter[i]`); patterns may use the
//! Framework's variables (`${self:custom.x}`, `${opt:stage}`, `${sls:stage}`, ...) and CloudFormation
//! intrinsics, each of which is a hole.

use std::path::Path;

use serde_json::Value;

use super::cloudformation::{self, Context};
use super::found::{Format, Found};
use super::holes::CfnOptions;
use super::locate::DocLines;

/// Whether a document is a Serverless Framework service: `service` and `provider` or `functions`.
pub fn is_service(doc: &Value) -> bool {
    doc.get("service").is_some()
        && (doc.get("provider").is_some() || doc.get("functions").is_some())
}

const OPTIONS: CfnOptions = CfnOptions {
    serverless_variables: true,
};

/// Every pattern of a service, in document order.
pub fn extract(doc: &Value, file: &Path, lines: &DocLines) -> Vec<Found> {
    let mut out = Vec::new();
    let found = |resource: String, typ: &str, pattern: &Value, path: Vec<String>| Found {
        file: file.to_owned(),
        resource,
        format: Format::Serverless,
        resource_type: typ.to_owned(),
        construct_path: None,
        body: cloudformation::body_of(pattern, OPTIONS),
        lines: lines.pattern(&path),
    };
    let path = |parts: &[&str]| parts.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    for (fname, f) in doc
        .get("functions")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let events = f.get("events").and_then(Value::as_array);
        for (i, e) in events.into_iter().flatten().enumerate() {
            if let Some(p) = e.pointer("/eventBridge/pattern") {
                let n = i.to_string();
                out.push(found(
                    format!("{fname}.events[{i}]"),
                    "eventBridge",
                    p,
                    path(&["functions", fname, "events", &n, "eventBridge", "pattern"]),
                ));
            }
        }
    }
    for (pname, p) in doc
        .get("pipes")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let filters = p.get("filter").and_then(Value::as_array);
        for (i, f) in filters.into_iter().flatten().enumerate() {
            if let Some(pattern) = f.get("Pattern").or_else(|| f.get("pattern")) {
                let key = if f.get("Pattern").is_some() {
                    "Pattern"
                } else {
                    "pattern"
                };
                let n = i.to_string();
                out.push(found(
                    format!("pipes.{pname}.filter[{i}]"),
                    "serverless-pipes",
                    pattern,
                    path(&["pipes", pname, "filter", &n, key]),
                ));
            }
        }
    }
    if let Some(resources) = doc.get("resources") {
        out.extend(cloudformation::extract(
            resources,
            &Context {
                file,
                format: Format::Serverless,
                lines,
                base: vec!["resources".to_owned()],
                options: OPTIONS,
            },
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::infra::check::{Verdict, check};
    use scanbridge_pattern::Limits;

    #[test]
    fn function_events_pipes_and_resources() {
        let text = "service: s
provider: {name: aws}
functions:
  logEvent:
    events:
      - http: {path: x}
      - eventBridge:
          pattern:
            source: ['${self:service}.orders']
pipes:
  p:
    filter:
      - Pattern: '{\"eventName\": [\"INSERT\"]}'
resources:
  Resources:
    R:
      Type: AWS::Events::Rule
      Properties:
        EventPattern: {account: [!Sub '${AWS::AccountId}']}
";
        let doc = &crate::infra::yaml::documents(text).unwrap()[0];
        assert!(is_service(doc));
        let f = extract(doc, Path::new("serverless.yml"), &DocLines::yaml(text));
        let names: Vec<&str> = f.iter().map(|f| f.resource.as_str()).collect();
        assert_eq!(names, ["logEvent.events[1]", "pipes.p.filter[0]", "R"]);
        let lines: Vec<Option<usize>> = f.iter().map(Found::line).collect();
        assert_eq!(lines, [Some(8), Some(13), Some(19)]);
        let c = check(&f[0].body, &Limits::default());
        assert_eq!(c.verdict, Verdict::Unchecked, "{c:?}");
        assert_eq!(c.unresolved[0].shown, "${self:service}");
        assert_eq!(c.unresolved[0].pointer, "/source/0");
        assert_eq!(check(&f[1].body, &Limits::default()).verdict, Verdict::Ok);
        assert_eq!(
            check(&f[2].body, &Limits::default()).verdict,
            Verdict::Unchecked
        );
    }
}
