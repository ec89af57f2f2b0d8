//! The rack's ECR pull-through cache rule and repository creation template,
//! and the registry id the CLI uses as the account.

use aws_sdk_ecr::Client;
use aws_sdk_ecr::types::{RctAppliedFor, UpstreamRegistry};

use crate::error::{AwsError, RequestId, request_id_of};
use crate::names::{Rack, UPSTREAM_REGISTRY_URL};
use crate::plan::{self, ObservedRule, ObservedTemplate};

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

/// ECR's quota of pull-through cache rules per registry, adjustable on request.
pub const RULES_PER_REGISTRY_QUOTA: usize = 50;

/// Creates the rule. When ECR's rule quota is reached, the error states how
/// many rules the registry has and what to do.
pub async fn create(client: &Client, rack: &Rack, secret_arn: &str) -> Result<RequestId, AwsError> {
    let result = client
        .create_pull_through_cache_rule()
        .ecr_repository_prefix(rack.rule_prefix())
        .upstream_registry_url(UPSTREAM_REGISTRY_URL)
        .upstream_registry(UpstreamRegistry::DockerHub)
        .credential_arn(secret_arn)
        .send()
        .await;

    let error = match result {
        Ok(output) => return Ok(request_id_of(&output)),
        Err(error) => AwsError::from_sdk(error),
    };
    if !error.is_code("LimitExceededException") {
        return Err(error);
    }

    let count = match count_rules(client).await {
        Ok(count) => format!("{count} rules exist"),
        Err(count_error) => format!("counting them failed: {count_error}"),
    };
    Err(AwsError {
        message: format!(
            "{} The registry has reached ECR's quota of pull-through cache rules \
             ({RULES_PER_REGISTRY_QUOTA} by default; {count}). Delete unused rules, or ask AWS \
             for a higher quota.",
            error.message
        ),
        ..error
    })
}

/// Returns the number of pull-through cache rules in the registry.
async fn count_rules(client: &Client) -> Result<usize, AwsError> {
    let mut count = 0;
    let mut pages = client
        .describe_pull_through_cache_rules()
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        count += page
            .map_err(AwsError::from_sdk)?
            .pull_through_cache_rules()
            .len();
    }
    Ok(count)
}

pub async fn update_credential(
    client: &Client,
    rack: &Rack,
    secret_arn: &str,
) -> Result<RequestId, AwsError> {
    let output = client
        .update_pull_through_cache_rule()
        .ecr_repository_prefix(rack.rule_prefix())
        .credential_arn(secret_arn)
        .send()
        .await
        .map_err(AwsError::from_sdk)?;
    Ok(request_id_of(&output))
}

/// Deletes the rule. Repositories it cached stay, and an absent rule is not an error.
pub async fn delete(client: &Client, rack: &Rack) -> Result<RequestId, AwsError> {
    let result = client
        .delete_pull_through_cache_rule()
        .ecr_repository_prefix(rack.rule_prefix())
        .send()
        .await;

    match result {
        Ok(output) => Ok(request_id_of(&output)),
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|e| e.is_pull_through_cache_rule_not_found_exception()) =>
        {
            Ok(None)
        }
        Err(error) => Err(AwsError::from_sdk(error)),
    }
}

/// Reads the repository creation template whose prefix is exactly `docker-hub-<rack>`.
pub async fn observe_template(
    client: &Client,
    rack: &Rack,
) -> Result<Option<ObservedTemplate>, AwsError> {
    let prefix = rack.rule_prefix();
    let output = client
        .describe_repository_creation_templates()
        .prefixes(&prefix)
        .send()
        .await
        .map_err(AwsError::from_sdk)?;

    let template = output
        .repository_creation_templates()
        .iter()
        .find(|template| template.prefix() == Some(prefix.as_str()));
    Ok(template.map(|template| ObservedTemplate {
        description: template.description().map(str::to_owned),
        lifecycle_policy: template.lifecycle_policy().map(str::to_owned),
        applied_for: template
            .applied_for()
            .iter()
            .map(|scenario| scenario.as_str().to_owned())
            .collect(),
    }))
}

