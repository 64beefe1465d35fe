//! From the paths on the command line to files, and from a file to its patterns.
//!
//! A directory is walked recursively in name order. Skipped: hidden entries (`.git`, `.terraform`,
//! `.serverless`, `.aws-sam`), `node_modules`, cache directories (those holding a `CACHEDIR.TAG`, such
//! as Cargo's `target/`), and in a CDK cloud assembly everything but the templates. Read: `*.json`,
//! `*.yaml`, `*.yml`, `*.template`, `*.tf`, `*.tfstate`; `*.pattern-tests.{yaml,yml,json}` are pattern
//! test files ([`super::pattern_tests`]), not templates. A file named on the command line (as
//! pre-commit passes them) brings the test file named after it: `NAME.pattern-tests.yaml` beside
//! `NAME.yaml`.
//!
//! A file's format is decided by its content, not its name: Terraform's JSON (`format_version`),
//! a CloudFormation template (`Resources` with `Type`s; SAM when it uses SAM resources, CDK when it
//! carries CDK metadata or sits in a cloud assembly), a Serverless service (`service` with `provider`
//! or `functions`), a scanbridge rule (`name` and `event_pattern`); anything else holds no pattern.
//! A file that is not valid JSON/YAML/HCL is an error when it was named on the command line or looks
//! like one of these formats, and is skipped otherwise (a Helm chart's templates, say).

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::found::{Format, Found, InfraError};
use super::locate::DocLines;
use super::{cdk, cloudformation, rule_file, serverless, terraform, terraform_plan, yaml};

/// What the paths hold.
#[derive(Debug, Default)]
pub struct Walked {
    /// Files to read, and whether each was named on the command line.
    pub files: Vec<(PathBuf, bool)>,
    /// Pattern test files found.
    pub tests: Vec<PathBuf>,
    /// Paths that do not exist or cannot be listed.
    pub errors: Vec<InfraError>,
}

const EXTENSIONS: [&str; 6] = ["json", "yaml", "yml", "template", "tf", "tfstate"];

/// Whether a file name is a pattern test file.
pub fn is_test_file(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    [
        ".pattern-tests.yaml",
        ".pattern-tests.yml",
        ".pattern-tests.json",
    ]
    .iter()
    .any(|s| name.ends_with(s))
}

/// The test files named after a template: `NAME.pattern-tests.{yaml,yml,json}` beside `NAME.EXT`.
fn sibling_tests(template: &Path) -> impl Iterator<Item = PathBuf> + '_ {
    let stem = template
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    ["yaml", "yml", "json"]
        .into_iter()
        .map(move |ext| template.with_file_name(format!("{stem}.pattern-tests.{ext}")))
        .filter(|t| t.is_file())
}

/// Walks the paths.
pub fn walk(paths: &[PathBuf]) -> Walked {
    let mut w = Walked::default();
    for p in paths {
        if p.is_dir() {
            walk_dir(p, cdk::is_assembly(p), &mut w);
        } else if p.is_file() {
            if is_test_file(p) {
                w.tests.push(p.clone());
            } else {
                w.files.push((p.clone(), true));
                // `template.yaml` is tested by `template.pattern-tests.yaml` beside it.
                for t in sibling_tests(p) {
                    if !w.tests.contains(&t) {
                        w.tests.push(t);
                    }
                }
            }
        } else {
            w.errors
                .push(InfraError::new(p, "no such file or directory"));
        }
    }
    w
}

fn walk_dir(dir: &Path, assembly: bool, w: &mut Walked) {
    let mut entries: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(e) => e.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(e) => {
            w.errors.push(InfraError::new(
                dir,
                format!("cannot list the directory: {e}"),
            ));
            return;
        }
    };
    entries.sort();
    for path in entries {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let is_dir = path.is_dir();
        if name.starts_with('.') || name == "node_modules" {
            continue;
        }
        if assembly && !cdk::keep_in_assembly(name, is_dir) {
            continue;
        }
        if is_dir {
            if path.join("CACHEDIR.TAG").exists() {
                continue;
            }
            walk_dir(&path, assembly || cdk::is_assembly(&path), w);
        } else if is_test_file(&path) {
            w.tests.push(path);
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| EXTENSIONS.contains(&e))
        {
            w.files.push((path, false));
        }
    }
}

/// Words that make a file that does not parse worth an error rather than a skip.
const LOOKS_LIKE_OURS: [&str; 6] = [
    "AWSTemplateFormatVersion",
    "AWS::",
    "EventPattern",
    "eventBridge",
    "event_pattern",
    "\"format_version\"",
];

/// Reads one file and returns its patterns (none when it is not infrastructure code).
pub fn extract_file(path: &Path, explicit: bool) -> Result<Vec<Found>, InfraError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| InfraError::new(path, format!("cannot read: {e}")))?;
    extract_text(path, &text, explicit)
}

