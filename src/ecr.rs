//! The rack's ECR pull-through cache rule, and the registry id the CLI uses
//! as the account.

use aws_sdk_ecr::Client;
use aws_sdk_ecr::types::UpstreamRegistry;

use crate::error::AwsError;
use crate::names::{Rack, UPSTREAM_REGISTRY_URL};
use crate::plan::ObservedRule;

/// Reads the rule whose prefix is exactly `docker-hub-<rack>`.
pub async fn observe(client: &Client, rack: &Rack) -> Result<Option<ObservedRule>, AwsError> {
    let result = client
        .describe_pull_through_cache_rules()
        .ecr_repository_prefixes(rack.rule_prefix())
        .send()
        .await;

    let output = match result {
        Ok(output) => output,
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|e| e.is_pull_through_cache_rule_not_found_exception()) =>
        {
            return Ok(None);
        }
        Err(error) => return Err(AwsError::from_sdk(error)),
    };

    let prefix = rack.rule_prefix();
    let rule = output
        .pull_through_cache_rules()
        .iter()
        .find(|rule| rule.ecr_repository_prefix() == Some(prefix.as_str()));
    Ok(rule.map(|rule| ObservedRule {
        upstream_registry_url: rule.upstream_registry_url().unwrap_or_default().to_owned(),
        credential_arn: rule.credential_arn().map(str::to_owned),
    }))
}

pub async fn create(client: &Client, rack: &Rack, secret_arn: &str) -> Result<(), AwsError> {
    client
        .create_pull_through_cache_rule()
        .ecr_repository_prefix(rack.rule_prefix())
        .upstream_registry_url(UPSTREAM_REGISTRY_URL)
        .upstream_registry(UpstreamRegistry::DockerHub)
        .credential_arn(secret_arn)
        .send()
        .await
        .map_err(AwsError::from_sdk)?;
    Ok(())
}

pub async fn update_credential(
    client: &Client,
    rack: &Rack,
    secret_arn: &str,
) -> Result<(), AwsError> {
    client
        .update_pull_through_cache_rule()
        .ecr_repository_prefix(rack.rule_prefix())
        .credential_arn(secret_arn)
        .send()
        .await
        .map_err(AwsError::from_sdk)?;
    Ok(())
}

/// Deletes the rule. Repositories it cached stay, and an absent rule is not an error.
pub async fn delete(client: &Client, rack: &Rack) -> Result<(), AwsError> {
    let result = client
        .delete_pull_through_cache_rule()
        .ecr_repository_prefix(rack.rule_prefix())
        .send()
        .await;

    match result {
        Ok(_) => Ok(()),
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|e| e.is_pull_through_cache_rule_not_found_exception()) =>
        {
            Ok(())
        }
        Err(error) => Err(AwsError::from_sdk(error)),
    }
}

/// Returns the account id of the caller's private registry.
pub async fn registry_id(client: &Client) -> Result<String, AwsError> {
    let output = client
        .describe_registry()
        .send()
        .await
        .map_err(AwsError::from_sdk)?;

    output
        .registry_id()
        .map(str::to_owned)
        .ok_or_else(|| AwsError::missing_field("DescribeRegistry", "registryId"))
}
