//! `hubcache status` and `hubcache cache purge` on the AWS emulator, their
//! output asserted in full for a converged, a drifted and a disabled rack.

mod support;

use std::process::Output;

use hubcache::reconcile::reconcile;
use serde_json::Value;

fn hubcache(arguments: &[&str]) -> Output {
    support::hubcache_at(&support::endpoint(), arguments)
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// Returns `hubcache status` of `rack` as text and as JSON.
fn status(rack: &str) -> (String, Value) {
    let text = stdout(&hubcache(&["status", "--rack", rack]));
    let json = stdout(&hubcache(&["status", "--rack", rack, "--output", "json"]));
    (text, serde_json::from_str(&json).unwrap())
}

/// Returns the ARN of the rack's secret, which must exist.
async fn secret_arn(
    clients: &hubcache::reconcile::Clients,
    rack: &hubcache::names::Rack,
) -> String {
    let (arn, _) = support::rack_resources(clients, rack).await.secret.unwrap();
    arn
}

async fn create_repository(clients: &hubcache::reconcile::Clients, name: &str) {
    clients
        .ecr
        .create_repository()
        .repository_name(name)
        .send()
        .await
        .unwrap_or_else(|error| panic!("creating repository {name}: {error:?}"));
}

#[tokio::test]
async fn status_of_converged_rack() {
    let (context, _log) = support::context();
    let rack = support::enabled_rack(&context, "o-status", "dckr_pat_status").await;
    reconcile(&context, &rack).await.unwrap();
    create_repository(&context.clients, "docker-hub-o-status/library/redis").await;
    create_repository(&context.clients, "docker-hub-o-status-x/library/redis").await;
    create_repository(&context.clients, "docker-hub-o-statusx/library/redis").await;
    let secret_arn = secret_arn(&context.clients, &rack).await;

    let (text, json) = status("o-status");

    assert_eq!(
        text,
        format!(
            "Rack o-status: cache enabled\n\
             Settings:\n\
             \x20 docker_hub_password = ********\n\
             \x20 docker_hub_username = alice\n\
             \x20 ecr_docker_hub_cache = true\n\
             Resources:\n\
             \x20 secret ecr-pullthroughcache/o-status ({secret_arn}): current\n\
             \x20 rule docker-hub-o-status -> registry-1.docker.io, credential {secret_arn}\n\
             \x20 policy arn:aws:iam::123456789012:policy/o-status-ecr-pull-through: document current, attached to role o-status-nodes\n\
             \x20 repository creation template: none\n\
             \x20 published prefix: 123456789012.dkr.ecr.us-east-1.amazonaws.com/docker-hub-o-status\n\
             Drift:\n\
             \x20 none\n\
             Cached repositories:\n\
             \x20 docker-hub-o-status/library/redis: 0 images, 0 bytes\n"
        )
    );
    assert!(!text.contains("dckr_pat_status"));
    assert_eq!(json["enabled"], true);
    assert_eq!(json["settings"]["docker_hub_password"], "********");
    assert_eq!(json["secret"]["arn"], secret_arn.as_str());
    assert_eq!(json["secret"]["state"], "current");
    assert_eq!(json["rule"]["credential_arn"], secret_arn.as_str());
    assert_eq!(json["policy"]["document_matches"], true);
    assert_eq!(
        json["policy"]["attached_to"],
        serde_json::json!(["role o-status-nodes"])
    );
    assert_eq!(json["drift"], serde_json::json!([]));
    assert_eq!(
        json["cached_repositories"],
        serde_json::json!([{"name": "docker-hub-o-status/library/redis", "images": 0, "bytes": 0}])
    );
}

#[tokio::test]
async fn status_names_drift() {
    let (context, _log) = support::context();
    let rack = support::enabled_rack(&context, "o-drift", "token").await;
    reconcile(&context, &rack).await.unwrap();
    let other_arn =
        support::create_secret_by_hand(&context.clients, "ecr-pullthroughcache/o-drift-by-hand")
            .await;
    context
        .clients
        .ecr
        .update_pull_through_cache_rule()
        .ecr_repository_prefix("docker-hub-o-drift")
        .credential_arn(&other_arn)
        .send()
        .await
        .unwrap();
    context
        .clients
        .iam
        .detach_role_policy()
        .role_name("o-drift-nodes")
        .policy_arn(support::target().policy_arn(&rack))
        .send()
        .await
        .unwrap();
    let secret_arn = secret_arn(&context.clients, &rack).await;

    let text = stdout(&hubcache(&["status", "--rack", "o-drift"]));

    assert_eq!(
        text,
        format!(
            "Rack o-drift: cache enabled\n\
             Settings:\n\
             \x20 docker_hub_password = ********\n\
             \x20 docker_hub_username = alice\n\
             \x20 ecr_docker_hub_cache = true\n\
             Resources:\n\
             \x20 secret ecr-pullthroughcache/o-drift ({secret_arn}): current\n\
             \x20 rule docker-hub-o-drift -> registry-1.docker.io, credential {other_arn}\n\
             \x20 policy arn:aws:iam::123456789012:policy/o-drift-ecr-pull-through: document current, attached to nothing\n\
             \x20 repository creation template: none\n\
             \x20 published prefix: 123456789012.dkr.ecr.us-east-1.amazonaws.com/docker-hub-o-drift\n\
             Drift:\n\
             \x20 would update the credential of pull-through cache rule docker-hub-o-drift\n\
             \x20 would attach IAM policy o-drift-ecr-pull-through to role o-drift-nodes\n\
             Cached repositories:\n\
             \x20 none\n"
        )
    );
}

#[tokio::test]
async fn status_shows_retention_template() {
    let (context, _log) = support::context();
    let rack = support::enabled_rack(&context, "o-keep", "token").await;
    support::set_retention(&context.clients, &rack, Some("30")).await;
    reconcile(&context, &rack).await.unwrap();

    let (converged, json) = status("o-keep");
    support::set_retention(&context.clients, &rack, Some("7")).await;
    let changed = stdout(&hubcache(&["status", "--rack", "o-keep"]));

    let template_line = "  repository creation template docker-hub-o-keep: expires images not \
                         pulled for 30 days, applied for PULL_THROUGH_CACHE, managed by hubcache";
    assert!(
        converged.contains(&format!("{template_line}\n")),
        "{converged}"
    );
    assert!(converged.contains("  ecr_docker_hub_cache_retention_days = 30\n"));
    assert!(converged.contains("Drift:\n  none\n"), "{converged}");
    assert_eq!(
        json["template"],
        serde_json::json!({
            "prefix": "docker-hub-o-keep",
            "retention_days": 30,
            "applied_for": ["PULL_THROUGH_CACHE"],
            "managed": true
        })
    );
    assert!(changed.contains(&format!("{template_line}\n")), "{changed}");
    assert!(
        changed.contains(
            "Drift:\n  would update repository creation template docker-hub-o-keep (expire \
             images not pulled for 7 days)\n"
        ),
        "{changed}"
    );
}

#[tokio::test]
async fn status_of_disabled_rack() {
    let (context, _log) = support::context();
    let rack = support::rack("o-off");
    support::store_parameters(&context.clients, &rack, Some("false"), None, None).await;

    let text = stdout(&hubcache(&["status", "--rack", "o-off"]));

    assert_eq!(
        text,
        "Rack o-off: cache disabled\n\
         Settings:\n\
         \x20 ecr_docker_hub_cache = false\n\
         Resources:\n\
         \x20 secret: none\n\
         \x20 rule: none\n\
         \x20 policy: none\n\
         \x20 repository creation template: none\n\
         \x20 published prefix: none\n\
         Drift:\n\
         \x20 none\n\
         Cached repositories:\n\
         \x20 none\n"
    );
}

#[tokio::test]
async fn purge_lists_then_deletes() {
    let (context, _log) = support::context();
    create_repository(&context.clients, "docker-hub-o-purge/library/redis").await;
    create_repository(&context.clients, "docker-hub-o-purge/bitnami/redis").await;
    create_repository(&context.clients, "docker-hub-o-purge-kept/library/redis").await;

    let listed = stdout(&hubcache(&["cache", "purge", "--rack", "o-purge"]));
    let deleted = stdout(&hubcache(&["cache", "purge", "--rack", "o-purge", "--yes"]));
    let again = stdout(&hubcache(&["cache", "purge", "--rack", "o-purge"]));

    assert_eq!(
        listed,
        "Rack o-purge: would delete docker-hub-o-purge/bitnami/redis (0 images, 0 bytes)\n\
         Rack o-purge: would delete docker-hub-o-purge/library/redis (0 images, 0 bytes)\n\
         Run again with --yes to delete them.\n"
    );
    assert_eq!(
        deleted,
        "Rack o-purge: deleted docker-hub-o-purge/bitnami/redis (0 images, 0 bytes)\n\
         Rack o-purge: deleted docker-hub-o-purge/library/redis (0 images, 0 bytes)\n"
    );
    assert_eq!(
        again,
        "Rack o-purge: no cached repositories under docker-hub-o-purge/\n"
    );
    let other_rack = context
        .clients
        .ecr
        .describe_repositories()
        .repository_names("docker-hub-o-purge-kept/library/redis")
        .send()
        .await;
    assert!(other_rack.is_ok(), "another rack's repository is kept");
}

#[tokio::test]
async fn status_with_invalid_setting_shows_resources() {
    let (context, _log) = support::context();
    let rack = support::enabled_rack(&context, "o-bad", "token").await;
    reconcile(&context, &rack).await.unwrap();
    // Another tool writes a value that params set would reject.
    support::set_retention(&context.clients, &rack, Some("99999999999")).await;
    let secret_arn = secret_arn(&context.clients, &rack).await;

    let (text, json) = status("o-bad");

    assert_eq!(
        text,
        format!(
            "Rack o-bad: cache enabled\n\
             Settings:\n\
             \x20 docker_hub_password = ********\n\
             \x20 docker_hub_username = alice\n\
             \x20 ecr_docker_hub_cache = true\n\
             \x20 ecr_docker_hub_cache_retention_days = 99999999999\n\
             Resources:\n\
             \x20 secret ecr-pullthroughcache/o-bad ({secret_arn}): not compared\n\
             \x20 rule docker-hub-o-bad -> registry-1.docker.io, credential {secret_arn}\n\
             \x20 policy arn:aws:iam::123456789012:policy/o-bad-ecr-pull-through: document not compared, attached to role o-bad-nodes\n\
             \x20 repository creation template: none\n\
             \x20 published prefix: 123456789012.dkr.ecr.us-east-1.amazonaws.com/docker-hub-o-bad\n\
             Drift:\n\
             \x20 unknown until the settings are valid:\n\
             \x20 Parameter ecr_docker_hub_cache_retention_days of rack o-bad must be a whole number of days from 1 to 2147483647, but it is \"99999999999\".\n\
             \x20 Set a number of days: hubcache params set ecr_docker_hub_cache_retention_days=30 --rack o-bad\n\
             \x20 Or remove it to keep every cached image: hubcache params set ecr_docker_hub_cache_retention_days= --rack o-bad\n\
             Cached repositories:\n\
             \x20 none\n"
        )
    );
    assert!(
        json["settings_error"]
            .as_str()
            .unwrap()
            .starts_with("Parameter ecr_docker_hub_cache_retention_days of rack o-bad"),
        "{json}"
    );
    assert_eq!(json["policy"]["document_matches"], Value::Null);
    assert_eq!(json["drift"], Value::Null, "drift is unknown, not empty");
}

#[tokio::test]
async fn status_shows_template_made_by_hand() {
    let (context, _log) = support::context();
    let rack = support::enabled_rack(&context, "o-hand", "token").await;
    reconcile(&context, &rack).await.unwrap();
    context
        .clients
        .ecr
        .create_repository_creation_template()
        .prefix("docker-hub-o-hand")
        .applied_for(aws_sdk_ecr::types::RctAppliedFor::PullThroughCache)
        .lifecycle_policy(
            serde_json::json!({"rules": [{"rulePriority": 1, "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 3}, "action": {"type": "expire"}}]})
                .to_string(),
        )
        .send()
        .await
        .unwrap();

    let text = stdout(&hubcache(&["status", "--rack", "o-hand"]));

    assert!(
        text.contains(
            "  repository creation template docker-hub-o-hand: lifecycle policy not hubcache's, \
             applied for PULL_THROUGH_CACHE, not managed by hubcache\n"
        ),
        "{text}"
    );
    assert!(text.contains("Drift:\n  none\n"), "{text}");
}

#[tokio::test]
async fn status_separates_plan_error_from_drift() {
    let (context, _log) = support::context();
    let rack = support::rack("o-norole");
    support::store_parameters(
        &context.clients,
        &rack,
        Some("true"),
        Some("alice"),
        Some("token"),
    )
    .await;

    let (text, json) = status("o-norole");

    assert!(
        text.ends_with(
            "Drift:\n\
             \x20 unknown, because a reconcile cannot plan:\n\
             \x20 Rack o-norole: IAM role o-norole-nodes not found, so policy \
             o-norole-ecr-pull-through cannot be attached to it. Check the rack name and \
             parameter ecr_docker_hub_cache_node_roles, or install the rack first.\n\
             Cached repositories:\n\
             \x20 none\n"
        ),
        "{text}"
    );
    assert_eq!(json["drift"], Value::Null);
    assert!(
        json["plan_error"]
            .as_str()
            .unwrap()
            .starts_with("Rack o-norole: IAM role o-norole-nodes not found"),
        "{json}"
    );
}
