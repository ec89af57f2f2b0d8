//! The CloudFormation custom resource `Custom::EcrDockerHubCache`: request
//! parsing, the Create, Update and Delete operations, and the response body.
//!
//! # Contract
//!
//! - Create and Update apply the properties as `hubcache params set` would
//!   (merge with the stored parameters, validate, write SSM) and then
//!   reconcile, so the stack and the EventBridge path share one source of truth.
//! - The PhysicalResourceId is the rule prefix `docker-hub-<rack>`. An Update
//!   that renames the rack returns the new id, and CloudFormation then sends a
//!   Delete for the old one.
//! - Delete removes the cache of the rack named by the PhysicalResourceId and
//!   that rack's hubcache parameters, whatever SSM contains now. A Delete of an
//!   id that hubcache did not produce succeeds without touching anything, and
//!   so does a Delete with nothing left to delete.
//! - Every failure still carries a non-empty PhysicalResourceId. A Create that
//!   fails after the rack name was read returns the rack's id, so the Delete
//!   that follows cleans up what was created.

use std::collections::HashMap;

use aws_lambda_events::cloudformation::{
    CloudFormationCustomResourceRequest, CloudFormationCustomResourceResponse,
    CloudFormationCustomResourceResponseStatus,
};
use serde_json::{Map, Value};

use crate::names::{RULE_PREFIX_START, Rack, RackNameError};
use crate::params::{self, ParamsError};
use crate::reconcile::{self, Context, Report, UpstreamCheck};
use crate::response_url::ResponseUrl;
use crate::settings::{Assignment, Desired, Parameter};
use crate::ssm;

/// CloudFormation rejects a response body of 4096 bytes or more.
pub const MAX_BODY_BYTES: usize = 4096;

/// Property names the resource accepts besides the ones CloudFormation adds.
const RACK_NAME: &str = "RackName";
const PROPERTY_PARAMETERS: [(&str, Parameter); 5] = [
    ("EcrDockerHubCache", Parameter::Flag),
    ("DockerHubUsername", Parameter::Username),
    ("DockerHubPassword", Parameter::Password),
    ("NodeRoleNames", Parameter::NodeRoles),
    ("RetentionDays", Parameter::RetentionDays),
];
/// Properties CloudFormation itself puts in ResourceProperties.
const SERVICE_PROPERTIES: [&str; 2] = ["ServiceToken", "ServiceTimeout"];

/// The request fields every response copies, and where to send it.
#[derive(Clone, Debug)]
pub struct Envelope {
    pub response_url: ResponseUrl,
    pub stack_id: String,
    pub request_id: String,
    pub logical_resource_id: String,
    /// Absent on Create.
    pub physical_resource_id: Option<String>,
}

/// Operation of a request, with its properties.
#[derive(Clone, Debug)]
pub enum Operation {
    Create {
        properties: Value,
    },
    Update {
        properties: Value,
        old_properties: Value,
    },
    Delete {
        properties: Value,
    },
}

/// A custom-resource request. `operation` is an error message when the
/// envelope parsed but the rest of the request did not.
#[derive(Clone, Debug)]
pub struct Request {
    pub envelope: Envelope,
    pub operation: Result<Operation, String>,
}

/// A payload that looks like a custom-resource request but names no place to send a response.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "Invalid CloudFormation custom-resource request: field {field} is missing, so no response can be sent."
)]
pub struct UnanswerableRequest {
    pub field: &'static str,
}

/// Returns whether `payload` is a CloudFormation custom-resource request.
pub fn is_request(payload: &Value) -> bool {
    payload.get("RequestType").is_some() && payload.get("ResponseURL").is_some()
}

