//! Runs the `hubcache` binary against the AWS emulator and checks its exact output.

mod support;

use std::process::{Command, Output};

use hubcache::settings::Parameter;
use serde_json::json;

const FIRST_LINE: &str =
    "ecr_docker_hub_cache=true requires docker_hub_username and docker_hub_password.";

fn hubcache(endpoint: &str, arguments: &[&str]) -> Output {
    support::hubcache_at(endpoint, arguments)
}

fn run(arguments: &[&str]) -> Output {
    hubcache(&support::endpoint(), arguments)
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

async fn stored(rack: &str) -> hubcache::settings::StoredParameters {
    let (clients, _) = support::logged_clients();
    hubcache::ssm::read(&clients.ssm, support::PREFIX, &support::rack(rack))
        .await
        .unwrap()
}

#[tokio::test]
async fn set_enable_without_credentials_fails() {
    let output = run(&[
        "params",
        "set",
        "ecr_docker_hub_cache=true",
        "--rack",
        "c-nocreds",
    ]);

    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stdout(&output), "");
    assert_eq!(
        stderr(&output),
        format!(
            "{FIRST_LINE}\n\
             Set all three in one call: hubcache params set ecr_docker_hub_cache=true \
             docker_hub_username=USER docker_hub_password=TOKEN --rack c-nocreds\n\
             Or set the two credentials first: hubcache params set docker_hub_username=USER \
             docker_hub_password=TOKEN --rack c-nocreds\n"
        )
    );
    assert_eq!(stored("c-nocreds").await, Default::default());
}

#[tokio::test]
async fn set_all_three_then_get() {
    let set = run(&[
        "params",
        "set",
        "ecr_docker_hub_cache=true",
        "docker_hub_username=alice",
        "docker_hub_password=dckr_pat_cli_secret",
        "--rack",
        "c-all",
    ]);
    let get = run(&["params", "get", "--rack", "c-all"]);

    assert_eq!(stderr(&set), "");
    assert_eq!(stdout(&set), "Setting parameters... OK\n");
    assert!(set.status.success());
    assert_eq!(
        stdout(&get),
        "ecr_docker_hub_cache                 true\n\
         docker_hub_username                  alice\n\
         docker_hub_password                  ********\n\
         ecr_docker_hub_cache_node_roles      (not set)\n\
         ecr_docker_hub_cache_retention_days  (not set)\n"
    );
    assert!(!stdout(&get).contains("dckr_pat_cli_secret"));
    let parameters = stored("c-all").await;
    assert_eq!(
        parameters.get(Parameter::Password),
        Some("dckr_pat_cli_secret")
    );
}

#[tokio::test]
async fn password_stored_as_secure_string() {
    let set = run(&[
        "params",
        "set",
        "docker_hub_username=alice",
        "docker_hub_password=token",
        "--rack",
        "c-secure",
    ]);
    assert!(set.status.success(), "{}", stderr(&set));
    let (clients, _) = support::logged_clients();

    let password = clients
        .ssm
        .get_parameter()
        .name("/convox/c-secure/docker_hub_password")
        .send()
        .await
        .unwrap();
    let username = clients
        .ssm
        .get_parameter()
        .name("/convox/c-secure/docker_hub_username")
        .send()
        .await
        .unwrap();

    let kind = |output: &aws_sdk_ssm::operation::get_parameter::GetParameterOutput| {
        output
            .parameter()
            .unwrap()
            .r#type()
            .unwrap()
            .as_str()
            .to_owned()
    };
    assert_eq!(kind(&password), "SecureString");
    assert_eq!(kind(&username), "String");
}

#[tokio::test]
async fn set_flag_alone_with_stored_credentials() {
    let credentials = run(&[
        "params",
        "set",
        "docker_hub_username=alice",
        "docker_hub_password=token",
        "--rack",
        "c-later",
    ]);
    assert!(credentials.status.success(), "{}", stderr(&credentials));

    let enable = run(&[
        "params",
        "set",
        "ecr_docker_hub_cache=true",
        "--rack",
        "c-later",
    ]);

    assert_eq!(stderr(&enable), "");
    assert_eq!(stdout(&enable), "Setting parameters... OK\n");
    assert_eq!(stored("c-later").await.flag.as_deref(), Some("true"));
}

