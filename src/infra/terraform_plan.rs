//! Terraform's JSON: `terraform show -json` of a plan (`planned_values`) or of the state (`values`),
//! and the raw state file (`terraform.tfstate`, version 4).
//!
//! These hold the patterns as Terraform will send them, every variable and function already
//! evaluated: `event_pattern` of `aws_cloudwatch_event_rule` and `aws_cloudwatch_event_archive`, and
//! `source_parameters[0].filter_criteria[0].filter[i].pattern` of `aws_pipes_pipe`. In a plan, a
//! pattern that depends on a resource not yet created is unknown (`after_unknown`) and reported as
//! not checkable until apply. Resources are named by their address (`module.m.aws_cloudwatch_event_rule.r["k"]`).

use std::path::Path;

use serde_json::Value;

use super::found::{Body, Format, Found};
use super::holes::Holed;
use super::locate::DocLines;

/// The resource types whose patterns are read, and where the patterns are in their values.
const RULE_TYPES: [&str; 2] = ["aws_cloudwatch_event_rule", "aws_cloudwatch_event_archive"];
const PIPE_TYPE: &str = "aws_pipes_pipe";

/// Which of Terraform's JSON documents this is, if any.
pub fn format_of(doc: &Value) -> Option<Format> {
    let shown = doc.get("format_version").is_some();
    if shown && (doc.get("planned_values").is_some() || doc.get("resource_changes").is_some()) {
        Some(Format::TerraformPlan)
    } else if (shown && doc.get("values").is_some())
        || (doc.get("version").is_some_and(Value::is_u64)
            && doc.get("terraform_version").is_some()
            && doc.get("resources").is_some_and(Value::is_array))
    {
        Some(Format::TerraformState)
    } else {
        None
    }
}

/// Every pattern of a plan or state document.
pub fn extract(doc: &Value, file: &Path, lines: &DocLines) -> Vec<Found> {
    let mut out = Vec::new();
    let Some(format) = format_of(doc) else {
        return out;
    };
    let mut cx = Walk {
        file,
        format,
        lines,
        doc,
        out: &mut out,
    };
    if let Some(root) = doc.pointer("/planned_values/root_module") {
        cx.module(root, "/planned_values/root_module");
    } else if let Some(root) = doc.pointer("/values/root_module") {
        cx.module(root, "/values/root_module");
    } else if let Some(resources) = doc.get("resources").and_then(Value::as_array) {
        cx.raw_state(resources);
    }
    out
}

struct Walk<'a> {
    file: &'a Path,
    format: Format,
    lines: &'a DocLines,
    doc: &'a Value,
    out: &'a mut Vec<Found>,
}

fn tokens(pointer: &str) -> Vec<String> {
    super::pointer::pointer_tokens(pointer)
}

