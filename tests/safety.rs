//! The password never reaches a log line, racks with similar names never
//! touch each other, and bad input is rejected before any AWS write.

mod support;

use hubcache::reconcile::reconcile;
use hubcache::settings::Parameter;
use serde_json::json;
use support::{context, enabled_rack, rack_resources, store_parameters};

#[tokio::test]
async fn similar_rack_names_stay_apart() {
    let (context, _log) = context();
    let short = enabled_rack(&context, "a", "token-a").await;
    let longer = enabled_rack(&context, "ab", "token-ab").await;
    let dashed = enabled_rack(&context, "a-b", "token-a-b").await;
    for rack in [&longer, &dashed] {
        reconcile(&context, rack).await.unwrap();
    }
    let longer_before = rack_resources(&context.clients, &longer).await;
    let dashed_before = rack_resources(&context.clients, &dashed).await;

    reconcile(&context, &short).await.unwrap();
    store_parameters(&context.clients, &short, Some("false"), None, None).await;
    reconcile(&context, &short).await.unwrap();

    assert_eq!(
        rack_resources(&context.clients, &longer).await,
        longer_before
    );
    assert_eq!(
        rack_resources(&context.clients, &dashed).await,
        dashed_before
    );
    assert!(longer_before.secret.is_some());
    assert!(dashed_before.secret.is_some());
    let short_after = rack_resources(&context.clients, &short).await;
    assert_eq!(short_after.secret, None);
    assert_eq!(short_after.rule_credential_arn, None);
}

#[tokio::test]
async fn password_special_characters_round_trip() {
    let password = "q\"uote\\back\nnew line\ttab ünï 密码 '";
    let (context, _log) = context();
    let rack = enabled_rack(&context, "s-chars", password).await;

    reconcile(&context, &rack).await.unwrap();
    let again = reconcile(&context, &rack).await.unwrap();

    let (_, value) = rack_resources(&context.clients, &rack)
        .await
        .secret
        .unwrap();
    assert_eq!(value, json!({"username": "alice", "accessToken": password}));
    assert_eq!(again.changes, [], "the stored value compares equal");
}

#[tokio::test]
async fn longest_rack_name_works() {
    let (context, _log) = context();
    let rack = enabled_rack(&context, "s-nineteen-chars-xy", "token").await;

    reconcile(&context, &rack).await.unwrap();

    assert_eq!(rack.rule_prefix().len(), 30);
    let resources = rack_resources(&context.clients, &rack).await;
    assert!(resources.rule_credential_arn.is_some());
}

#[tokio::test]
async fn invalid_flags_write_nothing() {
    for (index, value) in ["TRUE", "yes", "1", "True", "false "]
        .into_iter()
        .enumerate()
    {
        let (context, log) = context();
        let rack = support::rack(&format!("s-flag-{index}"));
        store_parameters(
            &context.clients,
            &rack,
            Some(value),
            Some("alice"),
            Some("token"),
        )
        .await;
        log.clear();

        let error = reconcile(&context, &rack).await.unwrap_err();

        assert_eq!(
            error.to_string(),
            format!(
                "Parameter ecr_docker_hub_cache must be true or false, but it is {value:?}. Set it \
                 to one of them, for example: hubcache params set ecr_docker_hub_cache=false \
                 --rack {rack}"
            )
        );
        assert_eq!(log.calls(), ["GetParametersByPath"], "{value:?}");
    }
}

#[tokio::test]
async fn invalid_setting_keeps_working_cache() {
    let (context, log) = context();
    let rack = enabled_rack(&context, "s-keep", "token").await;
    reconcile(&context, &rack).await.unwrap();
    let before = rack_resources(&context.clients, &rack).await;

    for (parameter, value) in [(Parameter::Flag, Some("yes")), (Parameter::Username, None)] {
        store_parameters(
            &context.clients,
            &rack,
            Some("true"),
            Some("alice"),
            Some("token"),
        )
        .await;
        match value {
            Some(value) => hubcache::ssm::write(
                &context.clients.ssm,
                support::PREFIX,
                &rack,
                parameter,
                value,
            )
            .await
            .unwrap(),
            None => hubcache::ssm::delete(&context.clients.ssm, support::PREFIX, &rack, parameter)
                .await
                .unwrap(),
        }
        log.clear();

        reconcile(&context, &rack).await.unwrap_err();

        assert_eq!(log.calls(), ["GetParametersByPath"], "{parameter}");
        assert_eq!(
            rack_resources(&context.clients, &rack).await,
            before,
            "{parameter}"
        );
    }
}
