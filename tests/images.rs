//! Runs `hubcache image` against racks on the AWS emulator.

mod support;

use std::process::Output;

use serde_json::json;

const MANIFEST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/convox.yml");

fn hubcache(arguments: &[&str]) -> Output {
    support::hubcache_at(&support::endpoint(), arguments)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn resources_follow_published_prefix() {
    let (context, _log) = support::context();
    let rack = support::enabled_rack(&context, "i-images", "token").await;
    hubcache::reconcile::reconcile(&context, &rack)
        .await
        .unwrap();

    let enabled = hubcache(&["image", "resources", "--rack", "i-images", "-f", MANIFEST]);
    support::store_parameters(&context.clients, &rack, Some("false"), None, None).await;
    hubcache::reconcile::reconcile(&context, &rack)
        .await
        .unwrap();
    let disabled = hubcache(&["image", "resources", "--rack", "i-images", "-f", MANIFEST]);

    let cache = "123456789012.dkr.ecr.us-east-1.amazonaws.com/docker-hub-i-images";
    assert_eq!(text(&enabled.stderr), "");
    assert_eq!(
        text(&enabled.stdout),
        format!(
            "cache (redis): {cache}/library/redis:4.0.10 (through the cache)\n\
             database (postgres): {cache}/library/postgres:13.4 (through the cache)\n\
             legacy (mysql): {cache}/library/mysql:5.7.23 (through the cache)\n\
             maps (postgis): {cache}/postgis/postgis:10-3.2 (through the cache)\n\
             maria (mariadb): {cache}/library/mariadb:10.6.0 (through the cache)\n\
             queue (redis): quay.io/opstree/redis:v7.0.15 (unchanged: the resource sets its own image)\n\
             sessions (memcached): {cache}/library/memcached:1.4.34 (through the cache)\n"
        )
    );
    assert_eq!(
        text(&disabled.stdout),
        "cache (redis): redis:4.0.10 (unchanged: the rack's cache is disabled)\n\
         database (postgres): postgres:13.4 (unchanged: the rack's cache is disabled)\n\
         legacy (mysql): mysql:5.7.23 (unchanged: the rack's cache is disabled)\n\
         maps (postgis): postgis/postgis:10-3.2 (unchanged: the rack's cache is disabled)\n\
         maria (mariadb): mariadb:10.6.0 (unchanged: the rack's cache is disabled)\n\
         queue (redis): quay.io/opstree/redis:v7.0.15 (unchanged: the resource sets its own image)\n\
         sessions (memcached): memcached:1.4.34 (unchanged: the rack's cache is disabled)\n"
    );
    assert_eq!(
        text(&disabled.stderr),
        "Rack i-images publishes no cache prefix (ecr_docker_hub_cache_prefix is not set), so \
         images are not rewritten.\n"
    );
}

#[tokio::test]
async fn published_prefix_written_once() {
    let (context, log) = support::context();
    let rack = support::enabled_rack(&context, "i-publish", "token").await;
    hubcache::reconcile::reconcile(&context, &rack)
        .await
        .unwrap();
    log.clear();

    let again = hubcache::reconcile::reconcile(&context, &rack)
        .await
        .unwrap();
    let stored = hubcache::ssm::read(&context.clients.ssm, support::PREFIX, &rack)
        .await
        .unwrap();

    assert_eq!(again.changes, []);
    assert_eq!(log.writes(), Vec::<String>::new());
    assert_eq!(
        stored.published_cache_prefix.as_deref(),
        Some("123456789012.dkr.ecr.us-east-1.amazonaws.com/docker-hub-i-publish")
    );
}

#[test]
fn rewrite_with_prefix() {
    let output = hubcache(&[
        "image",
        "rewrite",
        "--prefix",
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/docker-hub-prod/",
        "redis",
        "bitnami/redis:7.2",
        "ghcr.io/org/tool:1",
    ]);

    assert_eq!(text(&output.stderr), "");
    assert_eq!(
        text(&output.stdout),
        "redis -> 123456789012.dkr.ecr.us-east-1.amazonaws.com/docker-hub-prod/library/redis:latest (through the cache)\n\
         bitnami/redis:7.2 -> 123456789012.dkr.ecr.us-east-1.amazonaws.com/docker-hub-prod/bitnami/redis:7.2 (through the cache)\n\
         ghcr.io/org/tool:1 -> ghcr.io/org/tool:1 (unchanged: registry ghcr.io is not Docker Hub)\n"
    );
}

#[test]
fn rewrite_rejects_invalid_reference() {
    let output = hubcache(&[
        "image",
        "rewrite",
        "--prefix",
        "example.com/cache",
        "Redis:7",
    ]);

    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).starts_with("Invalid image reference \"Redis:7\": "),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn malformed_manifest_names_location() {
    let path = std::env::temp_dir().join(format!("hubcache-bad-{}.yml", std::process::id()));
    std::fs::write(
        &path,
        "resources:\n  cache:\n    type: redis\n   image: [x\n",
    )
    .unwrap();

    let output = hubcache(&[
        "image",
        "resources",
        "--prefix",
        "example.com/cache",
        "-f",
        path.to_str().unwrap(),
    ]);
    std::fs::remove_file(&path).unwrap();

    let message = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        message.starts_with(&format!("{}: line 4, column ", path.display())),
        "{message}"
    );
}

