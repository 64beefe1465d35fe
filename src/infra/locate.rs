//! Source lines of patterns and of the nodes inside them, for GitHub annotations and JUnit.
//!
//! JSON text is scanned exactly ([`json_lines`]: every node's JSON pointer to its line). YAML has no
//! such scanner here, so [`yaml_line`] follows the keys of a path through block-style indentation and
//! sequence items, falling back to the nearest ancestor it can find; a flow-style (`{...}`) or quoted
//! pattern is located by its key. Lines are 1-based. Nothing here fails: an unknown line is `None`.

use std::collections::HashMap;
use std::sync::Arc;

use super::pointer::pointer_tokens;

/// How to find the line of a JSON pointer inside one pattern.
#[derive(Debug, Clone, Default)]
pub enum Lines {
    #[default]
    Unknown,
    /// Exact lines, by pointer relative to the pattern (`""` is the pattern itself).
    Map(HashMap<String, usize>),
    /// A YAML file and the path of the pattern in it.
    Yaml { text: Arc<str>, base: Vec<String> },
}

impl Lines {
    /// One line for the whole pattern.
    pub fn at(line: Option<usize>) -> Lines {
        match line {
            Some(l) => Lines::Map(HashMap::from([(String::new(), l)])),
            None => Lines::Unknown,
        }
    }

    /// The line of the node at `pointer`, or of its nearest ancestor that can be found.
    pub fn line_of(&self, pointer: &str) -> Option<usize> {
        match self {
            Lines::Unknown => None,
            Lines::Map(m) => {
                let mut p = pointer;
                loop {
                    if let Some(l) = m.get(p) {
                        return Some(*l);
                    }
                    p = &p[..p.rfind('/')?];
                }
            }
            Lines::Yaml { text, base } => {
                let mut path = base.clone();
                path.extend(pointer_tokens(pointer));
                while path.len() >= base.len() {
                    if let Some(l) = yaml_line(text, &path) {
                        return Some(l);
                    }
                    if path.pop().is_none() {
                        break;
                    }
                }
                None
            }
        }
    }
}

/// Where the lines of one parsed document come from.
#[derive(Debug, Clone)]
pub enum DocLines {
    /// A JSON file: every node's line, by pointer from the document root.
    Json(Arc<HashMap<String, usize>>),
    /// A YAML file's text.
    Yaml(Arc<str>),
}

impl DocLines {
    pub fn json(text: &str) -> DocLines {
        DocLines::Json(Arc::new(json_lines(text)))
    }

    pub fn yaml(text: &str) -> DocLines {
        DocLines::Yaml(text.into())
    }

    /// The lines of the pattern at `path` (its keys and indexes from the document root).
    pub fn pattern(&self, path: &[String]) -> Lines {
        match self {
            DocLines::Json(all) => {
                let prefix: String = path
                    .iter()
                    .fold(String::new(), |p, t| super::pointer::pointer_push(&p, t));
                let rel: HashMap<String, usize> = all
                    .iter()
                    .filter_map(|(p, l)| {
                        let rest = p.strip_prefix(&prefix)?;
                        (rest.is_empty() || rest.starts_with('/')).then(|| (rest.to_owned(), *l))
                    })
                    .collect();
                if rel.is_empty() {
                    Lines::Unknown
                } else {
                    Lines::Map(rel)
                }
            }
            DocLines::Yaml(text) => Lines::Yaml {
                text: text.clone(),
                base: path.to_vec(),
            },
        }
    }
}

/// The 1-based line of a byte offset.
pub fn line_at(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// Every node of a JSON text: its pointer and the line its value starts on. Tolerant: scanning
/// stops quietly at the first thing that is not JSON.
pub fn json_lines(text: &str) -> HashMap<String, usize> {
    let mut s = Scanner {
        b: text.as_bytes(),
        text,
        i: 0,
        line: 1,
        out: HashMap::new(),
    };
    s.value(String::new());
    s.out
}

struct Scanner<'a> {
    b: &'a [u8],
    text: &'a str,
    i: usize,
    line: usize,
    out: HashMap<String, usize>,
}

