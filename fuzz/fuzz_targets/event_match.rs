//! The event flattener and matcher, differentially: a pattern (before the first NUL byte) against an
//! event (after it) must get the same verdict through the crate's own byte parser and flattener
//! (`matches_bytes`) as through serde_json and the reference interpreter (`matches` on a `Value`),
//! whenever both parsers accept the event. Events with repeated keys are skipped: serde_json keeps the
//! last value, and scanbridge's ingest rejects them anyway.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scanbridge_pattern::Pattern;

fuzz_target!(|data: &[u8]| {
    let Some(split) = data.iter().position(|b| *b == 0) else {
        return;
    };
    let (pattern, event) = (&data[..split], &data[split + 1..]);
    let Ok(pattern) = std::str::from_utf8(pattern) else {
        return;
    };
    let Ok(pattern) = Pattern::parse(pattern) else {
        return;
    };
    let by_bytes = pattern.matches_bytes(event);
    let Ok(text) = std::str::from_utf8(event) else {
        return;
    };
    let Ok(value) = scanbridge::parse_json_strict(text) else {
        return;
    };
    if let Ok(by_bytes) = by_bytes {
        assert_eq!(
            by_bytes,
            pattern.matches(&value),
            "byte path and Value path disagree on {text}"
        );
    }
});
