//! Properties: no input makes the parser, the JSON reader or the matcher panic; and the two event
//! doors (serde_json value, raw bytes) agree.

use proptest::prelude::*;
use scanbridge_pattern::{Event, Pattern};
use serde_json::{Value, json};

/// JSON values shaped like patterns: operator objects, value lists, nesting, `$or`, with a few
/// deliberately wrong shapes mixed in.
fn pattern_like() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("a".to_string()),
        Just("b.c".to_string()),
        Just("$or".to_string()),
        Just("prefix".to_string()),
        "[a-z$.]{0,4}",
    ];
    let scalar = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        "[a-z*\\\\/:.0-9]{0,6}".prop_map(Value::String),
    ];
    let op = prop_oneof![
        Just("prefix"),
        Just("suffix"),
        Just("anything-but"),
        Just("numeric"),
        Just("exists"),
        Just("cidr"),
        Just("equals-ignore-case"),
        Just("wildcard"),
        Just("exactly"),
        Just("bogus"),
    ];
    let leaf = scalar.clone().prop_recursive(3, 12, 4, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            (op.clone(), inner.clone()).prop_map(|(o, v)| json!({ o: v })),
            (op.clone(), op.clone(), inner).prop_map(|(o, p, v)| json!({ o: { p: v } })),
        ]
    });
    let list = prop::collection::vec(leaf, 0..4).prop_map(Value::Array);
    list.prop_recursive(4, 24, 4, move |inner| {
        prop::collection::vec((key.clone(), inner), 0..4)
            .prop_map(|kv| Value::Object(kv.into_iter().collect()))
    })
}

fn event_like() -> impl Strategy<Value = Value> {
    let scalar = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(|n| json!(n)),
        (-1e10f64..1e10).prop_map(|f| json!(f)),
        "[a-z*/:.0-9]{0,6}".prop_map(Value::String),
        Just(json!("10.0.0.1")),
    ];
    scalar.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(("[abc]|b\\.c|prefix", inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn parsing_arbitrary_text_never_panics(s in "\\PC{0,64}") {
        let _ = Pattern::parse(&s);
    }

    #[test]
    fn reading_arbitrary_bytes_never_panics(b in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = Pattern::parse(&String::from_utf8_lossy(&b));
        let _ = Event::from_bytes(&b);
    }

    #[test]
    fn pattern_shaped_json_parses_or_errors_and_matches_without_panic(p in pattern_like(), e in event_like()) {
        if let Ok(pattern) = Pattern::parse(&p.to_string()) {
            let by_value = pattern.matches(&e);
            if e.is_object() {
                let by_bytes = pattern.matches_bytes(e.to_string().as_bytes()).unwrap();
                prop_assert_eq!(by_value, by_bytes);
                let ev = Event::from_value(&e);
                prop_assert_eq!(pattern.explain(&ev).matched, by_value);
            }
        }
    }

    #[test]
    fn errors_always_carry_the_aws_prefix(p in pattern_like()) {
        if let Err(e) = Pattern::parse(&p.to_string()) {
            prop_assert!(e.to_string().starts_with("Event pattern is not valid. Reason: "));
            prop_assert!(e.pointer().is_empty() || e.pointer().starts_with('/'));
        }
    }
}
