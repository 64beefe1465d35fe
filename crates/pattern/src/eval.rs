//! The reference interpreter: one pattern against one flattened event, written to be obviously correct
//! rather than fast. The compiled `RuleSet` must agree with it on every input.
//!
//! A pattern matches when some branch matches. A branch matches when each of its conditions can be given
//! one leaf at its path that one of its matchers accepts, such that all the chosen leaves are pairwise
//! array-consistent; a condition with `exists: false` may instead hold by its path being absent.
//! Choosing leaves is a small backtracking search over the candidates of each condition.

use std::collections::HashMap;
use std::fmt;

use crate::ast::{AnythingBut, Branch, Condition, Literal, Matcher};
use crate::flatten::{Field, Leaf};
use crate::parse::fold;

/// Whether one matcher accepts one leaf. `exists: false` accepts no leaf: it is about absence.
pub fn accepts(m: &Matcher, leaf: &Leaf) -> bool {
    let s = match leaf {
        Leaf::String(s) => Some(s.as_str()),
        _ => None,
    };
    match m {
        Matcher::Exact(lit) => match (lit, leaf) {
            (Literal::String(a), Leaf::String(b)) => a == b,
            (Literal::Number(a), Leaf::Number(b)) => a.same(b),
            (Literal::Bool(a), Leaf::Bool(b)) => a == b,
            (Literal::Null, Leaf::Null) => true,
            _ => false,
        },
        Matcher::Ip(r) | Matcher::Cidr(r) => s.is_some_and(|s| r.contains_str(s)),
        Matcher::Prefix(p) => s.is_some_and(|s| s.starts_with(p.as_str())),
        Matcher::PrefixIgnoreCase(p) => s.is_some_and(|s| fold(s).starts_with(p.as_str())),
        Matcher::Suffix(p) => s.is_some_and(|s| s.ends_with(p.as_str())),
        Matcher::SuffixIgnoreCase(p) => s.is_some_and(|s| fold(s).ends_with(p.as_str())),
        Matcher::EqualsIgnoreCase(p) => s.is_some_and(|s| fold(s) == *p),
        Matcher::Wildcard(w) => s.is_some_and(|s| w.matches(s)),
        Matcher::AnythingBut(a) => !excluded(a, leaf),
        Matcher::Numeric(r) => match leaf {
            Leaf::Number(n) => n.cmp.is_some_and(|v| r.contains(v)),
            _ => false,
        },
        Matcher::Exists(present) => *present,
    }
}

/// Whether `anything-but` excludes this leaf. Only values of the excluded kind can be excluded.
fn excluded(a: &AnythingBut, leaf: &Leaf) -> bool {
    match (a, leaf) {
        (AnythingBut::Strings(v), Leaf::String(s)) => v.iter().any(|x| x == s),
        (AnythingBut::Numbers(v), Leaf::Number(n)) => {
            v.iter().any(|x| x.cmp.is_some() && x.cmp == n.cmp)
        }
        (AnythingBut::IgnoreCase(v), Leaf::String(s)) => {
            let s = fold(s);
            v.contains(&s)
        }
        (AnythingBut::Prefixes(v), Leaf::String(s)) => v.iter().any(|x| s.starts_with(x.as_str())),
        (AnythingBut::Suffixes(v), Leaf::String(s)) => v.iter().any(|x| s.ends_with(x.as_str())),
        (AnythingBut::Wildcards(v), Leaf::String(s)) => v.iter().any(|w| w.matches(s)),
        _ => false,
    }
}

/// Leaves grouped by path, borrowed from a flattened event.
pub struct Index<'e> {
    by_path: HashMap<&'e str, Vec<&'e Field>>,
}

impl<'e> Index<'e> {
    pub fn new(fields: &'e [Field]) -> Self {
        let mut by_path: HashMap<&str, Vec<&Field>> = HashMap::new();
        for f in fields {
            by_path.entry(f.path.as_str()).or_default().push(f);
        }
        Index { by_path }
    }

    fn at(&self, path: &str) -> &[&'e Field] {
        self.by_path.get(path).map_or(&[], Vec::as_slice)
    }

    /// Whether some leaf lies below `path` (the path holds an object or an array of objects).
    fn has_children(&self, path: &str) -> bool {
        self.by_path.keys().any(|k| {
            k.len() > path.len() && k.starts_with(path) && k.as_bytes()[path.len()] == b'.'
        })
    }
}

/// The leaves at a condition's path that it accepts.
fn candidates<'e>(c: &Condition, index: &Index<'e>) -> Vec<&'e Field> {
    index
        .at(&c.path)
        .iter()
        .copied()
        .filter(|f| c.matchers.iter().any(|m| accepts(m, &f.value)))
        .collect()
}

/// Whether one branch matches.
pub fn branch_matches(b: &Branch, index: &Index<'_>) -> bool {
    let mut pools = Vec::with_capacity(b.conditions.len());
    for c in &b.conditions {
        let pool = candidates(c, index);
        if pool.is_empty() {
            if c.allows_absence() && index.at(&c.path).is_empty() {
                continue; // held by absence; no leaf to keep consistent
            }
            return false;
        }
        pools.push(pool);
    }
    // Fewest candidates first keeps the search small.
    pools.sort_by_key(Vec::len);
    choose(&pools, &mut Vec::new())
}

