//! The project's ECR extension of the AWS emulator behaves as ECR does: the
//! same validation rules and exception names for pull-through cache rules
//! and repository creation templates. hubcache's tests rely on both.

mod support;

use aws_sdk_ecr::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ecr::types::{RctAppliedFor, UpstreamRegistry};
use serde_json::json;

/// Returns the ECR exception name of a failed call.
fn code<T, E: ProvideErrorMetadata + std::fmt::Debug>(result: Result<T, SdkError<E>>) -> String {
    match result {
        Ok(_) => "no error".into(),
        Err(SdkError::ServiceError(error)) => error.err().code().unwrap_or("no code").into(),
        Err(other) => panic!("expected a service error, got {other:?}"),
    }
}

fn ecr() -> aws_sdk_ecr::Client {
    support::logged_clients().0.ecr
}

async fn secret(name: &str, value: &serde_json::Value) -> String {
    let clients = support::logged_clients().0;
    clients
        .secrets
        .create_secret()
        .name(name)
        .secret_string(value.to_string())
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_owned()
}

async fn create_rule(
    ecr: &aws_sdk_ecr::Client,
    prefix: &str,
    credential_arn: Option<&str>,
) -> Result<
    aws_sdk_ecr::operation::create_pull_through_cache_rule::CreatePullThroughCacheRuleOutput,
    SdkError<
        aws_sdk_ecr::operation::create_pull_through_cache_rule::CreatePullThroughCacheRuleError,
    >,
> {
    ecr.create_pull_through_cache_rule()
        .ecr_repository_prefix(prefix)
        .upstream_registry_url("registry-1.docker.io")
        .upstream_registry(UpstreamRegistry::DockerHub)
        .set_credential_arn(credential_arn.map(str::to_owned))
        .send()
        .await
}

#[tokio::test]
async fn rule_prefix_length_and_pattern() {
    let ecr = ecr();
    let arn = secret(
        "ecr-pullthroughcache/e-prefix",
        &json!({"username": "u", "accessToken": "t"}),
    )
    .await;

    for (prefix, expected) in [
        ("e", "ValidationException"),
        (&"e".repeat(31), "ValidationException"),
        ("E-upper", "ValidationException"),
        ("e--double", "ValidationException"),
        ("-e-leading", "ValidationException"),
        ("e/trailing/", "ValidationException"),
        ("e2", "no error"),
        (&"e".repeat(30), "no error"),
        ("e-nested/path.v2", "no error"),
    ] {
        assert_eq!(
            code(create_rule(&ecr, prefix, Some(&arn)).await),
            expected,
            "{prefix:?}"
        );
    }
}

#[tokio::test]
async fn rule_credential_rules() {
    let ecr = ecr();
    let wrong_name = secret(
        "docker-hub/e-cred",
        &json!({"username": "u", "accessToken": "t"}),
    )
    .await;
    let right_name = secret(
        "ecr-pullthroughcache/e-cred",
        &json!({"username": "u", "accessToken": "t"}),
    )
    .await;
    let missing = right_name.replace("e-cred", "e-cred-missing");

    assert_eq!(
        code(create_rule(&ecr, "e-cred-a", None).await),
        "InvalidParameterException"
    );
    assert_eq!(
        code(create_rule(&ecr, "e-cred-b", Some(&wrong_name)).await),
        "ValidationException"
    );
    assert_eq!(
        code(create_rule(&ecr, "e-cred-c", Some(&missing)).await),
        "SecretNotFoundException"
    );
    assert_eq!(
        code(create_rule(&ecr, "e-cred-d", Some(&right_name)).await),
        "no error"
    );
    assert_eq!(
        code(create_rule(&ecr, "e-cred-d", Some(&right_name)).await),
        "PullThroughCacheRuleAlreadyExistsException"
    );
}

