//! Reconciles racks on the AWS emulator and checks what it then holds.

mod support;

use hubcache::error::Error;
use hubcache::reconcile::reconcile;
use serde_json::json;
use support::{CallLog, context, enabled_rack, rack_resources, store_parameters};

const FIRST_LINE: &str =
    "ecr_docker_hub_cache=true requires docker_hub_username and docker_hub_password.";

fn expected_policy(rack: &str) -> serde_json::Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "PullThroughDockerHubCache",
            "Effect": "Allow",
            "Action": ["ecr:CreateRepository", "ecr:BatchImportUpstreamImage"],
            "Resource": format!("arn:aws:ecr:us-east-1:123456789012:repository/docker-hub-{rack}/*"),
        }],
    })
}

fn assert_no_writes(log: &CallLog) {
    assert_eq!(
        log.writes(),
        Vec::<String>::new(),
        "all calls: {:?}",
        log.calls()
    );
}

#[tokio::test]
async fn enable_creates_exact_resources() {
    let (context, log) = context();
    let rack = enabled_rack(&context, "t-enable", "token-1").await;
    support::create_roles(&context.clients, &["t-enable-build-nodes".to_owned()]).await;
    log.clear();

    let report = reconcile(&context, &rack).await.unwrap();

    assert!(report.enabled);
    assert_eq!(
        report
            .changes
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        [
            "create secret ecr-pullthroughcache/t-enable",
            "create pull-through cache rule docker-hub-t-enable",
            "create IAM policy t-enable-ecr-pull-through",
            "attach IAM policy t-enable-ecr-pull-through to role t-enable-nodes",
            "attach IAM policy t-enable-ecr-pull-through to role t-enable-build-nodes",
            "publish cache prefix 123456789012.dkr.ecr.us-east-1.amazonaws.com/docker-hub-t-enable",
        ]
    );
    let resources = rack_resources(&context.clients, &rack).await;
    let (secret_arn, secret_value) = resources.secret.clone().expect("secret exists");
    assert!(
        secret_arn.starts_with(
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:ecr-pullthroughcache/t-enable-"
        ),
        "{secret_arn}"
    );
    assert_eq!(
        secret_value,
        json!({"username": "alice", "accessToken": "token-1"})
    );
    assert_eq!(resources.rule_credential_arn, Some(Some(secret_arn)));
    assert_eq!(resources.policy_document, Some(expected_policy("t-enable")));
    assert_eq!(
        resources.policy_roles,
        ["t-enable-nodes", "t-enable-build-nodes"]
    );
    assert_eq!(
        log.writes(),
        [
            "CreateSecret",
            "CreatePullThroughCacheRule",
            "CreatePolicy",
            "AttachRolePolicy",
            "AttachRolePolicy",
            "PutParameter",
        ]
    );
}

#[tokio::test]
async fn enable_and_disable_stay_in_call_budget() {
    let (context, log) = context();
    let rack = enabled_rack(&context, "t-budget", "token-1").await;
    log.clear();

    reconcile(&context, &rack).await.unwrap();
    let enable_calls = log.calls();
    store_parameters(&context.clients, &rack, Some("false"), None, None).await;
    log.clear();
    reconcile(&context, &rack).await.unwrap();
    let disable_calls = log.calls();

    assert!(enable_calls.len() <= 12, "enabling made {enable_calls:?}");
    assert!(
        disable_calls.len() <= 10,
        "disabling made {disable_calls:?}"
    );
}

#[tokio::test]
async fn converged_rack_has_no_writes() {
    let (context, log) = context();
    let rack = enabled_rack(&context, "t-converged", "token-1").await;
    reconcile(&context, &rack).await.unwrap();
    log.clear();

    let report = reconcile(&context, &rack).await.unwrap();

    assert_eq!(report.changes, []);
    assert_no_writes(&log);
    assert!(
        log.calls().len() <= 8,
        "a converged reconcile made {:?}",
        log.calls()
    );
}

#[tokio::test]
async fn rotation_changes_only_secret() {
    let (context, log) = context();
    let rack = enabled_rack(&context, "t-rotate", "token-1").await;
    reconcile(&context, &rack).await.unwrap();
    let before = rack_resources(&context.clients, &rack).await;
    store_parameters(&context.clients, &rack, None, None, Some("token-2")).await;
    log.clear();

    let report = reconcile(&context, &rack).await.unwrap();

    assert_eq!(
        report
            .changes
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["update the value of secret ecr-pullthroughcache/t-rotate"]
    );
    assert_eq!(log.writes(), ["PutSecretValue"]);
    let after = rack_resources(&context.clients, &rack).await;
    let (arn_before, _) = before.secret.clone().unwrap();
    assert_eq!(
        after.secret,
        Some((
            arn_before,
            json!({"username": "alice", "accessToken": "token-2"})
        ))
    );
    assert_eq!(after.rule_credential_arn, before.rule_credential_arn);
    assert_eq!(after.policy_document, before.policy_document);
    assert_eq!(after.policy_roles, before.policy_roles);
}