/// The patterns of a file's text.
pub fn extract_text(path: &Path, text: &str, explicit: bool) -> Result<Vec<Found>, InfraError> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let fatal = |e: InfraError| {
        if explicit || LOOKS_LIKE_OURS.iter().any(|w| text.contains(w)) {
            Err(e)
        } else {
            Ok(Vec::new())
        }
    };
    if ext == "tf" {
        return terraform::extract(text, path).or_else(fatal);
    }
    let json = matches!(ext, "json" | "tfstate")
        || matches!(text.trim_start().as_bytes().first(), Some(b'{' | b'['));
    let (docs, lines) = if json {
        match serde_json::from_str::<Value>(text) {
            Ok(v) => (vec![v], DocLines::json(text)),
            Err(e) => {
                return fatal(InfraError::at(
                    path,
                    Some(e.line()),
                    format!("not valid JSON: {e}"),
                ));
            }
        }
    } else {
        match yaml::documents(text) {
            Ok(d) => (d, DocLines::yaml(text)),
            Err(e) => return fatal(InfraError::at(path, e.line, e.to_string())),
        }
    };
    let in_assembly = path.parent().is_some_and(cdk::is_assembly);
    let mut out = Vec::new();
    for doc in &docs {
        if terraform_plan::format_of(doc).is_some() {
            out.extend(terraform_plan::extract(doc, path, &lines));
        } else if cloudformation::is_template(doc) {
            let format = if in_assembly || cdk::is_cdk_template(doc) {
                Format::Cdk
            } else if cloudformation::is_sam(doc) {
                Format::Sam
            } else {
                Format::CloudFormation
            };
            out.extend(cloudformation::extract(
                doc,
                &cloudformation::Context {
                    file: path,
                    format,
                    lines: &lines,
                    base: Vec::new(),
                    options: Default::default(),
                },
            ));
        } else if serverless::is_service(doc) {
            out.extend(serverless::extract(doc, path, &lines));
        } else if rule_file::is_rule(doc) {
            out.extend(rule_file::extract(doc, path, &lines));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_in_order_skipping_hidden_dependencies_caches_and_assets() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        for f in [
            "b.yaml",
            "a.tf",
            "README.md",
            "x.pattern-tests.yaml",
            ".git/config.json",
            "node_modules/m/t.json",
            "target/CACHEDIR.TAG",
            "target/debug/t.json",
            "cdk.out/manifest.json",
            "cdk.out/tree.json",
            "cdk.out/S.template.json",
            "cdk.out/S.assets.json",
            "cdk.out/asset.123/package.json",
            "sub/c.json",
        ] {
            let path = p.join(f);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "{}").unwrap();
        }
        let w = walk(&[p.to_owned(), p.join("missing.yaml")]);
        let rel: Vec<String> = w
            .files
            .iter()
            .map(|(f, _)| f.strip_prefix(p).unwrap().display().to_string())
            .collect();
        assert_eq!(
            rel,
            ["a.tf", "b.yaml", "cdk.out/S.template.json", "sub/c.json"]
        );
        assert_eq!(w.tests, [p.join("x.pattern-tests.yaml")]);
        assert_eq!(w.errors.len(), 1);
    }

    #[test]
    fn unparsable_files_are_errors_only_when_named_or_ours() {
        let helm = "metadata:\n  name: {{ .Values.name }}-x\n";
        assert!(
            extract_text(Path::new("t.yaml"), helm, false)
                .unwrap()
                .is_empty()
        );
        assert!(extract_text(Path::new("t.yaml"), helm, true).is_err());
        let broken = "Resources:\n  R:\n    Type: AWS::Events::Rule\n   bad: [\n";
        assert!(extract_text(Path::new("t.yaml"), broken, false).is_err());
    }

    #[test]
    fn formats_are_decided_by_content() {
        let cfn = "Resources:\n  R:\n    Type: AWS::Events::Rule\n    Properties:\n      EventPattern: {source: [a]}\n";
        let f = extract_text(Path::new("any.yml"), cfn, false).unwrap();
        assert_eq!(f[0].format, Format::CloudFormation);
        let rule = r#"{"name": "r", "event_pattern": {"source": ["a"]}, "targets": ["console"]}"#;
        let f = extract_text(Path::new("rules/r.json"), rule, false).unwrap();
        assert_eq!(
            (f[0].format, f[0].resource.as_str()),
            (Format::ScanbridgeRule, "r")
        );
        let k8s = "apiVersion: v1\nkind: ConfigMap\n---\napiVersion: v1\nkind: Service\n";
        assert!(
            extract_text(Path::new("k.yaml"), k8s, false)
                .unwrap()
                .is_empty()
        );
    }
}