#[tokio::test]
async fn handler_ignores_events_of_its_outputs() {
    let (clients, log) = support::logged_clients();
    let handler = hubcache::lambda::Handler::with_clients(clients, support::PREFIX.into(), None);
    let mut payload: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/events/parameter-flag-update.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let mut context = lambda_runtime::Context::default();
    context.invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:hubcache".into();

    for output in [
        hubcache::ssm::CACHE_PREFIX_PARAMETER,
        hubcache::ssm::TEMPLATE_PARAMETER,
    ] {
        let name = format!("/convox/demo/{output}");
        payload["detail"]["name"] = json!(name);

        let result = handler
            .handle(lambda_runtime::LambdaEvent::new(
                payload.clone(),
                context.clone(),
            ))
            .await
            .unwrap();

        assert_eq!(
            result,
            json!({"ignored": format!("parameter {name} is not a hubcache parameter under /convox/")})
        );
    }
    assert_eq!(
        log.calls(),
        Vec::<String>::new(),
        "no AWS call for its own outputs"
    );
}

#[test]
fn rewrite_continues_past_invalid() {
    let prefix = "123456789012.dkr.ecr.us-east-1.amazonaws.com/docker-hub-prod";
    let output = hubcache(&[
        "image",
        "rewrite",
        "--prefix",
        prefix,
        "redis:7",
        "Redis:7",
        "bitnami/redis:7",
    ]);

    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        text(&output.stdout),
        format!(
            "redis:7 -> {prefix}/library/redis:7 (through the cache)\n\
             bitnami/redis:7 -> {prefix}/bitnami/redis:7 (through the cache)\n"
        )
    );
    assert_eq!(
        text(&output.stderr),
        "Invalid image reference \"Redis:7\": invalid reference format; repository names must be \
         lowercase.\n\
         1 of 3 image references could not be resolved; see the messages above.\n"
    );
}

#[test]
fn rewrite_rejects_invalid_prefix() {
    for prefix in [
        "",
        "https://123456789012.dkr.ecr.us-east-1.amazonaws.com/docker-hub-prod",
        "not a uri",
    ] {
        let output = hubcache(&["image", "rewrite", "--prefix", prefix, "redis:7"]);

        assert_eq!(output.status.code(), Some(1), "{prefix:?}");
        assert_eq!(text(&output.stdout), "", "{prefix:?}");
        assert!(
            text(&output.stderr).starts_with(&format!(
                "Cache prefix {prefix:?} is invalid: expected a registry host"
            )),
            "{prefix:?}: {}",
            text(&output.stderr)
        );
    }
}
