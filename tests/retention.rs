//! The retention setting against the AWS emulator: the repository creation
//! template hubcache keeps for `docker-hub-<rack>`, read back with the SDK.

mod support;

use aws_sdk_ecr::types::RctAppliedFor;
use hubcache::names::Rack;
use hubcache::plan::Action;
use hubcache::reconcile::{Clients, reconcile};
use serde_json::{Value, json};
use support::PREFIX;

/// The rack's template as ECR returns it: description, applied-for scenarios
/// and the parsed lifecycle policy.
#[derive(Debug)]
struct Template {
    description: Option<String>,
    applied_for: Vec<RctAppliedFor>,
    lifecycle_policy: Value,
}

async fn template(clients: &Clients, prefix: &str) -> Option<Template> {
    let output = clients
        .ecr
        .describe_repository_creation_templates()
        .prefixes(prefix)
        .send()
        .await
        .unwrap();
    let found = output
        .repository_creation_templates()
        .iter()
        .find(|template| template.prefix() == Some(prefix))?;
    Some(Template {
        description: found.description().map(str::to_owned),
        applied_for: found.applied_for().to_vec(),
        lifecycle_policy: serde_json::from_str(found.lifecycle_policy().unwrap()).unwrap(),
    })
}

async fn recorded_template(clients: &Clients, rack: &Rack) -> Option<String> {
    hubcache::ssm::read(&clients.ssm, PREFIX, rack)
        .await
        .unwrap()
        .recorded_template
}

