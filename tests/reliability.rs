//! Faults at every AWS call, retries, races, adoption of resources made by
//! hand, and drift repair, on the AWS emulator.

mod support;

use std::collections::BTreeSet;

use aws_smithy_mocks::{Rule, mock};
use hubcache::names::Rack;
use hubcache::reconcile::{Context, reconcile};
use serde_json::json;
use support::{CallLog, Service, faulty_clients, rack_resources, store_parameters};

/// Where in a rack's life a fault strikes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Scenario {
    /// Enable a rack that has nothing yet.
    Enable,
    /// Change the password of an enabled rack.
    Rotate,
    /// Disable an enabled rack.
    Disable,
    /// Set a retention on an enabled rack.
    Retain,
    /// Change the retention of a rack that has one.
    ChangeRetention,
    /// Remove the retention of a rack that has one.
    Release,
}

const RETENTION_SCENARIOS: [Scenario; 3] = [
    Scenario::Retain,
    Scenario::ChangeRetention,
    Scenario::Release,
];

/// Builds a rule that responds to the first `times` calls of an operation with
/// the AWS error `code`.
macro_rules! fault {
    ($client:path, $error:ty, $code:expr, $times:expr) => {
        mock!($client)
            .sequence()
            .error(|| {
                <$error>::generic(
                    aws_sdk_ssm::error::ErrorMetadata::builder()
                        .code($code)
                        .message("injected fault")
                        .build(),
                )
            })
            .times($times)
            .build()
    };
}

macro_rules! denied {
    ($client:path, $error:ty) => {
        fault!($client, $error, "AccessDeniedException", 1)
    };
}

struct Case {
    scenario: Scenario,
    operation: &'static str,
    service: Service,
    rule: Rule,
    /// What the error must name, with `{rack}` for the rack.
    names: &'static str,
}

fn case(
    scenario: Scenario,
    operation: &'static str,
    service: Service,
    rule: Rule,
    names: &'static str,
) -> Case {
    Case {
        scenario,
        operation,
        service,
        rule,
        names,
    }
}

