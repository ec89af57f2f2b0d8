//! The rack's IAM managed policy and its attachments to the node roles.

use aws_sdk_iam::Client;
use percent_encoding::percent_decode_str;
use serde_json::Value;

use crate::error::{AwsError, RequestId, request_id_of};
use crate::names::Rack;
use crate::plan::{Entity, ObservedPolicy};

/// IAM's error code for a policy, role, user or group that does not exist.
const NO_SUCH_ENTITY: &str = "NoSuchEntity";

/// Reads the policy at `arn` and the entities it is attached to. With
/// `document`, also compares the default version with it, and lists the other
/// versions when they differ, since replacing the document may need room.
pub async fn observe(
    client: &Client,
    arn: &str,
    document: Option<&Value>,
) -> Result<Option<ObservedPolicy>, AwsError> {
    let result = client.get_policy().policy_arn(arn).send().await;
    let policy = match result {
        Ok(output) => output.policy,
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|e| e.is_no_such_entity_exception()) =>
        {
            return Ok(None);
        }
        Err(error) => return Err(AwsError::from_sdk(error)),
    };

    let document_matches = match document {
        Some(document) => {
            let default_version = policy
                .as_ref()
                .and_then(|policy| policy.default_version_id())
                .ok_or_else(|| AwsError::missing_field("GetPolicy", "DefaultVersionId"))?;
            default_document(client, arn, default_version)
                .await?
                .as_ref()
                == Some(document)
        }
        None => true,
    };
    let attached_to = attached_entities(client, arn).await?;
    let non_default_versions = if document_matches {
        Vec::new()
    } else {
        non_default_versions(client, arn).await?
    };

    Ok(Some(ObservedPolicy {
        arn: arn.to_owned(),
        document_matches,
        attached_to,
        non_default_versions,
    }))
}

/// Returns the policy's default document, or `None` when it is not JSON.
async fn default_document(
    client: &Client,
    arn: &str,
    version: &str,
) -> Result<Option<Value>, AwsError> {
    let output = client
        .get_policy_version()
        .policy_arn(arn)
        .version_id(version)
        .send()
        .await
        .map_err(AwsError::from_sdk)?;

    // IAM returns the document URL-encoded (RFC 3986).
    let encoded = output
        .policy_version()
        .and_then(|version| version.document())
        .unwrap_or_default();
    let decoded = percent_decode_str(encoded).decode_utf8_lossy();
    Ok(serde_json::from_str(&decoded).ok())
}

async fn attached_entities(client: &Client, arn: &str) -> Result<Vec<Entity>, AwsError> {
    let mut entities = Vec::new();
    let mut pages = client
        .list_entities_for_policy()
        .policy_arn(arn)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(AwsError::from_sdk)?;
        let roles = page
            .policy_roles()
            .iter()
            .filter_map(|role| role.role_name());
        entities.extend(roles.map(|name| Entity::Role(name.to_owned())));
        let users = page
            .policy_users()
            .iter()
            .filter_map(|user| user.user_name());
        entities.extend(users.map(|name| Entity::User(name.to_owned())));
        let groups = page
            .policy_groups()
            .iter()
            .filter_map(|group| group.group_name());
        entities.extend(groups.map(|name| Entity::Group(name.to_owned())));
    }
    Ok(entities)
}

/// Returns the ids of the versions that are not the default, oldest first.
async fn non_default_versions(client: &Client, arn: &str) -> Result<Vec<String>, AwsError> {
    let mut versions = Vec::new();
    let mut pages = client
        .list_policy_versions()
        .policy_arn(arn)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(AwsError::from_sdk)?;
        for version in page.versions() {
            if let (false, Some(id)) = (version.is_default_version(), version.version_id()) {
                versions.push((version.create_date().copied(), id.to_owned()));
            }
        }
    }
    versions.sort();
    Ok(versions.into_iter().map(|(_, id)| id).collect())
}

/// Returns which of `roles` exist, skipping the ones in `known` without a call.
pub async fn existing_roles(
    client: &Client,
    roles: &[String],
    known: &[String],
) -> Result<Vec<String>, AwsError> {
    let mut existing = Vec::new();
    for role in roles {
        if known.contains(role) {
            existing.push(role.clone());
            continue;
        }
        match client.get_role().role_name(role).send().await {
            Ok(_) => existing.push(role.clone()),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_no_such_entity_exception()) => {}
            Err(error) => return Err(AwsError::from_sdk(error)),
        }
    }
    Ok(existing)
}

