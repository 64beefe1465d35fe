//! The ingest body parser on arbitrary bytes: `split_body` then `event::validate` on every item never
//! panics; every accepted event is a JSON object within the size limit whose stored body parses back
//! to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scanbridge::{EnvelopeRules, split_body, validate};

fuzz_target!(|data: &[u8]| {
    let rules = EnvelopeRules {
        max_event_bytes: 4096,
        account: "000000000000".into(),
        region: "us-east-1".into(),
    };
    let Ok((_, items)) = split_body(data) else {
        return;
    };
    for item in items.into_iter().flatten() {
        if let Ok(ev) = validate(&item, &rules, 1_700_000_000_000) {
            assert!(ev.body.len() <= rules.max_event_bytes);
            assert!(ev.value.is_object());
            let again: serde_json::Value =
                serde_json::from_str(&ev.body).expect("stored body parses");
            assert_eq!(again, ev.value);
        }
    }
});