/// Returns one case for every AWS call of enable, rotate, disable and the
/// retention changes.
fn cases() -> Vec<Case> {
    use Scenario::{ChangeRetention, Disable, Enable, Release, Retain, Rotate};
    use Service::{Ecr, Iam, Secrets, Ssm};
    use aws_sdk_ecr::operation as ecr;
    use aws_sdk_iam::operation as iam;
    use aws_sdk_secretsmanager::operation as sm;
    use aws_sdk_ssm::operation as ssm;

    let read_parameters = || {
        denied!(
            aws_sdk_ssm::Client::get_parameters_by_path,
            ssm::get_parameters_by_path::GetParametersByPathError
        )
    };
    let read_rule = || {
        denied!(
            aws_sdk_ecr::Client::describe_pull_through_cache_rules,
            ecr::describe_pull_through_cache_rules::DescribePullThroughCacheRulesError
        )
    };
    let get_secret = || {
        denied!(
            aws_sdk_secretsmanager::Client::get_secret_value,
            sm::get_secret_value::GetSecretValueError
        )
    };
    let get_policy = || {
        denied!(
            aws_sdk_iam::Client::get_policy,
            iam::get_policy::GetPolicyError
        )
    };
    let get_version = || {
        denied!(
            aws_sdk_iam::Client::get_policy_version,
            iam::get_policy_version::GetPolicyVersionError
        )
    };
    let entities = || {
        denied!(
            aws_sdk_iam::Client::list_entities_for_policy,
            iam::list_entities_for_policy::ListEntitiesForPolicyError
        )
    };
    let get_role = || denied!(aws_sdk_iam::Client::get_role, iam::get_role::GetRoleError);

    let parameters = "failed to read parameters under /convox/{rack}/";
    let secret = "failed to read secret ecr-pullthroughcache/{rack}";
    let rule = "failed to read pull-through cache rule docker-hub-{rack}";
    let policy = "failed to read IAM policy {rack}-ecr-pull-through and node roles";
    let template = "failed to read repository creation template docker-hub-{rack}";

    let mut cases = Vec::new();
    for scenario in RETENTION_SCENARIOS {
        cases.extend([
            case(scenario, "GetParametersByPath", Ssm, read_parameters(), parameters),
            case(scenario, "GetSecretValue", Secrets, get_secret(), secret),
            case(
                scenario,
                "DescribePullThroughCacheRules",
                Ecr,
                read_rule(),
                rule,
            ),
            case(scenario, "GetPolicy", Iam, get_policy(), policy),
            case(scenario, "GetPolicyVersion", Iam, get_version(), policy),
            case(scenario, "ListEntitiesForPolicy", Iam, entities(), policy),
            case(scenario, "GetRole", Iam, get_role(), policy),
            case(
                scenario,
                "DescribeRepositoryCreationTemplates",
                Ecr,
                denied!(
                    aws_sdk_ecr::Client::describe_repository_creation_templates,
                    ecr::describe_repository_creation_templates::DescribeRepositoryCreationTemplatesError
                ),
                template,
            ),
        ]);
    }
    cases.extend([
        case(
            Retain,
            "PutParameter",
            Ssm,
            denied!(
                aws_sdk_ssm::Client::put_parameter,
                ssm::put_parameter::PutParameterError
            ),
            "failed to record repository creation template docker-hub-{rack} as managed by hubcache (ssm:PutParameter)",
        ),
        case(
            Retain,
            "CreateRepositoryCreationTemplate",
            Ecr,
            denied!(
                aws_sdk_ecr::Client::create_repository_creation_template,
                ecr::create_repository_creation_template::CreateRepositoryCreationTemplateError
            ),
            "failed to create repository creation template docker-hub-{rack} (expire images not pulled for 30 days) (ecr:CreateRepositoryCreationTemplate)",
        ),
        case(
            ChangeRetention,
            "UpdateRepositoryCreationTemplate",
            Ecr,
            denied!(
                aws_sdk_ecr::Client::update_repository_creation_template,
                ecr::update_repository_creation_template::UpdateRepositoryCreationTemplateError
            ),
            "failed to update repository creation template docker-hub-{rack} (expire images not pulled for 7 days) (ecr:UpdateRepositoryCreationTemplate)",
        ),
        case(
            Release,
            "DeleteRepositoryCreationTemplate",
            Ecr,
            denied!(
                aws_sdk_ecr::Client::delete_repository_creation_template,
                ecr::delete_repository_creation_template::DeleteRepositoryCreationTemplateError
            ),
            "failed to delete repository creation template docker-hub-{rack} (ecr:DeleteRepositoryCreationTemplate)",
        ),
        case(
            Release,
            "DeleteParameter",
            Ssm,
            denied!(
                aws_sdk_ssm::Client::delete_parameter,
                ssm::delete_parameter::DeleteParameterError
            ),
            "failed to remove the record of repository creation template docker-hub-{rack} (ssm:DeleteParameter)",
        ),
    ]);

    cases.extend([
        case(
            Enable,
            "GetParametersByPath",
            Ssm,
            read_parameters(),
            parameters,
        ),
        case(Enable, "GetSecretValue", Secrets, get_secret(), secret),
        case(Enable, "GetRole", Iam, get_role(), policy),
        case(
            Enable,
            "CreateSecret",
            Secrets,
            denied!(
                aws_sdk_secretsmanager::Client::create_secret,
                sm::create_secret::CreateSecretError
            ),
            "failed to create secret ecr-pullthroughcache/{rack} (secretsmanager:CreateSecret)",
        ),
        case(
            Enable,
            "CreatePullThroughCacheRule",
            Ecr,
            denied!(
                aws_sdk_ecr::Client::create_pull_through_cache_rule,
                ecr::create_pull_through_cache_rule::CreatePullThroughCacheRuleError
            ),
            "failed to create pull-through cache rule docker-hub-{rack} (ecr:CreatePullThroughCacheRule)",
        ),
        case(
            Enable,
            "CreatePolicy",
            Iam,
            denied!(
                aws_sdk_iam::Client::create_policy,
                iam::create_policy::CreatePolicyError
            ),
            "failed to create IAM policy {rack}-ecr-pull-through (iam:CreatePolicy)",
        ),
        case(
            Enable,
            "AttachRolePolicy",
            Iam,
            denied!(
                aws_sdk_iam::Client::attach_role_policy,
                iam::attach_role_policy::AttachRolePolicyError
            ),
            "failed to attach IAM policy {rack}-ecr-pull-through to role {rack}-nodes (iam:AttachRolePolicy)",
        ),
        case(
            Enable,
            "PutParameter",
            Ssm,
            denied!(
                aws_sdk_ssm::Client::put_parameter,
                ssm::put_parameter::PutParameterError
            ),
            "failed to publish cache prefix 123456789012.dkr.ecr.us-east-1.amazonaws.com/docker-hub-{rack} (ssm:PutParameter)",
        ),
        case(
            Rotate,
            "GetParametersByPath",
            Ssm,
            read_parameters(),
            parameters,
        ),
        case(Rotate, "GetSecretValue", Secrets, get_secret(), secret),
        case(
            Rotate,
            "DescribePullThroughCacheRules",
            Ecr,
            read_rule(),
            rule,
        ),
        case(Rotate, "GetPolicy", Iam, get_policy(), policy),
        case(Rotate, "GetPolicyVersion", Iam, get_version(), policy),
        case(Rotate, "ListEntitiesForPolicy", Iam, entities(), policy),
        case(Rotate, "GetRole", Iam, get_role(), policy),
        case(
            Rotate,
            "PutSecretValue",
            Secrets,
            denied!(
                aws_sdk_secretsmanager::Client::put_secret_value,
                sm::put_secret_value::PutSecretValueError
            ),
            "failed to update the value of secret ecr-pullthroughcache/{rack} (secretsmanager:PutSecretValue)",
        ),
        case(
            Disable,
            "GetParametersByPath",
            Ssm,
            read_parameters(),
            parameters,
        ),
        case(
            Disable,
            "DescribeSecret",
            Secrets,
            denied!(
                aws_sdk_secretsmanager::Client::describe_secret,
                sm::describe_secret::DescribeSecretError
            ),
            secret,
        ),
        case(
            Disable,
            "DescribePullThroughCacheRules",
            Ecr,
            read_rule(),
            rule,
        ),
        case(Disable, "GetPolicy", Iam, get_policy(), policy),
        case(Disable, "ListEntitiesForPolicy", Iam, entities(), policy),
        case(
            Disable,
            "DeleteParameter",
            Ssm,
            denied!(
                aws_sdk_ssm::Client::delete_parameter,
                ssm::delete_parameter::DeleteParameterError
            ),
            "failed to remove the published cache prefix (ssm:DeleteParameter)",
        ),
        case(
            Disable,
            "DeletePullThroughCacheRule",
            Ecr,
            denied!(
                aws_sdk_ecr::Client::delete_pull_through_cache_rule,
                ecr::delete_pull_through_cache_rule::DeletePullThroughCacheRuleError
            ),
            "failed to delete pull-through cache rule docker-hub-{rack} (ecr:DeletePullThroughCacheRule)",
        ),
        case(
            Disable,
            "DeleteSecret",
            Secrets,
            denied!(
                aws_sdk_secretsmanager::Client::delete_secret,
                sm::delete_secret::DeleteSecretError
            ),
            "failed to delete secret ecr-pullthroughcache/{rack} (secretsmanager:DeleteSecret)",
        ),
        case(
            Disable,
            "DetachRolePolicy",
            Iam,
            denied!(
                aws_sdk_iam::Client::detach_role_policy,
                iam::detach_role_policy::DetachRolePolicyError
            ),
            "failed to detach IAM policy {rack}-ecr-pull-through from role {rack}-nodes (iam:DetachRolePolicy)",
        ),
        case(
            Disable,
            "DeletePolicy",
            Iam,
            denied!(
                aws_sdk_iam::Client::delete_policy,
                iam::delete_policy::DeletePolicyError
            ),
            "failed to delete IAM policy {rack}-ecr-pull-through (iam:DeletePolicy)",
        ),
    ]);
    cases
}