/// Parses a custom-resource request with `aws_lambda_events`' types, and
/// falls back to reading only the envelope when they reject it, so that a
/// malformed request still gets a FAILED response.
pub fn parse(payload: &Value) -> Result<Request, UnanswerableRequest> {
    match serde_json::from_value::<CloudFormationCustomResourceRequest>(payload.clone()) {
        Ok(CloudFormationCustomResourceRequest::Create(request)) => Ok(Request {
            envelope: Envelope {
                response_url: ResponseUrl::new(request.response_url),
                stack_id: request.stack_id,
                request_id: request.request_id,
                logical_resource_id: request.logical_resource_id,
                physical_resource_id: None,
            },
            operation: Ok(Operation::Create {
                properties: request.resource_properties,
            }),
        }),
        Ok(CloudFormationCustomResourceRequest::Update(request)) => Ok(Request {
            envelope: Envelope {
                response_url: ResponseUrl::new(request.response_url),
                stack_id: request.stack_id,
                request_id: request.request_id,
                logical_resource_id: request.logical_resource_id,
                physical_resource_id: Some(request.physical_resource_id),
            },
            operation: Ok(Operation::Update {
                properties: request.resource_properties,
                old_properties: request.old_resource_properties,
            }),
        }),
        Ok(CloudFormationCustomResourceRequest::Delete(request)) => Ok(Request {
            envelope: Envelope {
                response_url: ResponseUrl::new(request.response_url),
                stack_id: request.stack_id,
                request_id: request.request_id,
                logical_resource_id: request.logical_resource_id,
                physical_resource_id: Some(request.physical_resource_id),
            },
            operation: Ok(Operation::Delete {
                properties: request.resource_properties,
            }),
        }),
        Ok(_) => parse_envelope(
            payload,
            "its RequestType is not Create, Update or Delete".into(),
        ),
        Err(error) => parse_envelope(payload, error.to_string()),
    }
}

/// Reads the envelope alone, for a request the typed parse rejected.
fn parse_envelope(payload: &Value, problem: String) -> Result<Request, UnanswerableRequest> {
    let text = |field: &'static str| {
        payload
            .get(field)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or(UnanswerableRequest { field })
    };

    let envelope = Envelope {
        response_url: ResponseUrl::new(text("ResponseURL")?),
        stack_id: text("StackId")?,
        request_id: text("RequestId")?,
        logical_resource_id: text("LogicalResourceId")?,
        physical_resource_id: text("PhysicalResourceId").ok(),
    };

    let request_type = payload
        .get("RequestType")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let missing_properties = payload.get("ResourceProperties").is_none();
    let operation = match (request_type, missing_properties) {
        // CloudFormation omits ResourceProperties of a resource declared
        // without any, so such a Delete still removes what its id names.
        ("Delete", true) if envelope.physical_resource_id.is_some() => Ok(Operation::Delete {
            properties: Value::Object(Map::new()),
        }),
        _ => Err(format!("Invalid request: {problem}.")),
    };

    Ok(Request {
        envelope,
        operation,
    })
}

/// A property value that hubcache rejects. The messages never quote the password.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PropertiesError {
    #[error("ResourceProperties must be an object.")]
    NotAnObject,
    #[error("Property RackName is required: set it to the rack's name.")]
    MissingRackName,
    #[error("Property {name} must be a string.")]
    NotAString { name: &'static str },
    #[error("Property NodeRoleNames must be a list of role names or a comma-separated string.")]
    InvalidNodeRoleNames,
    #[error(
        "Unknown property {name:?}. Custom::EcrDockerHubCache accepts RackName, EcrDockerHubCache, \
         DockerHubUsername, DockerHubPassword and NodeRoleNames."
    )]
    Unknown { name: String },
    #[error(transparent)]
    RackName(#[from] RackNameError),
}

/// The resource's properties, read into parameter assignments.
#[derive(Debug, PartialEq, Eq)]
pub struct Properties {
    pub rack: Rack,
    /// One assignment for each property set to a non-empty value.
    pub assignments: Vec<Assignment>,
    /// The parameters whose property is present, empty or not.
    pub declared: Vec<Parameter>,
}

