//! Terraform configuration (`.tf`, HCL, parsed with hcl-edit so that every node keeps its span).
//!
//! Patterns read: `event_pattern` of `resource "aws_cloudwatch_event_rule"` and
//! `"aws_cloudwatch_event_archive"`, `source_parameters { filter_criteria { filter { pattern } } }` of
//! `"aws_pipes_pipe"`, and, in `module` blocks (terraform-aws-modules/eventbridge and the like), any
//! `event_pattern` key and any `pattern` under a `filter_criteria` key, however deep in the module's
//! arguments. Addresses: `aws_cloudwatch_event_rule.NAME`, `aws_pipes_pipe.NAME.filter[i]`,
//! `module.NAME.rules.orders`.
//!
//! A pattern is checkable statically when it is a string, a heredoc, `jsonencode({...})` or
//! `file("...")` of a file beside the configuration. Inside those, every interpolation (`${...}`) and
//! every reference or function call in a `jsonencode` argument is a hole, so the rest is still
//! checked. Anything else (`var.pattern`, `jsonencode(local.p)`, `templatefile(...)`) is reported as
//! not checkable statically, with the expression.

use std::collections::HashMap;
use std::path::Path;

use hcl_edit::Span;
use hcl_edit::expr::{Expression, ObjectKey};
use hcl_edit::structure::{Block, Body as HclBody, Structure};
use hcl_edit::template::{Element, Template};
use serde_json::{Map, Value};

use super::found::{Body, Format, Found, InfraError};
use super::holes::{self, HoleSet, Holed, Piece};
use super::locate::{Lines, json_lines, line_at};
use super::pointer::pointer_push;

const RULE_TYPES: [&str; 2] = ["aws_cloudwatch_event_rule", "aws_cloudwatch_event_archive"];