impl Walk<'_> {
    /// A module of `planned_values` or `values`: its resources, then its child modules.
    fn module(&mut self, m: &Value, at: &str) {
        for (i, r) in m
            .get("resources")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            if r.get("mode").and_then(Value::as_str) != Some("managed") {
                continue;
            }
            let (Some(address), Some(typ)) = (
                r.get("address").and_then(Value::as_str),
                r.get("type").and_then(Value::as_str),
            ) else {
                continue;
            };
            let values = format!("{at}/resources/{i}/values");
            self.resource(address, typ, r.get("values"), &values);
        }
        for (i, c) in m
            .get("child_modules")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            self.module(c, &format!("{at}/child_modules/{i}"));
        }
    }

    /// `resources[].instances[].attributes` of a raw state file.
    fn raw_state(&mut self, resources: &[Value]) {
        for (i, r) in resources.iter().enumerate() {
            if r.get("mode").and_then(Value::as_str) != Some("managed") {
                continue;
            }
            let (Some(typ), Some(name)) = (
                r.get("type").and_then(Value::as_str),
                r.get("name").and_then(Value::as_str),
            ) else {
                continue;
            };
            let module = r
                .get("module")
                .and_then(Value::as_str)
                .map(|m| format!("{m}."))
                .unwrap_or_default();
            for (j, inst) in r
                .get("instances")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let key = match inst.get("index_key") {
                    Some(Value::String(s)) => format!("[{}]", Value::from(s.as_str())),
                    Some(Value::Number(n)) => format!("[{n}]"),
                    _ => String::new(),
                };
                let address = format!("{module}{typ}.{name}{key}");
                let at = format!("/resources/{i}/instances/{j}/attributes");
                self.resource(&address, typ, inst.get("attributes"), &at);
            }
        }
    }

    fn resource(&mut self, address: &str, typ: &str, values: Option<&Value>, at: &str) {
        if RULE_TYPES.contains(&typ) {
            match values.and_then(|v| v.get("event_pattern")) {
                Some(Value::String(p)) => {
                    self.push(
                        address.to_owned(),
                        typ,
                        Body::Holed(Holed::verbatim(p.clone())),
                        &format!("{at}/event_pattern"),
                    );
                }
                _ if self.unknown(address, "/event_pattern") => {
                    self.push(address.to_owned(), typ, Self::after_apply(), at);
                }
                _ => {}
            }
        } else if typ == PIPE_TYPE {
            let filters = values
                .and_then(|v| v.pointer("/source_parameters/0/filter_criteria/0/filter"))
                .and_then(Value::as_array);
            for (i, f) in filters.into_iter().flatten().enumerate() {
                let p = format!("{at}/source_parameters/0/filter_criteria/0/filter/{i}/pattern");
                let name = format!("{address}.filter[{i}]");
                match f.get("pattern") {
                    Some(Value::String(text)) => {
                        self.push(name, typ, Body::Holed(Holed::verbatim(text.clone())), &p)
                    }
                    _ => self.push(name, typ, Self::after_apply(), &p),
                }
            }
        }
    }

    fn after_apply() -> Body {
        Body::Opaque {
            shown: "(known after apply)".into(),
            why: "the plan knows the pattern only after apply".into(),
        }
    }

    /// Whether the plan marks an attribute of a resource as unknown until apply.
    fn unknown(&self, address: &str, attribute: &str) -> bool {
        self.doc
            .get("resource_changes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|c| c.get("address").and_then(Value::as_str) == Some(address))
            .any(|c| {
                c.pointer(&format!("/change/after_unknown{attribute}")) == Some(&Value::Bool(true))
            })
    }

    fn push(&mut self, resource: String, typ: &str, body: Body, pointer: &str) {
        self.out.push(Found {
            file: self.file.to_owned(),
            resource,
            format: self.format,
            resource_type: typ.to_owned(),
            construct_path: None,
            body,
            lines: self.lines.pattern(&tokens(pointer)),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plans_state_and_raw_state() {
        let plan = json!({"format_version": "1.2", "planned_values": {"root_module": {
            "resources": [
                {"address": "aws_cloudwatch_event_rule.a", "mode": "managed", "type": "aws_cloudwatch_event_rule",
                 "values": {"event_pattern": "{\"source\":[\"a\"]}"}},
                {"address": "aws_cloudwatch_event_rule.later", "mode": "managed", "type": "aws_cloudwatch_event_rule",
                 "values": {}},
                {"address": "data.aws_cloudwatch_event_rule.d", "mode": "data", "type": "aws_cloudwatch_event_rule",
                 "values": {"event_pattern": "{}"}}],
            "child_modules": [{"address": "module.m", "resources": [
                {"address": "module.m.aws_pipes_pipe.p", "mode": "managed", "type": "aws_pipes_pipe",
                 "values": {"source_parameters": [{"filter_criteria": [{"filter": [{"pattern": "{\"body\":{\"a\":[1]}}"}]}]}]}}]}]}},
            "resource_changes": [{"address": "aws_cloudwatch_event_rule.later",
                "change": {"after_unknown": {"event_pattern": true}}}]});
        let text = serde_json::to_string_pretty(&plan).unwrap();
        let f = extract(&plan, Path::new("plan.json"), &DocLines::json(&text));
        let names: Vec<&str> = f.iter().map(|f| f.resource.as_str()).collect();
        assert_eq!(
            names,
            [
                "aws_cloudwatch_event_rule.a",
                "aws_cloudwatch_event_rule.later",
                "module.m.aws_pipes_pipe.p.filter[0]"
            ]
        );
        assert!(matches!(f[1].body, Body::Opaque { .. }));
        assert!(f[0].line().is_some_and(|l| l > 1));

        let state = json!({"version": 4, "terraform_version": "1.9.0", "resources": [
            {"module": "module.bus", "mode": "managed", "type": "aws_cloudwatch_event_rule", "name": "r",
             "instances": [{"index_key": "orders", "attributes": {"event_pattern": "{\"source\":[\"o\"]}"}}]}]});
        let f = extract(
            &state,
            Path::new("terraform.tfstate"),
            &DocLines::json("{}"),
        );
        assert_eq!(
            f[0].resource,
            "module.bus.aws_cloudwatch_event_rule.r[\"orders\"]"
        );
        assert_eq!(f[0].format, Format::TerraformState);
    }
}