/// Reads the resource properties. CloudFormation sends every value as a
/// string; booleans are accepted for EcrDockerHubCache too. An empty string
/// counts as not set.
pub fn parse_properties(value: &Value) -> Result<Properties, PropertiesError> {
    let object = value.as_object().ok_or(PropertiesError::NotAnObject)?;

    for name in object.keys() {
        let known = name == RACK_NAME
            || SERVICE_PROPERTIES.contains(&name.as_str())
            || PROPERTY_PARAMETERS
                .iter()
                .any(|(property, _)| property == name);
        if !known {
            return Err(PropertiesError::Unknown { name: name.clone() });
        }
    }

    let rack = match object.get(RACK_NAME) {
        None => return Err(PropertiesError::MissingRackName),
        Some(Value::String(name)) => Rack::parse(name)?,
        Some(_) => return Err(PropertiesError::NotAString { name: RACK_NAME }),
    };

    let mut assignments = Vec::new();
    let mut declared = Vec::new();
    for (property, parameter) in PROPERTY_PARAMETERS {
        let value = match (object.get(property), parameter) {
            (None, _) => continue,
            (Some(Value::String(text)), _) => text.clone(),
            (Some(Value::Bool(flag)), Parameter::Flag) => flag.to_string(),
            (Some(Value::Number(days)), Parameter::RetentionDays) => days.to_string(),
            (Some(Value::Array(names)), Parameter::NodeRoles) => join_role_names(names)?,
            (Some(_), Parameter::NodeRoles) => return Err(PropertiesError::InvalidNodeRoleNames),
            (Some(_), _) => return Err(PropertiesError::NotAString { name: property }),
        };
        declared.push(parameter);
        if !value.is_empty() {
            assignments.push(Assignment {
                parameter,
                value: Some(value),
            });
        }
    }

    Ok(Properties {
        rack,
        assignments,
        declared,
    })
}

fn join_role_names(names: &[Value]) -> Result<String, PropertiesError> {
    let names: Option<Vec<&str>> = names.iter().map(Value::as_str).collect();
    names
        .map(|names| names.join(","))
        .ok_or(PropertiesError::InvalidNodeRoleNames)
}

/// Returns the PhysicalResourceId of `rack`'s cache.
pub fn physical_id(rack: &Rack) -> String {
    rack.rule_prefix()
}

/// Returns the rack a PhysicalResourceId names, or `None` for an id that
/// hubcache did not produce.
pub fn rack_of_physical_id(id: &str) -> Option<Rack> {
    let name = id.strip_prefix(RULE_PREFIX_START)?;
    let rack = Rack::parse(name).ok()?;
    (rack.as_str() == name).then_some(rack)
}

/// Returns the id of a resource whose Create failed before its rack was
/// known: non-empty, as CloudFormation requires, and never taken for a rack.
fn failed_create_id(request_id: &str) -> String {
    format!("{FAILED_CREATE_ID_START}{request_id}")
}

const FAILED_CREATE_ID_START: &str = "hubcache-failed-create-";

/// Outcome of an operation, before it becomes a response body.
#[derive(Debug)]
pub struct Outcome {
    pub status: CloudFormationCustomResourceResponseStatus,
    pub reason: String,
    pub physical_resource_id: String,
    pub data: HashMap<String, String>,
}

/// A failed operation: the message for Reason and the id to respond with.
#[derive(Debug)]
pub struct Failure {
    pub reason: String,
    pub physical_resource_id: String,
    /// Whether the operation failed before its first write.
    pub changed_nothing: bool,
}

impl Outcome {
    pub fn failed(reason: impl Into<String>, physical_resource_id: String) -> Self {
        Self {
            status: CloudFormationCustomResourceResponseStatus::Failed,
            reason: reason.into(),
            physical_resource_id,
            data: HashMap::new(),
        }
    }
}