/// Every pattern of a `.tf` file, in document order.
pub fn extract(text: &str, file: &Path) -> Result<Vec<Found>, InfraError> {
    let body = hcl_edit::parser::parse_body(text).map_err(|e| {
        InfraError::at(
            file,
            Some(e.location().line()),
            format!("not valid HCL: {}", e.message()),
        )
    })?;
    let cx = Cx { text, file };
    let mut out = Vec::new();
    for block in body.iter().filter_map(Structure::as_block) {
        let labels: Vec<&str> = block.labels.iter().map(|l| l.as_str()).collect();
        match (block.ident.as_str(), labels.as_slice()) {
            ("resource", [typ, name]) if RULE_TYPES.contains(typ) => {
                if let Some(e) = attribute(&block.body, "event_pattern") {
                    out.push(cx.found(format!("{typ}.{name}"), typ, e));
                }
            }
            ("resource", [typ @ "aws_pipes_pipe", name]) => {
                let filters = blocks(&block.body, "source_parameters")
                    .flat_map(|b| blocks(&b.body, "filter_criteria"))
                    .flat_map(|b| blocks(&b.body, "filter"));
                for (i, f) in filters.enumerate() {
                    if let Some(e) = attribute(&f.body, "pattern") {
                        out.push(cx.found(format!("{typ}.{name}.filter[{i}]"), typ, e));
                    }
                }
            }
            ("module", [name]) => {
                for s in block.body.iter() {
                    if let Structure::Attribute(a) = s {
                        let path = vec![a.key.as_str().to_owned()];
                        cx.module_patterns(name, &path, &a.value, false, &mut out);
                    }
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

fn attribute<'a>(body: &'a HclBody, key: &str) -> Option<&'a Expression> {
    body.iter()
        .filter_map(Structure::as_attribute)
        .find(|a| a.key.as_str() == key)
        .map(|a| &a.value)
}

fn blocks<'a>(body: &'a HclBody, ident: &'a str) -> impl Iterator<Item = &'a Block> + 'a {
    body.iter()
        .filter_map(Structure::as_block)
        .filter(move |b| b.ident.as_str() == ident)
}

struct Cx<'a> {
    text: &'a str,
    file: &'a Path,
}

impl Cx<'_> {
    fn source(&self, e: &impl Span) -> String {
        e.span()
            .and_then(|r| self.text.get(r))
            .unwrap_or("(expression)")
            .trim()
            .to_owned()
    }

    fn line(&self, e: &impl Span) -> Option<usize> {
        e.span().map(|r| line_at(self.text, r.start))
    }

    fn found(&self, address: String, typ: &str, e: &Expression) -> Found {
        let (body, lines) = self.pattern(e);
        Found {
            file: self.file.to_owned(),
            resource: address,
            format: Format::Terraform,
            resource_type: typ.to_owned(),
            construct_path: None,
            body,
            lines,
        }
    }

    /// `event_pattern` / `pattern` keys anywhere in a module argument.
    fn module_patterns(
        &self,
        module: &str,
        path: &[String],
        e: &Expression,
        under_filter: bool,
        out: &mut Vec<Found>,
    ) {
        let key = path.last().map(String::as_str).unwrap_or("");
        if key == "event_pattern" || (key == "pattern" && under_filter) {
            let mut address = format!("module.{module}");
            for t in &path[..path.len() - 1] {
                if t.starts_with('[') {
                    address.push_str(t);
                } else {
                    address.push('.');
                    address.push_str(t);
                }
            }
            out.push(self.found(address, "module", e));
            return;
        }
        let under_filter = under_filter || key == "filter_criteria";
        match e {
            Expression::Object(o) => {
                for (k, v) in o.iter() {
                    let mut p = path.to_vec();
                    p.push(object_key(k).unwrap_or_else(|| self.source(k)));
                    self.module_patterns(module, &p, v.expr(), under_filter, out);
                }
            }
            Expression::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    let mut p = path.to_vec();
                    p.push(format!("[{i}]"));
                    self.module_patterns(module, &p, v, under_filter, out);
                }
            }
            _ => {}
        }
    }

    /// The pattern an expression holds, and its lines.
    fn pattern(&self, e: &Expression) -> (Body, Lines) {
        let at = Lines::at(self.line(e));
        match e {
            Expression::String(s) => (Body::Holed(Holed::verbatim(s.value().clone())), at),
            Expression::StringTemplate(t) => match self.pieces(t) {
                Some(p) => (Body::Holed(holes::render(p)), at),
                None => (self.opaque(e), at),
            },
            Expression::HeredocTemplate(h) => match self.pieces(&h.template) {
                Some(p) => {
                    let holed = holes::render(p);
                    // The heredoc's text starts on the line after `<<EOF`.
                    let first = self
                        .line(&h.template)
                        .or_else(|| self.line(e).map(|l| l + 1));
                    let lines = match first {
                        Some(first) => {
                            let mut m: HashMap<String, usize> = json_lines(&holed.text)
                                .into_iter()
                                .map(|(p, l)| (p, l + first - 1))
                                .collect();
                            // The pattern itself is where the attribute is.
                            if let Some(l) = self.line(e) {
                                m.insert(String::new(), l);
                            }
                            Lines::Map(m)
                        }
                        None => at,
                    };
                    (Body::Holed(holed), lines)
                }
                None => (self.opaque(e), at),
            },
            Expression::Parenthesis(p) => self.pattern(p.inner()),
            Expression::FuncCall(f) if f.name.namespace.is_empty() => {
                let args: Vec<&Expression> = f.args.iter().collect();
                match (f.name.name.as_str(), args.as_slice()) {
                    ("jsonencode", [arg]) => {
                        let mut set = HoleSet::default();
                        let mut lines = HashMap::new();
                        let v = self.json(arg, "", &mut set, &mut lines);
                        if let Some(l) = self.line(e) {
                            lines.insert(String::new(), l);
                        }
                        (Body::Holed(set.with_value(&v)), Lines::Map(lines))
                    }
                    ("file", [arg]) => (self.file_pattern(e, arg), at),
                    _ => (self.opaque(e), at),
                }
            }
            _ => (self.opaque(e), at),
        }
    }

    fn opaque(&self, e: &Expression) -> Body {
        let shown = self.source(e);
        Body::Opaque {
            why: format!("the pattern is {shown}, which Terraform evaluates"),
            shown,
        }
    }

    /// `file("pattern.json")` or `file("${path.module}/pattern.json")`, read beside the .tf file.
    fn file_pattern(&self, call: &Expression, arg: &Expression) -> Body {
        let rel = match arg {
            Expression::String(s) => Some(s.value().clone()),
            Expression::StringTemplate(t) => {
                let src = self.source(arg);
                let inner = src.trim_matches('"');
                let rest = inner
                    .strip_prefix("${path.module}/")
                    .or_else(|| inner.strip_prefix("${path.root}/"));
                rest.filter(|_| t.iter().filter(|e| !e.is_literal()).count() == 1)
                    .map(str::to_owned)
            }
            _ => None,
        };
        let dir = self.file.parent().unwrap_or(Path::new("."));
        match rel.map(|r| (dir.join(&r), r)) {
            Some((path, _)) => match std::fs::read_to_string(&path) {
                Ok(text) => Body::Holed(Holed::verbatim(text)),
                Err(e) => Body::Opaque {
                    shown: self.source(call),
                    why: format!(
                        "the pattern is {}, and {} cannot be read: {e}",
                        self.source(call),
                        path.display()
                    ),
                },
            },
            None => self.opaque(call),
        }
    }

    /// A template as text pieces; `None` when it has directives (`%{if}`, `%{for}`).
    fn pieces(&self, t: &Template) -> Option<Vec<Piece>> {
        let mut out = Vec::new();
        for el in t.iter() {
            match el {
                Element::Literal(l) => out.push(Piece::Text(l.value().clone())),
                Element::Interpolation(i) => out.push(Piece::Hole {
                    shown: self.source(i),
                    key: reference(&i.expr).then(|| self.source(&i.expr)),
                }),
                Element::Directive(_) => return None,
            }
        }
        Some(out)
    }

    /// A `jsonencode` argument as JSON, with holes for what only Terraform can evaluate.
    fn json(
        &self,
        e: &Expression,
        pointer: &str,
        set: &mut HoleSet,
        lines: &mut HashMap<String, usize>,
    ) -> Value {
        if let Some(l) = self.line(e) {
            lines.insert(pointer.to_owned(), l);
        }
        match e {
            Expression::Null(_) => Value::Null,
            Expression::Bool(b) => Value::Bool(*b.value()),
            Expression::Number(n) => {
                serde_json::from_str(&n.value().to_string()).unwrap_or(Value::Null)
            }
            Expression::String(s) => Value::String(s.value().clone()),
            Expression::Array(a) => Value::Array(
                a.iter()
                    .enumerate()
                    .map(|(i, x)| self.json(x, &format!("{pointer}/{i}"), set, lines))
                    .collect(),
            ),
            Expression::Object(o) => {
                let mut m = Map::new();
                for (k, v) in o.iter() {
                    let key = object_key(k)
                        .unwrap_or_else(|| set.add(self.source(k), Some(self.source(k)), false));
                    let p = pointer_push(pointer, &key);
                    let value = self.json(v.expr(), &p, set, lines);
                    m.insert(key, value);
                }
                Value::Object(m)
            }
            Expression::Parenthesis(p) => self.json(p.inner(), pointer, set, lines),
            Expression::StringTemplate(t) => match self.pieces(t) {
                Some(pieces) => Value::String(
                    pieces
                        .into_iter()
                        .map(|p| match p {
                            Piece::Text(t) => t,
                            Piece::Hole { shown, key } => set.add(shown, key, false),
                        })
                        .collect(),
                ),
                None => Value::String(set.add(self.source(e), None, false)),
            },
            other => {
                let shown = self.source(other);
                let key = reference(other).then(|| shown.clone());
                Value::String(set.add(shown, key, true))
            }
        }
    }
}