#[tokio::test]
async fn disable_removes_everything_detaching_first() {
    let (context, log) = context();
    let rack = enabled_rack(&context, "t-disable", "token-1").await;
    reconcile(&context, &rack).await.unwrap();
    store_parameters(&context.clients, &rack, Some("false"), None, None).await;
    log.clear();

    let report = reconcile(&context, &rack).await.unwrap();

    assert!(!report.enabled);
    assert_eq!(
        log.writes(),
        [
            "DeleteParameter",
            "DeletePullThroughCacheRule",
            "DeleteSecret",
            "DetachRolePolicy",
            "DeletePolicy"
        ]
    );
    let resources = rack_resources(&context.clients, &rack).await;
    assert_eq!(resources.rule_credential_arn, None);
    assert_eq!(resources.secret, None);
    assert_eq!(resources.policy_document, None);
    assert_eq!(resources.policy_roles, Vec::<String>::new());

    log.clear();
    let again = reconcile(&context, &rack).await.unwrap();
    assert_eq!(again.changes, []);
    assert_no_writes(&log);
}

#[tokio::test]
async fn enable_without_credentials_writes_nothing() {
    let (context, log) = context();
    let rack = enabled_rack(&context, "t-nocreds", "token-1").await;
    reconcile(&context, &rack).await.unwrap();
    let before = rack_resources(&context.clients, &rack).await;
    hubcache::ssm::delete(
        &context.clients.ssm,
        support::PREFIX,
        &rack,
        hubcache::settings::Parameter::Password,
    )
    .await
    .unwrap();
    log.clear();

    let error = reconcile(&context, &rack).await.unwrap_err();

    assert!(matches!(error, Error::InvalidSettings(_)), "{error:?}");
    assert_eq!(error.to_string().lines().next(), Some(FIRST_LINE));
    assert_eq!(log.calls(), ["GetParametersByPath"]);
    assert_eq!(rack_resources(&context.clients, &rack).await, before);
}

#[tokio::test]
async fn invalid_flag_names_value() {
    let (context, log) = context();
    let rack = support::rack("t-badflag");
    store_parameters(
        &context.clients,
        &rack,
        Some("yes"),
        Some("alice"),
        Some("token"),
    )
    .await;
    log.clear();

    let error = reconcile(&context, &rack).await.unwrap_err();

    assert_eq!(
        error.to_string(),
        "Parameter ecr_docker_hub_cache must be true or false, but it is \"yes\". Set it to one \
         of them, for example: hubcache params set ecr_docker_hub_cache=false --rack t-badflag"
    );
    assert_eq!(log.calls(), ["GetParametersByPath"]);
}

#[tokio::test]
async fn missing_nodes_role_writes_nothing() {
    let (context, log) = context();
    let rack = support::rack("t-norole");
    store_parameters(
        &context.clients,
        &rack,
        Some("true"),
        Some("alice"),
        Some("token"),
    )
    .await;
    log.clear();

    let error = reconcile(&context, &rack).await.unwrap_err();

    assert!(
        error
            .to_string()
            .contains("IAM role t-norole-nodes not found"),
        "{error}"
    );
    assert_no_writes(&log);
}

#[tokio::test]
async fn uppercase_rack_is_lowercased() {
    let (context, _log) = context();
    let rack = enabled_rack(&context, "T-Upper", "token-1").await;

    let report = reconcile(&context, &rack).await.unwrap();

    assert_eq!(report.rack.as_str(), "t-upper");
    let resources = rack_resources(&context.clients, &support::rack("t-upper")).await;
    assert!(resources.secret.is_some());
    assert_eq!(resources.policy_roles, ["t-upper-nodes"]);
}

#[tokio::test]
async fn disabling_one_rack_keeps_another() {
    let (context, _log) = context();
    let kept = enabled_rack(&context, "t-two-a", "token-a").await;
    let removed = enabled_rack(&context, "t-two-ab", "token-ab").await;
    reconcile(&context, &kept).await.unwrap();
    reconcile(&context, &removed).await.unwrap();
    let kept_before = rack_resources(&context.clients, &kept).await;
    store_parameters(&context.clients, &removed, Some("false"), None, None).await;

    reconcile(&context, &removed).await.unwrap();

    assert_eq!(rack_resources(&context.clients, &kept).await, kept_before);
    assert!(kept_before.secret.is_some());
    assert_eq!(
        rack_resources(&context.clients, &removed).await.secret,
        None
    );
}

