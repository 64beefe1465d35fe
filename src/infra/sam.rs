//! SAM templates: the event patterns of a serverless resource's event sources.
//!
//! An `AWS::Serverless::Function` or `AWS::Serverless::StateMachine` lists `Events`; those of type
//! `EventBridgeRule` or `CloudWatchEvent` carry an event pattern in `Properties.Pattern`, which SAM
//! turns into an `AWS::Events::Rule`. The rest of a SAM template is CloudFormation and is read by
//! [`super::cloudformation`].

use serde_json::Value;

/// The SAM event source types that carry an EventBridge pattern.
pub const PATTERN_EVENT_TYPES: [&str; 2] = ["EventBridgeRule", "CloudWatchEvent"];

/// `(event name, pattern)` for every event source of a SAM resource that has a pattern.
pub fn event_patterns(resource: &Value) -> Vec<(&str, &Value)> {
    let Some(events) = resource
        .pointer("/Properties/Events")
        .and_then(Value::as_object)
    else {
        return Vec::new();
    };
    events
        .iter()
        .filter(|(_, e)| {
            e.get("Type")
                .and_then(Value::as_str)
                .is_some_and(|t| PATTERN_EVENT_TYPES.contains(&t))
        })
        .filter_map(|(name, e)| Some((name.as_str(), e.pointer("/Properties/Pattern")?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_eventbridge_and_cloudwatch_event_sources_with_a_pattern() {
        let res = json!({"Type": "AWS::Serverless::StateMachine", "Properties": {"Events": {
            "A": {"Type": "CloudWatchEvent", "Properties": {"Pattern": {"source": ["a"]}}},
            "B": {"Type": "SQS", "Properties": {"Queue": "q"}},
            "C": {"Type": "EventBridgeRule", "Properties": {"Pattern": {"source": ["c"]}}},
            "D": {"Type": "EventBridgeRule", "Properties": {"Schedule": "x"}}}}});
        let names: Vec<&str> = event_patterns(&res).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["A", "C"]);
    }
}