/// Creates the policy and returns its ARN and the request id.
pub async fn create(
    client: &Client,
    rack: &Rack,
    document: &Value,
) -> Result<(String, RequestId), AwsError> {
    let output = client
        .create_policy()
        .policy_name(rack.policy_name())
        .description(format!(
            "Lets rack {rack}'s nodes pull Docker Hub images through ECR prefix {}; managed by hubcache.",
            rack.rule_prefix()
        ))
        .policy_document(document.to_string())
        .send()
        .await
        .map_err(AwsError::from_sdk)?;

    let arn = output
        .policy()
        .and_then(|policy| policy.arn())
        .map(str::to_owned)
        .ok_or_else(|| AwsError::missing_field("CreatePolicy", "Arn"))?;
    Ok((arn, request_id_of(&output)))
}

/// Makes `document` the policy's default version.
pub async fn update_document(
    client: &Client,
    arn: &str,
    document: &Value,
) -> Result<RequestId, AwsError> {
    let output = client
        .create_policy_version()
        .policy_arn(arn)
        .policy_document(document.to_string())
        .set_as_default(true)
        .send()
        .await
        .map_err(AwsError::from_sdk)?;
    Ok(request_id_of(&output))
}

pub async fn attach(client: &Client, arn: &str, role: &str) -> Result<RequestId, AwsError> {
    let output = client
        .attach_role_policy()
        .policy_arn(arn)
        .role_name(role)
        .send()
        .await
        .map_err(AwsError::from_sdk)?;
    Ok(request_id_of(&output))
}

/// Detaches the policy from `entity`; one that is no longer attached is not an error.
pub async fn detach(client: &Client, arn: &str, entity: &Entity) -> Result<RequestId, AwsError> {
    let result = match entity {
        Entity::Role(name) => {
            let call = client.detach_role_policy().policy_arn(arn).role_name(name);
            call.send()
                .await
                .map(|output| request_id_of(&output))
                .map_err(AwsError::from_sdk)
        }
        Entity::User(name) => {
            let call = client.detach_user_policy().policy_arn(arn).user_name(name);
            call.send()
                .await
                .map(|output| request_id_of(&output))
                .map_err(AwsError::from_sdk)
        }
        Entity::Group(name) => {
            let call = client
                .detach_group_policy()
                .policy_arn(arn)
                .group_name(name);
            call.send()
                .await
                .map(|output| request_id_of(&output))
                .map_err(AwsError::from_sdk)
        }
    };

    match result {
        Err(error) if error.is_code(NO_SUCH_ENTITY) => Ok(None),
        other => other,
    }
}

pub async fn delete_version(
    client: &Client,
    arn: &str,
    version: &str,
) -> Result<RequestId, AwsError> {
    let output = client
        .delete_policy_version()
        .policy_arn(arn)
        .version_id(version)
        .send()
        .await
        .map_err(AwsError::from_sdk)?;
    Ok(request_id_of(&output))
}

/// Deletes the policy; an absent policy is not an error.
///
/// IAM rejects the call with DeleteConflict while the policy is attached or
/// has versions besides the default. Versions are rare, so they are listed
/// and deleted only after such a rejection, and the delete is tried again.
pub async fn delete(client: &Client, arn: &str) -> Result<RequestId, AwsError> {
    let error = match delete_once(client, arn).await {
        Err(error) if error.is_code("DeleteConflict") => error,
        other => return other,
    };

    let versions = non_default_versions(client, arn).await?;
    if versions.is_empty() {
        return Err(error);
    }
    for version in &versions {
        let request_id = delete_version(client, arn, version).await?;
        tracing::info!(policy = %arn, %version, request_id = request_id.as_deref().unwrap_or("-"), "deleted a policy version");
    }
    delete_once(client, arn).await
}

async fn delete_once(client: &Client, arn: &str) -> Result<RequestId, AwsError> {
    match client.delete_policy().policy_arn(arn).send().await {
        Ok(output) => Ok(request_id_of(&output)),
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|e| e.is_no_such_entity_exception()) =>
        {
            Ok(None)
        }
        Err(error) => Err(AwsError::from_sdk(error)),
    }
}
