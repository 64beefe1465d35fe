//! The two doors must agree on any input: `RuleSet::matches` (compiled, on raw bytes) against
//! `Pattern::matches_bytes` (the reference interpreter), for the same verdict or the same error; and
//! `RuleSet::matches_prevalidated` must agree on valid JSON and never panic on anything; and both must
//! give the same answers under every byte classifier (`Simd`) the CPU has.
//!
//! Input: an optional first line of pattern text (used when it is a valid pattern), whose first bytes
//! also pick patterns from a fixed list that covers every operator; the rest is the event.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scanbridge_pattern::{Pattern, RuleSet, Scratch, Simd};

const TEMPLATES: &[&str] = &[
    r#"{"a": ["x"]}"#,
    r#"{"a": [1, "1", true, null]}"#,
    r#"{"a": {"b": [{"prefix": "x"}]}}"#,
    r#"{"a.b": [{"suffix": "y"}], "c": [{"exists": true}]}"#,
    r#"{"a": [{"prefix": {"equals-ignore-case": "X"}}]}"#,
    r#"{"a": [{"suffix": {"equals-ignore-case": "Y"}}]}"#,
    r#"{"a": [{"equals-ignore-case": "xY"}]}"#,
    r#"{"a": [{"wildcard": "x*y*"}]}"#,
    r#"{"a": [{"wildcard": "*\\*"}]}"#,
    r#"{"a": [{"anything-but": ["x", "y"]}]}"#,
    r#"{"a": [{"anything-but": [1, 2.5]}]}"#,
    r#"{"a": [{"anything-but": {"prefix": "x"}}]}"#,
    r#"{"a": [{"anything-but": {"suffix": "x"}}]}"#,
    r#"{"a": [{"anything-but": {"equals-ignore-case": ["X"]}}]}"#,
    r#"{"a": [{"anything-but": {"wildcard": "x*"}}]}"#,
    r#"{"a": [{"numeric": [">", 0, "<=", 10]}]}"#,
    r#"{"a": [{"numeric": ["=", 1.5]}], "b": [{"numeric": ["<", -1]}]}"#,
    r#"{"a": [{"exists": false}]}"#,
    r#"{"a": [{"exists": false}], "b": ["x"]}"#,
    r#"{"a": [{"cidr": "10.0.0.0/24"}]}"#,
    r#"{"a": ["10.0.0.1"]}"#,
    r#"{"a": {"b": ["x"], "c": ["y"]}}"#,
    r#"{"$or": [{"a": ["x"]}, {"b": [{"numeric": [">", 1]}]}]}"#,
    r#"{"": ["x"]}"#,
    r#"{"a": {"": {"b": [1]}}}"#,
];

fuzz_target!(|data: &[u8]| {
    let (head, event) = match data.iter().position(|&b| b == b'\n') {
        Some(n) => (&data[..n], &data[n + 1..]),
        None => (&data[..0], data),
    };
    let mut patterns = Vec::new();
    if let Ok(text) = std::str::from_utf8(head)
        && let Ok(p) = Pattern::parse(text)
    {
        patterns.push(p);
    }
    for &b in head.iter().take(4) {
        patterns.push(Pattern::parse(TEMPLATES[b as usize % TEMPLATES.len()]).unwrap());
    }
    if patterns.is_empty() {
        patterns.push(Pattern::parse(TEMPLATES[event.len() % TEMPLATES.len()]).unwrap());
    }
    let mut set = RuleSet::new();
    for (i, p) in patterns.iter().enumerate() {
        set.add(i, p);
    }
    let reference: Result<Vec<usize>, _> = patterns
        .iter()
        .enumerate()
        .map(|(i, p)| p.matches_bytes(event).map(|m| m.then_some(i)))
        .collect::<Result<Vec<_>, _>>()
        .map(|v| v.into_iter().flatten().collect());
    let compiled = set.matches(event);
    assert_eq!(compiled, reference, "event {:?}", String::from_utf8_lossy(event));
    let fast = set.matches_prevalidated(event);
    if let Ok(want) = &reference {
        assert_eq!(fast.as_ref(), Ok(want));
    }
    // Every byte classifier this CPU has gives the same answers (both doors).
    for simd in Simd::available() {
        let mut scratch = Scratch::with_simd(simd).expect("available");
        let mut out = Vec::new();
        let got = set.matches_with(event, &mut scratch, &mut out).map(|()| out.clone());
        assert_eq!(got, reference, "{simd:?} on {:?}", String::from_utf8_lossy(event));
        let fast = set.matches_prevalidated_with(event, &mut scratch, &mut out);
        if let Ok(want) = &reference {
            assert!(fast.is_ok() && &out == want, "{simd:?} prevalidated");
        }
    }
});
