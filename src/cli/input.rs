//! The one rule every command that reads events (or scanner reports) follows: `test-pattern --event`,
//! `route --event`, `notify-test --event`, `send` and `report-event`.
//!
//! An input argument is a file, a directory (every `*.json`, `*.jsonl` and `*.ndjson` file in it, in
//! name order, not recursive), inline JSON (an argument starting with `{` or `[`), or `-` for standard
//! input (read once). Each of them holds one JSON document (pretty-printed or not), a JSON array of
//! documents, or several documents one after the other (NDJSON, or pretty-printed ones back to back).
//!
//! Promises: every document comes out as the exact text it had (no re-serialisation: numbers, key order
//! and repeated keys reach the command's own validation as written), named for messages: `FILE` when
//! the input holds one document, `FILE[i]` for the elements of an array, `FILE:LINE` for documents one
//! after the other (the line each starts on), `<stdin>` and `<inline>` for the other two forms. A
//! syntax error ends that input with one error naming it, with the line and column in that input; the
//! documents before it still come out, so a command reports all it can. Nothing here validates an
//! event: that is each command's job (and its exit code).

use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::value::RawValue;

/// One JSON document of an input: an event, or a scanner report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Doc {
    /// How messages name it (`file.json`, `file.json[2]`, `events.ndjson:3`, `<stdin>`, `<inline>`).
    pub name: String,
    /// The document's text, exactly as it was in the input.
    pub text: String,
}

/// Why an input (or the rest of it) could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    /// The input, named as documents are.
    pub name: String,
    pub message: String,
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.name, self.message)
    }
}

fn failed(name: &str, message: impl Into<String>) -> Failed {
    Failed {
        name: name.to_owned(),
        message: message.into(),
    }
}

/// One item read: a document, or why the rest of an input could not be read (naming the input).
pub type Item = Result<Doc, Failed>;

/// Reads every argument in order. An argument that cannot be read at all (a missing file) is an
/// error item naming it; the others are still read.
pub fn read(args: &[String]) -> Vec<Item> {
    let mut out = Vec::new();
    let mut stdin_used = false;
    for arg in args {
        if arg == "-" {
            if stdin_used {
                out.push(Err(failed(
                    "<stdin>",
                    "- given twice: standard input can be read once",
                )));
                continue;
            }
            stdin_used = true;
            let mut text = String::new();
            match std::io::stdin().lock().read_to_string(&mut text) {
                Ok(_) => out.extend(split("<stdin>", &text)),
                Err(e) => out.push(Err(failed("<stdin>", format!("cannot read: {e}")))),
            }
        } else if is_inline(arg) {
            out.extend(split("<inline>", arg));
        } else if Path::new(arg).is_dir() {
            match dir_files(Path::new(arg)) {
                Ok(files) if files.is_empty() => out.push(Err(failed(
                    arg,
                    "no *.json, *.jsonl or *.ndjson file in this directory",
                ))),
                Ok(files) => {
                    for f in files {
                        out.extend(read_file(&f));
                    }
                }
                Err(e) => out.push(Err(failed(arg, format!("cannot list the directory: {e}")))),
            }
        } else {
            out.extend(read_file(Path::new(arg)));
        }
    }
    out
}

/// Whether an argument is inline JSON rather than a path.
pub fn is_inline(arg: &str) -> bool {
    matches!(arg.trim_start().as_bytes().first(), Some(b'{' | b'['))
}

fn dir_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .is_some_and(|x| x == "json" || x == "jsonl" || x == "ndjson")
        })
        .collect();
    files.sort();
    Ok(files)
}

fn read_file(path: &Path) -> Vec<Item> {
    let name = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => split(&name, &text),
        Err(e) => vec![Err(failed(
            &name,
            format!("cannot read: {e} (expected a file, a directory, inline JSON, or - for stdin)"),
        ))],
    }
}

/// serde_json's message without its own position suffix, with the position in our words.
fn syntax(name: &str, e: &serde_json::Error, line_offset: usize) -> Failed {
    let text = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let msg = text.strip_suffix(&suffix).unwrap_or(&text);
    failed(
        name,
        format!(
            "not valid JSON at line {}, column {}: {msg}",
            e.line() + line_offset,
            e.column()
        ),
    )
}

/// The line (1-based) of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    1 + text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
}