/// Brings `rack` to the state just before `scenario`'s reconcile.
async fn prepare(context: &Context, rack: &Rack, scenario: Scenario) {
    support::create_roles(&context.clients, &[rack.nodes_role()]).await;
    store_parameters(
        &context.clients,
        rack,
        Some("true"),
        Some("alice"),
        Some("token-1"),
    )
    .await;
    if scenario == Scenario::Enable {
        return;
    }
    if matches!(scenario, Scenario::ChangeRetention | Scenario::Release) {
        support::set_retention(&context.clients, rack, Some("30")).await;
    }

    reconcile(context, rack)
        .await
        .expect("the clean enable succeeds");
    match scenario {
        Scenario::Rotate => {
            store_parameters(&context.clients, rack, None, None, Some("token-2")).await
        }
        Scenario::Disable => {
            store_parameters(&context.clients, rack, Some("false"), None, None).await
        }
        Scenario::Retain => support::set_retention(&context.clients, rack, Some("30")).await,
        Scenario::ChangeRetention => {
            support::set_retention(&context.clients, rack, Some("7")).await
        }
        Scenario::Release => support::set_retention(&context.clients, rack, None).await,
        Scenario::Enable => unreachable!(),
    }
}

/// Asserts that `rack` has exactly what `scenario` leads to, with nothing orphaned.
async fn assert_converged(context: &Context, rack: &Rack, scenario: Scenario) {
    let resources = rack_resources(&context.clients, rack).await;
    let stored = hubcache::ssm::read(&context.clients.ssm, &context.parameter_prefix, rack)
        .await
        .unwrap();

    if scenario == Scenario::Disable {
        assert_eq!(resources.rule_credential_arn, None, "{rack}: rule left");
        assert_eq!(resources.secret, None, "{rack}: secret left");
        assert_eq!(resources.policy_document, None, "{rack}: policy left");
        assert_eq!(stored.published_cache_prefix, None, "{rack}: prefix left");
        return;
    }

    let (days, recorded) = match scenario {
        Scenario::Retain => (Some(30), true),
        Scenario::ChangeRetention => (Some(7), true),
        _ => (None, false),
    };
    assert_eq!(
        support::template_count_number(&context.clients, &rack.rule_prefix()).await,
        days,
        "{rack}: template"
    );
    assert_eq!(
        stored.recorded_template.is_some(),
        recorded,
        "{rack}: record"
    );

    let password = if scenario == Scenario::Rotate {
        "token-2"
    } else {
        "token-1"
    };
    let (secret_arn, value) = resources
        .secret
        .unwrap_or_else(|| panic!("{rack}: no secret"));
    assert_eq!(
        value,
        json!({"username": "alice", "accessToken": password}),
        "{rack}"
    );
    assert_eq!(
        resources.rule_credential_arn,
        Some(Some(secret_arn)),
        "{rack}"
    );
    assert!(resources.policy_document.is_some(), "{rack}: no policy");
    assert_eq!(resources.policy_roles, [rack.nodes_role()], "{rack}");
    assert_eq!(
        stored.published_cache_prefix,
        Some(support::target().cache_uri(rack)),
        "{rack}"
    );
}

