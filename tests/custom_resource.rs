//! Drives the custom resource through the Lambda handler and reads each
//! response where CloudFormation would: from a pre-signed S3 URL of the
//! emulator, or from a local endpoint that rejects any Content-Type.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_smithy_mocks::{RuleMode, mock, mock_client};
use hubcache::lambda::Handler;
use hubcache::reconcile::Clients;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};
use support::{CatcherMode, ResponseCatcher};

const FUNCTION_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:hubcache-reconciler";
const STACK_ID: &str = "arn:aws:cloudformation:us-east-1:123456789012:stack/rack/0f1e2d3c";
const PASSWORD: &str = "dckr_pat_never_printed_7f3a";

fn handler() -> Handler {
    Handler::new(&support::sdk_config(), support::PREFIX.into())
}

fn invocation(payload: Value, deadline_in: Duration) -> LambdaEvent<Value> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let mut context = Context::default();
    context.request_id = "lambda-request".into();
    context.invoked_function_arn = FUNCTION_ARN.into();
    context.deadline = (now + deadline_in).as_millis() as u64;
    LambdaEvent::new(payload, context)
}

fn request(kind: &str, url: &str, properties: Value) -> Value {
    json!({
        "RequestType": kind,
        "ServiceToken": FUNCTION_ARN,
        "ResponseURL": url,
        "StackId": STACK_ID,
        "RequestId": format!("{kind}-request"),
        "LogicalResourceId": "DockerHubCache",
        "ResourceType": "Custom::EcrDockerHubCache",
        "ResourceProperties": properties,
    })
}

fn enable_properties(rack: &str, password: &str) -> Value {
    json!({
        "ServiceToken": FUNCTION_ARN,
        "RackName": rack,
        "EcrDockerHubCache": "true",
        "DockerHubUsername": "alice",
        "DockerHubPassword": password,
    })
}

/// Sends `payload` and returns the one body the catcher received.
async fn send(handler: &Handler, mut payload: Value) -> Value {
    let catcher = ResponseCatcher::start(CatcherMode::LikeS3).await;
    payload["ResponseURL"] = json!(catcher.url);

    let returned = handler
        .handle(invocation(payload, Duration::from_secs(60)))
        .await;

    let requests = catcher.requests();
    assert_eq!(requests.len(), 1, "one response per event: {requests:?}");
    assert_eq!(requests[0].method, "PUT");
    assert_eq!(requests[0].content_type.as_deref().unwrap_or(""), "");
    let body: Value = serde_json::from_str(&requests[0].body).unwrap();
    assert_eq!(
        returned.unwrap(),
        body,
        "the handler returns the body it sent"
    );
    body
}

fn assert_envelope(body: &Value, kind: &str) {
    assert_eq!(body["StackId"], STACK_ID);
    assert_eq!(body["RequestId"], format!("{kind}-request"));
    assert_eq!(body["LogicalResourceId"], "DockerHubCache");
    assert_eq!(body["NoEcho"], false);
    assert!(
        !body["PhysicalResourceId"]
            .as_str()
            .unwrap_or_default()
            .is_empty(),
        "{body}"
    );
}