/// Checks the lifecycle policy field by field: one rule that expires any
/// image not pulled for `days` days.
fn assert_expires_after(template: &Template, days: u64) {
    let rules = template.lifecycle_policy["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 1, "{:?}", template.lifecycle_policy);
    let rule = &rules[0];
    assert_eq!(rule["rulePriority"], 1);
    assert_eq!(rule["selection"]["tagStatus"], "any");
    assert_eq!(rule["selection"]["countType"], "sinceImagePulled");
    assert_eq!(rule["selection"]["countUnit"], "days");
    assert_eq!(rule["selection"]["countNumber"], days);
    assert_eq!(rule["action"]["type"], "expire");
    assert_eq!(rule["action"].as_object().unwrap().len(), 1);
    assert_eq!(template.applied_for, [RctAppliedFor::PullThroughCache]);
}

fn changes(report: &hubcache::reconcile::Report) -> Vec<String> {
    report.changes.iter().map(ToString::to_string).collect()
}

#[tokio::test]
async fn retention_set_change_unset() {
    let (context, log) = support::context();
    let rack = support::enabled_rack(&context, "r-cycle", "token").await;
    reconcile(&context, &rack).await.unwrap();

    // Set.
    support::set_retention(&context.clients, &rack, Some("30")).await;
    let set = reconcile(&context, &rack).await.unwrap();

    assert_eq!(
        changes(&set),
        [
            "record repository creation template docker-hub-r-cycle as managed by hubcache",
            "create repository creation template docker-hub-r-cycle (expire images not pulled for 30 days)",
        ]
    );
    let created = template(&context.clients, "docker-hub-r-cycle")
        .await
        .unwrap();
    assert_expires_after(&created, 30);
    assert_eq!(
        created.lifecycle_policy["rules"][0]["description"],
        "Expire images not pulled for 30 days"
    );
    assert_eq!(
        created.description.as_deref(),
        Some(
            "Managed by hubcache for rack r-cycle: cached Docker Hub images expire when not \
             pulled for 30 days."
        )
    );
    assert_eq!(
        recorded_template(&context.clients, &rack).await.as_deref(),
        Some("docker-hub-r-cycle")
    );

    // Converged: reads only.
    log.clear();
    let converged = reconcile(&context, &rack).await.unwrap();
    assert_eq!(converged.changes, []);
    assert_eq!(log.writes(), Vec::<String>::new());

    // Change.
    support::set_retention(&context.clients, &rack, Some("7")).await;
    let changed = reconcile(&context, &rack).await.unwrap();

    assert_eq!(
        changed.changes,
        [Action::UpdateTemplate {
            prefix: "docker-hub-r-cycle".into(),
            days: 7
        }]
    );
    let updated = template(&context.clients, "docker-hub-r-cycle")
        .await
        .unwrap();
    assert_expires_after(&updated, 7);
    assert!(
        updated.description.as_deref().unwrap().ends_with("7 days."),
        "{updated:?}"
    );

    // Unset.
    support::set_retention(&context.clients, &rack, None).await;
    let unset = reconcile(&context, &rack).await.unwrap();

    assert_eq!(
        changes(&unset),
        [
            "delete repository creation template docker-hub-r-cycle",
            "remove the record of repository creation template docker-hub-r-cycle",
        ]
    );
    assert!(
        template(&context.clients, "docker-hub-r-cycle")
            .await
            .is_none()
    );
    assert_eq!(recorded_template(&context.clients, &rack).await, None);

    // Without retention, a converged rack does not read templates at all.
    log.clear();
    assert_eq!(reconcile(&context, &rack).await.unwrap().changes, []);
    assert!(
        !log.calls()
            .contains(&"DescribeRepositoryCreationTemplates".to_owned()),
        "{:?}",
        log.calls()
    );
}

#[tokio::test]
async fn enable_creates_template_before_rule() {
    let (context, _log) = support::context();
    let rack = support::enabled_rack(&context, "r-fresh", "token").await;
    support::set_retention(&context.clients, &rack, Some("1")).await;

    let report = reconcile(&context, &rack).await.unwrap();

    let descriptions = changes(&report);
    let template_at = descriptions
        .iter()
        .position(|change| change.starts_with("create repository creation template"))
        .unwrap();
    let rule_at = descriptions
        .iter()
        .position(|change| change.starts_with("create pull-through cache rule"))
        .unwrap();
    assert!(template_at < rule_at, "{descriptions:?}");
    assert_eq!(
        descriptions[template_at],
        "create repository creation template docker-hub-r-fresh (expire images not pulled for 1 day)"
    );
    assert_expires_after(
        &template(&context.clients, "docker-hub-r-fresh")
            .await
            .unwrap(),
        1,
    );
}

#[tokio::test]
async fn disable_removes_template() {
    let (context, _log) = support::context();
    let rack = support::enabled_rack(&context, "r-off", "token").await;
    support::set_retention(&context.clients, &rack, Some("14")).await;
    reconcile(&context, &rack).await.unwrap();

    support::store_parameters(&context.clients, &rack, Some("false"), None, None).await;
    let report = reconcile(&context, &rack).await.unwrap();

    let descriptions = changes(&report);
    assert!(
        descriptions.contains(&"delete repository creation template docker-hub-r-off".to_owned()),
        "{descriptions:?}"
    );
    assert!(
        template(&context.clients, "docker-hub-r-off")
            .await
            .is_none()
    );
    assert_eq!(recorded_template(&context.clients, &rack).await, None);
    assert_eq!(
        support::rack_resources(&context.clients, &rack).await,
        support::RackResources::default()
    );
    // The retention setting itself stays, for when the cache is enabled again.
    let stored = hubcache::ssm::read(&context.clients.ssm, PREFIX, &rack)
        .await
        .unwrap();
    assert_eq!(stored.retention_days.as_deref(), Some("14"));
}

async fn create_template_by_hand(clients: &Clients, prefix: &str, lifecycle_policy: &Value) {
    clients
        .ecr
        .create_repository_creation_template()
        .prefix(prefix)
        .description("made by hand")
        .lifecycle_policy(lifecycle_policy.to_string())
        .applied_for(RctAppliedFor::PullThroughCache)
        .applied_for(RctAppliedFor::Replication)
        .send()
        .await
        .unwrap();
}

fn hand_made_policy() -> Value {
    json!({"rules": [{
        "rulePriority": 1,
        "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 5},
        "action": {"type": "expire"}
    }]})
}

#[tokio::test]
async fn hand_made_template_left_alone() {
    let (context, log) = support::context();
    let rack = support::enabled_rack(&context, "r-hand", "token").await;
    create_template_by_hand(&context.clients, "docker-hub-r-hand", &hand_made_policy()).await;

    let enabled = reconcile(&context, &rack).await.unwrap();
    support::store_parameters(&context.clients, &rack, Some("false"), None, None).await;
    log.clear();
    let disabled = reconcile(&context, &rack).await.unwrap();

    for report in [&enabled, &disabled] {
        assert!(
            !changes(report)
                .iter()
                .any(|change| change.contains("repository creation template")),
            "{:?}",
            report.changes
        );
    }
    assert!(!log.writes().iter().any(|call| call.contains("Template")));
    let hand_made = template(&context.clients, "docker-hub-r-hand")
        .await
        .unwrap();
    assert_eq!(hand_made.description.as_deref(), Some("made by hand"));
    assert_eq!(hand_made.lifecycle_policy, hand_made_policy());
}

#[tokio::test]
async fn retention_takes_over_hand_template() {
    let (context, _log) = support::context();
    let rack = support::enabled_rack(&context, "r-take", "token").await;
    reconcile(&context, &rack).await.unwrap();
    create_template_by_hand(&context.clients, "docker-hub-r-take", &hand_made_policy()).await;
    support::set_retention(&context.clients, &rack, Some("60")).await;

    let report = reconcile(&context, &rack).await.unwrap();

    assert_eq!(
        changes(&report),
        [
            "record repository creation template docker-hub-r-take as managed by hubcache",
            "update repository creation template docker-hub-r-take (expire images not pulled for 60 days)",
        ]
    );
    assert_expires_after(
        &template(&context.clients, "docker-hub-r-take")
            .await
            .unwrap(),
        60,
    );
    assert_eq!(reconcile(&context, &rack).await.unwrap().changes, []);
}

#[tokio::test]
async fn template_deleted_by_hand_is_recreated() {
    let (context, _log) = support::context();
    let rack = support::enabled_rack(&context, "r-drift", "token").await;
    support::set_retention(&context.clients, &rack, Some("30")).await;
    reconcile(&context, &rack).await.unwrap();
    context
        .clients
        .ecr
        .delete_repository_creation_template()
        .prefix("docker-hub-r-drift")
        .send()
        .await
        .unwrap();

    let report = reconcile(&context, &rack).await.unwrap();

    assert_eq!(
        changes(&report),
        [
            "create repository creation template docker-hub-r-drift (expire images not pulled for 30 days)"
        ]
    );
    assert_expires_after(
        &template(&context.clients, "docker-hub-r-drift")
            .await
            .unwrap(),
        30,
    );
}

#[tokio::test]
async fn invalid_retention_writes_nothing() {
    let (context, log) = support::context();
    let rack = support::enabled_rack(&context, "r-bad", "token").await;
    reconcile(&context, &rack).await.unwrap();
    for value in ["0", "-3", "30d", "1.5", "99999999999"] {
        support::set_retention(&context.clients, &rack, Some(value)).await;
        log.clear();

        let error = reconcile(&context, &rack).await.unwrap_err();

        assert_eq!(
            error.to_string().lines().next().unwrap(),
            format!(
                "Parameter ecr_docker_hub_cache_retention_days of rack r-bad must be a whole \
                 number of days from 1 to 2147483647, but it is {value:?}."
            )
        );
        assert_eq!(log.writes(), Vec::<String>::new(), "{value:?}");
    }
    assert!(
        template(&context.clients, "docker-hub-r-bad")
            .await
            .is_none()
    );
}

#[tokio::test]
async fn invalid_retention_never_blocks_disabling() {
    let (context, _log) = support::context();
    let rack = support::enabled_rack(&context, "r-stuck", "token").await;
    support::set_retention(&context.clients, &rack, Some("30")).await;
    reconcile(&context, &rack).await.unwrap();
    // Another tool stores a value params set would reject.
    support::set_retention(&context.clients, &rack, Some("99999999999")).await;

    let endpoint = support::endpoint();
    let disabled = support::hubcache_at(
        &endpoint,
        &[
            "params",
            "set",
            "ecr_docker_hub_cache=false",
            "--rack",
            "r-stuck",
        ],
    );
    let report = reconcile(&context, &rack).await.unwrap();

    assert!(
        disabled.status.success(),
        "{}",
        String::from_utf8_lossy(&disabled.stderr)
    );
    assert!(!report.enabled);
    assert!(
        template(&context.clients, "docker-hub-r-stuck")
            .await
            .is_none()
    );
    assert_eq!(recorded_template(&context.clients, &rack).await, None);
    assert_eq!(
        support::rack_resources(&context.clients, &rack).await,
        support::RackResources::default()
    );
}

#[tokio::test]
async fn enable_adopts_hand_made_template() {
    let (context, _log) = support::context();
    let rack = support::enabled_rack(&context, "r-adopt", "token").await;
    create_template_by_hand(&context.clients, "docker-hub-r-adopt", &hand_made_policy()).await;
    support::set_retention(&context.clients, &rack, Some("21")).await;

    let report = reconcile(&context, &rack).await.unwrap();

    // Enabling from nothing takes the template as absent. Creating it finds
    // the one made by hand, so the reconcile observes again and updates it.
    let descriptions = changes(&report);
    assert!(
        descriptions.contains(
            &"update repository creation template docker-hub-r-adopt (expire images not pulled for 21 days)"
                .to_owned()
        ),
        "{descriptions:?}"
    );
    assert_expires_after(
        &template(&context.clients, "docker-hub-r-adopt")
            .await
            .unwrap(),
        21,
    );
    assert_eq!(reconcile(&context, &rack).await.unwrap().changes, []);
}
