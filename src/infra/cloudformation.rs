//! CloudFormation templates, JSON or YAML (short-form tags read by [`super::yaml`]): the event
//! patterns of `AWS::Events::Rule` and `AWS::Events::Archive` (`EventPattern`, an object or a JSON
//! string), of `AWS::Pipes::Pipe` (`SourceParameters.FilterCriteria.Filters[i].Pattern`, a JSON
//! string), and of SAM's event sources ([`super::sam`]). CDK's synthesized templates are CloudFormation
//! too ([`super::cdk`] says which files they are).
//!
//! The pattern may be written with intrinsic functions: inside an object pattern each one is a hole
//! ([`super::holes::cfn_value`]); a whole pattern built by `Fn::Sub` or `Fn::Join` is text with holes
//! where the substitutions are; any other function for the whole pattern (`Fn::If`, `Ref`) leaves it
//! not checkable statically.

use std::path::Path;

use serde_json::Value;

use super::found::{Body, Format, Found};
use super::holes::{self, CfnOptions, HoleSet, Holed, Piece};
use super::locate::DocLines;
use super::{cdk, sam};

/// Whether a document is a CloudFormation template: `Resources` holding resources with a `Type`.
pub fn is_template(doc: &Value) -> bool {
    doc.get("Resources")
        .and_then(Value::as_object)
        .is_some_and(|r| {
            r.values()
                .any(|res| res.get("Type").is_some_and(Value::is_string))
        })
}

/// Whether a template uses the SAM transform or SAM resource types.
pub fn is_sam(doc: &Value) -> bool {
    let transform = match doc.get("Transform") {
        Some(Value::String(s)) => s.starts_with("AWS::Serverless"),
        Some(Value::Array(a)) => a
            .iter()
            .any(|t| t.as_str().is_some_and(|s| s.starts_with("AWS::Serverless"))),
        _ => false,
    };
    transform || resources(doc).any(|(_, r)| resource_type(r).starts_with("AWS::Serverless::"))
}

fn resources(doc: &Value) -> impl Iterator<Item = (&String, &Value)> {
    doc.get("Resources")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
}

fn resource_type(res: &Value) -> &str {
    res.get("Type").and_then(Value::as_str).unwrap_or("")
}

/// Where a template sits and how it is read.
pub struct Context<'a> {
    pub file: &'a Path,
    pub format: Format,
    pub lines: &'a DocLines,
    /// The template's path inside its document (`["resources"]` for a Serverless file's
    /// `resources` section; empty for a template file).
    pub base: Vec<String>,
    pub options: CfnOptions,
}

/// Every pattern of a template, in document order.
pub fn extract(doc: &Value, cx: &Context<'_>) -> Vec<Found> {
    let mut out = Vec::new();
    for (id, res) in resources(doc) {
        if id.starts_with("Fn::ForEach") {
            continue;
        }
        let typ = resource_type(res);
        let props = res.get("Properties");
        let at = |rest: &[&str]| -> Vec<String> {
            let mut p = cx.base.clone();
            p.extend(["Resources", id.as_str()].iter().map(|s| s.to_string()));
            p.extend(rest.iter().map(|s| s.to_string()));
            p
        };
        let mut push = |resource: String, pattern: &Value, path: Vec<String>| {
            out.push(Found {
                file: cx.file.to_owned(),
                resource,
                format: cx.format,
                resource_type: typ.to_owned(),
                construct_path: cdk::construct_path(res),
                body: body_of(pattern, cx.options),
                lines: cx.lines.pattern(&path),
            });
        };
        match typ {
            "AWS::Events::Rule" | "AWS::Events::Archive" => {
                if let Some(p) = props.and_then(|p| p.get("EventPattern")) {
                    push(id.clone(), p, at(&["Properties", "EventPattern"]));
                }
            }
            "AWS::Pipes::Pipe" => {
                let filters = props
                    .and_then(|p| p.pointer("/SourceParameters/FilterCriteria/Filters"))
                    .and_then(Value::as_array);
                for (i, f) in filters.into_iter().flatten().enumerate() {
                    if let Some(p) = f.get("Pattern") {
                        let n = i.to_string();
                        push(
                            format!("{id}.Filters[{i}]"),
                            p,
                            at(&[
                                "Properties",
                                "SourceParameters",
                                "FilterCriteria",
                                "Filters",
                                &n,
                                "Pattern",
                            ]),
                        );
                    }
                }
            }
            t if t.starts_with("AWS::Serverless::") => {
                for (name, p) in sam::event_patterns(res) {
                    push(
                        format!("{id}.Events.{name}"),
                        p,
                        at(&["Properties", "Events", name, "Properties", "Pattern"]),
                    );
                }
            }
            _ => {}
        }
    }
    out
}

/// What the template holds for a pattern.
pub fn body_of(pattern: &Value, opts: CfnOptions) -> Body {
    match pattern {
        Value::String(s) if opts.serverless_variables && s.contains("${") => {
            Body::Holed(holes::render(holes::serverless_pieces(s)))
        }
        Value::String(s) => Body::Holed(Holed::verbatim(s.clone())),
        Value::Object(m) => match holes::intrinsic(m) {
            Some((name, arg)) => match text_pieces(name, arg) {
                Some(pieces) => Body::Holed(holes::render(pieces)),
                None => {
                    let shown = holes::shown_intrinsic(name, arg);
                    Body::Opaque {
                        why: format!("the pattern is {shown}, computed at deploy time"),
                        shown,
                    }
                }
            },
            None => {
                let mut set = HoleSet::default();
                let v = holes::cfn_value(pattern, &mut set, opts);
                Body::Holed(set.with_value(&v))
            }
        },
        // Not an object: the pattern crate says what AWS says about it.
        other => Body::Holed(Holed::verbatim(other.to_string())),
    }
}

