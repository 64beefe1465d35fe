//! `SCANBRIDGE__...` environment variables as configuration keys, with one rule for target names
//! (which may hold `-`, and a shell variable name cannot).
//!
//! The rule (README "Configuration"):
//! - `SCANBRIDGE__SECTION__KEY` sets `section.key` (`SCANBRIDGE__SERVER__LISTEN`,
//!   `SCANBRIDGE__DELIVERY__MAX_ATTEMPTS`); names are case-insensitive and keys are lower case.
//! - `SCANBRIDGE__TARGETS__NAME__KEY[__SUBKEY]` sets `targets.<target>.key[.subkey]`, where `NAME` is
//!   matched against the targets the configuration files declare, ignoring case, and `_` in `NAME`
//!   stands for `_` or `-` in the target's name: `SCANBRIDGE__TARGETS__ONCALL_MAIL__PASSWORD` is
//!   `targets.oncall-mail.password` when `oncall-mail` is declared.
//! - When two declared targets match one `NAME` (`oncall-mail` and `oncall_mail`), the variable is
//!   an error naming both: it never guesses.
//! - When none matches, the variable declares a new target named `NAME` in lower case (with its
//!   `_`), so `SCANBRIDGE__TARGETS__HOOK__TYPE=webhook` and `SCANBRIDGE__TARGETS__HOOK__URL=...` make
//!   `[targets.hook]`; a target whose name has `-` is declared in a file first.
//!
//! Pure: it is handed the variables and the declared names; it reads no environment itself.

use std::collections::HashMap;

/// The prefix of every variable read.
pub const PREFIX: &str = "SCANBRIDGE__";

/// The variables, split: target keys resolved to `targets.<name>.<key>`, the others left for the
/// config crate's environment source, and the variables that match two targets.
#[derive(Debug, Default)]
pub struct Split {
    /// `(key, value, variable)`: `targets.oncall-mail.password`, its value, the variable's name.
    pub targets: Vec<(String, String, String)>,
    /// The other `SCANBRIDGE__` variables, unchanged.
    pub rest: HashMap<String, String>,
    /// `(variable, message)` for a name that matches several declared targets.
    pub ambiguous: Vec<(String, String)>,
}

/// How `NAME` of a variable compares with a declared target name.
fn normal(name: &str) -> String {
    name.to_ascii_uppercase().replace('-', "_")
}

/// Splits the `SCANBRIDGE__` variables of `vars` (others are ignored) given the `declared` target
/// names.
pub fn split(vars: impl IntoIterator<Item = (String, String)>, declared: &[String]) -> Split {
    let mut out = Split::default();
    let mut vars: Vec<(String, String)> = vars
        .into_iter()
        .filter(|(k, _)| k.starts_with(PREFIX))
        .collect();
    vars.sort();
    for (var, value) in vars {
        let parts: Vec<&str> = var[PREFIX.len()..].split("__").collect();
        let is_target = parts
            .first()
            .is_some_and(|p| p.eq_ignore_ascii_case("targets"));
        if !is_target || parts.len() < 3 || parts[1].is_empty() {
            out.rest.insert(var, value);
            continue;
        }
        let matching: Vec<&String> = declared
            .iter()
            .filter(|d| normal(d) == normal(parts[1]))
            .collect();
        let name = match matching.as_slice() {
            [one] => (*one).clone(),
            [] => parts[1].to_ascii_lowercase(),
            several => {
                let mut names: Vec<String> = several.iter().map(|n| format!("{n:?}")).collect();
                names.sort();
                out.ambiguous.push((
                    var.clone(),
                    format!(
                        "{var} matches the targets {}: rename one of them (a variable cannot tell `-` from `_`)",
                        names.join(" and ")
                    ),
                ));
                continue;
            }
        };
        let key: Vec<String> = parts[2..].iter().map(|p| p.to_ascii_lowercase()).collect();
        out.targets
            .push((format!("targets.{name}.{}", key.join(".")), value, var));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_target_name_with_a_dash_is_found_from_its_underscores() {
        let declared = vec!["oncall-mail".to_owned(), "hook".to_owned()];
        let s = split(
            vars(&[
                ("SCANBRIDGE__TARGETS__ONCALL_MAIL__PASSWORD", "pw"),
                ("SCANBRIDGE__TARGETS__HOOK__RETRY__MAX_ATTEMPTS", "3"),
                ("SCANBRIDGE__TARGETS__NEW_ONE__TYPE", "console"),
                ("SCANBRIDGE__SERVER__TOKEN", "t"),
                ("HOME", "/root"),
            ]),
            &declared,
        );
        let keys: Vec<&str> = s.targets.iter().map(|(k, _, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "targets.hook.retry.max_attempts",
                "targets.new_one.type",
                "targets.oncall-mail.password",
            ]
        );
        assert_eq!(s.rest.len(), 1, "{:?}", s.rest);
        assert!(s.ambiguous.is_empty());
    }

    #[test]
    fn two_targets_that_one_variable_could_mean_are_an_error() {
        let declared = vec!["oncall-mail".to_owned(), "oncall_mail".to_owned()];
        let s = split(
            vars(&[("SCANBRIDGE__TARGETS__ONCALL_MAIL__PASSWORD", "pw")]),
            &declared,
        );
        assert!(s.targets.is_empty());
        let (var, msg) = &s.ambiguous[0];
        assert_eq!(var, "SCANBRIDGE__TARGETS__ONCALL_MAIL__PASSWORD");
        assert!(msg.contains("\"oncall-mail\" and \"oncall_mail\""), "{msg}");
    }
}
