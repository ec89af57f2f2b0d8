//! The Lambda function: one invocation payload in, one reconcile out.

use aws_config::SdkConfig;
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde_json::{Value, json};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::OnceCell;
use tokio::time::Instant;
use tracing::Instrument;

use crate::custom_resource::{self, Outcome, Request, UnanswerableRequest};
use crate::error::{AwsError, Error};
use crate::events::{self, EventError, Trigger};
use crate::names::Target;
use crate::reconcile::{self, Clients, Context};
use crate::response_url::{self, PutError};
use crate::{ecr, ssm};

/// Failure of an invocation, as the Lambda runtime reports it.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error(transparent)]
    Event(#[from] EventError),
    #[error(transparent)]
    Reconcile(#[from] Error),
    #[error(
        "The invoked function ARN {arn:?} names no account, and reading it from ECR failed: {source}"
    )]
    UnknownAccount {
        arn: String,
        #[source]
        source: AwsError,
    },
    #[error("The invoked function ARN {arn:?} names no region, and AWS_REGION is not set.")]
    UnknownRegion { arn: String },
    #[error(transparent)]
    UnanswerableRequest(#[from] UnanswerableRequest),
    #[error("Drift repair failed to list the racks under {prefix}: {source}")]
    ListRacks {
        prefix: String,
        #[source]
        source: AwsError,
    },
    #[error("Drift repair failed for {failed} of {total} racks: {errors}")]
    RepairFailed {
        failed: usize,
        total: usize,
        errors: String,
    },
    #[error(
        "The CloudFormation response was not delivered: {0}. The stack waits until its ServiceTimeout."
    )]
    ResponseNotSent(#[from] PutError),
}

impl From<HandlerError> for Diagnostic {
    fn from(error: HandlerError) -> Self {
        let error_type = match &error {
            HandlerError::Event(_) => "InvalidEvent",
            HandlerError::Reconcile(inner) => inner.kind(),
            HandlerError::UnknownAccount { .. } | HandlerError::UnknownRegion { .. } => {
                "UnknownTarget"
            }
            HandlerError::UnanswerableRequest(_) => "InvalidEvent",
            HandlerError::ResponseNotSent(_) => "ResponseNotSent",
            HandlerError::ListRacks { .. } | HandlerError::RepairFailed { .. } => "RepairFailed",
        };
        Diagnostic {
            error_type: error_type.to_owned(),
            error_message: error.to_string(),
        }
    }
}

/// State kept across invocations of one Lambda execution environment.
pub struct Handler {
    /// The SDK configuration the clients are built from, on first use, so
    /// that init and invocations that call no AWS service build none.
    config: Option<SdkConfig>,
    clients: std::sync::OnceLock<Clients>,
    parameter_prefix: String,
    region: Option<String>,
    /// Time kept back from the Lambda deadline to send a CloudFormation response.
    response_margin: Duration,
    /// Target learned from ECR when the function ARN names none.
    fallback_target: OnceCell<Target>,
}

impl Handler {
    pub fn new(config: &SdkConfig, parameter_prefix: String) -> Self {
        Self {
            config: Some(config.clone()),
            clients: std::sync::OnceLock::new(),
            parameter_prefix,
            region: config.region().map(ToString::to_string),
            response_margin: DEFAULT_RESPONSE_MARGIN,
            fallback_target: OnceCell::new(),
        }
    }

    pub fn with_clients(
        clients: Clients,
        parameter_prefix: String,
        region: Option<String>,
    ) -> Self {
        Self {
            config: None,
            clients: std::sync::OnceLock::from(clients),
            parameter_prefix,
            region,
            response_margin: DEFAULT_RESPONSE_MARGIN,
            fallback_target: OnceCell::new(),
        }
    }

    fn clients(&self) -> &Clients {
        self.clients.get_or_init(|| {
            let config = self
                .config
                .as_ref()
                .expect("a handler has either a config or clients");
            Clients::new(config)
        })
    }

