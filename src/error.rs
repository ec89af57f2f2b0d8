//! Errors of a reconcile, each naming the rack and the resource involved.

use std::fmt;

use aws_sdk_ssm::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_ssm::operation::RequestId;

use crate::names::RackNameError;
use crate::plan::{Action, PlanError};
use crate::settings::SettingsError;

/// A failed AWS call: the error code AWS returned, its message and request id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsError {
    /// The exception name, such as `AccessDeniedException`, when AWS sent one.
    pub code: Option<String>,
    pub message: String,
    pub request_id: Option<String>,
}

impl AwsError {
    /// Converts any SDK error, keeping the code, message and request id.
    pub fn from_sdk<E, R>(error: SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: fmt::Debug,
        SdkError<E, R>: RequestId,
    {
        let code = error.code().map(str::to_owned);
        let message = match error.message() {
            Some(message) => message.to_owned(),
            None => DisplayErrorContext(&error).to_string(),
        };
        let request_id = error.request_id().map(str::to_owned);

        Self {
            code,
            message,
            request_id,
        }
    }

    /// Creates an error for a failure inside hubcache, outside any AWS call.
    pub fn internal(message: &str) -> Self {
        Self {
            code: None,
            message: format!("internal error: {message}"),
            request_id: None,
        }
    }

    /// Creates an error for an AWS response without a field that hubcache needs.
    pub fn missing_field(operation: &str, field: &str) -> Self {
        Self {
            code: None,
            message: format!("the {operation} response has no {field}"),
            request_id: None,
        }
    }

    pub fn is_code(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }

    /// Returns a hint on what to do, for the error codes that have a usual fix.
    fn hint(&self) -> Option<&'static str> {
        match self.code.as_deref()? {
            "AccessDenied" | "AccessDeniedException" | "UnrecognizedClientException" => {
                Some("Check that the function's role (or your AWS credentials) allows this call.")
            }
            "ThrottlingException" | "Throttling" | "TooManyRequestsException" => {
                Some("AWS throttled the call after retries; run the reconcile again.")
            }
            "LimitExceededException" | "LimitExceeded" => {
                Some("An account quota is reached; remove unused resources or raise the quota.")
            }
            _ => None,
        }
    }
}

impl fmt::Display for AwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.code {
            Some(code) => write!(f, "{code}: {}", self.message)?,
            None => f.write_str(&self.message)?,
        }
        if let Some(request_id) = &self.request_id {
            write!(f, " (request id {request_id})")?;
        }
        if let Some(hint) = self.hint() {
            write!(f, ". {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for AwsError {}

/// Failure of a reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    RackName(#[from] RackNameError),

    #[error(transparent)]
    InvalidSettings(#[from] SettingsError),

    #[error(transparent)]
    Plan(#[from] PlanError),

    #[error("Rack {rack}: failed to read {resource}: {source}")]
    ReadFailed {
        rack: String,
        resource: String,
        #[source]
        source: AwsError,
    },

    #[error("Rack {rack}: failed to {action}: {source}")]
    ApplyFailed {
        rack: String,
        action: Action,
        #[source]
        source: AwsError,
    },
}

impl Error {
    /// Short, stable name of the error kind, for the Lambda error type.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::RackName(_) => "InvalidRackName",
            Error::InvalidSettings(_) => "InvalidSettings",
            Error::Plan(_) => "CannotPlan",
            Error::ReadFailed { .. } => "ReadFailed",
            Error::ApplyFailed { .. } => "ApplyFailed",
        }
    }
}
