//! The HTTPS client the AWS SDK clients use.

use aws_sdk_ssm::config::SharedHttpClient;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};

/// Returns the SDK's hyper-based HTTPS client with rustls on the ring
/// provider, which keeps aws-lc-rs, the SDK's default provider, out of the
/// binary.
pub fn https_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https()
}
