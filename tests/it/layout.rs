//! The house's layout, checked so that it stays true (ARCHITECTURE.md):
//! - no import circle between the modules of the daemon crate: neither between its files (a file is a
//!   module; `mod.rs` is its folder's module) nor between its top-level modules (the rooms);
//! - ARCHITECTURE.md names every folder of the repository.
//!
//! The import graph is read from the source: every `crate::`, `super::` and `self::` path, and every
//! path through a child module of the file (`use history::Previous` in `alerting/mod.rs`), in `use`
//! items and in expressions, `{...}` groups included. Comments, string and character literals are
//! skipped, and so is test code (`#[cfg(test)]` items): a test may use any module to build its inputs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Module = Vec<String>;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The module a file of `src/` defines (`src/a/mod.rs` and `src/a.rs` are `a`; `src/lib.rs` is the root).
fn module_of(src: &Path, file: &Path) -> Module {
    let rel = file.strip_prefix(src).unwrap();
    let mut parts: Module = rel
        .iter()
        .map(|c| c.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap();
    match last.as_str() {
        "mod.rs" | "lib.rs" => {}
        name => parts.push(name.trim_end_matches(".rs").to_owned()),
    }
    parts
}

/// How many `#` open a raw string at `c` (`"`, `#"`, `##"`...), if one opens there.
fn raw_hashes(c: &[char]) -> Option<usize> {
    let n = c.iter().take_while(|&&x| x == '#').count();
    (c.get(n) == Some(&'"')).then_some(n)
}

/// `text` without comments and string or character literals (each replaced by a space).
fn code_only(text: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let ident = |ch: char| ch.is_alphanumeric() || ch == '_';
    while i < c.len() {
        let prev_ident = i > 0 && ident(c[i - 1]);
        if c[i] == '/' && c.get(i + 1) == Some(&'/') {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if c[i] == '/' && c.get(i + 1) == Some(&'*') {
            i += 2;
            while i + 1 < c.len() && !(c[i] == '*' && c[i + 1] == '/') {
                i += 1;
            }
            i += 2;
            out.push(' ');
        } else if c[i] == 'r' && !prev_ident && raw_hashes(&c[i + 1..]).is_some() {
            // r"..." or r#"..."#: ends at a quote followed by as many hashes.
            let hashes = raw_hashes(&c[i + 1..]).unwrap();
            i += hashes + 2;
            while i < c.len() && !(c[i] == '"' && c[i + 1..].iter().take(hashes).all(|&x| x == '#'))
            {
                i += 1;
            }
            i += 1 + hashes;
            out.push(' ');
        } else if c[i] == '"' {
            i += 1;
            while i < c.len() && c[i] != '"' {
                i += if c[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push(' ');
        } else if c[i] == '\'' && (c.get(i + 2) == Some(&'\'') || c.get(i + 1) == Some(&'\\')) {
            // A character literal ('x', '\n', '\u{0}'); a lifetime ('a) has no closing quote.
            i += 1;
            while i < c.len() && c[i] != '\'' {
                i += if c[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push(' ');
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

/// `code` without the items under `#[cfg(test)]`.
fn without_tests(code: &str) -> String {
    const MARK: &str = "#[cfg(test)]";
    let mut out = String::new();
    let mut rest = code;
    while let Some(at) = rest.find(MARK) {
        out.push_str(&rest[..at]);
        let item = &rest[at + MARK.len()..];
        // The item ends at the `;` or the `}` that closes its first `{`, at depth 0.
        let mut depth = 0i32;
        let mut end = item.len();
        for (i, ch) in item.char_indices() {
            match ch {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        // `use a::{b};` ends at its `;`, `mod m { .. }` at its brace.
                        let after = &item[i + 1..];
                        let semi = after.trim_start().starts_with(';');
                        end = i
                            + 1
                            + if semi {
                                after.find(';').unwrap() + 1
                            } else {
                                0
                            };
                        break;
                    }
                }
                ';' if depth == 0 => {
                    end = i + 1;
                    break;
                }
                _ => {}
            }
        }
        rest = &item[end..];
    }
    out.push_str(rest);
    out
}

/// Tokens: identifiers, `::`, and single punctuation characters.
fn tokens(code: &str) -> Vec<String> {
    let c: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        if c[i].is_alphanumeric() || c[i] == '_' {
            let start = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            out.push(c[start..i].iter().collect());
        } else if c[i] == ':' && c.get(i + 1) == Some(&':') {
            out.push("::".into());
            i += 2;
        } else {
            if !c[i].is_whitespace() {
                out.push(c[i].to_string());
            }
            i += 1;
        }
    }
    out
}

/// The paths of a use tree or expression path starting at `t[i]`: segments joined by `::`, with
/// `{a, b::c}` groups expanded. Returns the paths and the index after the last token read.
fn paths_at(t: &[String], mut i: usize) -> (Vec<Module>, usize) {
    let mut prefix: Module = Vec::new();
    loop {
        match t.get(i).map(String::as_str) {
            Some("{") => {
                let mut all = Vec::new();
                i += 1;
                while t.get(i).is_some_and(|s| s != "}") {
                    if t[i] == "," {
                        i += 1;
                        continue;
                    }
                    let (sub, next) = paths_at(t, i);
                    for s in sub {
                        all.push(prefix.iter().cloned().chain(s).collect());
                    }
                    i = next.max(i + 1);
                }
                return (all, i + 1);
            }
            Some(s) if s.chars().all(|ch| ch.is_alphanumeric() || ch == '_') => {
                prefix.push(s.to_owned());
                i += 1;
                if t.get(i).map(String::as_str) == Some("::") {
                    i += 1;
                    continue;
                }
                return (vec![prefix], i);
            }
            _ => return (vec![prefix], i),
        }
    }
}

/// The module `path` (as written in module `from`) names: its longest prefix that is a module.
fn resolve(from: &Module, path: &Module, modules: &BTreeSet<Module>) -> Option<Module> {
    let mut abs: Module = Vec::new();
    let mut rest = path.as_slice();
    match rest.first().map(String::as_str) {
        Some("crate") => rest = &rest[1..],
        Some("self") => {
            abs = from.clone();
            rest = &rest[1..];
        }
        Some("super") => {
            abs = from.clone();
            while rest.first().map(String::as_str) == Some("super") {
                abs.pop()?;
                rest = &rest[1..];
            }
        }
        _ => abs = from.clone(), // a child module of `from`, named without `self::`
    }
    abs.extend(rest.iter().cloned());
    (0..=abs.len())
        .rev()
        .map(|n| abs[..n].to_vec())
        .find(|m| modules.contains(m))
}

/// module -> the modules it imports (test code excluded).
fn import_graph() -> BTreeMap<Module, BTreeSet<Module>> {
    let src = root().join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.retain(|f| f != &src.join("main.rs")); // the binary: a crate of its own
    let modules: BTreeSet<Module> = files.iter().map(|f| module_of(&src, f)).collect();
    let mut graph = BTreeMap::new();
    for file in &files {
        let from = module_of(&src, file);
        let code = without_tests(&code_only(&std::fs::read_to_string(file).unwrap()));
        let t = tokens(&code);
        let mut edges = BTreeSet::new();
        let mut i = 0;
        while i < t.len() {
            let starts = t.get(i + 1).map(String::as_str) == Some("::")
                && (i == 0 || t[i - 1] != "::")
                && (matches!(t[i].as_str(), "crate" | "super" | "self") || {
                    let mut child = from.clone();
                    child.push(t[i].clone());
                    modules.contains(&child)
                });
            if !starts {
                i += 1;
                continue;
            }
            let (paths, next) = paths_at(&t, i);
            for p in paths {
                if let Some(m) = resolve(&from, &p, &modules)
                    && m != from
                    && !m.is_empty()
                {
                    edges.insert(m);
                }
            }
            i = next.max(i + 1);
        }
        graph.insert(from, edges);
    }
    graph
}

/// A cycle of `graph`, if there is one, as the path that closes it.
fn cycle<N: Ord + Clone>(graph: &BTreeMap<N, BTreeSet<N>>) -> Option<Vec<N>> {
    fn visit<N: Ord + Clone>(
        n: &N,
        graph: &BTreeMap<N, BTreeSet<N>>,
        done: &mut BTreeSet<N>,
        stack: &mut Vec<N>,
    ) -> Option<Vec<N>> {
        if let Some(at) = stack.iter().position(|s| s == n) {
            let mut c = stack[at..].to_vec();
            c.push(n.clone());
            return Some(c);
        }
        if done.contains(n) {
            return None;
        }
        stack.push(n.clone());
        for next in graph.get(n).into_iter().flatten() {
            if let Some(c) = visit(next, graph, done, stack) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(n.clone());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|n| visit(n, graph, &mut done, &mut Vec::new()))
}

fn show(m: &Module) -> String {
    format!("crate::{}", m.join("::"))
}

#[test]
fn no_import_circle_between_modules() {
    let files = import_graph();
    assert!(files.len() > 40, "read the whole crate: {}", files.len());
    // The reader sees what it must: a few edges known to exist.
    let has = |from: &str, to: &str| {
        let m = |s: &str| s.split("::").map(str::to_owned).collect::<Module>();
        files[&m(from)].contains(&m(to))
    };
    assert!(
        has("alerting", "alerting::silence"),
        "a child named without self::"
    );
    assert!(
        has("alerting::silence", "alerting::stage"),
        "super:: to a sibling"
    );
    assert!(
        has("ingest::http", "ingest"),
        "super:: to the folder's module"
    );
    assert!(has("rules", "alerting"), "crate:: through a re-export");
    assert!(!has("alerting", "router"), "test code is not read");
    if let Some(c) = cycle(&files) {
        let c: Vec<String> = c.iter().map(show).collect();
        panic!("import circle between files: {}", c.join(" -> "));
    }
    let mut rooms: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, to) in &files {
        let Some(room) = from.first() else { continue };
        let entry = rooms.entry(room.clone()).or_default();
        entry.extend(
            to.iter()
                .filter_map(|m| m.first())
                .filter(|r| *r != room)
                .cloned(),
        );
    }
    if let Some(c) = cycle(&rooms) {
        panic!(
            "import circle between top-level modules: {}",
            c.join(" -> ")
        );
    }
}

#[test]
fn the_checker_finds_circles_and_reads_groups() {
    let g: BTreeMap<u8, BTreeSet<u8>> = [(1, [2].into()), (2, [3].into()), (3, [1].into())].into();
    assert_eq!(cycle(&g), Some(vec![1, 2, 3, 1]));
    let g: BTreeMap<u8, BTreeSet<u8>> = [(1, [2, 3].into()), (2, [3].into())].into();
    assert_eq!(cycle(&g), None);
    let code = code_only("use crate::{a::b, c::{d, e}}; // crate::x\nlet s = \"crate::y\"; '{';");
    let t = tokens(&without_tests(&code));
    let (paths, _) = paths_at(&t, 1);
    let p: Vec<String> = paths.iter().map(|p| p.join("::")).collect();
    assert_eq!(p, ["crate::a::b", "crate::c::d", "crate::c::e"]);
    assert!(!code.contains("crate::x") && !code.contains("crate::y"));
    let t = without_tests(
        "a\n#[cfg(test)]\nmod tests { fn f() { x } }\nb\n#[cfg(test)]\nuse q::{r};\nc",
    );
    assert_eq!(tokens(&t), ["a", "b", "c"]);
}

/// Folders of the repository that are not build output or local data (`.gitignore`, `target`, `.git`).
fn folders() -> Vec<String> {
    let ignore: Vec<String> = std::fs::read_to_string(root().join(".gitignore"))
        .unwrap_or_default()
        .lines()
        .map(|l| {
            l.trim()
                .trim_start_matches('/')
                .trim_end_matches('/')
                .to_owned()
        })
        .filter(|l| !l.is_empty() && !l.contains('*'))
        .collect();
    fn walk(dir: &Path, rel: &str, ignore: &[String], out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if !p.is_dir() {
                continue;
            }
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let path = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            if name == "target"
                || name == ".git"
                || ignore.contains(&path)
                || ignore.contains(&name)
            {
                continue;
            }
            out.push(path.clone());
            walk(&p, &path, ignore, out);
        }
    }
    let mut out = Vec::new();
    walk(root(), "", &ignore, &mut out);
    out.sort();
    out
}

#[test]
fn architecture_md_names_every_folder() {
    let doc = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let all = folders();
    assert!(all.contains(&"src/alerting".to_owned()), "{all:?}");
    // A fixture tree copied from a published project keeps that project's layout: naming the tree
    // (`tests/fixtures/NAME/`) covers the folders inside it.
    let named = |f: &str| doc.contains(&format!("`{f}/")) || doc.contains(&format!("`{f}`"));
    let missing: Vec<&String> = all
        .iter()
        .filter(|f| {
            let tree: Vec<&str> = f.splitn(4, '/').collect();
            let covered = tree.len() == 4
                && tree[..2] == ["tests", "fixtures"]
                && named(&tree[..3].join("/"));
            !named(f) && !covered
        })
        .collect();
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md does not name {missing:?}"
    );
}
