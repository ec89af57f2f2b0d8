//! Sends a CloudFormation custom-resource response to its pre-signed URL.

use std::fmt;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::time::Instant;

use crate::error::display_chain;

/// Maximum number of PUT attempts for one response.
pub const MAX_ATTEMPTS: u32 = 3;
/// Maximum time one PUT attempt may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause before the second attempt; it doubles for each later one.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);

/// A pre-signed S3 URL. It is a bearer credential for the stack's response,
/// so Debug and Display print a placeholder instead of the URL.
#[derive(Clone, PartialEq, Eq)]
pub struct ResponseUrl(String);

impl ResponseUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }
}

impl fmt::Debug for ResponseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<ResponseURL>")
    }
}

impl fmt::Display for ResponseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<ResponseURL>")
    }
}

/// A response that did not reach CloudFormation. The messages never contain the URL.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PutError {
    #[error("the ResponseURL is not a valid http or https URL")]
    InvalidUrl,
    #[error("loading the TLS root certificates failed: {0}")]
    Tls(String),
    #[error("the response PUT was rejected with HTTP status {status}")]
    Rejected { status: u16 },
    #[error("the response PUT failed after {attempts} attempts: {last_error}")]
    Exhausted { attempts: u32, last_error: String },
}

impl ResponseUrl {
    /// Checks that the URL is an http or https URL that a response can be sent to.
    pub fn check(&self) -> Result<(), PutError> {
        self.uri().map(drop)
    }

    fn uri(&self) -> Result<hyper::Uri, PutError> {
        let uri: hyper::Uri = self.0.parse().map_err(|_| PutError::InvalidUrl)?;
        match (uri.scheme_str(), uri.host()) {
            (Some("http" | "https"), Some(_)) => Ok(uri),
            _ => Err(PutError::InvalidUrl),
        }
    }
}

/// Sends `body` by PUT to `url`, retrying network errors and 5xx responses up
/// to [`MAX_ATTEMPTS`] times, and never past `deadline`.
///
/// The request has an empty Content-Type header: CloudFormation signs the URL
/// without one, and S3 rejects a request whose Content-Type differs from the
/// signed one with SignatureDoesNotMatch.
pub async fn put(
    url: &ResponseUrl,
    body: String,
    deadline: Option<Instant>,
) -> Result<(), PutError> {
    let uri = url.uri()?;
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .map_err(|error| PutError::Tls(error.to_string()))?
        .https_or_http()
        .enable_http1()
        .build();
    let client: Client<_, Full<bytes::Bytes>> =
        Client::builder(TokioExecutor::new()).build(connector);

    let mut last_error = String::from("the Lambda deadline left no time to send it");
    let mut attempts = 0;
    let mut backoff = FIRST_BACKOFF;
    for attempt in 1..=MAX_ATTEMPTS {
        let timeout = match deadline {
            Some(deadline) => {
                ATTEMPT_TIMEOUT.min(deadline.saturating_duration_since(Instant::now()))
            }
            None => ATTEMPT_TIMEOUT,
        };
        if timeout.is_zero() {
            break;
        }
        attempts = attempt;

        let request = hyper::Request::put(uri.clone())
            .header(hyper::header::CONTENT_TYPE, "")
            .header(hyper::header::CONTENT_LENGTH, body.len())
            .body(Full::new(bytes::Bytes::from(body.clone())))
            .map_err(|_| PutError::InvalidUrl)?;

        match tokio::time::timeout(timeout, client.request(request)).await {
            Ok(Ok(response)) => {
                let status = response.status();
                // Reading the body lets the connection close cleanly; S3's
                // error body is not logged, because it can quote the URL.
                let _ = response.into_body().collect().await;
                if status.is_success() {
                    tracing::info!(
                        attempt,
                        status = status.as_u16(),
                        "sent the CloudFormation response"
                    );
                    return Ok(());
                }
                if status.is_client_error() {
                    return Err(PutError::Rejected {
                        status: status.as_u16(),
                    });
                }
                last_error = format!("HTTP status {}", status.as_u16());
            }
            Ok(Err(error)) => last_error = display_chain(&error),
            Err(_) => last_error = format!("no answer within {} ms", timeout.as_millis()),
        }
        tracing::warn!(attempt, error = %last_error, "the CloudFormation response PUT failed");

        if attempt < MAX_ATTEMPTS {
            let pause = match deadline {
                Some(deadline) => backoff.min(deadline.saturating_duration_since(Instant::now())),
                None => backoff,
            };
            tokio::time::sleep(pause).await;
            backoff *= 2;
        }
    }

    Err(PutError::Exhausted {
        attempts,
        last_error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_is_masked() {
        let url = ResponseUrl::new("https://bucket.s3.amazonaws.com/key?X-Amz-Signature=abc");

        assert_eq!(format!("{url}"), "<ResponseURL>");
        assert_eq!(format!("{url:?}"), "<ResponseURL>");
    }

    #[tokio::test]
    async fn put_rejects_other_schemes() {
        let url = ResponseUrl::new("ftp://127.0.0.1/key");

        assert_eq!(
            put(&url, String::new(), None).await,
            Err(PutError::InvalidUrl)
        );
    }
}