#[tokio::test]
async fn stack_lifecycle_through_s3() {
    let (context, _log) = support::context();
    support::create_roles(&context.clients, &["cr-life-nodes".to_owned()]).await;
    let handler = handler();
    let rack = support::rack("cr-life");

    let create_url = support::presigned_put_url("cfn-responses", "cr-life/create");
    let create = request(
        "Create",
        &create_url,
        enable_properties("cr-life", "token-1"),
    );
    handler
        .handle(invocation(create, Duration::from_secs(60)))
        .await
        .unwrap();
    let created: Value =
        serde_json::from_str(&support::read_object("cfn-responses", "cr-life/create")).unwrap();

    assert_envelope(&created, "Create");
    assert_eq!(created["Status"], "SUCCESS", "{created}");
    assert_eq!(created["PhysicalResourceId"], "docker-hub-cr-life");
    assert_eq!(created["Data"]["RulePrefix"], "docker-hub-cr-life");
    assert_eq!(
        created["Data"]["CacheUri"],
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/docker-hub-cr-life"
    );
    assert_eq!(
        created["Data"]["PolicyArn"],
        "arn:aws:iam::123456789012:policy/cr-life-ecr-pull-through"
    );
    let secret_arn = created["Data"]["SecretArn"].as_str().unwrap().to_owned();
    assert!(
        secret_arn.starts_with(
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:ecr-pullthroughcache/cr-life-"
        ),
        "{secret_arn}"
    );
    let resources = support::rack_resources(&context.clients, &rack).await;
    assert_eq!(
        resources.rule_credential_arn,
        Some(Some(secret_arn.clone()))
    );

    let update_url = support::presigned_put_url("cfn-responses", "cr-life/update");
    let mut update = request(
        "Update",
        &update_url,
        enable_properties("cr-life", "token-2"),
    );
    update["PhysicalResourceId"] = json!("docker-hub-cr-life");
    update["OldResourceProperties"] = enable_properties("cr-life", "token-1");
    handler
        .handle(invocation(update, Duration::from_secs(60)))
        .await
        .unwrap();
    let updated: Value =
        serde_json::from_str(&support::read_object("cfn-responses", "cr-life/update")).unwrap();

    assert_envelope(&updated, "Update");
    assert_eq!(updated["Status"], "SUCCESS", "{updated}");
    assert_eq!(updated["PhysicalResourceId"], "docker-hub-cr-life");
    assert_eq!(
        updated["Reason"],
        "Rack cr-life: update the value of secret ecr-pullthroughcache/cr-life."
    );
    let resources = support::rack_resources(&context.clients, &rack).await;
    assert_eq!(
        resources.secret,
        Some((
            secret_arn,
            json!({"username": "alice", "accessToken": "token-2"})
        ))
    );

    let delete_url = support::presigned_put_url("cfn-responses", "cr-life/delete");
    let mut delete = request(
        "Delete",
        &delete_url,
        enable_properties("cr-life", "token-2"),
    );
    delete["PhysicalResourceId"] = json!("docker-hub-cr-life");
    handler
        .handle(invocation(delete, Duration::from_secs(60)))
        .await
        .unwrap();
    let deleted: Value =
        serde_json::from_str(&support::read_object("cfn-responses", "cr-life/delete")).unwrap();

    assert_envelope(&deleted, "Delete");
    assert_eq!(deleted["Status"], "SUCCESS", "{deleted}");
    let resources = support::rack_resources(&context.clients, &rack).await;
    assert_eq!(resources.secret, None);
    assert_eq!(resources.rule_credential_arn, None);
    assert_eq!(resources.policy_document, None);
    let stored = hubcache::ssm::read(&context.clients.ssm, support::PREFIX, &rack)
        .await
        .unwrap();
    assert_eq!(
        stored,
        Default::default(),
        "the rack's parameters are removed"
    );
}

#[tokio::test]
async fn delete_twice_succeeds() {
    let handler = handler();
    let mut delete = request("Delete", "", json!({"RackName": "cr-gone"}));
    delete["PhysicalResourceId"] = json!("docker-hub-cr-gone");

    let first = send(&handler, delete.clone()).await;
    let second = send(&handler, delete).await;

    assert_eq!(first["Status"], "SUCCESS", "{first}");
    assert_eq!(second["Status"], "SUCCESS", "{second}");
    assert_eq!(second["Reason"], "Rack cr-gone: no changes.");
}

#[tokio::test]
async fn create_without_credentials_fails_cleanly() {
    let (context, log) = support::context();
    let handler = handler();
    log.clear();

    let body = send(
        &handler,
        request(
            "Create",
            "",
            json!({"RackName": "cr-nocreds", "EcrDockerHubCache": "true"}),
        ),
    )
    .await;

    assert_envelope(&body, "Create");
    assert_eq!(body["Status"], "FAILED");
    // Nothing was written, so the rollback's Delete of this id leaves the rack alone.
    assert_eq!(
        body["PhysicalResourceId"],
        "hubcache-failed-create-Create-request"
    );
    let reason = body["Reason"].as_str().unwrap();
    assert!(
        reason.starts_with(
            "Rack cr-nocreds: invalid properties, nothing was changed. ecr_docker_hub_cache=true \
             requires docker_hub_username and docker_hub_password."
        ),
        "{reason}"
    );
    let stored = hubcache::ssm::read(
        &context.clients.ssm,
        support::PREFIX,
        &support::rack("cr-nocreds"),
    )
    .await
    .unwrap();
    assert_eq!(stored, Default::default());
}

#[tokio::test]
async fn flag_yes_fails_readably() {
    let handler = handler();
    let mut properties = enable_properties("cr-yes", "token");
    properties["EcrDockerHubCache"] = json!("yes");

    let body = send(&handler, request("Create", "", properties)).await;

    assert_eq!(body["Status"], "FAILED");
    let reason = body["Reason"].as_str().unwrap();
    assert!(
        reason.contains("Parameter ecr_docker_hub_cache must be true or false, but it is \"yes\"."),
        "{reason}"
    );
}

