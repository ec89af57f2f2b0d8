//! The Lambda function: one invocation payload in, one reconcile out.

use aws_config::SdkConfig;
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde_json::{Value, json};
use tracing::Instrument;

use crate::error::Error;
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
    #[error("The invoked function ARN {arn:?} names no partition, region and account.")]
    InvalidFunctionArn { arn: String },
}

impl From<HandlerError> for Diagnostic {
    fn from(error: HandlerError) -> Self {
        let error_type = match &error {
            HandlerError::Event(_) => "InvalidEvent",
            HandlerError::Reconcile(inner) => inner.kind(),
            HandlerError::InvalidFunctionArn { .. } => "InvalidFunctionArn",
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
}

impl Handler {
    pub fn new(config: &SdkConfig, parameter_prefix: String) -> Self {
        Self {
            clients: Clients::new(config),
            parameter_prefix,
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

        let arn = &event.context.invoked_function_arn;
        let target = Target::from_arn(arn)
            .ok_or_else(|| HandlerError::InvalidFunctionArn { arn: arn.clone() })?;
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
}