/// A whole pattern written as `Fn::Sub` or `Fn::Join` text, as pieces.
fn text_pieces(name: &str, arg: &Value) -> Option<Vec<Piece>> {
    match (name, arg) {
        ("Fn::Sub", Value::String(t)) => Some(holes::sub_pieces(t, None)),
        ("Fn::Sub", Value::Array(a)) if a.len() == 2 => {
            Some(holes::sub_pieces(a[0].as_str()?, a[1].as_object()))
        }
        ("Fn::Join", Value::Array(a)) if a.len() == 2 => {
            let delim = a[0].as_str()?;
            let mut pieces = Vec::new();
            for (i, item) in a[1].as_array()?.iter().enumerate() {
                if i > 0 && !delim.is_empty() {
                    pieces.push(Piece::Text(delim.to_owned()));
                }
                match item {
                    Value::String(s) => pieces.push(Piece::Text(s.clone())),
                    Value::Object(m) => {
                        let (n, x) = holes::intrinsic(m)?;
                        match text_pieces(n, x) {
                            Some(mut inner) => pieces.append(&mut inner),
                            None => pieces.push(Piece::Hole {
                                shown: holes::shown_intrinsic(n, x),
                                key: match (n, x) {
                                    ("Ref", Value::String(r)) => Some(r.clone()),
                                    _ => None,
                                },
                            }),
                        }
                    }
                    _ => return None,
                }
            }
            Some(pieces)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::infra::check::{Verdict, check};
    use scanbridge_pattern::Limits;

    fn found(text: &str) -> Vec<Found> {
        let doc = &crate::infra::yaml::documents(text).unwrap()[0];
        let lines = DocLines::yaml(text);
        extract(
            doc,
            &Context {
                file: Path::new("t.yaml"),
                format: Format::CloudFormation,
                lines: &lines,
                base: Vec::new(),
                options: CfnOptions::default(),
            },
        )
    }

    #[test]
    fn rules_archives_pipes_and_sam_events_in_document_order() {
        let f = found(
            "Resources:
  R:
    Type: AWS::Events::Rule
    Properties:
      EventPattern: {source: [a]}
  S:
    Type: AWS::Events::Rule
    Properties:
      ScheduleExpression: rate(1 hour)
  A:
    Type: AWS::Events::Archive
    Properties:
      EventPattern: '{\"source\": [\"b\"]}'
  P:
    Type: AWS::Pipes::Pipe
    Properties:
      SourceParameters:
        FilterCriteria:
          Filters:
            - Pattern: '{\"body\": {\"x\": [1]}}'
            - Pattern: '{\"body\": {\"x\": [2]}}'
  F:
    Type: AWS::Serverless::Function
    Properties:
      Events:
        Tick: {Type: Schedule, Properties: {Schedule: rate(1 minute)}}
        OnEvent:
          Type: EventBridgeRule
          Properties:
            Pattern:
              detail: {state: [terminated]}
",
        );
        let names: Vec<&str> = f.iter().map(|f| f.resource.as_str()).collect();
        assert_eq!(
            names,
            ["R", "A", "P.Filters[0]", "P.Filters[1]", "F.Events.OnEvent"]
        );
        let lines: Vec<Option<usize>> = f.iter().map(Found::line).collect();
        assert_eq!(
            lines,
            [Some(5), Some(13), Some(20), Some(21), Some(30)],
            "{f:#?}"
        );
        assert!(
            f.iter()
                .all(|f| check(&f.body, &Limits::default()).verdict == Verdict::Ok)
        );
    }

    #[test]
    fn a_sub_pattern_is_text_with_holes_and_an_if_pattern_is_opaque() {
        let f = found(
            "Resources:
  R:
    Type: AWS::Events::Rule
    Properties:
      EventPattern: !Sub '{\"account\": [\"${AWS::AccountId}\"], \"source\": [\"x\"]}'
  Q:
    Type: AWS::Events::Rule
    Properties:
      EventPattern: !If [IsProd, {source: [a]}, {source: [b]}]
  J:
    Type: AWS::Events::Rule
    Properties:
      EventPattern: !Join ['', ['{\"source\": [\"', !Ref Src, '\"], \"detail\": []}']]
",
        );
        let c = check(&f[0].body, &Limits::default());
        assert_eq!(c.verdict, Verdict::Unchecked, "{c:?}");
        assert_eq!(c.unresolved[0].pointer, "/account/0");
        assert_eq!(c.unresolved[0].shown, "${AWS::AccountId}");
        let c = check(&f[1].body, &Limits::default());
        assert_eq!(c.verdict, Verdict::Unchecked);
        assert!(c.message.unwrap().contains("!If"));
        // The literal text around the hole is still checked: the empty array is AWS's error.
        let c = check(&f[2].body, &Limits::default());
        assert_eq!(c.verdict, Verdict::Invalid, "{c:?}");
        assert_eq!(c.pointer.as_deref(), Some("/detail"));
        assert_eq!(c.unresolved[0].shown, "!Ref Src");
    }
}