    /// Sets the time kept back from the Lambda deadline to send a
    /// CloudFormation response.
    pub fn with_response_margin(mut self, margin: Duration) -> Self {
        self.response_margin = margin;
        self
    }

    /// Handles one invocation and returns what it changed.
    ///
    /// The account, partition and region come from the invoked function's
    /// ARN, so the function needs no extra call to learn them.
    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<Value, HandlerError> {
        let span = tracing::info_span!("invocation", request_id = %event.context.request_id);
        // Boxed: the futures of a reconcile are large, and the runtime nests them deeply.
        Box::pin(self.handle_in_span(event).instrument(span)).await
    }

    async fn handle_in_span(&self, event: LambdaEvent<Value>) -> Result<Value, HandlerError> {
        // The payload is never logged: a CloudFormation request carries the
        // ResponseURL, a bearer credential, and the Docker Hub password.
        if custom_resource::is_request(&event.payload) {
            return Box::pin(self.handle_custom_resource(event)).await;
        }

        let rack = match events::dispatch(&event.payload, &self.parameter_prefix) {
            Ok(Trigger::Reconcile(rack)) => Some(rack),
            Ok(Trigger::ReconcileAll) => None,
            Ok(Trigger::Ignore(reason)) => {
                tracing::debug!(%reason, "ignored");
                return Ok(json!({ "ignored": reason }));
            }
            Err(error) => {
                tracing::error!(%error, "invalid event");
                return Err(error.into());
            }
        };

        let target = self.target(&event.context.invoked_function_arn).await?;
        let context = Context {
            clients: self.clients().clone(),
            target,
            parameter_prefix: self.parameter_prefix.clone(),
        };

        let Some(rack) = rack else {
            return repair_all(&context).await;
        };
        // Boxed: the reconcile future is large, and the runtime nests it deeply.
        let report = Box::pin(reconcile::reconcile(&context, &rack)).await?;
        Ok(report_json(&report))
    }

