//! JUnit XML, as CI systems (GitHub test reporters, GitLab, Jenkins, Azure Pipelines) read it:
//! `testsuites` > `testsuite` (one per file) > `testcase` with a `failure`, `error` or `skipped`
//! child, and the counts on each suite.
//!
//! Text comes from files we do not control, so it is escaped by quick-xml, characters XML 1.0 cannot
//! carry at all (control characters other than tab and newline) become U+FFFD, and attribute values
//! are kept to one line (the full text goes in the element's body).

use std::io;

use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesText, Event};

/// One test case.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    pub name: String,
    pub classname: String,
    pub file: Option<String>,
    pub line: Option<usize>,
    pub outcome: Outcome,
}

/// How a case ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Passed,
    /// The check or test failed: `kind` is the `type` attribute, `message` a one-line summary,
    /// `detail` the full text.
    Failed {
        kind: String,
        message: String,
        detail: String,
    },
    /// The input could not be read.
    Error {
        message: String,
    },
    /// Not checked.
    Skipped {
        message: String,
    },
}

/// One suite: the cases of one file.
#[derive(Debug, Clone, PartialEq)]
pub struct Suite {
    pub name: String,
    pub cases: Vec<Case>,
}

#[derive(Default, Clone, Copy)]
struct Counts {
    tests: usize,
    failures: usize,
    errors: usize,
    skipped: usize,
}

fn counts<'a>(cases: impl Iterator<Item = &'a Case>) -> Counts {
    let mut c = Counts::default();
    for case in cases {
        c.tests += 1;
        match case.outcome {
            Outcome::Passed => {}
            Outcome::Failed { .. } => c.failures += 1,
            Outcome::Error { .. } => c.errors += 1,
            Outcome::Skipped { .. } => c.skipped += 1,
        }
    }
    c
}

/// Text XML 1.0 can carry: control characters other than tab, newline and carriage return
/// become U+FFFD (escaping cannot make them legal).
fn xml_text(s: &str) -> String {
    s.chars()
        .map(|c| {
            if (c < ' ' && !matches!(c, '\t' | '\n' | '\r')) || matches!(c, '\u{FFFE}' | '\u{FFFF}')
            {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect()
}

/// An attribute value: legal characters, on one line.
fn attr(s: &str) -> String {
    xml_text(s).replace(['\n', '\r', '\t'], " ")
}

/// The document.
pub fn render(name: &str, suites: &[Suite]) -> String {
    write(name, suites).expect("writing to memory does not fail")
}

fn write(name: &str, suites: &[Suite]) -> io::Result<String> {
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    let all = counts(suites.iter().flat_map(|s| s.cases.iter()));
    let n = |x: usize| x.to_string();
    w.create_element("testsuites")
        .with_attribute(("name", attr(name).as_str()))
        .with_attribute(("tests", n(all.tests).as_str()))
        .with_attribute(("failures", n(all.failures).as_str()))
        .with_attribute(("errors", n(all.errors).as_str()))
        .with_attribute(("skipped", n(all.skipped).as_str()))
        .write_inner_content(|w| {
            for suite in suites {
                let c = counts(suite.cases.iter());
                w.create_element("testsuite")
                    .with_attribute(("name", attr(&suite.name).as_str()))
                    .with_attribute(("tests", n(c.tests).as_str()))
                    .with_attribute(("failures", n(c.failures).as_str()))
                    .with_attribute(("errors", n(c.errors).as_str()))
                    .with_attribute(("skipped", n(c.skipped).as_str()))
                    .write_inner_content(|w| {
                        for case in &suite.cases {
                            write_case(w, case)?;
                        }
                        Ok(())
                    })?;
            }
            Ok(())
        })?;
    let mut out = String::from_utf8(w.into_inner()).expect("the writer writes UTF-8");
    out.push('\n');
    Ok(out)
}

fn write_case(w: &mut Writer<Vec<u8>>, case: &Case) -> io::Result<()> {
    let line = case.line.map(|l| l.to_string());
    let mut el = w
        .create_element("testcase")
        .with_attribute(("name", attr(&case.name).as_str()))
        .with_attribute(("classname", attr(&case.classname).as_str()));
    if let Some(f) = &case.file {
        el = el.with_attribute(("file", attr(f).as_str()));
    }
    if let Some(l) = &line {
        el = el.with_attribute(("line", l.as_str()));
    }
    match &case.outcome {
        Outcome::Passed => {
            el.write_empty()?;
        }
        Outcome::Failed {
            kind,
            message,
            detail,
        } => {
            el.write_inner_content(|w| {
                w.create_element("failure")
                    .with_attribute(("message", attr(message).as_str()))
                    .with_attribute(("type", attr(kind).as_str()))
                    .write_text_content(BytesText::new(&xml_text(detail)))?;
                Ok(())
            })?;
        }
        Outcome::Error { message } => {
            el.write_inner_content(|w| {
                w.create_element("error")
                    .with_attribute(("message", attr(message).as_str()))
                    .write_text_content(BytesText::new(&xml_text(message)))?;
                Ok(())
            })?;
        }
        Outcome::Skipped { message } => {
            el.write_inner_content(|w| {
                w.create_element("skipped")
                    .with_attribute(("message", attr(message).as_str()))
                    .write_empty()?;
                Ok(())
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_nesting_and_escaping() {
        let suites = vec![Suite {
            name: "t.yaml".into(),
            cases: vec![
                Case {
                    name: "Ok".into(),
                    classname: "t.yaml".into(),
                    file: Some("t.yaml".into()),
                    line: Some(3),
                    outcome: Outcome::Passed,
                },
                Case {
                    name: "Bad<&\"'>".into(),
                    classname: "t.yaml".into(),
                    file: None,
                    line: None,
                    outcome: Outcome::Failed {
                        kind: "invalid".into(),
                        message: "line one\nline two \u{1}".into(),
                        detail: "a < b & \"c\"\n]]> \u{7}".into(),
                    },
                },
                Case {
                    name: "Later".into(),
                    classname: "t.yaml".into(),
                    file: None,
                    line: None,
                    outcome: Outcome::Skipped {
                        message: "unchecked".into(),
                    },
                },
            ],
        }];
        let xml = render("scanbridge", &suites);
        assert!(
            xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"),
            "{xml}"
        );
        assert!(
            xml.contains(
                r#"<testsuites name="scanbridge" tests="3" failures="1" errors="0" skipped="1">"#
            ),
            "{xml}"
        );
        assert!(
            xml.contains(r#"name="Bad&lt;&amp;&quot;&apos;&gt;""#),
            "{xml}"
        );
        assert!(xml.contains(r#"message="line one line two �""#), "{xml}");
        assert!(
            xml.contains("a &lt; b &amp; &quot;c&quot;\n]]&gt; �"),
            "{xml}"
        );
        assert!(
            xml.contains(r#"<testcase name="Ok" classname="t.yaml" file="t.yaml" line="3"/>"#),
            "{xml}"
        );
    }
}