/// Splits one input's text into its documents (see the module doc for the names).
pub fn split(name: &str, text: &str) -> Vec<Item> {
    let mut tops: Vec<(usize, &RawValue)> = Vec::new();
    let mut failure = None;
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<&RawValue>();
    loop {
        // Where the next document starts: after the previous one and any whitespace.
        let at = stream.byte_offset();
        match stream.next() {
            None => break,
            Some(Ok(raw)) => {
                let lead = text[at..].len() - text[at..].trim_start().len();
                tops.push((line_of(text, at + lead), raw));
            }
            Some(Err(e)) => {
                failure = Some(syntax(name, &e, 0));
                break;
            }
        }
    }
    let several = tops.len() > 1 || (failure.is_some() && !tops.is_empty());
    let mut out = Vec::new();
    for (line, raw) in tops {
        let top = if several {
            format!("{name}:{line}")
        } else {
            name.to_owned()
        };
        let t = raw.get();
        if t.starts_with('[') {
            match serde_json::from_str::<Vec<&RawValue>>(t) {
                Ok(items) if items.is_empty() => out.push(Err(failed(&top, "an empty JSON array"))),
                Ok(items) => out.extend(items.into_iter().enumerate().map(|(i, v)| {
                    Ok(Doc {
                        name: format!("{top}[{i}]"),
                        text: v.get().to_owned(),
                    })
                })),
                Err(e) => out.push(Err(syntax(&top, &e, line - 1))),
            }
        } else {
            out.push(Ok(Doc {
                name: top,
                text: t.to_owned(),
            }));
        }
    }
    if let Some(f) = failure {
        out.push(Err(f));
    } else if out.is_empty() {
        out.push(Err(failed(name, "no JSON document in it")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(items: &[Item]) -> Vec<String> {
        items
            .iter()
            .map(|i| match i {
                Ok(d) => d.name.clone(),
                Err(e) => format!("ERR {e}"),
            })
            .collect()
    }

    #[test]
    fn one_pretty_event_is_one_document_as_written() {
        let text = "{\n  \"id\": \"a\",\n  \"n\": 1.50,\n  \"n\": 2\n}\n";
        let items = split("e.json", text);
        assert_eq!(names(&items), ["e.json"]);
        // Exactly as written: the repeated key and 1.50 reach validation untouched.
        assert_eq!(items[0].as_ref().unwrap().text, text.trim_end());
    }

    #[test]
    fn arrays_ndjson_and_back_to_back_documents() {
        let items = split("a.json", "[{\"id\": 1},\n {\"id\": 2}]");
        assert_eq!(names(&items), ["a.json[0]", "a.json[1]"]);
        assert_eq!(items[1].as_ref().unwrap().text, "{\"id\": 2}");
        let items = split("<stdin>", "{\"id\": 1}\n\n{\"id\": 2}\n");
        assert_eq!(names(&items), ["<stdin>:1", "<stdin>:3"]);
        let items = split(
            "p.json",
            "{\n \"id\": 1\n}\n{\n \"id\": 2\n}\n[{\"id\": 3}]",
        );
        assert_eq!(names(&items), ["p.json:1", "p.json:4", "p.json:7[0]"]);
    }

    #[test]
    fn a_syntax_error_names_the_input_line_and_column_and_keeps_what_came_before() {
        let items = split("x.ndjson", "{\"id\": 1}\n{\"id\": 2,}\n{\"id\": 3}\n");
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].as_ref().unwrap().name, "x.ndjson:1");
        let e = items[1].as_ref().unwrap_err().to_string();
        assert!(
            e.starts_with("x.ndjson: not valid JSON at line 2, column 10"),
            "{e}"
        );
        let e = split("<inline>", "{\"detail\": {\"a\": 1,}}")[0]
            .clone()
            .unwrap_err();
        assert!(e.message.contains("line 1, column 20"), "{e}");
        let e = |t: &str| split("e", t)[0].as_ref().unwrap_err().message.clone();
        assert!(e("  \n").contains("no JSON"));
        assert!(e("[]").contains("empty JSON array"));
    }

    #[test]
    fn arguments_inline_files_directories() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.json"), "[{\"id\": 1}, {\"id\": 2}]").unwrap();
        std::fs::write(dir.path().join("a.ndjson"), "{\"id\": 0}\n").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not an event").unwrap();
        let d = dir.path().display().to_string();
        let items = read(&[d.clone(), "{\"id\": 9}".into(), format!("{d}/none.json")]);
        let n = names(&items);
        assert_eq!(n[0], format!("{d}/a.ndjson"));
        assert_eq!(n[1], format!("{d}/b.json[0]"));
        assert_eq!(n[3], "<inline>");
        assert!(
            n[4].starts_with(&format!("ERR {d}/none.json: cannot read")),
            "{n:?}"
        );
    }
}
