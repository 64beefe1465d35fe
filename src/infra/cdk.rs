//! CDK: the synthesized templates of a cloud assembly (`cdk.out/`, or wherever `--output` put it).
//!
//! `cdk synth` writes one CloudFormation template per stack, `STACK.template.json`, beside
//! `manifest.json`, `tree.json`, `*.assets.json` and the bundled assets (`asset.*` directories, which
//! can hold whole `node_modules` trees). Only the templates hold patterns; they are read as
//! CloudFormation ([`super::cloudformation`]), with the construct path of each resource from its
//! `aws:cdk:path` metadata so that a finding can be traced to the code that made it.

use std::path::Path;

use serde_json::Value;

/// Whether a directory is a cloud assembly: it has a `manifest.json` and `*.template.json` files
/// (the default name is `cdk.out`).
pub fn is_assembly(dir: &Path) -> bool {
    dir.join("manifest.json").is_file()
        && std::fs::read_dir(dir).is_ok_and(|entries| {
            entries
                .filter_map(Result::ok)
                .any(|e| e.file_name().to_string_lossy().ends_with(".template.json"))
        })
}

/// Whether an entry of a cloud assembly is worth reading: templates and nested assemblies
/// (`assembly-*` directories of CDK stages), not manifests or assets.
pub fn keep_in_assembly(name: &str, is_dir: bool) -> bool {
    if is_dir {
        name.starts_with("assembly-")
    } else {
        name.ends_with(".template.json")
    }
}

/// Whether a template was synthesized by the CDK (it carries CDK metadata).
pub fn is_cdk_template(doc: &Value) -> bool {
    doc.get("Resources")
        .and_then(Value::as_object)
        .is_some_and(|r| {
            r.values().any(|res| {
                construct_path(res).is_some()
                    || res.get("Type").and_then(Value::as_str) == Some("AWS::CDK::Metadata")
            })
        })
}

/// The construct path of a resource (`RuleStack/MyRule/Resource`), from `Metadata.aws:cdk:path`.
pub fn construct_path(resource: &Value) -> Option<String> {
    resource
        .pointer("/Metadata/aws:cdk:path")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn templates_and_nested_assemblies_only() {
        assert!(keep_in_assembly("RuleStack.template.json", false));
        assert!(keep_in_assembly("assembly-Prod", true));
        assert!(!keep_in_assembly("manifest.json", false));
        assert!(!keep_in_assembly("RuleStack.assets.json", false));
        assert!(!keep_in_assembly("asset.4f1c0b", true));
    }

    #[test]
    fn cdk_templates_carry_construct_paths() {
        let t = json!({"Resources": {"R": {"Type": "AWS::Events::Rule",
            "Metadata": {"aws:cdk:path": "S/R/Resource"}}}});
        assert!(is_cdk_template(&t));
        assert_eq!(
            construct_path(&t["Resources"]["R"]).as_deref(),
            Some("S/R/Resource")
        );
        assert!(!is_cdk_template(
            &json!({"Resources": {"R": {"Type": "AWS::Events::Rule"}}})
        ));
    }
}