/// Returns the id that a failure of `request` responds with, before any work.
pub fn fallback_id(request: &Request) -> String {
    match &request.envelope.physical_resource_id {
        Some(id) if !id.is_empty() => id.clone(),
        _ => {
            let rack = match &request.operation {
                Ok(Operation::Create { properties }) => properties
                    .get(RACK_NAME)
                    .and_then(Value::as_str)
                    .and_then(|name| Rack::parse(name).ok()),
                _ => None,
            };
            rack.map_or_else(
                || failed_create_id(&request.envelope.request_id),
                |rack| physical_id(&rack),
            )
        }
    }
}

/// Runs the operation of `request` and returns its outcome. It returns no
/// error: every error becomes a FAILED outcome whose Reason names the rack, the step
/// and what to do.
pub async fn run(context: &Context, request: &Request) -> Outcome {
    let operation = match &request.operation {
        Ok(operation) => operation,
        Err(problem) => return Outcome::failed(problem.clone(), fallback_id(request)),
    };

    let result = match operation {
        Operation::Create { properties } => create(context, request, properties).await,
        Operation::Update {
            properties,
            old_properties,
        } => update(context, request, properties, old_properties).await,
        Operation::Delete { .. } => delete(context, request).await,
    };

    match result {
        Ok(outcome) => outcome,
        Err(failure) => {
            tracing::error!(
                physical_resource_id = %failure.physical_resource_id,
                reason = %failure.reason,
                "custom resource operation failed"
            );
            Outcome::failed(failure.reason, failure.physical_resource_id)
        }
    }
}

async fn create(
    context: &Context,
    request: &Request,
    properties: &Value,
) -> Result<Outcome, Failure> {
    let fallback = failed_create_id(&request.envelope.request_id);
    let properties = parse_properties(properties).map_err(|error| Failure {
        reason: error.to_string(),
        physical_resource_id: fallback.clone(),
        changed_nothing: true,
    })?;

    // A Create that changed nothing responds with an id whose Delete, sent
    // when the stack rolls back, leaves the rack alone.
    apply(context, &properties, Vec::new())
        .await
        .map_err(|failure| Failure {
            physical_resource_id: if failure.changed_nothing {
                fallback
            } else {
                failure.physical_resource_id
            },
            ..failure
        })
}

async fn update(
    context: &Context,
    request: &Request,
    properties: &Value,
    old_properties: &Value,
) -> Result<Outcome, Failure> {
    let old_id = fallback_id(request);
    let new = parse_properties(properties).map_err(|error| Failure {
        reason: error.to_string(),
        physical_resource_id: old_id.clone(),
        changed_nothing: true,
    })?;

    // A property the stack stops declaring is removed from the rack, because
    // the stack owns what it declared. A rename starts from no declarations.
    let old_rack = rack_of_physical_id(&old_id);
    let removed = match (parse_properties(old_properties), &old_rack) {
        (Ok(old), Some(rack)) if *rack == new.rack => removed_assignments(&old, &new),
        _ => Vec::new(),
    };

    apply(context, &new, removed)
        .await
        .map_err(|failure| Failure {
            // A failed Update keeps the id CloudFormation already has, unless
            // the rename already wrote to the new rack.
            physical_resource_id: if failure.changed_nothing || old_rack.as_ref() == Some(&new.rack)
            {
                old_id
            } else {
                failure.physical_resource_id
            },
            ..failure
        })
}

/// Returns removals for the properties `old` set and `new` no longer has.
/// A property that `new` has with an empty value keeps the stored value.
fn removed_assignments(old: &Properties, new: &Properties) -> Vec<Assignment> {
    old.assignments
        .iter()
        .filter(|old| !new.declared.contains(&old.parameter))
        .map(|old| Assignment {
            parameter: old.parameter,
            value: None,
        })
        .collect()
}