#[tokio::test]
async fn listed_node_roles_replace_defaults() {
    let (context, _log) = context();
    let rack = support::rack("t-roles");
    let roles = ["t-roles-eks".to_owned(), "t-roles-gpu".to_owned()];
    support::create_roles(&context.clients, &roles).await;
    store_parameters(
        &context.clients,
        &rack,
        Some("true"),
        Some("alice"),
        Some("token"),
    )
    .await;
    hubcache::ssm::write(
        &context.clients.ssm,
        support::PREFIX,
        &rack,
        hubcache::settings::Parameter::NodeRoles,
        "t-roles-eks,t-roles-gpu",
    )
    .await
    .unwrap();

    let report = reconcile(&context, &rack).await.unwrap();

    assert_eq!(
        report
            .changes
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()[3..5],
        [
            "attach IAM policy t-roles-ecr-pull-through to role t-roles-eks",
            "attach IAM policy t-roles-ecr-pull-through to role t-roles-gpu",
        ]
    );
    let attached = context
        .clients
        .iam
        .list_entities_for_policy()
        .policy_arn(support::target().policy_arn(&rack))
        .send()
        .await
        .unwrap();
    let mut names: Vec<&str> = attached
        .policy_roles()
        .iter()
        .filter_map(|role| role.role_name())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["t-roles-eks", "t-roles-gpu"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reconciles_converge() {
    let (context, _log) = context();
    let rack = enabled_rack(&context, "t-burst", "token-1").await;

    let runs: Vec<_> = (0..20)
        .map(|_| {
            let context = context.clone();
            let rack = rack.clone();
            tokio::spawn(async move { reconcile(&context, &rack).await })
        })
        .collect();
    let mut changes = Vec::new();
    for run in runs {
        let report = run.await.unwrap().expect("no reconcile of the burst fails");
        changes.extend(report.changes);
    }

    let resources = rack_resources(&context.clients, &rack).await;
    let (secret_arn, _) = resources.secret.expect("one secret");
    assert_eq!(resources.rule_credential_arn, Some(Some(secret_arn)));
    assert_eq!(resources.policy_document, Some(expected_policy("t-burst")));
    assert_eq!(resources.policy_roles, ["t-burst-nodes"]);
    let created = |prefix: &str| {
        changes
            .iter()
            .filter(|change| change.to_string().starts_with(prefix))
            .count()
    };
    assert_eq!(created("create secret"), 1, "{changes:?}");
    assert_eq!(created("create pull-through cache rule"), 1, "{changes:?}");
    assert_eq!(created("create IAM policy"), 1, "{changes:?}");
}

#[tokio::test]
async fn changed_node_roles_detach_old() {
    let (context, _log) = context();
    let rack = enabled_rack(&context, "t-reroles", "token").await;
    support::create_roles(&context.clients, &["t-reroles-eks".to_owned()]).await;
    reconcile(&context, &rack).await.unwrap();
    let write_roles = |value: &'static str| {
        let clients = context.clients.clone();
        let rack = rack.clone();
        async move {
            hubcache::ssm::write(
                &clients.ssm,
                support::PREFIX,
                &rack,
                hubcache::settings::Parameter::NodeRoles,
                value,
            )
            .await
            .unwrap()
        }
    };

    write_roles("t-reroles-eks").await;
    let switched = reconcile(&context, &rack).await.unwrap();
    hubcache::ssm::delete(
        &context.clients.ssm,
        support::PREFIX,
        &rack,
        hubcache::settings::Parameter::NodeRoles,
    )
    .await
    .unwrap();
    let restored = reconcile(&context, &rack).await.unwrap();

    assert_eq!(
        switched
            .changes
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        [
            "attach IAM policy t-reroles-ecr-pull-through to role t-reroles-eks",
            "detach IAM policy t-reroles-ecr-pull-through from role t-reroles-nodes",
        ]
    );
    assert_eq!(
        restored
            .changes
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        [
            "attach IAM policy t-reroles-ecr-pull-through to role t-reroles-nodes",
            "detach IAM policy t-reroles-ecr-pull-through from role t-reroles-eks",
        ]
    );
    assert_eq!(
        rack_resources(&context.clients, &rack).await.policy_roles,
        ["t-reroles-nodes"]
    );
}
