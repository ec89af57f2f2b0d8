//! Command-line entry point; see `hubcache --help`.

use std::process::ExitCode;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    hubcache::cli::main().await
}