/// Writes the properties to the rack's parameters and reconciles the rack.
///
/// Everything that can reject the properties runs before the first write:
/// validation, and a dry run that fails on a missing node role. A failure
/// there reports that nothing changed, so a failed Create responds with an
/// id whose Delete touches nothing, and a rack that existed before the stack
/// keeps its cache when the stack rolls back.
async fn apply(
    context: &Context,
    properties: &Properties,
    removed: Vec<Assignment>,
) -> Result<Outcome, Failure> {
    let rack = &properties.rack;
    let id = physical_id(rack);
    let unchanged = |reason: String| Failure {
        reason,
        physical_resource_id: id.clone(),
        changed_nothing: true,
    };

    let mut assignments = properties.assignments.clone();
    assignments.extend(removed);
    let client = &context.clients.ssm;
    let prefix = &context.parameter_prefix;
    let prepared = params::prepare(client, prefix, rack, assignments)
        .await
        .map_err(|error| unchanged(params_reason(rack, &error)))?;
    let desired = prepared
        .merged
        .desired(rack)
        .map_err(|error| unchanged(params_reason(rack, &ParamsError::Invalid(error))))?;
    reconcile::dry_run(context, rack, &desired, &prepared.merged.outputs())
        .await
        .map_err(|error| unchanged(error.to_string()))?;

    let changed = |reason: String| Failure {
        reason,
        physical_resource_id: id.clone(),
        changed_nothing: false,
    };
    params::write(client, prefix, rack, &prepared)
        .await
        .map_err(|error| changed(params_reason(rack, &error)))?;
    let report = reconcile::reconcile(context, rack)
        .await
        .map_err(|error| changed(error.to_string()))?;

    // The stack always learns whether Docker Hub accepts the credential,
    // even when this request changed nothing that would trigger the check.
    let upstream = match (&report.upstream, report.enabled) {
        (Some(check), _) => Some(check.clone()),
        (None, true) => Some(reconcile::validate_upstream(context, rack).await),
        (None, false) => None,
    };
    Ok(success(context, &report, id, upstream.as_ref()))
}

async fn delete(context: &Context, request: &Request) -> Result<Outcome, Failure> {
    let id = fallback_id(request);
    let Some(rack) = rack_of_physical_id(&id) else {
        tracing::info!(physical_resource_id = %id, "not an id hubcache produced; nothing to delete");
        let reason = if id.starts_with(FAILED_CREATE_ID_START) {
            format!(
                "{id} is the id of a Create that failed before changing anything, so there is nothing to delete."
            )
        } else {
            format!("{id} is not a hubcache resource, so there is nothing to delete.")
        };
        return Ok(Outcome {
            status: CloudFormationCustomResourceResponseStatus::Success,
            reason,
            physical_resource_id: id,
            data: HashMap::new(),
        });
    };
    let failure = |reason: String| Failure {
        reason,
        physical_resource_id: id.clone(),
        changed_nothing: false,
    };

    let stored = ssm::read(&context.clients.ssm, &context.parameter_prefix, &rack)
        .await
        .map_err(|source| {
            failure(format!(
                "Rack {rack}: failed to read parameters under {}: {source}",
                ssm::rack_path(&context.parameter_prefix, &rack)
            ))
        })?;
    let report = reconcile::converge(context, &rack, &Desired::Disabled, &stored.outputs())
        .await
        .map_err(|error| failure(error.to_string()))?;

    // The flag goes first, so a reconcile triggered by these deletions
    // already reads the cache as disabled.
    let mut deleted = Vec::new();
    for parameter in Parameter::ALL {
        if stored.get(parameter).is_none() {
            continue;
        }
        ssm::delete(
            &context.clients.ssm,
            &context.parameter_prefix,
            &rack,
            parameter,
        )
        .await
        .map_err(|source| {
            failure(format!(
                "Rack {rack}: failed to delete parameter {}: {source}",
                ssm::parameter_name(&context.parameter_prefix, &rack, parameter)
            ))
        })?;
        deleted.push(parameter.name());
    }

    let mut outcome = success(context, &report, id, None);
    if !deleted.is_empty() {
        let path = ssm::rack_path(&context.parameter_prefix, &rack);
        outcome.reason = format!(
            "{} Deleted parameters {} under {path}.",
            outcome.reason,
            deleted.join(", ")
        );
    }
    Ok(outcome)
}