/// Creates the rack's template. Each repository the rule creates from then on
/// gets a lifecycle policy that expires images not pulled for `days`.
pub async fn create_template(
    client: &Client,
    rack: &Rack,
    days: u32,
) -> Result<RequestId, AwsError> {
    let output = client
        .create_repository_creation_template()
        .prefix(rack.rule_prefix())
        .description(plan::template_description(rack, days))
        .lifecycle_policy(plan::lifecycle_policy(days).to_string())
        .applied_for(RctAppliedFor::PullThroughCache)
        .send()
        .await
        .map_err(AwsError::from_sdk)?;
    Ok(request_id_of(&output))
}

/// Replaces the template's description, lifecycle policy and scenarios.
pub async fn update_template(
    client: &Client,
    rack: &Rack,
    days: u32,
) -> Result<RequestId, AwsError> {
    let output = client
        .update_repository_creation_template()
        .prefix(rack.rule_prefix())
        .description(plan::template_description(rack, days))
        .lifecycle_policy(plan::lifecycle_policy(days).to_string())
        .applied_for(RctAppliedFor::PullThroughCache)
        .send()
        .await
        .map_err(AwsError::from_sdk)?;
    Ok(request_id_of(&output))
}

/// Deletes the template. Repositories created with it keep their lifecycle policy.
pub async fn delete_template(client: &Client, rack: &Rack) -> Result<RequestId, AwsError> {
    let output = client
        .delete_repository_creation_template()
        .prefix(rack.rule_prefix())
        .send()
        .await
        .map_err(AwsError::from_sdk)?;
    Ok(request_id_of(&output))
}

/// Outcome of ValidatePullThroughCacheRule: whether ECR could sign in to
/// Docker Hub with the rule's credential, and why not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validation {
    pub valid: bool,
    pub failure: Option<String>,
}

/// Asks ECR whether the rule's credential works upstream.
pub async fn validate(client: &Client, rack: &Rack) -> Result<Validation, AwsError> {
    let output = client
        .validate_pull_through_cache_rule()
        .ecr_repository_prefix(rack.rule_prefix())
        .send()
        .await
        .map_err(AwsError::from_sdk)?;
    Ok(Validation {
        valid: output.is_valid(),
        failure: output.failure().map(str::to_owned),
    })
}

/// A repository that the rack's rule created by caching an image.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CachedRepository {
    pub name: String,
    pub images: usize,
    /// Total size of its images as ECR reports it, in bytes.
    pub bytes: i64,
}

impl CachedRepository {
    /// Returns its image count and size in words, such as "1 image, 2048 bytes".
    pub fn contents(&self) -> String {
        let images = if self.images == 1 { "image" } else { "images" };
        let bytes = if self.bytes == 1 { "byte" } else { "bytes" };
        format!("{} {images}, {} {bytes}", self.images, self.bytes)
    }
}

/// Lists the repositories under `docker-hub-<rack>/`, with their image
/// count and size, sorted by name.
pub async fn cached_repositories(
    client: &Client,
    rack: &Rack,
) -> Result<Vec<CachedRepository>, AwsError> {
    let start = format!("{}/", rack.rule_prefix());
    let mut names = Vec::new();
    let mut pages = client.describe_repositories().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(AwsError::from_sdk)?;
        let found = page
            .repositories()
            .iter()
            .filter_map(|repository| repository.repository_name());
        names.extend(
            found
                .filter(|name| name.starts_with(&start))
                .map(str::to_owned),
        );
    }
    names.sort();

    let mut repositories = Vec::new();
    for name in names {
        let (mut images, mut bytes) = (0, 0);
        let mut pages = client
            .describe_images()
            .repository_name(&name)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(AwsError::from_sdk)?;
            images += page.image_details().len();
            bytes += page
                .image_details()
                .iter()
                .filter_map(|image| image.image_size_in_bytes())
                .sum::<i64>();
        }
        repositories.push(CachedRepository {
            name,
            images,
            bytes,
        });
    }
    Ok(repositories)
}

/// Deletes a cached repository with its images.
pub async fn delete_repository(client: &Client, name: &str) -> Result<(), AwsError> {
    client
        .delete_repository()
        .repository_name(name)
        .force(true)
        .send()
        .await
        .map_err(AwsError::from_sdk)?;
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contents_counts_in_words() {
        let repository = |images, bytes| CachedRepository {
            name: "docker-hub-demo/library/redis".into(),
            images,
            bytes,
        };

        assert_eq!(repository(0, 0).contents(), "0 images, 0 bytes");
        assert_eq!(repository(1, 1).contents(), "1 image, 1 byte");
        assert_eq!(repository(2, 2048).contents(), "2 images, 2048 bytes");
    }
}
