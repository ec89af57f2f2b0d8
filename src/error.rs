//! Errors of a reconcile, each naming the rack and the resource involved.

use std::fmt;

use aws_sdk_ssm::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ssm::operation::RequestId as ProvideRequestId;

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
    /// Whether the call failed before AWS responded: no connection, a
    /// timeout, or a request that could not be built or signed.
    pub unanswered: bool,
}

impl AwsError {
    /// Converts any SDK error, keeping the code, message and request id.
    pub fn from_sdk<E, R>(error: SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: fmt::Debug,
        SdkError<E, R>: ProvideRequestId,
    {
        let code = error.code().map(str::to_owned);
        let message = match error.message() {
            Some(message) => message.to_owned(),
            None => display_chain(&error),
        };
        let request_id = error.request_id().map(str::to_owned);
        let unanswered = matches!(
            error,
            SdkError::DispatchFailure(_)
                | SdkError::TimeoutError(_)
                | SdkError::ConstructionFailure(_)
        );

        Self {
            code,
            message,
            request_id,
            unanswered,
        }
    }

    /// Creates an error for a failure inside hubcache, outside any AWS call.
    pub fn internal(message: &str) -> Self {
        Self {
            code: None,
            message: format!("internal error: {message}"),
            request_id: None,
            unanswered: false,
        }
    }

    /// Creates an error for an AWS response without a field that hubcache needs.
    pub fn missing_field(operation: &str, field: &str) -> Self {
        Self {
            code: None,
            message: format!("the {operation} response has no {field}"),
            request_id: None,
            unanswered: false,
        }
    }

    pub fn is_code(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }

    /// Returns a hint on what to do, for the error codes that have a usual fix.
    fn hint(&self) -> Option<&'static str> {
        if self.unanswered {
            return Some(
                "Check that the AWS endpoint (--endpoint-url or AWS_ENDPOINT_URL) is reachable \
                 and that a region is set.",
            );
        }
        match self.code.as_deref()? {
            "AccessDenied" | "AccessDeniedException" | "UnrecognizedClientException" => {
                Some("Check that the function's role (or your AWS credentials) allows this call.")
            }
            "ThrottlingException" | "Throttling" | "TooManyRequestsException" => {
                Some("AWS throttled the call after retries; run the reconcile again.")
            }
            "LimitExceeded" => {
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

/// Joins the Display text of an error and its sources, without the Debug
/// dump that `DisplayErrorContext` appends.
pub(crate) fn display_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// AWS's id of a request that changed something, logged with the change.
pub type RequestId = Option<String>;

/// Returns the AWS request id of a response.
pub(crate) fn request_id_of(output: &impl ProvideRequestId) -> RequestId {
    output.request_id().map(str::to_owned)
}

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

    #[error("Rack {rack}: failed to {action} ({permission}): {source}", permission = action.permission())]
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