fn success(
    context: &Context,
    report: &Report,
    id: String,
    upstream: Option<&UpstreamCheck>,
) -> Outcome {
    let rack = &report.rack;
    let reason = if report.changes.is_empty() {
        format!("Rack {rack}: no changes.")
    } else {
        let changes: Vec<String> = report.changes.iter().map(ToString::to_string).collect();
        format!("Rack {rack}: {}.", changes.join(", "))
    };

    let mut data = HashMap::from([
        ("RulePrefix".to_owned(), rack.rule_prefix()),
        ("CacheUri".to_owned(), context.target.cache_uri(rack)),
        (
            "SecretArn".to_owned(),
            report.secret_arn.clone().unwrap_or_default(),
        ),
        (
            "PolicyArn".to_owned(),
            report.policy_arn.clone().unwrap_or_default(),
        ),
    ]);

    let mut reason = reason;
    if let Some(check) = upstream {
        let valid = *check == UpstreamCheck::Valid;
        data.insert("UpstreamCredentialsValid".to_owned(), valid.to_string());
        if !valid {
            reason = format!("{reason} Warning: {check}.");
        }
    }

    Outcome {
        status: CloudFormationCustomResourceResponseStatus::Success,
        reason,
        physical_resource_id: id,
        data,
    }
}

fn params_reason(rack: &Rack, error: &ParamsError) -> String {
    match error {
        ParamsError::Invalid(settings) => format!(
            "Rack {rack}: invalid properties, nothing was changed. {settings} (In the stack, set \
             the properties EcrDockerHubCache, DockerHubUsername and DockerHubPassword.)"
        ),
        other => other.to_string(),
    }
}

