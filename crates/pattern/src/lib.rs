//! EventBridge event patterns with AWS's exact semantics (work in progress).
