//! One event through every room between acceptance and rendering (`scanbridge::exercise::Rig`):
//! validation, routing with topics, the scan history, dedup keys, digests, and every target's
//! rendering (console, Slack, email, webhook). Never panics, for any input; the property test in
//! `src/exercise.rs` runs the same harness on generated events in the test command.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use scanbridge::exercise::Rig;

static RIG: LazyLock<Rig> = LazyLock::new(|| {
    let sample = serde_json::json!({"version": "0", "id": "sample", "source": "aws.ecr",
        "detail-type": "ECR Image Scan", "account": "123456789012", "region": "us-east-1",
        "time": "2026-11-20T12:00:00Z", "resources": [],
        "detail": {"repository-name": "payments/api", "image-digest": "sha256:9c1d4f3b8e2a7d6c5b4a",
            "image-tags": ["v2.14.0", "latest"], "scan-status": "COMPLETE",
            "finding-severity-counts": {"CRITICAL": 2, "HIGH": 7}}});
    Rig::new(sample)
});

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = RIG.run(text);
});