#[tokio::test]
async fn missing_rule_is_not_found() {
    let ecr = ecr();

    let describe = ecr
        .describe_pull_through_cache_rules()
        .ecr_repository_prefixes("e-none")
        .send()
        .await;
    let update = ecr
        .update_pull_through_cache_rule()
        .ecr_repository_prefix("e-none")
        .credential_arn(
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:ecr-pullthroughcache/x",
        )
        .send()
        .await;
    let delete = ecr
        .delete_pull_through_cache_rule()
        .ecr_repository_prefix("e-none")
        .send()
        .await;
    let validate = ecr
        .validate_pull_through_cache_rule()
        .ecr_repository_prefix("e-none")
        .send()
        .await;

    assert_eq!(code(describe), "PullThroughCacheRuleNotFoundException");
    assert_eq!(code(update), "PullThroughCacheRuleNotFoundException");
    assert_eq!(code(delete), "PullThroughCacheRuleNotFoundException");
    assert_eq!(code(validate), "PullThroughCacheRuleNotFoundException");
}

#[tokio::test]
async fn validate_reads_secret_shape() {
    let ecr = ecr();
    let good = secret(
        "ecr-pullthroughcache/e-good",
        &json!({"username": "u", "accessToken": "t"}),
    )
    .await;
    let empty_token = secret(
        "ecr-pullthroughcache/e-empty",
        &json!({"username": "u", "accessToken": ""}),
    )
    .await;
    create_rule(&ecr, "e-good", Some(&good)).await.unwrap();
    create_rule(&ecr, "e-empty", Some(&empty_token))
        .await
        .unwrap();

    let valid = ecr
        .validate_pull_through_cache_rule()
        .ecr_repository_prefix("e-good")
        .send()
        .await
        .unwrap();
    let invalid = ecr
        .validate_pull_through_cache_rule()
        .ecr_repository_prefix("e-empty")
        .send()
        .await
        .unwrap();

    assert!(valid.is_valid());
    assert_eq!(valid.failure(), None);
    assert!(!invalid.is_valid());
    assert_eq!(
        invalid.failure(),
        Some("The secret must contain non-empty username and accessToken.")
    );
}

fn lifecycle(selection: serde_json::Value) -> String {
    json!({"rules": [{"rulePriority": 1, "selection": selection, "action": {"type": "expire"}}]})
        .to_string()
}

async fn create_template(
    ecr: &aws_sdk_ecr::Client,
    prefix: &str,
    lifecycle_policy: Option<String>,
) -> String {
    code(
        ecr.create_repository_creation_template()
            .prefix(prefix)
            .set_lifecycle_policy(lifecycle_policy)
            .applied_for(RctAppliedFor::PullThroughCache)
            .send()
            .await,
    )
}

#[tokio::test]
async fn template_prefix_rules() {
    let ecr = ecr();

    for (prefix, expected) in [
        ("", "ValidationException"),
        ("E-upper", "ValidationException"),
        ("e//double", "ValidationException"),
        (&"e".repeat(257), "ValidationException"),
        ("t", "no error"),
        ("t-trailing/", "no error"),
        ("t-ns/team_a", "no error"),
        (&"t".repeat(256), "no error"),
    ] {
        assert_eq!(
            create_template(&ecr, prefix, None).await,
            expected,
            "{prefix:?}"
        );
    }
    assert_eq!(
        create_template(&ecr, "t", None).await,
        "TemplateAlreadyExistsException"
    );
}