fn choose<'e>(pools: &[Vec<&'e Field>], chosen: &mut Vec<&'e Field>) -> bool {
    let Some((pool, rest)) = pools.split_first() else {
        return true;
    };
    for &f in pool {
        if chosen.iter().all(|c| c.consistent_with(f)) {
            chosen.push(f);
            if choose(rest, chosen) {
                return true;
            }
            chosen.pop();
        }
    }
    false
}

/// Whether any branch matches.
pub fn matches(branches: &[Branch], fields: &[Field]) -> bool {
    let index = Index::new(fields);
    branches.iter().any(|b| branch_matches(b, &index))
}

/// Field-by-field reasons why a pattern matched an event or did not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub matched: bool,
    /// One entry per branch (`$or` combination); a pattern without `$or` has one.
    pub branches: Vec<BranchExplanation>,
}

/// The verdict of one branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchExplanation {
    pub matched: bool,
    pub conditions: Vec<ConditionExplanation>,
    /// Set when every condition held on its own but only with leaves from different elements of one
    /// array, which a pattern never combines.
    pub inconsistent_arrays: bool,
}

/// The verdict on one field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionExplanation {
    pub path: String,
    pub held: bool,
    /// For people: `absent from the event; the rule needs numeric > 0`.
    pub reason: String,
}

fn needs(c: &Condition) -> String {
    c.matchers
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" or ")
}

fn values(fields: &[&Field]) -> String {
    let v: Vec<String> = fields.iter().map(|f| f.value.to_string()).collect();
    if v.len() == 1 {
        v[0].clone()
    } else {
        format!("[{}]", v.join(", "))
    }
}

fn explain_condition(c: &Condition, index: &Index<'_>) -> ConditionExplanation {
    let present = index.at(&c.path);
    let (held, reason) = if present.is_empty() {
        let what = if index.has_children(&c.path) {
            "has no value of its own (it holds an object; patterns match leaf values)"
        } else {
            "absent from the event"
        };
        if c.allows_absence() {
            (true, format!("{what}, which exists false allows"))
        } else {
            (false, format!("{what}; the rule needs {}", needs(c)))
        }
    } else {
        let ok = candidates(c, index);
        if let Some(first) = ok.first() {
            let by = c
                .matchers
                .iter()
                .find(|m| accepts(m, &first.value))
                .map(ToString::to_string)
                .unwrap_or_default();
            (true, format!("{} satisfies {by}", values(&ok)))
        } else {
            let verb = if present.len() == 1 {
                "does not satisfy"
            } else {
                "none satisfies"
            };
            (false, format!("{} {verb} {}", values(present), needs(c)))
        }
    };
    ConditionExplanation {
        path: c.path.clone(),
        held,
        reason,
    }
}

/// Explains every branch.
pub fn explain(branches: &[Branch], fields: &[Field]) -> Explanation {
    let index = Index::new(fields);
    let branches: Vec<BranchExplanation> = branches
        .iter()
        .map(|b| {
            let conditions: Vec<ConditionExplanation> = b
                .conditions
                .iter()
                .map(|c| explain_condition(c, &index))
                .collect();
            let matched = branch_matches(b, &index);
            let inconsistent_arrays = !matched && conditions.iter().all(|c| c.held);
            BranchExplanation {
                matched,
                conditions,
                inconsistent_arrays,
            }
        })
        .collect();
    Explanation {
        matched: branches.iter().any(|b| b.matched),
        branches,
    }
}

impl Explanation {
    /// The reasons as data, one object per branch: `{"matched", "inconsistent_arrays", "fields":
    /// [{"path", "held", "reason"}]}` (the `explain` of `test-pattern --json --explain`, of
    /// `check-patterns --json` and of the admin API's `test-pattern`).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Array(
            self.branches
                .iter()
                .map(|b| {
                    serde_json::json!({
                        "matched": b.matched,
                        "inconsistent_arrays": b.inconsistent_arrays,
                        "fields": b.conditions.iter().map(|c| serde_json::json!({
                            "path": c.path, "held": c.held, "reason": c.reason,
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect(),
        )
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", if self.matched { "match" } else { "no match" })?;
        let many = self.branches.len() > 1;
        for (i, b) in self.branches.iter().enumerate() {
            let indent = if many {
                writeln!(
                    f,
                    "  $or combination {} of {}: {}",
                    i + 1,
                    self.branches.len(),
                    if b.matched {
                        "matches"
                    } else {
                        "does not match"
                    }
                )?;
                "    "
            } else {
                "  "
            };
            for c in &b.conditions {
                writeln!(
                    f,
                    "{indent}{} {}: {}",
                    if c.held { "ok  " } else { "FAIL" },
                    c.path,
                    c.reason
                )?;
            }
            if b.inconsistent_arrays {
                writeln!(
                    f,
                    "{indent}FAIL each field holds alone, but only with values from different elements of the same array, which a pattern never combines"
                )?;
            }
        }
        Ok(())
    }
}