/// Builds the response body for `outcome`, cutting Reason from the end so
/// that the body stays under [`MAX_BODY_BYTES`].
pub fn response_body(envelope: &Envelope, outcome: &Outcome) -> String {
    let mut response = CloudFormationCustomResourceResponse::default();
    response.status = outcome.status.clone();
    response.physical_resource_id = outcome.physical_resource_id.clone();
    response.stack_id = envelope.stack_id.clone();
    response.request_id = envelope.request_id.clone();
    response.logical_resource_id = envelope.logical_resource_id.clone();
    response.no_echo = false;
    response.data = outcome.data.clone();

    let body_with = |response: &mut CloudFormationCustomResourceResponse, reason: String| {
        response.reason = Some(reason);
        serde_json::to_string(response).unwrap_or_default()
    };

    let body = body_with(&mut response, outcome.reason.clone());
    if body.len() < MAX_BODY_BYTES {
        return body;
    }

    // Binary search for the longest beginning of Reason that fits, because
    // JSON escaping makes a character cost one to six bytes of body.
    let shortened = |keep: usize| {
        let mut end = keep;
        while !outcome.reason.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &outcome.reason[..end])
    };
    let (mut fits, mut too_long) = (0, outcome.reason.len());
    while too_long - fits > 1 {
        let middle = (fits + too_long) / 2;
        if body_with(&mut response, shortened(middle)).len() < MAX_BODY_BYTES {
            fits = middle;
        } else {
            too_long = middle;
        }
    }
    body_with(&mut response, shortened(fits))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn envelope() -> Envelope {
        Envelope {
            response_url: ResponseUrl::new("http://127.0.0.1:1/bucket/key?signature"),
            stack_id: "arn:aws:cloudformation:us-east-1:123456789012:stack/rack/1".into(),
            request_id: "request-1".into(),
            logical_resource_id: "DockerHubCache".into(),
            physical_resource_id: None,
        }
    }

    #[test]
    fn properties_string_values() {
        let properties = parse_properties(&json!({
            "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:hubcache",
            "RackName": "Demo",
            "EcrDockerHubCache": "true",
            "DockerHubUsername": "alice",
            "DockerHubPassword": "token",
            "NodeRoleNames": ["a-nodes", "b-nodes"],
        }))
        .unwrap();

        assert_eq!(properties.rack.as_str(), "demo");
        let values: Vec<(Parameter, Option<&str>)> = properties
            .assignments
            .iter()
            .map(|assignment| (assignment.parameter, assignment.value.as_deref()))
            .collect();
        assert_eq!(
            values,
            [
                (Parameter::Flag, Some("true")),
                (Parameter::Username, Some("alice")),
                (Parameter::Password, Some("token")),
                (Parameter::NodeRoles, Some("a-nodes,b-nodes")),
            ]
        );
    }

    #[test]
    fn properties_empty_values_are_unset() {
        let properties = parse_properties(&json!({
            "RackName": "demo",
            "EcrDockerHubCache": "false",
            "DockerHubPassword": "",
        }))
        .unwrap();

        assert_eq!(properties.assignments.len(), 1);
        assert_eq!(properties.assignments[0].parameter, Parameter::Flag);
        assert_eq!(properties.declared, [Parameter::Flag, Parameter::Password]);
    }

    #[test]
    fn removed_only_when_property_dropped() {
        let old = parse_properties(&json!({
            "RackName": "demo",
            "DockerHubUsername": "alice",
            "DockerHubPassword": "token",
            "NodeRoleNames": "a-nodes",
        }))
        .unwrap();
        let new = parse_properties(&json!({
            "RackName": "demo",
            "DockerHubUsername": "bob",
            "DockerHubPassword": "",
        }))
        .unwrap();

        let removed = removed_assignments(&old, &new);

        assert_eq!(
            removed,
            [Assignment {
                parameter: Parameter::NodeRoles,
                value: None
            }]
        );
    }

    #[test]
    fn properties_errors() {
        let cases = [
            (json!([]), PropertiesError::NotAnObject),
            (json!({}), PropertiesError::MissingRackName),
            (
                json!({"RackName": 5}),
                PropertiesError::NotAString { name: "RackName" },
            ),
            (
                json!({"RackName": "demo", "DockerHubPassword": 12345}),
                PropertiesError::NotAString {
                    name: "DockerHubPassword",
                },
            ),
            (
                json!({"RackName": "demo", "NodeRoleNames": [1]}),
                PropertiesError::InvalidNodeRoleNames,
            ),
            (
                json!({"RackName": "demo", "EcrDockerHubcache": "true"}),
                PropertiesError::Unknown {
                    name: "EcrDockerHubcache".into(),
                },
            ),
        ];
        for (value, expected) in cases {
            assert_eq!(parse_properties(&value), Err(expected), "{value}");
        }
        assert!(
            !PropertiesError::NotAString {
                name: "DockerHubPassword"
            }
            .to_string()
            .contains("12345")
        );
    }

    #[test]
    fn physical_id_round_trip() {
        let rack = Rack::parse("demo").unwrap();

        assert_eq!(physical_id(&rack), "docker-hub-demo");
        assert_eq!(rack_of_physical_id("docker-hub-demo"), Some(rack));
        for foreign in [
            "",
            "2026/12/04/[$LATEST]0123456789abcdef",
            "docker-hub-",
            "docker-hub-Demo",
            "docker-hub-a-rack-name-of-twenty",
            "hubcache-failed-create-request-1",
        ] {
            assert_eq!(rack_of_physical_id(foreign), None, "{foreign:?}");
        }
    }

    #[test]
    fn parse_typed_request() {
        let payload = json!({
            "RequestType": "Update",
            "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:hubcache",
            "ResponseURL": "http://127.0.0.1:1/response",
            "StackId": "stack",
            "RequestId": "request",
            "LogicalResourceId": "Cache",
            "PhysicalResourceId": "docker-hub-demo",
            "ResourceType": "Custom::EcrDockerHubCache",
            "ResourceProperties": {"RackName": "demo"},
            "OldResourceProperties": {"RackName": "demo"}
        });

        let request = parse(&payload).unwrap();

        assert_eq!(
            request.envelope.physical_resource_id.as_deref(),
            Some("docker-hub-demo")
        );
        assert!(matches!(request.operation, Ok(Operation::Update { .. })));
    }

    #[test]
    fn parse_delete_without_properties() {
        let payload = json!({
            "RequestType": "Delete",
            "ResponseURL": "http://127.0.0.1:1/response",
            "StackId": "stack",
            "RequestId": "request",
            "LogicalResourceId": "Cache",
            "PhysicalResourceId": "docker-hub-demo",
            "ResourceType": "Custom::EcrDockerHubCache"
        });

        let request = parse(&payload).unwrap();

        assert!(matches!(request.operation, Ok(Operation::Delete { .. })));
    }

    #[test]
    fn parse_malformed_request_keeps_envelope() {
        let payload = json!({
            "RequestType": "Create",
            "ResponseURL": "http://127.0.0.1:1/response",
            "StackId": "stack",
            "RequestId": "request",
            "LogicalResourceId": "Cache"
        });

        let request = parse(&payload).unwrap();

        assert_eq!(request.envelope.request_id, "request");
        assert_eq!(
            request.operation.unwrap_err(),
            "Invalid request: missing field `ResourceType`."
        );
    }

    #[test]
    fn parse_without_response_url_is_unanswerable() {
        let payload = json!({"RequestType": "Create", "StackId": "stack"});

        assert_eq!(
            parse(&payload).unwrap_err(),
            UnanswerableRequest {
                field: "ResponseURL"
            }
        );
    }

    #[test]
    fn fallback_id_never_empty() {
        let mut request = Request {
            envelope: envelope(),
            operation: Ok(Operation::Create {
                properties: json!({"RackName": "Demo"}),
            }),
        };
        assert_eq!(fallback_id(&request), "docker-hub-demo");

        request.operation = Ok(Operation::Create {
            properties: json!({"RackName": "not a rack"}),
        });
        assert_eq!(fallback_id(&request), "hubcache-failed-create-request-1");

        request.envelope.physical_resource_id = Some(String::new());
        assert_eq!(fallback_id(&request), "hubcache-failed-create-request-1");
    }

    #[test]
    fn body_fields() {
        let outcome = Outcome {
            status: CloudFormationCustomResourceResponseStatus::Success,
            reason: "Rack demo: no changes.".into(),
            physical_resource_id: "docker-hub-demo".into(),
            data: HashMap::from([("RulePrefix".to_owned(), "docker-hub-demo".to_owned())]),
        };

        let body: Value = serde_json::from_str(&response_body(&envelope(), &outcome)).unwrap();

        assert_eq!(
            body,
            json!({
                "Status": "SUCCESS",
                "Reason": "Rack demo: no changes.",
                "PhysicalResourceId": "docker-hub-demo",
                "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/rack/1",
                "RequestId": "request-1",
                "LogicalResourceId": "DockerHubCache",
                "NoEcho": false,
                "Data": {"RulePrefix": "docker-hub-demo"},
            })
        );
    }

    #[test]
    fn body_cuts_long_reason() {
        for filler in ["x", "é", "\"", "\n"] {
            let reason = format!(
                "Rack demo: failed to create secret: {}",
                filler.repeat(5000)
            );
            let outcome = Outcome::failed(reason, "docker-hub-demo".into());

            let body = response_body(&envelope(), &outcome);
            let parsed: Value = serde_json::from_str(&body).unwrap();

            assert!(
                body.len() < MAX_BODY_BYTES,
                "{} bytes for {filler:?}",
                body.len()
            );
            assert!(
                body.len() > MAX_BODY_BYTES - 100,
                "cut too much for {filler:?}"
            );
            let reason = parsed["Reason"].as_str().unwrap();
            assert!(reason.starts_with("Rack demo: failed to create secret: "));
            assert!(reason.ends_with("..."));
            assert_eq!(parsed["Status"], "FAILED");
        }
    }
}
