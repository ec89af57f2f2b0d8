//! Decides which rack an invocation payload requests to reconcile.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use serde::Deserialize;
use serde_json::Value;

use crate::names::{Rack, RackNameError};
use crate::settings::Parameter;

/// EventBridge's `detail-type` of SSM parameter changes.
pub const PARAMETER_CHANGE: &str = "Parameter Store Change";
/// EventBridge's `source` of SSM events.
pub const SSM_SOURCE: &str = "aws.ssm";
/// EventBridge's `detail-type` of a scheduled rule's events.
pub const SCHEDULED_EVENT: &str = "Scheduled Event";
/// EventBridge's `source` of scheduled events.
pub const SCHEDULE_SOURCE: &str = "aws.events";

/// The `detail` of a "Parameter Store Change" event.
#[derive(Clone, Debug, Deserialize, serde::Serialize, PartialEq, Eq)]
pub struct ParameterChange {
    /// Full parameter name, such as `/convox/demo/ecr_docker_hub_cache`.
    pub name: String,
    /// `Create`, `Update`, `Delete` or `LabelParameterVersion`. Every one
    /// leads to a reconcile, since the reconciler reads the current values.
    pub operation: String,
    #[serde(rename = "type", default)]
    pub parameter_type: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

/// A direct invocation: `{"rack": "<name>"}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DirectInvocation {
    rack: String,
}

/// Request carried by an invocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trigger {
    Reconcile(Rack),
    /// Drift repair: reconcile every rack that has parameters under the prefix.
    ReconcileAll,
    /// A valid event that concerns no hubcache parameter.
    Ignore(String),
}

/// A payload hubcache cannot act on.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EventError {
    #[error(
        "Unsupported event: expected an EventBridge \"{PARAMETER_CHANGE}\" event from {SSM_SOURCE}, \
         a \"{SCHEDULED_EVENT}\" from {SCHEDULE_SOURCE}, a CloudFormation custom-resource \
         request, or a direct invocation \
         {{\"rack\": \"<name>\"}}, but got {found}."
    )]
    Unsupported { found: String },
    #[error("Invalid \"{PARAMETER_CHANGE}\" event: {reason}.")]
    MalformedParameterChange { reason: String },
    #[error("Invalid rack in {parameter}: {source}")]
    InvalidRack {
        parameter: String,
        #[source]
        source: RackNameError,
    },
}

/// Returns the request in `payload`, given the SSM path prefix of rack parameters.
pub fn dispatch(payload: &Value, parameter_prefix: &str) -> Result<Trigger, EventError> {
    let Some(object) = payload.as_object() else {
        return Err(EventError::Unsupported {
            found: format!("a JSON {}", json_kind(payload)),
        });
    };

    if object.contains_key("detail-type") {
        return dispatch_eventbridge(payload, parameter_prefix);
    }

    if object.contains_key("rack") {
        let direct: DirectInvocation =
            serde_json::from_value(payload.clone()).map_err(|error| EventError::Unsupported {
                found: format!("an object with \"rack\" that is not a direct invocation ({error})"),
            })?;
        let rack = Rack::parse(&direct.rack).map_err(|source| EventError::InvalidRack {
            parameter: "the direct invocation's \"rack\"".into(),
            source,
        })?;
        return Ok(Trigger::Reconcile(rack));
    }

    let mut keys: Vec<&str> = object.keys().map(String::as_str).take(5).collect();
    keys.sort_unstable();
    Err(EventError::Unsupported {
        found: format!("an object with keys {keys:?}"),
    })
}

fn dispatch_eventbridge(payload: &Value, parameter_prefix: &str) -> Result<Trigger, EventError> {
    let detail_type = payload["detail-type"].as_str().unwrap_or_default();
    let source = payload["source"].as_str().unwrap_or_default();
    if detail_type == SCHEDULED_EVENT && source == SCHEDULE_SOURCE {
        return Ok(Trigger::ReconcileAll);
    }
    if detail_type != PARAMETER_CHANGE || source != SSM_SOURCE {
        return Err(EventError::Unsupported {
            found: format!("an EventBridge event {detail_type:?} from {source:?}"),
        });
    }

    let event: EventBridgeEvent<ParameterChange> = serde_json::from_value(payload.clone())
        .map_err(|error| EventError::MalformedParameterChange {
            reason: error.to_string(),
        })?;
    let name = event.detail.name;

    let Some((rack, parameter)) = rack_parameter(&name, parameter_prefix) else {
        return Ok(Trigger::Ignore(format!(
            "parameter {name} is not a hubcache parameter under {parameter_prefix}"
        )));
    };

    let rack_name = rack;
    let rack = Rack::parse(rack_name).map_err(|source| EventError::InvalidRack {
        parameter: format!("parameter {name}"),
        source,
    })?;
    if rack.as_str() != rack_name {
        // Reconciling the lowercase rack would read another path than the
        // one that changed, so the change is reported instead.
        let reason = format!(
            "parameter {name} is under a rack path with uppercase letters; hubcache reads rack \
             {rack}'s parameters under {}",
            crate::ssm::rack_path(parameter_prefix, &rack)
        );
        tracing::warn!(%reason, "ignored a parameter change");
        return Ok(Trigger::Ignore(reason));
    }
    tracing::debug!(rack = %rack, %parameter, operation = %event.detail.operation, "parameter changed");
    Ok(Trigger::Reconcile(rack))
}

