//! The pattern parser on arbitrary text: never panics, and a pattern it accepts can be evaluated (on
//! an empty event) without panicking.
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
