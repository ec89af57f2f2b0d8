//! Neither a Docker Hub password nor a ResponseURL reaches any log line, with
//! every level enabled, the SDK's own trace lines included.
//!
//! This is the only test of its binary, so its global subscriber receives
//! every line. tracing caches, per call site, whether any subscriber wants
//! it, and tests without a subscriber running in parallel could spoil that.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hubcache::lambda::Handler;
use hubcache::reconcile::reconcile;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};
use support::{CatcherMode, ResponseCatcher, store_parameters};

const FUNCTION_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:hubcache-reconciler";

fn invocation(payload: Value) -> LambdaEvent<Value> {
    let deadline = SystemTime::now().duration_since(UNIX_EPOCH).unwrap() + Duration::from_secs(60);
    let mut context = Context::default();
    context.request_id = "lambda-request".into();
    context.invoked_function_arn = FUNCTION_ARN.into();
    context.deadline = deadline.as_millis() as u64;
    LambdaEvent::new(payload, context)
}

fn request(kind: &str, url: &str, rack: &str, password: &str) -> Value {
    json!({
        "RequestType": kind,
        "ServiceToken": FUNCTION_ARN,
        "ResponseURL": url,
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/rack/0f1e2d3c",
        "RequestId": format!("{kind}-request"),
        "LogicalResourceId": "DockerHubCache",
        "ResourceType": "Custom::EcrDockerHubCache",
        "ResourceProperties": {
            "RackName": rack,
            "EcrDockerHubCache": "true",
            "DockerHubUsername": "alice",
            "DockerHubPassword": password,
        },
    })
}

/// Sends `payload` to a fresh local endpoint and returns the body it received.
async fn send(handler: &Handler, mut payload: Value) -> String {
    let catcher = ResponseCatcher::start(CatcherMode::LikeS3).await;
    payload["ResponseURL"] = json!(catcher.url);
    handler.handle(invocation(payload)).await.unwrap();
    let requests = catcher.requests();
    assert_eq!(requests.len(), 1);
    requests[0].body.clone()
}

#[tokio::test]
async fn secrets_never_logged() {
    const FIRST: &str = "dckr_pat_first_9d2c";
    const SECOND: &str = "dckr_pat_second_4e7a";
    const STACK_PASSWORD: &str = "dckr_pat_stack_7f3a";
    let logs = support::CapturedLogs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber)
        .expect("the only subscriber of this binary");
    let (context, _log) = support::context();

    let rack = support::enabled_rack(&context, "l-trace", FIRST).await;
    reconcile(&context, &rack).await.unwrap();
    store_parameters(&context.clients, &rack, None, None, Some(SECOND)).await;
    reconcile(&context, &rack).await.unwrap();
    store_parameters(&context.clients, &rack, Some("false"), None, None).await;
    reconcile(&context, &rack).await.unwrap();

    support::create_roles(&context.clients, &["l-stack-nodes".to_owned()]).await;
    let handler = Handler::new(&support::sdk_config(), support::PREFIX.into());
    let mut bodies = vec![send(&handler, request("Create", "", "l-stack", STACK_PASSWORD)).await];
    let mut bad = request("Create", "", "l-stack", STACK_PASSWORD);
    bad["ResourceProperties"]["DockerHubUsername"] = json!(5);
    bodies.push(send(&handler, bad).await);
    let mut update = request("Update", "", "l-stack", &format!("{STACK_PASSWORD}-2"));
    update["PhysicalResourceId"] = json!("docker-hub-l-stack");
    update["OldResourceProperties"] =
        request("Create", "", "l-stack", STACK_PASSWORD)["ResourceProperties"].clone();
    bodies.push(send(&handler, update).await);
    let mut delete = request("Delete", "", "l-stack", STACK_PASSWORD);
    delete["PhysicalResourceId"] = json!("docker-hub-l-stack");
    bodies.push(send(&handler, delete).await);

    let printed = logs.text();
    assert!(
        printed.contains("PutSecretValue"),
        "the capture saw the SDK's trace lines"
    );
    assert!(
        printed.contains("l-trace"),
        "the capture saw the reconcile's lines"
    );
    assert!(
        printed.contains("l-stack"),
        "the capture saw the handler's lines"
    );
    for password in [FIRST, SECOND, STACK_PASSWORD] {
        assert!(!printed.contains(password), "{password} reached a log line");
        for body in &bodies {
            assert!(
                !body.contains(password),
                "{password} reached a response: {body}"
            );
        }
    }
    assert!(
        !printed.contains("X-Amz-Signature"),
        "a ResponseURL reached a log line"
    );
    assert_eq!(bodies.len(), 4);
}
