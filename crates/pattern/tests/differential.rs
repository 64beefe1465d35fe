//! The two doors must agree: `RuleSet::matches` and `RuleSet::matches_prevalidated` (compiled) against `Pattern::matches_bytes` (the
//! reference interpreter), on the AWS corpus (../shared/conformance, read at run time), on generated
//! pattern/event pairs, and on generated rule sets of several rules at once.
//!
//! A missing corpus fails the test: a green run must mean the corpus was checked.

use std::path::PathBuf;

use proptest::prelude::*;
use scanbridge_pattern::{Pattern, RuleSet, Scratch, Simd};
use serde_json::Value;

fn shared() -> PathBuf {
    match std::env::var_os("SCANBRIDGE_SHARED") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
    }
}

fn raw(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// (name, pattern text, event text) of every corpus case.
fn corpus() -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for file in ["aws-event-patterns.jsonl", "aws-event-patterns-extra.jsonl"] {
        let path = shared().join("conformance").join(file);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("conformance corpus {} is required: {e}", path.display()));
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let c: Value = serde_json::from_str(line).unwrap();
            out.push((
                c["name"].as_str().unwrap().to_string(),
                raw(&c["pattern"]),
                raw(&c["event"]),
            ));
        }
    }
    assert_eq!(out.len(), 176, "the corpus should hold 176 cases");
    out
}