#[tokio::test]
async fn fault_at_every_call_then_converges() {
    for (index, case) in cases().into_iter().enumerate() {
        let rack = support::rack(&format!("fault-{index}"));
        let (clean, _log) = support::context();
        prepare(&clean, &rack, case.scenario).await;
        let (clients, _log) = faulty_clients(case.service, &case.rule);
        let faulty = Context {
            clients,
            ..clean.clone()
        };

        let error = reconcile(&faulty, &rack).await.expect_err(&format!(
            "{rack}: a fault at {} fails the reconcile",
            case.operation
        ));
        let message = error.to_string();
        let names = case.names.replace("{rack}", rack.as_str());

        assert!(message.starts_with(&format!("Rack {rack}: ")), "{message}");
        assert!(
            message.contains(&names),
            "{} should name {names:?}: {message}",
            case.operation
        );
        assert!(
            message.contains("AccessDeniedException: injected fault"),
            "{message}"
        );
        assert_eq!(
            case.rule.num_calls(),
            1,
            "{}: AccessDenied is not retried",
            case.operation
        );

        reconcile(&clean, &rack).await.unwrap_or_else(|error| {
            panic!(
                "{rack}: the reconcile after a fault at {} fails: {error}",
                case.operation
            )
        });
        assert_converged(&clean, &rack, case.scenario).await;
        let again = reconcile(&clean, &rack).await.unwrap();
        assert_eq!(
            again.changes,
            [],
            "{rack}: converged after a fault at {}",
            case.operation
        );
    }
}

