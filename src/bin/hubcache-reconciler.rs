//! Lambda entry point: reconciles a rack's Docker Hub cache on each event.

use hubcache::lambda::Handler;
use hubcache::ssm::DEFAULT_PARAMETER_PREFIX;
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    hubcache::lambda::init_logging(hubcache::lambda::LogSettings::from_env());

    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(hubcache::http::https_client())
        .load()
        .await;
    let prefix = std::env::var("HUBCACHE_PARAMETER_PREFIX")
        .unwrap_or_else(|_| DEFAULT_PARAMETER_PREFIX.to_owned());
    hubcache::ssm::check_prefix(&prefix)?;
    let handler = Handler::new(&config, prefix);

    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        handler.handle(event)
    }))
    .await
}
