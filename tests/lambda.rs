//! Drives the Lambda handler with payloads from events/ against the AWS emulator.

mod support;

use hubcache::lambda::Handler;
use lambda_runtime::{Context, Diagnostic, LambdaEvent};
use serde_json::{Value, json};

const FUNCTION_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:hubcache-reconciler";

fn invocation(payload: Value) -> LambdaEvent<Value> {
    let mut context = Context::default();
    context.request_id = "test-request".into();
    context.invoked_function_arn = FUNCTION_ARN.into();
    LambdaEvent::new(payload, context)
}

fn fixture(name: &str) -> Value {
    let path = format!("{}/events/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

#[tokio::test]
async fn handler_enables_and_disables_demo() {
    let (context, _log) = support::context();
    let rack = support::enabled_rack(&context, "demo", "token-1").await;
    let handler = Handler::new(&support::sdk_config(), support::PREFIX.into());

    let enabled = handler
        .handle(invocation(fixture("parameter-flag-create.json")))
        .await
        .unwrap();
    let converged = handler
        .handle(invocation(fixture("direct-demo.json")))
        .await
        .unwrap();
    support::store_parameters(&context.clients, &rack, Some("false"), None, None).await;
    let disabled = handler
        .handle(invocation(fixture("parameter-flag-update.json")))
        .await
        .unwrap();

    assert_eq!(enabled["rack"], "demo");
    assert_eq!(enabled["enabled"], true);
    assert_eq!(enabled["changes"].as_array().unwrap().len(), 5, "{enabled}");
    assert_eq!(
        converged,
        json!({"rack": "demo", "enabled": true, "changes": []})
    );
    assert_eq!(disabled["enabled"], false);
    assert_eq!(
        disabled["changes"][0], "remove the published cache prefix",
        "{disabled}"
    );
    let resources = support::rack_resources(&context.clients, &rack).await;
    assert_eq!(resources.secret, None);
    assert_eq!(resources.rule_credential_arn, None);
}

#[tokio::test]
async fn handler_ignores_other_parameters() {
    let handler = Handler::new(&support::sdk_config(), support::PREFIX.into());
    let mut payload = fixture("parameter-flag-update.json");
    payload["detail"]["name"] = json!("/convox/demo/node_type");

    let result = handler.handle(invocation(payload)).await.unwrap();

    assert_eq!(
        result,
        json!({"ignored": "parameter /convox/demo/node_type is not a hubcache parameter under /convox/"})
    );
}

#[tokio::test]
async fn handler_rejects_unknown_payload() {
    let handler = Handler::new(&support::sdk_config(), support::PREFIX.into());

    let error = handler
        .handle(invocation(json!({"hello": "world"})))
        .await
        .unwrap_err();
    let diagnostic = Diagnostic::from(error);

    assert_eq!(diagnostic.error_type, "InvalidEvent");
    assert_eq!(
        diagnostic.error_message,
        "Unsupported event: expected an EventBridge \"Parameter Store Change\" event from aws.ssm, \
         a \"Scheduled Event\" from aws.events, a CloudFormation custom-resource request, or a \
         direct invocation {\"rack\": \"<name>\"}, but got an object with keys [\"hello\"]."
    );
}

#[tokio::test]
async fn handler_rejects_long_rack_without_calls() {
    // Nothing listens on port 9 (discard), so any AWS call would fail with a
    // connection error instead of the rack name error.
    let closed = support::sdk_config()
        .into_builder()
        .endpoint_url("http://127.0.0.1:9")
        .build();
    let handler = Handler::new(&closed, support::PREFIX.into());

    let error = handler
        .handle(invocation(json!({"rack": "abcdefghijklmnopqrst"})))
        .await
        .unwrap_err();

    let diagnostic = Diagnostic::from(error);
    assert_eq!(diagnostic.error_type, "InvalidEvent");
    assert_eq!(
        diagnostic.error_message,
        "Invalid rack in the direct invocation's \"rack\": Rack name \"abcdefghijklmnopqrst\" is 20 characters long, but \
         at most 19 are allowed because the ECR repository prefix docker-hub-<rack> is limited to \
         30 characters."
    );
}

#[tokio::test]
async fn handler_placeholder_arn_uses_registry() {
    let (context, _log) = support::context();
    let rack = support::enabled_rack(&context, "t-local-arn", "token-1").await;
    let handler = Handler::new(&support::sdk_config(), support::PREFIX.into());
    let mut event = invocation(json!({"rack": "t-local-arn"}));
    // cargo lambda watch passes this placeholder instead of a function ARN.
    event.context.invoked_function_arn = "function-arn".into();

    let result = handler.handle(event).await.unwrap();

    assert_eq!(result["changes"].as_array().unwrap().len(), 5, "{result}");
    let resources = support::rack_resources(&context.clients, &rack).await;
    assert_eq!(
        resources.policy_document.unwrap()["Statement"][0]["Resource"],
        "arn:aws:ecr:us-east-1:123456789012:repository/docker-hub-t-local-arn/*"
    );
}

#[tokio::test]
async fn retention_event_reconciles_template() {
    let (context, _log) = support::context();
    let rack = support::enabled_rack(&context, "l-keep", "token").await;
    let handler = Handler::new(&support::sdk_config(), support::PREFIX.into());
    handler
        .handle(invocation(json!({"rack": "l-keep"})))
        .await
        .unwrap();
    support::set_retention(&context.clients, &rack, Some("45")).await;
    let mut event = fixture("parameter-retention-create.json");
    event["detail"]["name"] = json!("/convox/l-keep/ecr_docker_hub_cache_retention_days");

    let result = handler.handle(invocation(event)).await.unwrap();

    assert_eq!(
        result,
        json!({"rack": "l-keep", "enabled": true, "changes": [
            "record repository creation template docker-hub-l-keep as managed by hubcache",
            "create repository creation template docker-hub-l-keep (expire images not pulled for 45 days)"
        ]})
    );
}