#[tokio::test]
async fn set_rejects_unknown_key() {
    let output = run(&["params", "set", "docker_hub_token=x", "--rack", "c-unknown"]);

    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        "Unknown parameter \"docker_hub_token\". hubcache manages ecr_docker_hub_cache, \
         docker_hub_username, docker_hub_password, ecr_docker_hub_cache_node_roles and \
         ecr_docker_hub_cache_retention_days.\n"
    );
    assert_eq!(stored("c-unknown").await, Default::default());
}

#[tokio::test]
async fn reconcile_prints_changes() {
    let (context, _) = support::context();
    support::create_roles(&context.clients, &["c-reconcile-nodes".to_owned()]).await;
    let set = run(&[
        "params",
        "set",
        "ecr_docker_hub_cache=true",
        "docker_hub_username=alice",
        "docker_hub_password=token",
        "--rack",
        "C-Reconcile",
    ]);
    assert!(set.status.success(), "{}", stderr(&set));

    let first = run(&["reconcile", "--rack", "C-Reconcile"]);
    let second = run(&["reconcile", "--rack", "c-reconcile"]);

    assert_eq!(stderr(&first), "");
    assert_eq!(
        stdout(&first),
        "Rack c-reconcile: create secret ecr-pullthroughcache/c-reconcile\n\
         Rack c-reconcile: create pull-through cache rule docker-hub-c-reconcile\n\
         Rack c-reconcile: create IAM policy c-reconcile-ecr-pull-through\n\
         Rack c-reconcile: attach IAM policy c-reconcile-ecr-pull-through to role c-reconcile-nodes\n\
         Rack c-reconcile: publish cache prefix \
         123456789012.dkr.ecr.us-east-1.amazonaws.com/docker-hub-c-reconcile\n\
         Rack c-reconcile: Docker Hub accepts the credential\n"
    );
    assert_eq!(stdout(&second), "Rack c-reconcile: no changes\n");
    let resources = support::rack_resources(&context.clients, &support::rack("c-reconcile")).await;
    assert_eq!(
        resources.secret.map(|(_, value)| value),
        Some(json!({"username": "alice", "accessToken": "token"}))
    );
}

#[test]
fn long_rack_rejected_without_calls() {
    // Nothing listens on port 9, so a call would fail with a connection error.
    let output = hubcache(
        "http://127.0.0.1:9",
        &["reconcile", "--rack", "abcdefghijklmnopqrst"],
    );

    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        "Rack name \"abcdefghijklmnopqrst\" is 20 characters long, but at most 19 are allowed \
         because the ECR repository prefix docker-hub-<rack> is limited to 30 characters.\n"
    );
}

#[tokio::test]
async fn set_rejects_duplicate_key() {
    let output = run(&[
        "params",
        "set",
        "docker_hub_username=a",
        "docker_hub_username=b",
        "--rack",
        "c-duplicate",
    ]);

    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        "Parameter docker_hub_username is given more than once; give each parameter at most once \
         per call.\n"
    );
    assert_eq!(stored("c-duplicate").await, Default::default());
}

#[test]
fn missing_region_is_explained() {
    let output = Command::new(env!("CARGO_BIN_EXE_hubcache"))
        .args(["params", "get", "--rack", "c-region"])
        .env_clear()
        .env("AWS_ACCESS_KEY_ID", "hubcache-test-key")
        .env("AWS_SECRET_ACCESS_KEY", "hubcache-test-secret")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .output()
        .unwrap();

    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        "No AWS region is set. Pass --region or set AWS_REGION.\n"
    );
}

#[test]
fn invalid_prefix_is_rejected() {
    let output = hubcache(
        "http://127.0.0.1:9",
        &[
            "params",
            "get",
            "--rack",
            "c-prefix",
            "--parameter-prefix",
            "convox",
        ],
    );

    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        "Parameter prefix \"convox\" is invalid: it must be an SSM path that starts and ends with \
         '/', such as /convox/.\n"
    );
}

#[test]
fn unreachable_endpoint_is_explained() {
    let output = hubcache("http://127.0.0.1:9", &["params", "get", "--rack", "c-down"]);

    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        message.starts_with("Failed to read parameters under /convox/c-down/: dispatch failure"),
        "{message}"
    );
    assert!(
        message.ends_with(
            "Check that the AWS endpoint (--endpoint-url or AWS_ENDPOINT_URL) is reachable and \
             that a region is set.\n"
        ),
        "{message}"
    );
    assert!(
        !message.contains("DispatchFailure {"),
        "no Debug dump: {message}"
    );
}