    /// Runs a custom-resource request and sends exactly one response to its
    /// ResponseURL, whatever happens: success, error, panic, or the Lambda
    /// deadline coming within the response margin.
    async fn handle_custom_resource(
        &self,
        event: LambdaEvent<Value>,
    ) -> Result<Value, HandlerError> {
        let request = custom_resource::parse(&event.payload).inspect_err(|error| {
            tracing::error!(%error, "custom-resource request without a response target");
        })?;
        // Without a usable ResponseURL no response can reach the stack, so no
        // work is started that could not be reported.
        request.envelope.response_url.check().inspect_err(|error| {
            tracing::error!(%error, "custom-resource request with an invalid ResponseURL");
        })?;
        let deadline = lambda_deadline(event.context.deadline);
        tracing::debug!(
            deadline_ms = event.context.deadline,
            remaining_ms = deadline.map(|deadline| deadline
                .saturating_duration_since(Instant::now())
                .as_millis()),
            "Lambda deadline"
        );
        tracing::info!(
            stack_id = %request.envelope.stack_id,
            logical_resource_id = %request.envelope.logical_resource_id,
            cfn_request_id = %request.envelope.request_id,
            "custom-resource request"
        );

        let outcome = match self.target(&event.context.invoked_function_arn).await {
            Ok(target) => {
                let context = Context {
                    clients: self.clients().clone(),
                    target,
                    parameter_prefix: self.parameter_prefix.clone(),
                };
                let work_deadline = deadline.map(|deadline| {
                    deadline
                        .checked_sub(self.response_margin)
                        .unwrap_or_else(Instant::now)
                });
                run_guarded(context, request.clone(), work_deadline).await
            }
            Err(error) => {
                Outcome::failed(error.to_string(), custom_resource::fallback_id(&request))
            }
        };

        let body = custom_resource::response_body(&request.envelope, &outcome);
        response_url::put(&request.envelope.response_url, body.clone(), deadline).await?;
        Ok(serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    /// Returns the account, partition and region from the function ARN, as
    /// Lambda sets it. Local runtimes such as `cargo lambda watch` pass a
    /// placeholder instead, so then the region comes from the SDK
    /// configuration and the account from ECR, once per process.
    async fn target(&self, arn: &str) -> Result<Target, HandlerError> {
        if let Some(target) = Target::from_arn(arn) {
            return Ok(target);
        }

        let target = self
            .fallback_target
            .get_or_try_init(|| async {
                let region = self.region.clone().ok_or_else(|| HandlerError::UnknownRegion {
                    arn: arn.to_owned(),
                })?;
                let account = ecr::registry_id(&self.clients().ecr).await.map_err(|source| {
                    HandlerError::UnknownAccount {
                        arn: arn.to_owned(),
                        source,
                    }
                })?;
                tracing::warn!(%arn, %account, %region, "function ARN names no account; using ECR's registry id");
                Ok::<_, HandlerError>(Target {
                    partition: Target::partition_of(&region).to_owned(),
                    region,
                    account,
                })
            })
            .await?;
        Ok(target.clone())
    }
}

fn report_json(report: &reconcile::Report) -> Value {
    let changes: Vec<String> = report.changes.iter().map(ToString::to_string).collect();
    let mut value = json!({
        "rack": report.rack.as_str(),
        "enabled": report.enabled,
        "changes": changes,
    });
    if let Some(check) = &report.upstream {
        value["upstreamCredentialsValid"] = json!(*check == reconcile::UpstreamCheck::Valid);
        value["upstreamCheck"] = json!(check.to_string());
    }
    value
}

/// Reconciles every rack with parameters under the prefix, one after the
/// other, so that resources changed or deleted by hand come back. A failing
/// rack does not stop the others; the invocation fails afterwards, naming it.
async fn repair_all(context: &Context) -> Result<Value, HandlerError> {
    let racks = ssm::list_racks(&context.clients.ssm, &context.parameter_prefix)
        .await
        .map_err(|source| HandlerError::ListRacks {
            prefix: context.parameter_prefix.clone(),
            source,
        })?;
    tracing::info!(racks = racks.len(), "drift repair");

    let mut reports = Vec::new();
    let mut failures = Vec::new();
    for rack in &racks {
        match Box::pin(reconcile::reconcile(context, rack)).await {
            Ok(report) => reports.push(report_json(&report)),
            Err(error) => failures.push(error.to_string()),
        }
    }

    if !failures.is_empty() {
        return Err(HandlerError::RepairFailed {
            failed: failures.len(),
            total: racks.len(),
            errors: failures.join(" | "),
        });
    }
    Ok(json!({ "repaired": reports }))
}

/// Time kept back by default from the Lambda deadline to send a response.
pub const DEFAULT_RESPONSE_MARGIN: Duration = Duration::from_secs(10);

/// Deadlines before 2020-01-01 are not epoch times: local runtimes send 0,
/// and `cargo lambda watch` 1.9 sends the function timeout (600000).
const EARLIEST_EPOCH_DEADLINE_MS: u64 = 1_577_836_800_000;

/// Converts the runtime's deadline, in milliseconds since the Unix epoch, to
/// an instant. A value that is no epoch time means no deadline.
fn lambda_deadline(deadline_ms: u64) -> Option<Instant> {
    if deadline_ms < EARLIEST_EPOCH_DEADLINE_MS {
        return None;
    }
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64);
    Some(Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(now_ms)))
}