#[tokio::test]
async fn fault_table_covers_every_call() {
    let covered: BTreeSet<(Scenario, &str)> = cases()
        .iter()
        .map(|case| (case.scenario, case.operation))
        .collect();
    let mut called = BTreeSet::new();

    let scenarios = [Scenario::Enable, Scenario::Rotate, Scenario::Disable];
    for (index, scenario) in scenarios.into_iter().chain(RETENTION_SCENARIOS).enumerate() {
        let rack = support::rack(&format!("cover-{index}"));
        let (context, log) = support::context();
        prepare(&context, &rack, scenario).await;
        log.clear();

        reconcile(&context, &rack).await.unwrap();

        for operation in CallLog::calls(&log) {
            called.insert((scenario, operation));
        }
    }

    // A failed credential check is reported, not a failure; its own test
    // below covers it.
    let reported = ["ValidatePullThroughCacheRule"];
    let missing: Vec<_> = called
        .iter()
        .filter(|(scenario, operation)| !covered.contains(&(*scenario, operation.as_str())))
        .filter(|(_, operation)| !reported.contains(&operation.as_str()))
        .collect();
    assert_eq!(
        missing,
        Vec::<&(Scenario, String)>::new(),
        "calls without a fault case"
    );
}

#[tokio::test]
async fn throttling_is_retried() {
    let rule = fault!(
        aws_sdk_secretsmanager::Client::get_secret_value,
        aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError,
        "ThrottlingException",
        2
    );
    let (clean, _log) = support::context();
    let rack = support::rack("retry-throttle");
    prepare(&clean, &rack, Scenario::Enable).await;
    let (clients, _log) = faulty_clients(Service::Secrets, &rule);
    let faulty = Context {
        clients,
        ..clean.clone()
    };

    let report = reconcile(&faulty, &rack)
        .await
        .expect("two throttled attempts are retried");

    // The rule counts attempts: two throttled, then one that reached the emulator.
    assert_eq!(rule.num_calls(), 3);
    assert_eq!(report.changes.len(), 5, "{:?}", report.changes);
    assert_converged(&clean, &rack, Scenario::Enable).await;
}

#[tokio::test]
async fn throttling_retries_are_bounded() {
    let rule = fault!(
        aws_sdk_secretsmanager::Client::get_secret_value,
        aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError,
        "ThrottlingException",
        10
    );
    let (clean, _log) = support::context();
    let rack = support::rack("retry-bounded");
    prepare(&clean, &rack, Scenario::Enable).await;
    let (clients, _log) = faulty_clients(Service::Secrets, &rule);
    let faulty = Context {
        clients,
        ..clean.clone()
    };

    let error = reconcile(&faulty, &rack).await.unwrap_err();

    assert_eq!(
        rule.num_calls(),
        3,
        "the standard retry policy makes 3 attempts"
    );
    assert!(
        error
            .to_string()
            .contains("ThrottlingException: injected fault"),
        "{error}"
    );
}