#[tokio::test]
async fn malformed_properties_then_delete() {
    let (context, _log) = support::context();
    let kept = support::enabled_rack(&context, "cr-kept", "token").await;
    hubcache::reconcile::reconcile(&context, &kept)
        .await
        .unwrap();
    let before = support::rack_resources(&context.clients, &kept).await;
    let handler = handler();

    let created = send(
        &handler,
        request("Create", "", json!({"EcrDockerHubCache": "true"})),
    )
    .await;
    let mut delete = request("Delete", "", json!({"EcrDockerHubCache": "true"}));
    delete["PhysicalResourceId"] = created["PhysicalResourceId"].clone();
    let deleted = send(&handler, delete).await;

    assert_eq!(created["Status"], "FAILED");
    assert_eq!(
        created["Reason"],
        "Property RackName is required: set it to the rack's name."
    );
    assert_eq!(
        created["PhysicalResourceId"],
        "hubcache-failed-create-Create-request"
    );
    assert_eq!(deleted["Status"], "SUCCESS", "{deleted}");
    assert_eq!(
        support::rack_resources(&context.clients, &kept).await,
        before
    );
}

#[tokio::test]
async fn foreign_delete_ids_touch_nothing() {
    let (context, _log) = support::context();
    let kept = support::enabled_rack(&context, "cr-foreign", "token").await;
    hubcache::reconcile::reconcile(&context, &kept)
        .await
        .unwrap();
    let before = support::rack_resources(&context.clients, &kept).await;
    let handler = handler();

    for id in [
        "",
        "2026/12/04/[$LATEST]0123456789abcdef",
        "garbage!",
        "docker-hub-",
    ] {
        let mut delete = request("Delete", "", json!({"RackName": "cr-foreign"}));
        delete["PhysicalResourceId"] = json!(id);

        let body = send(&handler, delete).await;

        assert_eq!(body["Status"], "SUCCESS", "{id:?}: {body}");
        assert_envelope(&body, "Delete");
    }
    assert_eq!(
        support::rack_resources(&context.clients, &kept).await,
        before
    );
}

#[tokio::test]
async fn rename_removes_only_old_rack() {
    let (context, _log) = support::context();
    support::create_roles(
        &context.clients,
        &["cr-old-nodes".to_owned(), "cr-new-nodes".to_owned()],
    )
    .await;
    let handler = handler();

    let created = send(
        &handler,
        request("Create", "", enable_properties("cr-old", "token")),
    )
    .await;
    let mut update = request("Update", "", enable_properties("cr-new", "token"));
    update["PhysicalResourceId"] = created["PhysicalResourceId"].clone();
    update["OldResourceProperties"] = enable_properties("cr-old", "token");
    let updated = send(&handler, update).await;
    let mut delete = request("Delete", "", enable_properties("cr-old", "token"));
    delete["PhysicalResourceId"] = created["PhysicalResourceId"].clone();
    let deleted = send(&handler, delete).await;

    assert_eq!(created["PhysicalResourceId"], "docker-hub-cr-old");
    assert_eq!(updated["Status"], "SUCCESS", "{updated}");
    assert_eq!(updated["PhysicalResourceId"], "docker-hub-cr-new");
    assert_eq!(deleted["Status"], "SUCCESS", "{deleted}");
    let old = support::rack_resources(&context.clients, &support::rack("cr-old")).await;
    let new = support::rack_resources(&context.clients, &support::rack("cr-new")).await;
    assert_eq!(old.secret, None);
    assert_eq!(old.policy_document, None);
    assert!(new.secret.is_some());
    assert!(new.rule_credential_arn.is_some());
    assert_eq!(new.policy_roles, ["cr-new-nodes"]);
}

#[tokio::test]
async fn aws_error_names_rack_and_step() {
    // Nothing listens on port 9, so every AWS call fails to connect.
    let closed = support::sdk_config()
        .into_builder()
        .endpoint_url("http://127.0.0.1:9")
        .build();
    let handler = Handler::new(&closed, support::PREFIX.into());

    let body = send(
        &handler,
        request("Create", "", enable_properties("cr-down", PASSWORD)),
    )
    .await;

    assert_eq!(body["Status"], "FAILED");
    // Nothing was written, so the rollback's Delete of this id leaves the rack alone.
    assert_eq!(
        body["PhysicalResourceId"],
        "hubcache-failed-create-Create-request"
    );
    let reason = body["Reason"].as_str().unwrap();
    assert!(
        reason.starts_with("Rack cr-down: failed to read parameters under /convox/cr-down/:"),
        "{reason}"
    );
}