#[tokio::test]
async fn plan_matches_reconcile() {
    let (context, _) = support::context();
    let rack = support::enabled_rack(&context, "c-plan", "token").await;
    // A rule made by hand: the plan must see it, as the reconcile then will.
    let secret_arn =
        support::create_secret_by_hand(&context.clients, "ecr-pullthroughcache/c-plan-by-hand")
            .await;
    support::create_rule_by_hand(&context.clients, "docker-hub-c-plan", &secret_arn).await;
    let before = support::rack_resources(&context.clients, &rack).await;

    let planned = run(&["plan", "--rack", "c-plan"]);
    let after_plan = support::rack_resources(&context.clients, &rack).await;
    let published_after_plan = stored("c-plan").await.published_cache_prefix;
    let reconciled = run(&["reconcile", "--rack", "c-plan"]);
    let converged = run(&["plan", "--rack", "c-plan"]);

    assert_eq!(planned.status.code(), Some(2), "{}", stderr(&planned));
    assert_eq!(
        stdout(&planned),
        "Rack c-plan: create secret ecr-pullthroughcache/c-plan\n\
         Rack c-plan: update the credential of pull-through cache rule docker-hub-c-plan\n\
         Rack c-plan: create IAM policy c-plan-ecr-pull-through\n\
         Rack c-plan: attach IAM policy c-plan-ecr-pull-through to role c-plan-nodes\n\
         Rack c-plan: publish cache prefix 123456789012.dkr.ecr.us-east-1.amazonaws.com/docker-hub-c-plan\n"
    );
    assert_eq!(after_plan, before, "plan writes nothing");
    assert_eq!(published_after_plan, None, "plan publishes nothing");
    assert_eq!(
        stdout(&reconciled),
        format!(
            "{}Rack c-plan: Docker Hub accepts the credential\n",
            stdout(&planned)
        ),
        "the reconcile makes the planned changes"
    );
    assert_eq!(converged.status.code(), Some(0));
    assert_eq!(stdout(&converged), "Rack c-plan: no changes\n");
}

#[test]
fn plan_error_exits_one() {
    let output = hubcache("http://127.0.0.1:9", &["plan", "--rack", "c-plan-down"]);

    assert_eq!(output.status.code(), Some(1));
}

#[tokio::test]
async fn plan_matches_reconcile_with_retention() {
    let (context, _) = support::context();
    let rack = support::enabled_rack(&context, "c-keep", "token").await;
    hubcache::reconcile::reconcile(&context, &rack)
        .await
        .unwrap();
    let set = run(&[
        "params",
        "set",
        "ecr_docker_hub_cache_retention_days=90",
        "--rack",
        "c-keep",
    ]);
    assert_eq!(stderr(&set), "");

    let planned = run(&["plan", "--rack", "c-keep"]);
    let recorded_after_plan = stored("c-keep").await.recorded_template;
    let reconciled = run(&["reconcile", "--rack", "c-keep"]);
    let converged = run(&["plan", "--rack", "c-keep"]);

    assert_eq!(planned.status.code(), Some(2), "{}", stderr(&planned));
    assert_eq!(
        stdout(&planned),
        "Rack c-keep: record repository creation template docker-hub-c-keep as managed by hubcache\n\
         Rack c-keep: create repository creation template docker-hub-c-keep (expire images not pulled for 90 days)\n"
    );
    assert_eq!(recorded_after_plan, None, "plan records nothing");
    assert_eq!(stdout(&reconciled), stdout(&planned));
    assert_eq!(converged.status.code(), Some(0));
    assert_eq!(stdout(&converged), "Rack c-keep: no changes\n");
}

#[tokio::test]
async fn set_rejects_invalid_retention() {
    for value in ["0", "two", "-1", "7d"] {
        let argument = format!("ecr_docker_hub_cache_retention_days={value}");

        let output = run(&["params", "set", &argument, "--rack", "c-badkeep"]);

        assert_eq!(output.status.code(), Some(1), "{value:?}");
        assert_eq!(
            stderr(&output),
            format!(
                "Parameter ecr_docker_hub_cache_retention_days of rack c-badkeep must be a whole \
                 number of days from 1 to 2147483647, but it is {value:?}.\n\
                 Set a number of days: hubcache params set ecr_docker_hub_cache_retention_days=30 \
                 --rack c-badkeep\n\
                 Or remove it to keep every cached image: hubcache params set \
                 ecr_docker_hub_cache_retention_days= --rack c-badkeep\n"
            )
        );
    }
    assert_eq!(stored("c-badkeep").await, Default::default());
}