/// Whether an expression is a plain reference (`var.x`, `local.y`, `data.a.b.c`), which a test
/// file's `parameters` can name.
fn reference(e: &Expression) -> bool {
    matches!(e, Expression::Variable(_) | Expression::Traversal(_))
}

/// An object key that is a literal name or string.
fn object_key(k: &ObjectKey) -> Option<String> {
    match k {
        ObjectKey::Ident(i) => Some(i.as_str().to_owned()),
        ObjectKey::Expression(Expression::String(s)) => Some(s.value().clone()),
        ObjectKey::Expression(Expression::Variable(v)) => Some(v.as_str().to_owned()),
        ObjectKey::Expression(Expression::StringTemplate(t)) => {
            let mut s = String::new();
            for el in t.iter() {
                s.push_str(el.as_literal()?.value());
            }
            Some(s)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::infra::check::{Verdict, check};
    use scanbridge_pattern::Limits;

    const TF: &str = r#"resource "aws_cloudwatch_event_rule" "heredoc" {
  event_pattern = <<-EOF
    {
      "account": ["${data.aws_caller_identity.current.account_id}"],
      "source": ["demo.apigw"]
    }
    EOF
}

resource "aws_cloudwatch_event_rule" "encoded" {
  event_pattern = jsonencode({
    source        = ["aws.ecr"]
    "detail-type" = ["ECR Image Scan"]
    detail = {
      repository-name = [{ prefix = var.prefix }]
      scan-status     = []
    }
  })
}

resource "aws_cloudwatch_event_rule" "opaque" {
  event_pattern = var.pattern
}

resource "aws_cloudwatch_event_rule" "schedule" {
  schedule_expression = "rate(1 hour)"
}

resource "aws_pipes_pipe" "p" {
  source_parameters {
    filter_criteria {
      filter {
        pattern = jsonencode({ body = { status = ["A"] } })
      }
      filter {
        pattern = "{\"body\": {\"status\": [\"B\"]}}"
      }
    }
  }
}

module "eventbridge" {
  source = "terraform-aws-modules/eventbridge/aws"
  rules = {
    orders = { event_pattern = jsonencode({ "source" : ["myapp.orders"] }) }
  }
  archive_config = [{ event_pattern = <<PATTERN
{"source": ["myapp.orders"]}
PATTERN
  }]
  pipes = { p = { source_parameters = { filter_criteria = { f1 = { pattern = jsonencode({ source = ["s"] }) } } } } }
}
"#;

    #[test]
    fn resources_pipes_and_module_arguments() {
        let f = extract(TF, Path::new("main.tf")).unwrap();
        let names: Vec<&str> = f.iter().map(|f| f.resource.as_str()).collect();
        assert_eq!(
            names,
            [
                "aws_cloudwatch_event_rule.heredoc",
                "aws_cloudwatch_event_rule.encoded",
                "aws_cloudwatch_event_rule.opaque",
                "aws_pipes_pipe.p.filter[0]",
                "aws_pipes_pipe.p.filter[1]",
                "module.eventbridge.rules.orders",
                "module.eventbridge.archive_config[0]",
                "module.eventbridge.pipes.p.source_parameters.filter_criteria.f1",
            ]
        );
        let limits = Limits::default();
        let verdicts: Vec<Verdict> = f.iter().map(|f| check(&f.body, &limits).verdict).collect();
        use Verdict::*;
        assert_eq!(
            verdicts,
            [Unchecked, Invalid, Unchecked, Ok, Ok, Ok, Ok, Ok]
        );
    }

    #[test]
    fn holes_pointers_and_lines() {
        let f = extract(TF, Path::new("main.tf")).unwrap();
        let c = check(&f[0].body, &Limits::default());
        assert_eq!(c.unresolved[0].pointer, "/account/0");
        assert_eq!(
            c.unresolved[0].shown,
            "${data.aws_caller_identity.current.account_id}"
        );
        assert_eq!(f[0].line(), Some(2));
        assert_eq!(f[0].lines.line_of("/source"), Some(5));

        let c = check(&f[1].body, &Limits::default());
        assert_eq!(c.pointer.as_deref(), Some("/detail/scan-status"));
        assert!(c.message.unwrap().contains("Empty arrays are not allowed"));
        assert_eq!(c.unresolved[0].shown, "var.prefix");
        assert_eq!(f[1].lines.line_of("/detail/scan-status"), Some(16));

        let c = check(&f[2].body, &Limits::default());
        assert_eq!(
            c.message.as_deref(),
            Some("not checkable statically: the pattern is var.pattern, which Terraform evaluates")
        );
    }

    #[test]
    fn file_patterns_are_read_beside_the_configuration() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("p.json"), r#"{"source": ["x"]}"#).unwrap();
        let tf = r#"resource "aws_cloudwatch_event_rule" "r" { event_pattern = file("${path.module}/p.json") }"#;
        let f = extract(tf, &dir.path().join("main.tf")).unwrap();
        assert_eq!(check(&f[0].body, &Limits::default()).verdict, Verdict::Ok);
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let e = extract("resource \"a\" \"b\" {\n  x = \n}\n", Path::new("bad.tf")).unwrap_err();
        assert!(e.line.is_some(), "{e:?}");
        assert!(e.message.starts_with("not valid HCL"), "{e}");
    }
}