/// Runs the operation in its own task, so that a panic or the deadline
/// becomes a FAILED outcome instead of a stack left waiting.
async fn run_guarded(context: Context, request: Request, deadline: Option<Instant>) -> Outcome {
    let fallback = custom_resource::fallback_id(&request);
    let mut task = tokio::spawn(async move { custom_resource::run(&context, &request).await });

    let joined = match deadline {
        Some(deadline) => match tokio::time::timeout_at(deadline, &mut task).await {
            Ok(joined) => joined,
            Err(_) => {
                task.abort();
                tracing::error!(physical_resource_id = %fallback, "custom resource operation timed out");
                return Outcome::failed(
                    format!(
                        "{fallback}: timed out before the Lambda deadline, so the operation is \
                         incomplete. Raise the function's Timeout, or retry: every step is \
                         idempotent and the next run continues from what exists."
                    ),
                    fallback,
                );
            }
        },
        None => task.await,
    };

    match joined {
        Ok(outcome) => outcome,
        Err(error) => {
            let detail = if error.is_panic() {
                panic_message(error.into_panic())
            } else {
                "the task was cancelled".to_owned()
            };
            tracing::error!(physical_resource_id = %fallback, %detail, "custom resource operation panicked");
            Outcome::failed(
                format!(
                    "{fallback}: internal error in hubcache ({detail}). Retry, and report it if it persists."
                ),
                fallback,
            )
        }
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        format!("panic: {text}")
    } else if let Some(text) = payload.downcast_ref::<String>() {
        format!("panic: {text}")
    } else {
        "panic".to_owned()
    }
}

/// Log settings of the function, from Lambda's advanced logging controls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogSettings {
    /// JSON lines when `AWS_LAMBDA_LOG_FORMAT` is `JSON`, plain text otherwise.
    pub json: bool,
    pub level: tracing::level_filters::LevelFilter,
}

impl LogSettings {
    /// Reads `AWS_LAMBDA_LOG_FORMAT`, and the level from `AWS_LAMBDA_LOG_LEVEL`,
    /// else `RUST_LOG`, as lambda_runtime's default subscriber does. An unset
    /// or unknown level means INFO.
    pub fn from_values(format: Option<&str>, level: Option<&str>) -> Self {
        Self {
            json: format.is_some_and(|format| format.eq_ignore_ascii_case("json")),
            level: level
                .and_then(|level| level.parse().ok())
                .unwrap_or(tracing::level_filters::LevelFilter::INFO),
        }
    }

    pub fn from_env() -> Self {
        let format = std::env::var("AWS_LAMBDA_LOG_FORMAT").ok();
        let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
            .or_else(|_| std::env::var("RUST_LOG"))
            .ok();
        Self::from_values(format.as_deref(), level.as_deref())
    }
}

/// Installs the function's global log subscriber with lambda_runtime's
/// tracing-subscriber: lines without time (Lambda adds it) or ANSI colors,
/// filtered by level alone.
///
/// lambda_runtime's default subscriber filters with an EnvFilter, whose
/// directive parser and regex engine make the binary larger. So a
/// `RUST_LOG` directive with a target falls back to INFO here.
pub fn init_logging(settings: LogSettings) {
    let builder = lambda_runtime::tracing::subscriber::fmt()
        .with_target(false)
        .without_time()
        .with_ansi(false)
        .with_max_level(settings.level);
    if settings.json {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::level_filters::LevelFilter;

    #[test]
    fn log_settings_from_lambda_controls() {
        let cases = [
            (None, None, false, LevelFilter::INFO),
            (Some("JSON"), Some("DEBUG"), true, LevelFilter::DEBUG),
            (Some("json"), Some("warn"), true, LevelFilter::WARN),
            (Some("Text"), Some("ERROR"), false, LevelFilter::ERROR),
            (Some("TEXT"), Some("TRACE"), false, LevelFilter::TRACE),
            (None, Some("hubcache=debug"), false, LevelFilter::INFO),
            (None, Some("loud"), false, LevelFilter::INFO),
        ];
        for (format, level, json, expected) in cases {
            let settings = LogSettings::from_values(format, level);

            assert_eq!(settings.json, json, "{format:?}");
            assert_eq!(settings.level, expected, "{level:?}");
        }
    }
}