impl Scanner<'_> {
    fn ws(&mut self) {
        while let Some(c) = self.b.get(self.i) {
            match c {
                b'\n' => self.line += 1,
                b' ' | b'\t' | b'\r' => {}
                _ => return,
            }
            self.i += 1;
        }
    }

    fn value(&mut self, pointer: String) -> Option<()> {
        self.ws();
        self.out.insert(pointer.clone(), self.line);
        match *self.b.get(self.i)? {
            b'{' => {
                self.i += 1;
                loop {
                    self.ws();
                    if *self.b.get(self.i)? == b'}' {
                        self.i += 1;
                        return Some(());
                    }
                    let key = self.string()?;
                    self.ws();
                    if *self.b.get(self.i)? != b':' {
                        return None;
                    }
                    self.i += 1;
                    self.value(super::pointer::pointer_push(&pointer, &key))?;
                    self.ws();
                    match *self.b.get(self.i)? {
                        b',' => self.i += 1,
                        b'}' => {
                            self.i += 1;
                            return Some(());
                        }
                        _ => return None,
                    }
                }
            }
            b'[' => {
                self.i += 1;
                let mut n = 0;
                loop {
                    self.ws();
                    if *self.b.get(self.i)? == b']' {
                        self.i += 1;
                        return Some(());
                    }
                    self.value(format!("{pointer}/{n}"))?;
                    n += 1;
                    self.ws();
                    match *self.b.get(self.i)? {
                        b',' => self.i += 1,
                        b']' => {
                            self.i += 1;
                            return Some(());
                        }
                        _ => return None,
                    }
                }
            }
            b'"' => self.string().map(|_| ()),
            _ => {
                while let Some(c) = self.b.get(self.i) {
                    if matches!(c, b',' | b'}' | b']') || c.is_ascii_whitespace() {
                        break;
                    }
                    self.i += 1;
                }
                Some(())
            }
        }
    }

    /// A string at the cursor, decoded.
    fn string(&mut self) -> Option<String> {
        if self.b.get(self.i) != Some(&b'"') {
            return None;
        }
        let start = self.i;
        self.i += 1;
        while let Some(c) = self.b.get(self.i) {
            match c {
                b'\\' => self.i += 2,
                b'"' => {
                    self.i += 1;
                    return serde_json::from_str(&self.text[start..self.i]).ok();
                }
                b'\n' => {
                    self.line += 1;
                    self.i += 1;
                }
                _ => self.i += 1,
            }
        }
        None
    }
}

/// The line of the node at `path` (keys and sequence indexes) in a block-style YAML text. Each key
/// is looked for among the direct children of the node found so far (the first lines indented
/// deeper than it), each index among its `- ` items, so a key of the same name deeper down or in a
/// sibling is never taken for it.
pub fn yaml_line(text: &str, path: &[String]) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    // The node reached so far: its line, its column, and the rest of its line after `- ` when it
    // is a sequence item (whose first key sits on the same line).
    let mut at: Option<usize> = None;
    let mut col: isize = -1;
    let mut inline: Option<(isize, String)> = None;
    for token in path {
        let from = at.map_or(0, |a| a + 1);
        let children = lines
            .iter()
            .enumerate()
            .skip(from)
            .map(|(n, raw)| (n, strip_comment(raw)))
            .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
        let mut found = None;
        if let Ok(i) = token.parse::<usize>() {
            let (mut seen, mut item_col) = (0, None);
            for (n, l) in children {
                let ind = (l.len() - l.trim_start().len()) as isize;
                let body = l.trim_start();
                let dash = body == "-" || body.starts_with("- ");
                if ind < col || (ind == col && !dash) {
                    break;
                }
                if dash && *item_col.get_or_insert(ind) == ind {
                    if seen == i {
                        let rest = body[1..].trim_start();
                        let rest_col = (l.len() - rest.len()) as isize;
                        found = Some((n, ind, Some((rest_col, rest.to_owned()))));
                        break;
                    }
                    seen += 1;
                }
            }
        }
        if found.is_none()
            && let Some((c, rest)) = &inline
            && key_of(rest).as_deref() == Some(token.as_str())
        {
            found = Some((at.expect("an item has a line"), *c, None));
        }
        if found.is_none() {
            let children = lines
                .iter()
                .enumerate()
                .skip(from)
                .map(|(n, raw)| (n, strip_comment(raw)))
                .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
            let mut child_col = None;
            for (n, l) in children {
                let ind = (l.len() - l.trim_start().len()) as isize;
                if ind <= col {
                    break;
                }
                if *child_col.get_or_insert(ind) != ind {
                    continue;
                }
                if key_of(l.trim_start()).as_deref() == Some(token.as_str()) {
                    found = Some((n, ind, None));
                    break;
                }
            }
        }
        let (n, c, rest) = found?;
        at = Some(n);
        col = c;
        inline = rest;
    }
    at.map(|a| a + 1)
}

