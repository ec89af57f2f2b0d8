//! The Lambda function: one invocation payload in, one reconcile out.

use aws_config::SdkConfig;
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde_json::{Value, json};
use tokio::sync::OnceCell;
use tracing::Instrument;

use crate::ecr;
use crate::error::{AwsError, Error};
use crate::events::{self, EventError, Trigger};
use crate::names::Target;
use crate::reconcile::{self, Clients, Context};

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
}

impl From<HandlerError> for Diagnostic {
    fn from(error: HandlerError) -> Self {
        let error_type = match &error {
            HandlerError::Event(_) => "InvalidEvent",
            HandlerError::Reconcile(inner) => inner.kind(),
            HandlerError::UnknownAccount { .. } | HandlerError::UnknownRegion { .. } => {
                "UnknownTarget"
            }
        };
        Diagnostic {
            error_type: error_type.to_owned(),
            error_message: error.to_string(),
        }
    }
}

/// State kept across invocations of one Lambda execution environment.
pub struct Handler {
    clients: Clients,
    parameter_prefix: String,
    region: Option<String>,
    /// Target learned from ECR when the function ARN names none.
    fallback_target: OnceCell<Target>,
}

impl Handler {
    pub fn new(config: &SdkConfig, parameter_prefix: String) -> Self {
        Self {
            clients: Clients::new(config),
            parameter_prefix,
            region: config.region().map(ToString::to_string),
            fallback_target: OnceCell::new(),
        }
    }

    /// Handles one invocation and returns what it changed.
    ///
    /// The account, partition and region come from the invoked function's
    /// ARN, so the function needs no extra call to learn them.
    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<Value, HandlerError> {
        let span = tracing::info_span!("invocation", request_id = %event.context.request_id);
        self.handle_in_span(event).instrument(span).await
    }

    async fn handle_in_span(&self, event: LambdaEvent<Value>) -> Result<Value, HandlerError> {
        tracing::trace!(payload = %event.payload, "received");

        let rack = match events::dispatch(&event.payload, &self.parameter_prefix) {
            Ok(Trigger::Reconcile(rack)) => rack,
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
            clients: self.clients.clone(),
            target,
            parameter_prefix: self.parameter_prefix.clone(),
        };

        // Boxed: the reconcile future is large, and the runtime nests it deeply.
        let report = Box::pin(reconcile::reconcile(&context, &rack)).await?;
        let changes: Vec<String> = report.changes.iter().map(ToString::to_string).collect();
        Ok(json!({
            "rack": report.rack.as_str(),
            "enabled": report.enabled,
            "changes": changes,
        }))
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
                let account = ecr::registry_id(&self.clients.ecr).await.map_err(|source| {
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