/// Returns clients whose SSM responds to every GetParametersByPath with `rule`, and
/// whose other services are the emulator's.
fn clients_with_ssm(rule: &aws_smithy_mocks::Rule) -> Clients {
    let (mut clients, _log) = support::logged_clients();
    clients.ssm = mock_client!(aws_sdk_ssm, RuleMode::MatchAny, [rule]);
    clients
}

#[tokio::test]
async fn panic_answers_failed() {
    let rule = mock!(aws_sdk_ssm::Client::get_parameters_by_path)
        .then_output(|| panic!("simulated fault in the SSM adapter"));
    let handler = Handler::with_clients(clients_with_ssm(&rule), support::PREFIX.into(), None);

    let body = send(
        &handler,
        request("Create", "", enable_properties("cr-panic", "token")),
    )
    .await;

    assert_eq!(body["Status"], "FAILED");
    assert_eq!(body["PhysicalResourceId"], "docker-hub-cr-panic");
    assert_eq!(
        body["Reason"],
        "docker-hub-cr-panic: internal error in hubcache (panic: simulated fault in the SSM \
         adapter). Retry, and report it if it persists."
    );
}

#[tokio::test]
async fn long_aws_error_fits_body() {
    let rule = mock!(aws_sdk_ssm::Client::get_parameters_by_path).then_error(|| {
        aws_sdk_ssm::operation::get_parameters_by_path::GetParametersByPathError::generic(
            aws_sdk_ssm::error::ErrorMetadata::builder()
                .code("AccessDeniedException")
                .message(format!("User is not authorized: {}", "x".repeat(5000)))
                .build(),
        )
    });
    let handler = Handler::with_clients(clients_with_ssm(&rule), support::PREFIX.into(), None);

    let catcher = ResponseCatcher::start(CatcherMode::LikeS3).await;
    let mut payload = request("Create", "", enable_properties("cr-long", "token"));
    payload["ResponseURL"] = json!(catcher.url);
    handler
        .handle(invocation(payload, Duration::from_secs(60)))
        .await
        .unwrap();
    let raw = catcher.requests()[0].body.clone();
    let body: Value = serde_json::from_str(&raw).unwrap();

    assert!(raw.len() < 4096, "{} bytes", raw.len());
    assert_eq!(body["Status"], "FAILED");
    // Nothing was written, so the rollback's Delete of this id leaves the rack alone.
    assert_eq!(
        body["PhysicalResourceId"],
        "hubcache-failed-create-Create-request"
    );
    let reason = body["Reason"].as_str().unwrap();
    assert!(
        reason.starts_with(
            "Rack cr-long: failed to read parameters under /convox/cr-long/: \
             AccessDeniedException: User is not authorized: xxx"
        ),
        "{reason}"
    );
    assert!(reason.ends_with("..."));
}

#[tokio::test]
async fn deadline_answers_failed_in_time() {
    // An AWS endpoint that accepts connections and never responds.
    let silent = ResponseCatcher::start(CatcherMode::Silent).await;
    let endpoint = silent.url.split("/response").next().unwrap().to_owned();
    let hanging = support::sdk_config()
        .into_builder()
        .endpoint_url(endpoint)
        .build();
    let handler =
        Handler::new(&hanging, support::PREFIX.into()).with_response_margin(Duration::from_secs(2));
    let catcher = ResponseCatcher::start(CatcherMode::LikeS3).await;
    let mut payload = request("Create", "", enable_properties("cr-slow", "token"));
    payload["ResponseURL"] = json!(catcher.url);

    let started = std::time::Instant::now();
    let result = tokio::time::timeout(
        Duration::from_secs(20),
        handler.handle(invocation(payload, Duration::from_secs(4))),
    )
    .await
    .expect(
        "the handler should answer before the deadline; it is likely stuck on the silent endpoint",
    );

    result.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "answered after {:?}",
        started.elapsed()
    );
    let requests = catcher.requests();
    assert_eq!(requests.len(), 1);
    let body: Value = serde_json::from_str(&requests[0].body).unwrap();
    assert_eq!(body["Status"], "FAILED");
    assert_eq!(body["PhysicalResourceId"], "docker-hub-cr-slow");
    assert!(
        body["Reason"]
            .as_str()
            .unwrap()
            .starts_with("docker-hub-cr-slow: timed out before the Lambda deadline"),
        "{body}"
    );
}

#[tokio::test]
async fn response_put_retries_5xx() {
    let handler = handler();
    let catcher = ResponseCatcher::start(CatcherMode::FailFirst(2)).await;
    let mut delete = request("Delete", "", json!({}));
    delete["PhysicalResourceId"] = json!("not-ours");
    delete["ResponseURL"] = json!(catcher.url);

    handler
        .handle(invocation(delete, Duration::from_secs(60)))
        .await
        .unwrap();

    assert_eq!(catcher.requests().len(), 3);
}