#[tokio::test]
async fn template_lifecycle_policy_rules() {
    let ecr = ecr();
    let pulled = |days: serde_json::Value| json!({"tagStatus": "any", "countType": "sinceImagePulled", "countUnit": "days", "countNumber": days});

    for (index, (policy, expected)) in [
        ("not json".to_owned(), "InvalidParameterException"),
        (json!({"rules": []}).to_string(), "InvalidParameterException"),
        (lifecycle(pulled(json!(0))), "InvalidParameterException"),
        (lifecycle(pulled(json!("30"))), "InvalidParameterException"),
        (
            lifecycle(json!({"tagStatus": "any", "countType": "sinceImagePulled", "countNumber": 3})),
            "InvalidParameterException",
        ),
        (
            lifecycle(json!({"tagStatus": "tagged", "countType": "imageCountMoreThan", "countNumber": 3})),
            "InvalidParameterException",
        ),
        (
            lifecycle(json!({"tagStatus": "any", "countType": "sinceImageSeen", "countUnit": "days", "countNumber": 3})),
            "InvalidParameterException",
        ),
        ("x".repeat(30721), "ValidationException"),
        (lifecycle(pulled(json!(30))), "no error"),
        (
            lifecycle(json!({"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 1})),
            "no error",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let prefix = format!("t-policy-{index}");
        assert_eq!(
            create_template(&ecr, &prefix, Some(policy.clone())).await,
            expected,
            "{policy}"
        );
    }

    let any_not_last = json!({"rules": [
        {"rulePriority": 1, "selection": pulled(json!(3)), "action": {"type": "expire"}},
        {"rulePriority": 2, "selection": {"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "expire"}}
    ]});
    assert_eq!(
        create_template(&ecr, "t-policy-order", Some(any_not_last.to_string())).await,
        "InvalidParameterException"
    );
}

#[tokio::test]
async fn template_lifecycle() {
    let ecr = ecr();
    assert_eq!(
        code(
            ecr.create_repository_creation_template()
                .prefix("t-life")
                .description("d".repeat(257))
                .applied_for(RctAppliedFor::PullThroughCache)
                .send()
                .await
        ),
        "ValidationException"
    );
    assert_eq!(create_template(&ecr, "t-life", None).await, "no error");

    let described = ecr
        .describe_repository_creation_templates()
        .prefixes("t-life")
        .prefixes("t-life-missing")
        .send()
        .await
        .unwrap();
    let templates = described.repository_creation_templates();
    assert_eq!(templates.len(), 1);
    let created = &templates[0];
    assert_eq!(created.prefix(), Some("t-life"));
    assert_eq!(created.applied_for(), [RctAppliedFor::PullThroughCache]);
    assert_eq!(
        created.image_tag_mutability().map(|value| value.as_str()),
        Some("MUTABLE")
    );
    assert_eq!(
        created
            .encryption_configuration()
            .map(|value| value.encryption_type().as_str()),
        Some("AES256")
    );
    assert_eq!(described.registry_id(), Some(support::ACCOUNT));

    let updated = ecr
        .update_repository_creation_template()
        .prefix("t-life")
        .description("second")
        .send()
        .await
        .unwrap();
    let updated = updated.repository_creation_template().unwrap();
    assert_eq!(updated.description(), Some("second"));
    assert_eq!(updated.applied_for(), [RctAppliedFor::PullThroughCache]);

    let deleted = ecr
        .delete_repository_creation_template()
        .prefix("t-life")
        .send()
        .await
        .unwrap();
    assert_eq!(
        deleted.repository_creation_template().unwrap().prefix(),
        Some("t-life")
    );

    let update_missing = ecr
        .update_repository_creation_template()
        .prefix("t-life")
        .description("third")
        .send()
        .await;
    let delete_missing = ecr
        .delete_repository_creation_template()
        .prefix("t-life")
        .send()
        .await;
    assert_eq!(code(update_missing), "TemplateNotFoundException");
    assert_eq!(code(delete_missing), "TemplateNotFoundException");
}

#[tokio::test]
async fn policy_entities_listed_past_hundred_roles() {
    let clients = support::logged_clients().0;
    let names: Vec<String> = (0..120).map(|index| format!("e-many-{index:03}")).collect();
    support::create_roles(&clients, &names).await;
    let policy_arn = clients
        .iam
        .create_policy()
        .policy_name("e-many-policy")
        .policy_document(
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ecr:CreateRepository", "Resource": "*"}]})
                .to_string(),
        )
        .send()
        .await
        .unwrap()
        .policy()
        .unwrap()
        .arn()
        .unwrap()
        .to_owned();
    let attached: Vec<&String> = names.iter().step_by(12).collect();
    for name in &attached {
        clients
            .iam
            .attach_role_policy()
            .role_name(*name)
            .policy_arn(&policy_arn)
            .send()
            .await
            .unwrap();
    }

    let mut listed = Vec::new();
    let mut pages = clients
        .iam
        .list_entities_for_policy()
        .policy_arn(&policy_arn)
        .max_items(3)
        .into_paginator()
        .send();
    let mut page_count = 0;
    while let Some(page) = pages.next().await {
        let page = page.unwrap();
        page_count += 1;
        listed.extend(
            page.policy_roles()
                .iter()
                .filter_map(|role| role.role_name())
                .map(str::to_owned),
        );
    }

    assert_eq!(
        listed,
        attached
            .iter()
            .map(|name| name.as_str())
            .collect::<Vec<_>>()
    );
    assert_eq!(page_count, 4, "10 roles in pages of 3");
}