/// A line without a trailing `# comment` (a `#` preceded by a space, outside quotes).
fn strip_comment(line: &str) -> &str {
    let (mut single, mut double) = (false, false);
    let b = line.as_bytes();
    for (i, c) in b.iter().enumerate() {
        match c {
            b'\'' if !double => single = !single,
            b'"' if !single => double = !double,
            b'#' if !single && !double && (i == 0 || b[i - 1] == b' ') => return &line[..i],
            _ => {}
        }
    }
    line
}

/// The key of a `key: value` line (bare, `"quoted"` or `'quoted'`).
fn key_of(s: &str) -> Option<String> {
    let s = s.trim_start();
    if let Some(rest) = s.strip_prefix('"') {
        let end = rest.find('"')?;
        return rest[end + 1..]
            .trim_start()
            .starts_with(':')
            .then(|| rest[..end].to_owned());
    }
    if let Some(rest) = s.strip_prefix('\'') {
        let end = rest.find('\'')?;
        return rest[end + 1..]
            .trim_start()
            .starts_with(':')
            .then(|| rest[..end].to_owned());
    }
    let end = s
        .find(": ")
        .or_else(|| s.strip_suffix(':').map(|k| k.len()))?;
    let key = s[..end].trim_end();
    (!key.is_empty() && !key.starts_with(['{', '[', '-'])).then(|| key.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_nodes_get_their_lines() {
        let text = "{\n \"a\": {\n  \"b/c\": [\n   1,\n   {\"d\": \"x\\\"y\"}\n  ]\n }\n}";
        let m = json_lines(text);
        assert_eq!(m[""], 1);
        assert_eq!(m["/a"], 2);
        assert_eq!(m["/a/b~1c"], 3);
        assert_eq!(m["/a/b~1c/0"], 4);
        assert_eq!(m["/a/b~1c/1/d"], 5);
    }

    #[test]
    fn broken_json_yields_what_was_read() {
        let m = json_lines("{\"a\": 1,\n \"b\": [");
        assert_eq!(m.get("/a"), Some(&1));
    }

    const TEMPLATE: &str = "\
Resources:
  # a comment
  Rule:
    Type: AWS::Events::Rule
    Properties:
      EventPattern:
        source:
          - aws.ec2
        detail:
          state: [terminated]
  Pipe:
    Properties:
      FilterCriteria:
        Filters:
          - Pattern: '{\"a\": [1]}'
          - Pattern: >-
              {\"b\": [2]}
";

    fn path(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn yaml_keys_and_items_are_followed_by_indentation() {
        let cases = [
            ("Resources/Rule/Properties/EventPattern", Some(6)),
            ("Resources/Rule/Properties/EventPattern/source/0", Some(8)),
            (
                "Resources/Rule/Properties/EventPattern/detail/state",
                Some(10),
            ),
            (
                "Resources/Pipe/Properties/FilterCriteria/Filters/1/Pattern",
                Some(16),
            ),
            ("Resources/Rule/Properties/Nope", None),
        ];
        for (p, want) in cases {
            let tokens: Vec<&str> = p.split('/').collect();
            assert_eq!(yaml_line(TEMPLATE, &path(&tokens)), want, "{p}");
        }
    }

    #[test]
    fn lines_fall_back_to_the_nearest_ancestor() {
        let lines = Lines::Yaml {
            text: TEMPLATE.into(),
            base: path(&["Resources", "Rule", "Properties", "EventPattern"]),
        };
        assert_eq!(lines.line_of(""), Some(6));
        assert_eq!(lines.line_of("/detail/state/0"), Some(10));
        assert_eq!(lines.line_of("/detail/missing"), Some(9));
        let map = Lines::Map(HashMap::from([("".into(), 3), ("/a".into(), 4)]));
        assert_eq!(map.line_of("/a/b/0"), Some(4));
        assert_eq!(map.line_of("/z"), Some(3));
    }
}