#[tokio::test]
async fn response_put_gives_up_after_attempts() {
    let handler = handler();
    let catcher = ResponseCatcher::start(CatcherMode::FailFirst(100)).await;
    let mut delete = request("Delete", "", json!({}));
    delete["PhysicalResourceId"] = json!("not-ours");
    delete["ResponseURL"] = json!(catcher.url);

    let error = handler
        .handle(invocation(delete, Duration::from_secs(60)))
        .await
        .unwrap_err();

    assert_eq!(catcher.requests().len(), 3);
    assert_eq!(
        error.to_string(),
        "The CloudFormation response was not delivered: the response PUT failed after 3 attempts: \
         HTTP status 503. The stack waits until its ServiceTimeout."
    );
}

#[tokio::test]
async fn failed_create_keeps_existing_rack() {
    let (context, _log) = support::context();
    let rack = support::enabled_rack(&context, "cr-existing", "token").await;
    hubcache::reconcile::reconcile(&context, &rack)
        .await
        .unwrap();
    let resources_before = support::rack_resources(&context.clients, &rack).await;
    let stored_before = hubcache::ssm::read(&context.clients.ssm, support::PREFIX, &rack)
        .await
        .unwrap();
    let handler = handler();
    let mut bad_flag = enable_properties("cr-existing", "other-token");
    bad_flag["EcrDockerHubCache"] = json!("yes");
    let mut missing_role = enable_properties("cr-existing", "other-token");
    missing_role["NodeRoleNames"] = json!(["cr-existing-missing-role"]);

    for properties in [bad_flag, missing_role] {
        let created = send(&handler, request("Create", "", properties)).await;
        let mut rollback = request("Delete", "", json!({"RackName": "cr-existing"}));
        rollback["PhysicalResourceId"] = created["PhysicalResourceId"].clone();
        let deleted = send(&handler, rollback).await;

        assert_eq!(created["Status"], "FAILED", "{created}");
        assert_eq!(
            created["PhysicalResourceId"],
            "hubcache-failed-create-Create-request"
        );
        assert_eq!(deleted["Status"], "SUCCESS", "{deleted}");
        assert_eq!(
            support::rack_resources(&context.clients, &rack).await,
            resources_before
        );
        let stored = hubcache::ssm::read(&context.clients.ssm, support::PREFIX, &rack)
            .await
            .unwrap();
        assert_eq!(stored, stored_before, "a failed Create writes no parameter");
    }
}

#[tokio::test]
async fn retention_days_property_follows_stack() {
    let (context, _log) = support::context();
    support::create_roles(&context.clients, &["cr-keep-nodes".to_owned()]).await;
    let handler = handler();
    let mut with_retention = enable_properties("cr-keep", "token");
    // CloudFormation sends strings; a number, as sam local events may hold, works too.
    with_retention["RetentionDays"] = json!(21);

    let created = send(&handler, request("Create", "", with_retention.clone())).await;
    let created_days = support::template_count_number(&context.clients, "docker-hub-cr-keep").await;

    let mut update = request("Update", "", enable_properties("cr-keep", "token"));
    update["PhysicalResourceId"] = json!("docker-hub-cr-keep");
    update["OldResourceProperties"] = with_retention.clone();
    let updated = send(&handler, update).await;
    let updated_days = support::template_count_number(&context.clients, "docker-hub-cr-keep").await;

    assert_eq!(created["Status"], "SUCCESS", "{created}");
    assert_eq!(created_days, Some(21));
    assert_eq!(updated["Status"], "SUCCESS", "{updated}");
    assert_eq!(
        updated_days, None,
        "dropping the property removes the template"
    );

    let mut invalid = with_retention;
    invalid["RetentionDays"] = json!("0");
    let mut bad_update = request("Update", "", invalid);
    bad_update["PhysicalResourceId"] = json!("docker-hub-cr-keep");
    bad_update["OldResourceProperties"] = enable_properties("cr-keep", "token");
    let rejected = send(&handler, bad_update).await;

    assert_eq!(rejected["Status"], "FAILED");
    assert!(
        rejected["Reason"]
            .as_str()
            .unwrap()
            .contains("ecr_docker_hub_cache_retention_days of rack cr-keep must be a whole number"),
        "{rejected}"
    );
    let stored = hubcache::ssm::read(
        &context.clients.ssm,
        support::PREFIX,
        &support::rack("cr-keep"),
    )
    .await
    .unwrap();
    assert_eq!(
        stored.retention_days, None,
        "a rejected value is not stored"
    );
}
