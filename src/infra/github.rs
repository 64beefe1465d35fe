//! GitHub Actions annotations: workflow commands (`::error file=F,line=L,title=T::message`) that the
//! runner turns into annotations on the pull request's diff.
//!
//! Escaping follows GitHub's rules (the toolkit's `escapeData` and `escapeProperty`): in the message
//! `%`, CR and LF become `%25`, `%0D`, `%0A`; in property values `:` and `,` also become `%3A` and
//! `%2C`. So no content — a key of a pattern, a file name — can end a command early or start a
//! second one. File paths are made relative to `GITHUB_WORKSPACE` when they are under it, as the
//! annotations need.

use std::path::Path;

/// The annotation levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Error,
    Warning,
}

/// One annotation.
#[derive(Debug, Clone, PartialEq)]
pub struct Annotation {
    pub level: Level,
    pub file: Option<String>,
    pub line: Option<usize>,
    pub title: Option<String>,
    pub message: String,
}

/// Escapes a command's message.
pub fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a command's property value.
pub fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// The workflow command line for an annotation.
pub fn command(a: &Annotation) -> String {
    let name = match a.level {
        Level::Error => "error",
        Level::Warning => "warning",
    };
    let mut props = Vec::new();
    if let Some(f) = &a.file {
        props.push(format!("file={}", escape_property(f)));
    }
    if let Some(l) = a.line {
        props.push(format!("line={l}"));
    }
    if let Some(t) = &a.title {
        props.push(format!("title={}", escape_property(t)));
    }
    let props = if props.is_empty() {
        String::new()
    } else {
        format!(" {}", props.join(","))
    };
    format!("::{name}{props}::{}", escape_data(&a.message))
}

/// Whether this process runs in GitHub Actions.
pub fn running_in_actions() -> bool {
    std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true")
}

/// A path as annotations want it: relative to the workspace when under it.
pub fn workspace_path(path: &Path) -> String {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    if let Some(ws) = std::env::var_os("GITHUB_WORKSPACE") {
        let ws = std::path::absolute(Path::new(&ws)).unwrap_or_else(|_| ws.into());
        if let Ok(rel) = abs.strip_prefix(&ws) {
            return rel.display().to_string();
        }
    }
    path.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_properties_escape_as_github_says() {
        let a = Annotation {
            level: Level::Error,
            file: Some("infra/a,b:c.yaml".into()),
            line: Some(12),
            title: Some("Rule: 100%".into()),
            message: "first\nsecond\r 100% ::warning::x".into(),
        };
        assert_eq!(
            command(&a),
            "::error file=infra/a%2Cb%3Ac.yaml,line=12,title=Rule%3A 100%25::first%0Asecond%0D 100%25 ::warning::x"
        );
        let bare = Annotation {
            level: Level::Warning,
            file: None,
            line: None,
            title: None,
            message: "m".into(),
        };
        assert_eq!(command(&bare), "::warning::m");
    }
}