#[tokio::test]
async fn rule_quota_is_named() {
    let rule = fault!(
        aws_sdk_ecr::Client::create_pull_through_cache_rule,
        aws_sdk_ecr::operation::create_pull_through_cache_rule::CreatePullThroughCacheRuleError,
        "LimitExceededException",
        3
    );
    let (clean, _log) = support::context();
    let rack = support::rack("quota");
    prepare(&clean, &rack, Scenario::Enable).await;
    let (clients, _log) = faulty_clients(Service::Ecr, &rule);
    let faulty = Context {
        clients,
        ..clean.clone()
    };

    let message = reconcile(&faulty, &rack).await.unwrap_err().to_string();

    // The SDK counts LimitExceededException as throttling and retries it.
    assert_eq!(rule.num_calls(), 3);
    assert!(
        message.contains(
            "failed to create pull-through cache rule docker-hub-quota (ecr:CreatePullThroughCacheRule): \
             LimitExceededException: injected fault The registry has reached ECR's quota of \
             pull-through cache rules (50 by default; "
        ),
        "{message}"
    );
    assert!(
        message.contains(" rules exist). Delete unused rules"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn burst_of_fifty_converges() {
    let (context, _log) = support::context();
    let rack = support::enabled_rack(&context, "burst-50", "token-1").await;

    let runs: Vec<_> = (0..50)
        .map(|_| {
            let context = context.clone();
            let rack = rack.clone();
            tokio::spawn(async move { reconcile(&context, &rack).await })
        })
        .collect();
    let mut changes = Vec::new();
    for run in runs {
        let report = run.await.unwrap().expect("no reconcile of the burst fails");
        changes.extend(report.changes.iter().map(ToString::to_string));
    }

    let count = |start: &str| {
        changes
            .iter()
            .filter(|change| change.starts_with(start))
            .count()
    };
    assert_eq!(count("create secret"), 1, "{changes:?}");
    assert_eq!(count("create pull-through cache rule"), 1, "{changes:?}");
    assert_eq!(count("create IAM policy"), 1, "{changes:?}");
    assert_converged(&context, &rack, Scenario::Enable).await;
    let rules = context
        .clients
        .ecr
        .describe_pull_through_cache_rules()
        .send()
        .await
        .unwrap();
    let named: Vec<_> = rules
        .pull_through_cache_rules()
        .iter()
        .filter(|rule| rule.ecr_repository_prefix() == Some("docker-hub-burst-50"))
        .collect();
    assert_eq!(named.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn alternating_burst_settles_on_last_setting() {
    let (context, _log) = support::context();
    let rack = support::enabled_rack(&context, "burst-flip", "token-1").await;

    let runs: Vec<_> = (0..50)
        .map(|index| {
            let context = context.clone();
            let rack = rack.clone();
            tokio::spawn(async move {
                let flag = if index % 2 == 0 { "true" } else { "false" };
                store_parameters(&context.clients, &rack, Some(flag), None, None).await;
                reconcile(&context, &rack).await
            })
        })
        .collect();
    for run in runs {
        if let Err(error) = run.await.unwrap() {
            // Reconciles that overlap opposite settings may lose to each
            // other; the trailing event's reconcile below settles the rack.
            let message = error.to_string();
            assert!(message.starts_with("Rack burst-flip: "), "{message}");
        }
    }
    store_parameters(&context.clients, &rack, Some("false"), None, None).await;

    reconcile(&context, &rack)
        .await
        .expect("the reconcile of the last change converges");

    assert_converged(&context, &rack, Scenario::Disable).await;
    let again = reconcile(&context, &rack).await.unwrap();
    assert_eq!(again.changes, []);
}

#[tokio::test]
async fn adopts_rule_pointing_elsewhere() {
    let (context, log) = support::context();
    let rack = support::enabled_rack(&context, "adopt-rule", "token-1").await;
    let other_arn =
        support::create_secret_by_hand(&context.clients, "ecr-pullthroughcache/adopt-rule-other")
            .await;
    support::create_rule_by_hand(&context.clients, "docker-hub-adopt-rule", &other_arn).await;
    log.clear();

    let report = reconcile(&context, &rack).await.unwrap();

    assert!(
        report.changes.iter().any(|change| change.to_string()
            == "update the credential of pull-through cache rule docker-hub-adopt-rule"),
        "{:?}",
        report.changes
    );
    // A rack without its secret is taken for a new one, so the create is
    // tried first; ECR rejects it and the reconcile observes again.
    assert!(
        log.writes()
            .contains(&"UpdatePullThroughCacheRule".to_owned())
    );
    assert_converged(&context, &rack, Scenario::Enable).await;
}

#[tokio::test]
async fn adopts_policy_with_five_versions() {
    let (context, _log) = support::context();
    let rack = support::enabled_rack(&context, "adopt-policy", "token-1").await;
    let stale = |index: usize| {
        json!({"Version": "2012-10-17", "Statement": [{"Sid": format!("Stale{index}"), "Effect": "Allow", "Action": "ecr:DescribeImages", "Resource": "*"}]}).to_string()
    };
    let arn = context
        .clients
        .iam
        .create_policy()
        .policy_name("adopt-policy-ecr-pull-through")
        .policy_document(stale(1))
        .send()
        .await
        .unwrap()
        .policy()
        .unwrap()
        .arn()
        .unwrap()
        .to_owned();
    for index in 2..=5 {
        context
            .clients
            .iam
            .create_policy_version()
            .policy_arn(&arn)
            .policy_document(stale(index))
            .set_as_default(true)
            .send()
            .await
            .unwrap();
    }

    let report = reconcile(&context, &rack).await.unwrap();

    let changes: Vec<String> = report.changes.iter().map(ToString::to_string).collect();
    assert!(
        changes
            .contains(&"delete version v1 of IAM policy adopt-policy-ecr-pull-through".to_owned()),
        "{changes:?}"
    );
    assert!(
        changes.contains(
            &"update the document of IAM policy adopt-policy-ecr-pull-through".to_owned()
        ),
        "{changes:?}"
    );
    assert_converged(&context, &rack, Scenario::Enable).await;
    let versions = context
        .clients
        .iam
        .list_policy_versions()
        .policy_arn(&arn)
        .send()
        .await
        .unwrap();
    let ids: BTreeSet<&str> = versions
        .versions()
        .iter()
        .filter_map(|version| version.version_id())
        .collect();
    assert_eq!(ids, BTreeSet::from(["v2", "v3", "v4", "v5", "v6"]));
}

#[tokio::test]
async fn restores_secret_pending_deletion() {
    let (context, _log) = support::context();
    let rack = support::enabled_rack(&context, "adopt-deleted", "token-1").await;
    reconcile(&context, &rack).await.unwrap();
    context
        .clients
        .secrets
        .delete_secret()
        .secret_id("ecr-pullthroughcache/adopt-deleted")
        .recovery_window_in_days(7)
        .send()
        .await
        .unwrap();

    let report = reconcile(&context, &rack).await.unwrap();

    let changes: Vec<String> = report.changes.iter().map(ToString::to_string).collect();
    assert_eq!(
        changes,
        [
            "restore secret ecr-pullthroughcache/adopt-deleted",
            "update the value of secret ecr-pullthroughcache/adopt-deleted",
        ]
    );
    assert_converged(&context, &rack, Scenario::Enable).await;
}

#[tokio::test]
async fn scheduled_repair_restores_drift() {
    const PREFIX: &str = "/drift/";
    let (mut context, log) = support::context();
    context.parameter_prefix = PREFIX.into();
    let drifted = support::rack("drift-a");
    let steady = support::rack("drift-b");
    for rack in [&drifted, &steady] {
        support::create_roles(&context.clients, &[rack.nodes_role()]).await;
        for (parameter, value) in [
            (hubcache::settings::Parameter::Flag, "true"),
            (hubcache::settings::Parameter::Username, "alice"),
            (hubcache::settings::Parameter::Password, "token-1"),
        ] {
            hubcache::ssm::write(&context.clients.ssm, PREFIX, rack, parameter, value)
                .await
                .unwrap();
        }
        reconcile(&context, rack).await.unwrap();
    }
    let policy_arn = support::target().policy_arn(&drifted);
    context
        .clients
        .ecr
        .delete_pull_through_cache_rule()
        .ecr_repository_prefix("docker-hub-drift-a")
        .send()
        .await
        .unwrap();
    context
        .clients
        .iam
        .detach_role_policy()
        .role_name("drift-a-nodes")
        .policy_arn(&policy_arn)
        .send()
        .await
        .unwrap();
    let handler =
        hubcache::lambda::Handler::with_clients(context.clients.clone(), PREFIX.into(), None);
    let mut invocation = lambda_runtime::Context::default();
    invocation.invoked_function_arn =
        "arn:aws:lambda:us-east-1:123456789012:function:hubcache".into();
    let scheduled = json!({
        "version": "0",
        "id": "0d7c4b1a-3b0e-4c55-9f3e-6f1d2a7b8c9d",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2026-12-04T18:00:00Z",
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/hubcache-drift-repair"],
        "detail": {}
    });
    log.clear();

    let result = handler
        .handle(lambda_runtime::LambdaEvent::new(
            scheduled.clone(),
            invocation.clone(),
        ))
        .await
        .unwrap();

    assert_eq!(
        result,
        json!({"repaired": [
            {"rack": "drift-a", "enabled": true, "changes": [
                "create pull-through cache rule docker-hub-drift-a",
                "attach IAM policy drift-a-ecr-pull-through to role drift-a-nodes",
            ], "upstreamCredentialsValid": true, "upstreamCheck": "Docker Hub accepts the credential"},
            {"rack": "drift-b", "enabled": true, "changes": []},
        ]})
    );
    assert_converged(&context, &drifted, Scenario::Enable).await;
    log.clear();
    let converged = handler
        .handle(lambda_runtime::LambdaEvent::new(scheduled, invocation))
        .await
        .unwrap();
    assert_eq!(converged["repaired"][0]["changes"], json!([]));
    assert_eq!(
        log.writes(),
        Vec::<String>::new(),
        "a converged run writes nothing"
    );
}

/// Enables a fresh rack through clients whose ValidatePullThroughCacheRule
/// responds with `rule`, and returns the credential check the report carries.
async fn upstream_check_with(rack: &str, rule: &Rule) -> hubcache::reconcile::UpstreamCheck {
    let (clean, _log) = support::context();
    let rack = support::rack(rack);
    prepare(&clean, &rack, Scenario::Enable).await;
    let (clients, _log) = faulty_clients(Service::Ecr, rule);
    let faulty = Context {
        clients,
        ..clean.clone()
    };

    let report = reconcile(&faulty, &rack)
        .await
        .expect("a credential check never fails the reconcile");

    assert_converged(&clean, &rack, Scenario::Enable).await;
    report
        .upstream
        .expect("the rule was created, so the credential is checked")
}

#[tokio::test]
async fn rejected_credential_is_reported() {
    let rule = mock!(aws_sdk_ecr::Client::validate_pull_through_cache_rule).then_output(|| {
        aws_sdk_ecr::operation::validate_pull_through_cache_rule::ValidatePullThroughCacheRuleOutput::builder()
            .is_valid(false)
            .failure("401 Unauthorized from registry-1.docker.io")
            .build()
    });

    let check = upstream_check_with("upstream-rejected", &rule).await;

    assert_eq!(
        check,
        hubcache::reconcile::UpstreamCheck::Invalid(
            "401 Unauthorized from registry-1.docker.io".into()
        )
    );
}

#[tokio::test]
async fn failed_credential_check_is_reported() {
    let rule = fault!(
        aws_sdk_ecr::Client::validate_pull_through_cache_rule,
        aws_sdk_ecr::operation::validate_pull_through_cache_rule::ValidatePullThroughCacheRuleError,
        "AccessDeniedException",
        1
    );

    let check = upstream_check_with("upstream-failed", &rule).await;

    let hubcache::reconcile::UpstreamCheck::Unknown(message) = check else {
        panic!("expected an unknown outcome, got {check:?}");
    };
    assert!(
        message.starts_with("AccessDeniedException: injected fault"),
        "{message}"
    );
    assert!(message.ends_with("allows this call."), "{message}");
}