/// 2,000 bytes of members no rule of the corpus names, read to the end by a trusted walk.
fn long_event() -> Vec<u8> {
    let members: Vec<String> = (0..60)
        .map(|i| format!(r#""zz{i}":"{}""#, "w".repeat(24)))
        .collect();
    format!("{{{}}}", members.join(",")).into_bytes()
}

/// Compares the doors for rules (index = id) on one event, under every byte classifier this CPU has,
/// and with the event shifted by leading whitespace (so that its bytes fall differently into the
/// scanner's 64-byte blocks); returns a description of a disagreement.
fn disagreement(rules: &[Pattern], event: &[u8]) -> Option<String> {
    let mut set = RuleSet::new();
    for (i, p) in rules.iter().enumerate() {
        set.add(i, p);
    }
    let shifted = [b"   ".repeat(7), event.to_vec()].concat();
    for event in [event, &shifted[..]] {
        let reference: Result<Vec<usize>, _> = rules
            .iter()
            .enumerate()
            .map(|(i, p)| p.matches_bytes(event).map(|m| m.then_some(i)))
            .collect::<Result<Vec<_>, _>>()
            .map(|v| v.into_iter().flatten().collect());
        let shown = || String::from_utf8_lossy(event).into_owned();
        for simd in Simd::available() {
            let mut scratch = Scratch::with_simd(simd).unwrap();
            let mut got = Vec::new();
            let compiled = set
                .matches_with(event, &mut scratch, &mut got)
                .map(|()| got);
            match (&compiled, &reference) {
                (Ok(a), Ok(b)) if a == b => {}
                (Err(a), Err(b)) if a == b => {}
                _ => {
                    return Some(format!(
                        "{simd:?}: compiled {compiled:?} != reference {reference:?}\n  event {}",
                        shown()
                    ));
                }
            }
            // On valid JSON the prevalidated door must agree too (it skips unnamed values
            // unvalidated); on anything else it must not panic. Also with scratches that earlier
            // events taught to index one block at first, or many (see `scan::FirstBlocks`).
            let mut short = Scratch::with_simd(simd).unwrap();
            let mut long = Scratch::with_simd(simd).unwrap();
            let mut ignored = Vec::new();
            let _ = set.matches_prevalidated_with(b"{}", &mut short, &mut ignored);
            let _ = set.matches_prevalidated_with(&long_event(), &mut long, &mut ignored);
            for (taught, scratch) in [
                ("", &mut scratch),
                (" (short)", &mut short),
                (" (long)", &mut long),
            ] {
                let mut fast = Vec::new();
                let r = set.matches_prevalidated_with(event, scratch, &mut fast);
                if let Ok(want) = &reference
                    && (r.is_err() || &fast != want)
                {
                    return Some(format!(
                        "{simd:?}{taught}: prevalidated {r:?} {fast:?} != reference {want:?}\n  event {}",
                        shown()
                    ));
                }
            }
        }
        if set.matches(event) != reference {
            return Some(format!("RuleSet::matches disagrees on {}", shown()));
        }
    }
    None
}

#[test]
fn every_corpus_case_alone() {
    let mut failures = Vec::new();
    for (name, pattern, event) in corpus() {
        let Ok(p) = Pattern::parse(&pattern) else {
            continue;
        };
        if let Some(d) = disagreement(&[p], event.as_bytes()) {
            failures.push(format!("{name}: {d}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn all_corpus_patterns_at_once_on_every_corpus_event() {
    let cases = corpus();
    let patterns: Vec<Pattern> = cases
        .iter()
        .filter_map(|(_, p, _)| Pattern::parse(p).ok())
        .collect();
    assert!(patterns.len() > 100);
    let mut failures = Vec::new();
    for (name, _, event) in &cases {
        if let Some(d) = disagreement(&patterns, event.as_bytes()) {
            failures.push(format!("{name}: {d}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn removed_rules_stop_matching_and_rebuilds_keep_the_rest() {
    let p = Pattern::parse(r#"{"a": [1]}"#).unwrap();
    let q = Pattern::parse(r#"{"a": [{"numeric": [">", 0]}]}"#).unwrap();
    let mut set = RuleSet::new();
    for i in 0..300 {
        set.add(i, if i % 2 == 0 { &p } else { &q });
    }
    for i in 0..250 {
        assert!(set.remove(&i));
    }
    assert!(!set.remove(&0));
    let got = set.matches(br#"{"a": 1.0}"#).unwrap();
    assert_eq!(got, (250..300).collect::<Vec<_>>());
    set.add(7, &p);
    set.add(251, &p); // replaces
    let got = set.matches(br#"{"a": 2}"#).unwrap();
    assert_eq!(got.len(), 24);
    assert_eq!(set.len(), 51);
}

#[test]
fn malformed_and_non_object_events_are_errors_in_both_doors() {
    let p = Pattern::parse(r#"{"a": [{"exists": false}]}"#).unwrap();
    let bad: &[&[u8]] = &[
        b"",
        b"[]",
        b"1",
        b"\"x\"",
        b"null",
        b"{",
        b"{\"a\":}",
        b"{\"a\":1,}",
        b"{\"a\" 1}",
        b"{\"a\":01}",
        b"{\"a\":\"\\x\"}",
        b"{\"a\":\"\xff\"}",
        b"{\"a\":\"\x01\"}",
        b"{} x",
        b"{\"a\":tru}",
        b"{\"a\":[1,]}",
        b"{\"b\":[1 2]}",
        b"{\"b\":\"\\u12\"}",
        b"{\"b\":-}",
        b"{\"a\":1}}",
        b"{\"b\":{\"c\":\"\xc3\"}}",
        b"{\"b\":1e}",
        b"{\"b\":.5}",
    ];
    // In a container no rule names (skipped: short ones walked token by token, long ones in bulk).
    let mut skipped = Vec::new();
    for inner in [
        "{1:2}",
        "{\"a\" 1}",
        "{\"a\":1,}",
        "{,}",
        "{\"a\"::1}",
        "{\"a\":1]",
        "[1,]",
        "[tru]",
        "[01]",
        "[\"\x01\"]",
        "[\"\\q\"]",
        "[1:2]",
        "{\"a\":1}}",
    ] {
        // As it is, and with a 300-byte member first (so that it is checked in bulk).
        for pad in [0, 300] {
            let (head, tail) = inner.split_at(1);
            let long = format!("[{}0]", "0,".repeat(pad / 2));
            let first = match (pad, head) {
                (0, _) => String::new(),
                (_, "[") => format!("{long},"),
                _ => format!("\"l\":{long},"),
            };
            let e = format!("{{\"z\":{head}{first}{tail},\"y\":1}}");
            skipped.push(e.into_bytes());
        }
    }
    for e in bad.iter().copied().chain(skipped.iter().map(|e| &e[..])) {
        assert_eq!(disagreement(std::slice::from_ref(&p), e), None);
        assert!(
            p.matches_bytes(e).is_err(),
            "{}",
            String::from_utf8_lossy(e)
        );
    }
    let deep = format!("{{\"b\":{}{}}}", "[".repeat(600), "]".repeat(600));
    assert!(disagreement(std::slice::from_ref(&p), deep.as_bytes()).is_none());
}

/// Found by the fuzz target: on bytes that are not JSON, a bracket inside the mangled text seemed to
/// close the object before the scanner's position, and the long-object search subtracted the two.
#[test]
fn prevalidated_door_survives_brackets_that_seem_to_close_behind_it() {
    let p = Pattern::parse(r#"{"a": [{"suffix": {"equals-ignore-case": "Y"}}]}"#).unwrap();
    let event: &[u8] = b"{\\b\xe3,\x00a,\x10\xc6\xc6\xc6\xc6}\xc6\xc6\xc6\xc6\xc6\xc6\xc6tIat\xe3,\x00a,\
        \x10\xc6\xc6\xc6\xc6\xc6\xc6\xc6\xc6\xc6\xc6\xc6,\x10\xc6\xe3,\x00a,\x10\xc6\xc6\xc6]]\xc6\x00.\"~";
    assert_eq!(disagreement(&[p.clone(), p], event), None);
}

// ---- generated cases ----

/// A JSON tree that can hold duplicate keys and spells strings as raw JSON text (escapes included).
#[derive(Debug, Clone)]
enum J {
    Raw(&'static str),
    Arr(Vec<J>),
    Obj(Vec<(&'static str, J)>),
}

impl J {
    fn write(&self, out: &mut String) {
        match self {
            J::Raw(t) => out.push_str(t),
            J::Arr(items) => {
                out.push('[');
                for (i, x) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    x.write(out);
                }
                out.push(']');
            }
            J::Obj(members) => {
                out.push('{');
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(k);
                    out.push(':');
                    v.write(out);
                }
                out.push('}');
            }
        }
    }
}

const KEYS: &[&str] = &[
    // Keys no generated pattern names: after a few of them, a long object is searched.
    r#""u""#,
    r#""v""#,
    r#""a""#,
    r#""b""#,
    r#""c""#,
    r#""\u0062""#,
    r#""a.b""#,
    r#""""#,
];
const SCALARS: &[&str] = &[
    r#""x""#,
    r#""xy""#,
    r#""XY""#,
    r#""yx""#,
    r#""x\u0079""#,
    r#""""#,
    r#""10.0.0.7""#,
    r#""ab*c""#,
    r#""Éx""#,
    r#""éx""#,
    "0",
    "1",
    "1.0",
    "-1",
    "2.5",
    "1e2",
    "100",
    "123456789012",
    "0.0000001",
    "-122.42925025966552",
    // Long values, so that escapes, quotes and brackets fall on the 64-byte block boundaries.
    r#""xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"x\\""#,
    r#""{[\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\]}""#,
    r#""x\u00e9xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx""#,
    "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
    // Long enough that objects holding it are searched for their keys rather than read member by
    // member (see `Scanner::search_rest`).
    r#""a b c a.b \"a\" {\"a\": 1} ....................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................""#,
    "true",
    "false",
    "null",
];

fn scalar() -> impl Strategy<Value = J> {
    prop::sample::select(SCALARS).prop_map(J::Raw)
}

fn event_value() -> impl Strategy<Value = J> {
    scalar().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(J::Arr),
            prop::collection::vec((prop::sample::select(KEYS), inner), 1..4).prop_map(J::Obj),
        ]
    })
}

fn event() -> impl Strategy<Value = String> {
    prop::collection::vec((prop::sample::select(KEYS), event_value()), 0..8).prop_map(|m| {
        let mut s = String::new();
        J::Obj(m).write(&mut s);
        s
    })
}

fn strs() -> impl Strategy<Value = &'static str> {
    prop::sample::select(&["x", "xy", "XY", "y", "", "é", "É", "ab", "10.0.0.7"][..])
}

fn nums() -> impl Strategy<Value = Value> {
    prop::sample::select(&["0", "1", "1.0", "-1", "2.5", "100", "123456789012", "1e-7"][..])
        .prop_map(|t| serde_json::from_str(t).unwrap())
}

fn globs() -> impl Strategy<Value = &'static str> {
    prop::sample::select(&["x*", "*y", "*", "x*y", "*x*", "ab\\*c", "1*", "*.7"][..])
}

fn matcher() -> impl Strategy<Value = Value> {
    use serde_json::json;
    prop_oneof![
        strs().prop_map(|s| json!(s)),
        nums(),
        prop::sample::select(&[json!(true), json!(false), json!(null)][..]),
        strs().prop_map(|s| json!({"prefix": s})),
        strs().prop_map(|s| json!({"prefix": {"equals-ignore-case": s}})),
        strs().prop_map(|s| json!({"suffix": s})),
        strs().prop_map(|s| json!({"suffix": {"equals-ignore-case": s}})),
        strs().prop_map(|s| json!({"equals-ignore-case": s})),
        globs().prop_map(|w| json!({"wildcard": w})),
        strs().prop_map(|s| json!({"anything-but": s})),
        prop::collection::vec(strs(), 1..3).prop_map(|v| json!({"anything-but": v})),
        nums().prop_map(|n| json!({"anything-but": n})),
        prop::collection::vec(nums(), 1..3).prop_map(|v| json!({"anything-but": v})),
        strs().prop_map(|s| json!({"anything-but": {"prefix": s}})),
        strs().prop_map(|s| json!({"anything-but": {"suffix": s}})),
        prop::collection::vec(strs(), 1..3)
            .prop_map(|v| json!({"anything-but": {"equals-ignore-case": v}})),
        globs().prop_map(|w| json!({"anything-but": {"wildcard": w}})),
        (
            prop::sample::select(&["<", "<=", "=", ">", ">="][..]),
            nums()
        )
            .prop_map(|(o, n)| json!({"numeric": [o, n]})),
        (nums(), nums()).prop_map(|(a, b)| json!({"numeric": [">", a, "<=", b]})),
        any::<bool>().prop_map(|b| json!({"exists": b})),
        prop::sample::select(&["10.0.0.0/24", "10.0.0.7/31", "::1/64"][..])
            .prop_map(|c| json!({"cidr": c})),
    ]
}

fn path() -> impl Strategy<Value = Vec<&'static str>> {
    prop_oneof![
        2 => prop::sample::select(&["a", "b", "c"][..]).prop_map(|k| vec![k]),
        1 => prop::collection::vec(prop::sample::select(&["a", "b", "c", "a.b"][..]), 2..3),
    ]
}

fn fields() -> impl Strategy<Value = Value> {
    prop::collection::vec((path(), prop::collection::vec(matcher(), 1..4)), 1..3).prop_map(|fs| {
        let mut root = serde_json::Map::new();
        for (path, ms) in fs {
            let mut at = &mut root;
            for k in &path[..path.len() - 1] {
                let e = at
                    .entry(k.to_string())
                    .or_insert_with(|| Value::Object(Default::default()));
                if !e.is_object() {
                    *e = Value::Object(Default::default());
                }
                at = e.as_object_mut().unwrap();
            }
            at.insert(path[path.len() - 1].to_string(), Value::Array(ms));
        }
        Value::Object(root)
    })
}

fn pattern() -> impl Strategy<Value = Pattern> {
    prop_oneof![
        3 => fields(),
        1 => (fields(), fields()).prop_map(|(a, b)| serde_json::json!({"$or": [a, b]})),
    ]
    .prop_filter_map("AWS rejects the pattern", |v| {
        Pattern::parse(&v.to_string()).ok()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]

    #[test]
    fn one_generated_pattern(p in pattern(), e in event()) {
        let d = disagreement(std::slice::from_ref(&p), e.as_bytes());
        prop_assert!(d.is_none(), "{}\n  pattern {:?}", d.unwrap_or_default(), p);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn generated_rule_sets(ps in prop::collection::vec(pattern(), 2..8),
                           es in prop::collection::vec(event(), 1..6)) {
        for e in &es {
            let d = disagreement(&ps, e.as_bytes());
            prop_assert!(d.is_none(), "{}", d.unwrap_or_default());
        }
    }
}

/// The rest of a long object with few relevant keys is searched for them after many unnamed
/// members in a row: keys written as values, in nested objects, repeated, escaped, or dotted must still count
/// exactly as the reference counts them.
#[test]
fn long_objects_searched_for_their_keys_agree_with_the_reference() {
    let filler = format!("\"{}\"", "f".repeat(400));
    // Members no rule names, enough in a row (with u, v, w and z) for the rest to be searched.
    let lead: String = (0..13).map(|i| format!(r#""n{i}":{i},"#)).collect();
    let patterns: Vec<Pattern> = [
        r#"{"a": ["x"]}"#,
        r#"{"a": [{"exists": true}], "b": [{"prefix": "y"}]}"#,
        r#"{"k": {"a": ["x"], "b": [1]}}"#,
        r#"{"a.b": ["x"]}"#,
        r#"{"a": [{"exists": false}]}"#,
        r#"{"": ["x"]}"#,
    ]
    .iter()
    .map(|p| Pattern::parse(p).unwrap())
    .collect();
    let events = [
        format!(r#"{{{lead}"u":1,"v":[2],"w":{{"a":"x"}},"z":{filler},"a":"x"}}"#),
        format!(r#"{{{lead}"u":1,"v":[2],"w":{{"a":"x"}},"z":{filler},"q":"a","a":"y","a":"x"}}"#),
        format!(r#"{{{lead}"u":1,"v":[2],"w":{{"a":"x"}},"z":{filler},"a":"x","a":"y"}}"#),
        format!(
            r#"{{{lead}"u":1,"v":[2],"w":{{"a":"x"}},"z":{filler},"n":{{"a":"x"}},"m":["a","b"]}}"#
        ),
        format!(r#"{{{lead}"u":1,"v":[2],"w":{{"a":"x"}},"z":{filler},"\u0061":"x"}}"#),
        format!(r#"{{{lead}"u":1,"v":[2],"w":{{"a":"x"}},"z":{filler},"a.b":"x","b":"yes"}}"#),
        format!(
            r#"{{"k":{{{lead}"u":1,"v":[2],"w":{{"a":"x"}},"z":{filler},"a":"x","b":1,"b":2}},"a":["q","x"]}}"#
        ),
        format!(
            r#"{{"k":{{{lead}"u":1,"v":[2],"w":{{"a":"x"}},"z":{filler},"c":{{"a":"x"}},"a":"a","b":[1]}}}}"#
        ),
        format!(r#"{{{lead}"u":1,"v":[2],"w":{{"a":"x"}},"z":{filler},"":"x","a":{{"b":"x"}}}}"#),
        format!(r#"{{{lead}"u":1,"v":[2],"w":{{"a":"x"}},"z":{filler}, "a" : "x" , "b" :"y1"}}"#),
        format!(r#"{{"s":"\"a\":\"x\"","z":{filler}}}"#),
        // Long containers no rule reads, skipped past the indexed blocks.
        format!(
            r#"{{"big":[{filler},{{"a":"y"}},[{filler},"\"]"]],"a":"x","deep":{{"k":[{filler}]}}}}"#
        ),
        format!(r#"{{"k":{{"big":{{"z":[{filler},{filler}]}},"a":"x","b":1}},"a":["x"]}}"#),
    ];
    for e in &events {
        assert_eq!(disagreement(&patterns, e.as_bytes()), None, "{e}");
        for p in &patterns {
            assert_eq!(
                disagreement(std::slice::from_ref(p), e.as_bytes()),
                None,
                "{e}"
            );
        }
    }
    // Some of these must match, or agreement would be cheap.
    let matched = events
        .iter()
        .filter(|e| {
            patterns
                .iter()
                .any(|p| p.matches_bytes(e.as_bytes()).unwrap())
        })
        .count();
    assert!(matched >= 8, "{matched}");
}

/// The walk ends once the rest of the event spells none of the keys of the objects it is in (and
/// has no backslash): whatever comes after a rule's field, repeated, escaped, nested, as a value, in
/// an array or at the outer level, must count exactly as the reference counts it.
#[test]
fn the_walk_ends_early_only_when_nothing_after_can_count() {
    let pad = format!("\"pad\":\"{}\"", "p".repeat(90));
    let geo = r#""geometry":{"type":"Polygon","coordinates":[[{"x":-122.4,"y":37.7,"z":0.0},{"x":-122.5,"y":37.8,"z":0.0}]]}"#;
    let patterns: Vec<Pattern> = [
        r#"{"properties": {"M": ["1"]}}"#,
        r#"{"properties": {"M": ["1"], "S": [{"prefix": "A"}]}}"#,
        r#"{"properties": {"M": [{"exists": false}]}}"#,
        r#"{"properties.M": ["1"]}"#,
        r#"{"properties": {"M": ["2"]}, "type": ["F"]}"#,
        r#"{"": ["1"], "properties": {"M": ["1"]}}"#,
        r#"{"properties": {"A": {"M": ["1"]}}}"#,
        r#"{"properties": {"M": ["1"]}, "geometry": {"type": ["Polygon"]}}"#,
    ]
    .iter()
    .map(|p| Pattern::parse(p).unwrap())
    .collect();
    let events = [
        format!(r#"{{"type":"F","properties":{{"M":"1",{pad},"S":"AB"}},{geo}}}"#),
        format!(r#"{{"type":"F","properties":{{"M":"1",{pad},"M":"2"}},{geo}}}"#),
        format!(r#"{{"type":"F","properties":{{"M":"1",{pad}}},{geo},"properties":{{"M":"2"}}}}"#),
        format!(r#"{{"type":"F","properties":{{"M":"1",{pad}}},{geo},"properties":7}}"#),
        format!(r#"{{"type":"F","properties":{{"M":"1",{pad}}},{geo},"properties.M":"2"}}"#),
        format!(r#"{{"type":"F","properties":{{"M":"1",{pad},"\u004d":"2"}},{geo}}}"#),
        format!(
            r#"{{"type":"F","properties":{{"M":"1",{pad}}},{geo},"\u0070roperties":{{"M":"2"}}}}"#
        ),
        format!(r#"{{"type":"F","properties":{{"M":"1",{pad},"q":"\\"}},{geo}}}"#),
        format!(r#"{{"type":"F","properties":{{"M":"1",{pad},"A":{{"M":"1"}}}},{geo}}}"#),
        format!(r#"{{"type":"F","properties":{{"M":"1",{pad},"q":"M"}},{geo},"type":"G"}}"#),
        format!(r#"{{"type":"F","properties":{{"M":"1",{pad}}},{geo},"":"1"}}"#),
        format!(r#"{{"properties":{{"M":"1",{pad}}},{geo},"type":"F"}}"#),
        format!(r#"{{"properties":[{{"M":"1",{pad}}},{{"M":"2"}}],{geo}}}"#),
        format!(r#"{{"properties":{{"M":"1",{pad},"z":["M","x"]}},{geo}}}"#),
        format!(r#"{{"properties":{{"M":"1" , {pad} }} , {geo} }}   "#),
        format!(r#"{{"properties":{{"M":"1",{pad}}},{geo}}} x"#),
        format!(r#"{{"properties":{{"M":"1",{pad}}},{geo}}}}}"#),
        format!(r#"{{"properties":{{"M":"1",{pad}}},{geo},}}"#),
        format!(r#"{{"properties":{{"M":"1",{pad},}},{geo}}}"#),
        format!(r#"{{"properties":{{"M":"1",{pad}}},{geo}"#),
        format!(r#"{{"properties":{{"M":"1",{pad}]}},{geo}}}"#),
        format!(r#"{{"properties":{{"M":"1",{pad}}},{geo},"a":01}}"#),
        // The field found by searching its object (after the pad): the rest of that object, and
        // what comes after it, still count.
        format!(r#"{{"type":"F","properties":{{{pad},"M":"1","A":{{"M":"2"}},"q":"M"}},{geo}}}"#),
        format!(
            r#"{{"type":"F","properties":{{{pad},"M":"1","S":"AB"}},{geo},"properties":{{"M":"2"}}}}"#
        ),
        format!(r#"{{"type":"F","properties":{{{pad},"M":"1",{pad},"M":"2"}},{geo}}}"#),
        format!(r#"{{"type":"F","properties":{{{pad},"S":"AB","M":"1"}},{geo},"type":"G"}}"#),
        format!(r#"{{"properties":{{"M":"1",{pad}}},{geo},"a":"\x"}}"#),
        format!(
            "{{\"properties\":{{\"M\":\"1\",{pad}}},{geo},\"a\":\"{}\"}}",
            '\u{1}'
        ),
    ];
    for e in &events {
        assert_eq!(disagreement(&patterns, e.as_bytes()), None, "{e}");
        for p in &patterns {
            assert_eq!(
                disagreement(std::slice::from_ref(p), e.as_bytes()),
                None,
                "{e}"
            );
        }
    }
    let matched = events
        .iter()
        .filter(|e| {
            patterns
                .iter()
                .any(|p| p.matches_bytes(e.as_bytes()).unwrap_or(false))
        })
        .count();
    assert!(matched >= 10, "{matched}");
}

/// Guards the generators: a good share of generated pairs must match, or agreement would be cheap.
#[test]
fn generated_cases_are_not_trivial() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut matched, mut errors, n) = (0, 0, 600);
    for _ in 0..n {
        let p = pattern().new_tree(&mut runner).unwrap().current();
        let e = event().new_tree(&mut runner).unwrap().current();
        match p.matches_bytes(e.as_bytes()) {
            Ok(true) => matched += 1,
            Ok(false) => {}
            Err(_) => errors += 1,
        }
    }
    eprintln!("{matched} of {n} generated pairs match");
    assert!(
        matched * 10 > n,
        "only {matched} of {n} generated pairs match"
    );
    assert_eq!(errors, 0);
}

/// No cliffs: thousands of wildcard and ignore-case rules on one field, against a long value, stay
/// fast (each wildcard runs in linear time; the value is folded once) and agree with the reference.
#[test]
fn many_wildcard_and_ignore_case_rules_have_no_cliff() {
    let mut patterns = Vec::new();
    for i in 0..3000 {
        let text = match i % 4 {
            0 => format!(r#"{{"a": [{{"wildcard": "*a*{i}*b"}}]}}"#),
            1 => format!(r#"{{"a": [{{"wildcard": "x{i}*y*"}}]}}"#),
            2 => format!(r#"{{"a": [{{"equals-ignore-case": "Ab{i}"}}]}}"#),
            _ => format!(r#"{{"a": [{{"prefix": {{"equals-ignore-case": "AAA{i}"}}}}]}}"#),
        };
        patterns.push(Pattern::parse(&text).unwrap());
    }
    let mut set = RuleSet::new();
    for (i, p) in patterns.iter().enumerate() {
        set.add(i, p);
    }
    let long = format!("{}1b", "a".repeat(20_000));
    let event = format!(r#"{{"a": ["{long}", "AB2", "aaa3xyz"]}}"#);
    let started = std::time::Instant::now();
    let got = set.matches(event.as_bytes()).unwrap();
    let elapsed = started.elapsed();
    let want: Vec<usize> = (0..patterns.len())
        .filter(|&i| patterns[i].matches_bytes(event.as_bytes()).unwrap())
        .collect();
    assert_eq!(got, want);
    assert!(!got.is_empty());
    assert!(elapsed.as_secs() < 10, "took {elapsed:?}");
}

/// The validating door checks what its walk reads token by token and each container it skips in
/// bulk: every one-byte deletion and substitution of events holding short and long skipped
/// containers (read members before and after them) must get the reference's answer or error.
#[test]
fn mutated_events_get_the_reference_verdict_whatever_the_walk_skips() {
    let long: String = (0..40)
        .map(|i| format!("[-122.{i:05},37.8{i},0.0]"))
        .collect::<Vec<_>>()
        .join(",");
    let events = [
        r#"{"source":"aws.ecr","tags":["v1","x"],"detail":{"repo":"web/api","counts":{"HIGH":3,"LOW":1},"n":-1.5e3,"ok":true,"z":null}}"#.to_string(),
        // A short container no rule names, across the end of the first blocks the walk builds.
        format!(
            r#"{{"pad":"{}","other":[1,"a",{{"b":[true]}},-2],"source":"aws.ecr"}}"#,
            "p".repeat(230)
        ),
        format!(r#"{{"type":"F","properties":{{"K":"0001","S":"a\"b\\u00e9"}},"geometry":{{"t":"P","c":[{long}],"e":{{}}}},"last":[1,{{"k":false}}]}}"#),
    ];
    let patterns = [
        r#"{"source": ["aws.ecr"], "detail": {"counts": {"HIGH": [{"numeric": [">", 0]}]}}}"#,
        r#"{"detail": {"repo": [{"prefix": "web/"}]}, "tags": ["x"]}"#,
        r#"{"type": ["F"], "last": {"k": [false]}}"#,
        r#"{"properties": {"S": [{"exists": true}]}, "geometry": {"e": [{"exists": false}]}}"#,
    ];
    let rules: Vec<Pattern> = patterns
        .iter()
        .map(|p| Pattern::parse(p).unwrap())
        .collect();
    let mut checked = 0;
    for e in &events {
        let e = e.as_bytes();
        assert_eq!(disagreement(&rules, e), None);
        let step = if e.len() > 400 { 3 } else { 1 };
        for i in (0..e.len()).step_by(step) {
            let mut del = e.to_vec();
            del.remove(i);
            let mut cases = vec![del];
            for c in [b'"', b'\\', b'{', b']', b':', b',', b'0', b'-', b'x', 0x01] {
                let mut sub = e.to_vec();
                sub[i] = c;
                cases.push(sub);
            }
            for case in cases {
                if let Some(d) = disagreement(&rules, &case) {
                    panic!("{d}");
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 5000, "{checked}");
}