/// Splits `<prefix><rack>/<parameter>` into the rack and one of hubcache's parameters.
fn rack_parameter<'a>(name: &'a str, parameter_prefix: &str) -> Option<(&'a str, Parameter)> {
    let prefix = format!("{}/", parameter_prefix.trim_end_matches('/'));
    let rest = name.strip_prefix(&prefix)?;
    let (rack, parameter) = rest.split_once('/')?;
    let parameter = Parameter::from_name(parameter)?;
    Some((rack, parameter))
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parameter_event(name: &str, operation: &str) -> Value {
        json!({
            "version": "0",
            "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
            "detail-type": "Parameter Store Change",
            "source": "aws.ssm",
            "account": "123456789012",
            "time": "2026-12-04T20:00:00Z",
            "region": "us-east-1",
            "resources": [format!("arn:aws:ssm:us-east-1:123456789012:parameter{name}")],
            "detail": {"operation": operation, "name": name, "type": "String", "description": ""}
        })
    }

    fn rack(name: &str) -> Trigger {
        Trigger::Reconcile(Rack::parse(name).unwrap())
    }

    #[test]
    fn parameter_change_reconciles_rack() {
        for operation in ["Create", "Update", "Delete", "LabelParameterVersion"] {
            for parameter in [
                "ecr_docker_hub_cache",
                "docker_hub_username",
                "docker_hub_password",
            ] {
                let event = parameter_event(&format!("/convox/demo/{parameter}"), operation);

                assert_eq!(dispatch(&event, "/convox/"), Ok(rack("demo")));
            }
        }
    }

    #[test]
    fn parameter_change_without_description() {
        let mut event = parameter_event("/convox/demo/ecr_docker_hub_cache", "Update");
        event["detail"]
            .as_object_mut()
            .unwrap()
            .remove("description");
        event["detail"].as_object_mut().unwrap().remove("type");

        assert_eq!(dispatch(&event, "/convox/"), Ok(rack("demo")));
    }

    #[test]
    fn parameter_change_ignores_uppercase_path() {
        let event = parameter_event("/convox/Demo/ecr_docker_hub_cache", "Update");

        assert_eq!(
            dispatch(&event, "/convox"),
            Ok(Trigger::Ignore(
                "parameter /convox/Demo/ecr_docker_hub_cache is under a rack path with uppercase \
                 letters; hubcache reads rack demo's parameters under /convox/demo/"
                    .into()
            ))
        );
    }

    #[test]
    fn parameter_change_ignores_others() {
        for name in [
            "/other/demo/ecr_docker_hub_cache",
            "/convox/demo/ecr_docker_hub_cache_prefix",
            "/convox/demo/node_type",
            "/convox/demo/nested/ecr_docker_hub_cache",
            "/convox/ecr_docker_hub_cache",
            "/convoxx/demo/ecr_docker_hub_cache",
        ] {
            let trigger = dispatch(&parameter_event(name, "Update"), "/convox/").unwrap();

            assert!(
                matches!(trigger, Trigger::Ignore(ref reason) if reason.contains(name)),
                "{name} should be ignored, got {trigger:?}"
            );
        }
    }

    #[test]
    fn parameter_change_of_similar_rack() {
        for (name, expected) in [
            ("/convox/demo-x/ecr_docker_hub_cache", "demo-x"),
            ("/convox/demox/docker_hub_password", "demox"),
            ("/convox/de/docker_hub_username", "de"),
        ] {
            assert_eq!(
                dispatch(&parameter_event(name, "Update"), "/convox/"),
                Ok(rack(expected))
            );
        }
    }

    #[test]
    fn parameter_change_rejects_invalid_rack() {
        let error = dispatch(
            &parameter_event(
                "/convox/a-rack-name-of-twenty/ecr_docker_hub_cache",
                "Update",
            ),
            "/convox/",
        )
        .unwrap_err();

        assert!(matches!(error, EventError::InvalidRack { .. }));
        assert!(error.to_string().contains("a-rack-name-of-twenty"));
    }

    #[test]
    fn scheduled_event_reconciles_all() {
        let event = json!({
            "version": "0",
            "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": "123456789012",
            "time": "2026-12-04T18:00:00Z",
            "region": "us-east-1",
            "resources": ["arn:aws:events:us-east-1:123456789012:rule/hubcache-drift-repair"],
            "detail": {}
        });

        assert_eq!(dispatch(&event, "/convox/"), Ok(Trigger::ReconcileAll));
    }

    #[test]
    fn direct_invocation() {
        assert_eq!(
            dispatch(&json!({"rack": "Demo"}), "/convox/"),
            Ok(rack("demo"))
        );
    }

    #[test]
    fn unsupported_payloads() {
        let cases = [
            (json!("text"), "a JSON string"),
            (json!([1]), "a JSON array"),
            (json!({}), "an object with keys []"),
            (json!({"rack": 5}), "not a direct invocation"),
            (
                json!({"rack": "demo", "extra": 1}),
                "not a direct invocation",
            ),
            (
                json!({"detail-type": "Object Created", "source": "aws.s3", "detail": {}}),
                "\"Object Created\" from \"aws.s3\"",
            ),
            (
                json!({"detail-type": "Scheduled Event", "source": "aws.ssm", "detail": {}}),
                "\"Scheduled Event\" from \"aws.ssm\"",
            ),
        ];
        for (payload, expected) in cases {
            let error = dispatch(&payload, "/convox/").unwrap_err();

            assert!(
                error.to_string().contains(expected),
                "{payload}: {error} should contain {expected:?}"
            );
            assert!(error.to_string().contains("expected an EventBridge"));
        }
    }

    #[test]
    fn parameter_change_without_detail() {
        let mut event = parameter_event("/convox/demo/ecr_docker_hub_cache", "Update");
        event.as_object_mut().unwrap().remove("detail");

        let error = dispatch(&event, "/convox/").unwrap_err();

        assert!(matches!(error, EventError::MalformedParameterChange { .. }));
        assert!(
            error.to_string().contains("missing field `detail`"),
            "{error}"
        );
    }
}
