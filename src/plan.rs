//! Turns the desired state and the resources AWS has now into an ordered list of
//! changes. Nothing here calls AWS, so every decision is unit-tested.

use std::fmt;

use serde_json::{Value, json};

use crate::names::{Rack, Target, UPSTREAM_REGISTRY_URL};
use crate::settings::{Desired, EnabledCache};

/// IAM keeps at most five versions of a managed policy.
pub const MAX_POLICY_VERSIONS: usize = 5;

/// The rack's secret as read from Secrets Manager.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedSecret {
    pub arn: String,
    pub state: SecretState,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretState {
    /// The secret's value is the desired credentials.
    Current,
    /// The value differs from the desired credentials, or was not read because
    /// the cache is being disabled.
    Outdated,
    /// Deleted with a recovery window: it blocks a new secret of the same name
    /// until it is restored.
    PendingDeletion,
}

/// The rack's pull-through cache rule as read from ECR.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedRule {
    pub upstream_registry_url: String,
    pub credential_arn: Option<String>,
}

/// An IAM identity a managed policy is attached to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Entity {
    Role(String),
    User(String),
    Group(String),
}

impl fmt::Display for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Entity::Role(name) => write!(f, "role {name}"),
            Entity::User(name) => write!(f, "user {name}"),
            Entity::Group(name) => write!(f, "group {name}"),
        }
    }
}

/// The rack's managed policy as read from IAM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedPolicy {
    pub arn: String,
    pub document_matches: bool,
    pub attached_to: Vec<Entity>,
    /// Versions other than the default, oldest first. Read only when the plan
    /// needs them: to disable, or to replace a document that differs.
    pub non_default_versions: Vec<String>,
}

/// The repository creation template for the rack's cache prefix, as read from ECR.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObservedTemplate {
    pub description: Option<String>,
    pub lifecycle_policy: Option<String>,
    pub applied_for: Vec<String>,
}

/// The one scenario hubcache's template applies to: repositories a pull-through cache rule creates.
pub const TEMPLATE_APPLIED_FOR: &str = "PULL_THROUGH_CACHE";

/// Returns `days` with its unit, such as "1 day" or "30 days".
pub fn days_text(days: u32) -> String {
    if days == 1 {
        "1 day".to_owned()
    } else {
        format!("{days} days")
    }
}

/// Returns the lifecycle policy that expires cached images not pulled for `days`.
pub fn lifecycle_policy(days: u32) -> Value {
    json!({
        "rules": [{
            "rulePriority": 1,
            "description": format!("Expire images not pulled for {}", days_text(days)),
            "selection": {
                "tagStatus": "any",
                "countType": "sinceImagePulled",
                "countUnit": "days",
                "countNumber": days,
            },
            "action": {"type": "expire"},
        }],
    })
}

/// Returns the description of the rack's repository creation template.
pub fn template_description(rack: &Rack, days: u32) -> String {
    format!(
        "Managed by hubcache for rack {rack}: cached Docker Hub images expire when not pulled \
         for {}.",
        days_text(days)
    )
}

impl ObservedTemplate {
    /// Returns whether the template is the one hubcache keeps for `days`.
    pub fn matches(&self, rack: &Rack, days: u32) -> bool {
        self.retention_days() == Some(days)
            && self.applied_for == [TEMPLATE_APPLIED_FOR]
            && self.description.as_deref() == Some(template_description(rack, days).as_str())
    }

    /// Returns the days after which the template's lifecycle policy expires
    /// images not pulled, when the policy is one rule that does only that.
    /// Fields the rule's meaning does not depend on, such as its description
    /// or any ECR may add, are not compared, so the template is not rewritten
    /// for them on every reconcile.
    pub fn retention_days(&self) -> Option<u32> {
        let policy: Value = serde_json::from_str(self.lifecycle_policy.as_deref()?).ok()?;
        let [rule] = policy.get("rules")?.as_array()?.as_slice() else {
            return None;
        };
        let selection = rule.get("selection")?;
        let expires_unpulled = rule.pointer("/action/type")? == "expire"
            && selection.get("tagStatus")? == "any"
            && selection.get("countType")? == "sinceImagePulled"
            && selection.get("countUnit")? == "days";
        if !expires_unpulled {
            return None;
        }
        let days = selection.get("countNumber")?.as_u64()?;
        u32::try_from(days).ok().filter(|days| *days >= 1)
    }
}

/// Current state of one rack's resources in AWS.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    pub secret: Option<ObservedSecret>,
    pub rule: Option<ObservedRule>,
    pub policy: Option<ObservedPolicy>,
    /// The desired node roles that exist in IAM. Read only when enabling.
    pub node_roles: Vec<String>,
    /// The cache prefix published in the rack's parameters for deploy tooling.
    pub published_prefix: Option<String>,
    /// The repository creation template. Read only when retention is wanted
    /// or the rack's parameters record a template hubcache created.
    pub template: Option<ObservedTemplate>,
    /// Whether the rack's parameters record a template hubcache created.
    pub recorded_template: bool,
}

/// One change to AWS, named by the resource it touches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    CreateSecret { name: String },
    RestoreSecret { name: String },
    UpdateSecretValue { name: String },
    DeleteSecret { name: String },
    CreateRule { prefix: String },
    UpdateRuleCredential { prefix: String },
    DeleteRule { prefix: String },
    CreatePolicy { name: String },
    UpdatePolicyDocument { name: String },
    AttachPolicy { policy: String, role: String },
    DetachPolicy { policy: String, entity: Entity },
    DeletePolicyVersion { policy: String, version: String },
    DeletePolicy { name: String },
    PublishCachePrefix { uri: String },
    UnpublishCachePrefix,
    RecordTemplate { prefix: String },
    CreateTemplate { prefix: String, days: u32 },
    UpdateTemplate { prefix: String, days: u32 },
    DeleteTemplate { prefix: String },
    ForgetTemplate { prefix: String },
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::CreateSecret { name } => write!(f, "create secret {name}"),
            Action::RestoreSecret { name } => write!(f, "restore secret {name}"),
            Action::UpdateSecretValue { name } => write!(f, "update the value of secret {name}"),
            Action::DeleteSecret { name } => write!(f, "delete secret {name}"),
            Action::CreateRule { prefix } => write!(f, "create pull-through cache rule {prefix}"),
            Action::UpdateRuleCredential { prefix } => {
                write!(
                    f,
                    "update the credential of pull-through cache rule {prefix}"
                )
            }
            Action::DeleteRule { prefix } => write!(f, "delete pull-through cache rule {prefix}"),
            Action::CreatePolicy { name } => write!(f, "create IAM policy {name}"),
            Action::UpdatePolicyDocument { name } => {
                write!(f, "update the document of IAM policy {name}")
            }
            Action::AttachPolicy { policy, role } => {
                write!(f, "attach IAM policy {policy} to role {role}")
            }
            Action::DetachPolicy { policy, entity } => {
                write!(f, "detach IAM policy {policy} from {entity}")
            }
            Action::DeletePolicyVersion { policy, version } => {
                write!(f, "delete version {version} of IAM policy {policy}")
            }
            Action::DeletePolicy { name } => write!(f, "delete IAM policy {name}"),
            Action::PublishCachePrefix { uri } => write!(f, "publish cache prefix {uri}"),
            Action::UnpublishCachePrefix => write!(f, "remove the published cache prefix"),
            Action::RecordTemplate { prefix } => write!(
                f,
                "record repository creation template {prefix} as managed by hubcache"
            ),
            Action::CreateTemplate { prefix, days } => write!(
                f,
                "create repository creation template {prefix} (expire images not pulled for {})",
                days_text(*days)
            ),
            Action::UpdateTemplate { prefix, days } => write!(
                f,
                "update repository creation template {prefix} (expire images not pulled for {})",
                days_text(*days)
            ),
            Action::DeleteTemplate { prefix } => {
                write!(f, "delete repository creation template {prefix}")
            }
            Action::ForgetTemplate { prefix } => write!(
                f,
                "remove the record of repository creation template {prefix}"
            ),
        }
    }
}

impl Action {
    /// Returns the IAM permission the change needs, named in errors.
    pub fn permission(&self) -> &'static str {
        match self {
            Action::CreateSecret { .. } => "secretsmanager:CreateSecret",
            Action::RestoreSecret { .. } => "secretsmanager:RestoreSecret",
            Action::UpdateSecretValue { .. } => "secretsmanager:PutSecretValue",
            Action::DeleteSecret { .. } => "secretsmanager:DeleteSecret",
            Action::CreateRule { .. } => "ecr:CreatePullThroughCacheRule",
            Action::UpdateRuleCredential { .. } => "ecr:UpdatePullThroughCacheRule",
            Action::DeleteRule { .. } => "ecr:DeletePullThroughCacheRule",
            Action::CreatePolicy { .. } => "iam:CreatePolicy",
            Action::UpdatePolicyDocument { .. } => "iam:CreatePolicyVersion",
            Action::AttachPolicy { .. } => "iam:AttachRolePolicy",
            Action::DetachPolicy { entity, .. } => match entity {
                Entity::Role(_) => "iam:DetachRolePolicy",
                Entity::User(_) => "iam:DetachUserPolicy",
                Entity::Group(_) => "iam:DetachGroupPolicy",
            },
            Action::DeletePolicyVersion { .. } => "iam:DeletePolicyVersion",
            Action::DeletePolicy { .. } => "iam:DeletePolicy",
            Action::PublishCachePrefix { .. } => "ssm:PutParameter",
            Action::UnpublishCachePrefix => "ssm:DeleteParameter",
            Action::RecordTemplate { .. } => "ssm:PutParameter",
            Action::CreateTemplate { .. } => "ecr:CreateRepositoryCreationTemplate",
            Action::UpdateTemplate { .. } => "ecr:UpdateRepositoryCreationTemplate",
            Action::DeleteTemplate { .. } => "ecr:DeleteRepositoryCreationTemplate",
            Action::ForgetTemplate { .. } => "ssm:DeleteParameter",
        }
    }
}

/// A desired state that cannot be reached from what AWS holds.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    #[error(
        "Rack {rack}: IAM role {role} not found, so policy {policy} cannot be attached to it. \
         Check the rack name and parameter ecr_docker_hub_cache_node_roles, or install the rack \
         first."
    )]
    NodeRoleMissing {
        rack: String,
        role: String,
        policy: String,
    },
}

/// Returns the IAM policy document that lets node roles pull through the rack's cache.
pub fn policy_document(target: &Target, rack: &Rack) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "PullThroughDockerHubCache",
            "Effect": "Allow",
            "Action": ["ecr:CreateRepository", "ecr:BatchImportUpstreamImage"],
            "Resource": target.cached_repositories_arn(rack),
        }],
    })
}

/// Plans the changes that bring `observed` to `desired` for `rack`.
///
/// Enabling orders them secret, template, rule, policy, attachments, because
/// the rule needs the secret's ARN, the template must exist before the rule
/// creates the first repository, and nodes need the rule before the policy
/// is of use. The cache prefix is published last, once the cache works.
/// Disabling withdraws the prefix first, so deploy tooling stops using the
/// cache, then orders rule, template, secret, policy: the rule goes before the
/// secret it reads, and the policy is detached everywhere before it is
/// deleted. A template is recorded in the rack's parameters before it is
/// created and forgotten after it is deleted, so hubcache never deletes a
/// template it did not create. An empty plan means the rack has converged.
pub fn plan(
    rack: &Rack,
    target: &Target,
    desired: &Desired,
    observed: &Observed,
) -> Result<Vec<Action>, PlanError> {
    match desired {
        Desired::Enabled(cache) => {
            let mut actions = plan_enable(rack, cache, observed)?;
            let uri = target.cache_uri(rack);
            if observed.published_prefix.as_ref() != Some(&uri) {
                actions.push(Action::PublishCachePrefix { uri });
            }
            Ok(actions)
        }
        Desired::Disabled => {
            let mut actions = Vec::new();
            if observed.published_prefix.is_some() {
                actions.push(Action::UnpublishCachePrefix);
            }
            if observed.rule.is_some() {
                actions.push(Action::DeleteRule {
                    prefix: rack.rule_prefix(),
                });
            }
            actions.extend(plan_template(rack, None, observed));
            actions.extend(plan_disable(rack, observed));
            Ok(actions)
        }
    }
}

/// Plans the repository creation template for a retention of `days`, or
/// its removal when `days` is `None`.
fn plan_template(rack: &Rack, days: Option<u32>, observed: &Observed) -> Vec<Action> {
    let prefix = rack.rule_prefix();
    let mut actions = Vec::new();
    match days {
        Some(days) => {
            if !observed.recorded_template {
                actions.push(Action::RecordTemplate {
                    prefix: prefix.clone(),
                });
            }
            match &observed.template {
                None => actions.push(Action::CreateTemplate { prefix, days }),
                Some(found) if !found.matches(rack, days) => {
                    actions.push(Action::UpdateTemplate { prefix, days });
                }
                Some(_) => {}
            }
        }
        None if observed.recorded_template => {
            if observed.template.is_some() {
                actions.push(Action::DeleteTemplate {
                    prefix: prefix.clone(),
                });
            }
            actions.push(Action::ForgetTemplate { prefix });
        }
        None => {}
    }
    actions
}

fn plan_enable(
    rack: &Rack,
    cache: &EnabledCache,
    observed: &Observed,
) -> Result<Vec<Action>, PlanError> {
    let roles = &cache.node_roles;
    let secret = rack.secret_name();
    let prefix = rack.rule_prefix();
    let policy = rack.policy_name();

    if let Some(missing) = roles
        .required
        .iter()
        .find(|role| !observed.node_roles.contains(role))
    {
        return Err(PlanError::NodeRoleMissing {
            rack: rack.to_string(),
            role: missing.clone(),
            policy,
        });
    }

    let mut actions = Vec::new();
    match &observed.secret {
        None => actions.push(Action::CreateSecret {
            name: secret.clone(),
        }),
        Some(found) => {
            if found.state == SecretState::PendingDeletion {
                actions.push(Action::RestoreSecret {
                    name: secret.clone(),
                });
            }
            if found.state != SecretState::Current {
                actions.push(Action::UpdateSecretValue {
                    name: secret.clone(),
                });
            }
        }
    }

    actions.extend(plan_template(rack, cache.retention_days, observed));

    let secret_arn = observed.secret.as_ref().map(|found| found.arn.as_str());
    match &observed.rule {
        None => actions.push(Action::CreateRule { prefix }),
        Some(rule) if rule.upstream_registry_url != UPSTREAM_REGISTRY_URL => {
            // ECR cannot change a rule's upstream registry in place.
            actions.push(Action::DeleteRule {
                prefix: prefix.clone(),
            });
            actions.push(Action::CreateRule { prefix });
        }
        Some(rule) if secret_arn.is_none() || rule.credential_arn.as_deref() != secret_arn => {
            actions.push(Action::UpdateRuleCredential { prefix });
        }
        Some(_) => {}
    }

    let attached_roles: Vec<&str> = match &observed.policy {
        None => {
            actions.push(Action::CreatePolicy {
                name: policy.clone(),
            });
            Vec::new()
        }
        Some(found) => {
            if !found.document_matches {
                let excess =
                    (found.non_default_versions.len() + 2).saturating_sub(MAX_POLICY_VERSIONS);
                for version in found.non_default_versions.iter().take(excess) {
                    actions.push(Action::DeletePolicyVersion {
                        policy: policy.clone(),
                        version: version.clone(),
                    });
                }
                actions.push(Action::UpdatePolicyDocument {
                    name: policy.clone(),
                });
            }
            found
                .attached_to
                .iter()
                .filter_map(|entity| match entity {
                    Entity::Role(name) => Some(name.as_str()),
                    _ => None,
                })
                .collect()
        }
    };
    for role in roles
        .all()
        .filter(|role| observed.node_roles.contains(role))
    {
        if !attached_roles.contains(&role.as_str()) {
            actions.push(Action::AttachPolicy {
                policy: policy.clone(),
                role: role.clone(),
            });
        }
    }

    // hubcache owns the policy, so it is detached from every role, user or
    // group that is not one of the desired node roles, such as a role that
    // ecr_docker_hub_cache_node_roles no longer lists.
    let stale = observed.policy.iter().flat_map(|found| &found.attached_to);
    for entity in stale {
        let desired = matches!(entity, Entity::Role(name) if roles.all().any(|role| role == name));
        if !desired {
            actions.push(Action::DetachPolicy {
                policy: policy.clone(),
                entity: entity.clone(),
            });
        }
    }

    Ok(actions)
}

/// Plans the removal of the secret and the policy. [`plan`] puts the rule
/// and the template before them.
fn plan_disable(rack: &Rack, observed: &Observed) -> Vec<Action> {
    let mut actions = Vec::new();

    if observed.secret.is_some() {
        actions.push(Action::DeleteSecret {
            name: rack.secret_name(),
        });
    }

    if let Some(found) = &observed.policy {
        let policy = rack.policy_name();
        for entity in &found.attached_to {
            actions.push(Action::DetachPolicy {
                policy: policy.clone(),
                entity: entity.clone(),
            });
        }
        for version in &found.non_default_versions {
            actions.push(Action::DeletePolicyVersion {
                policy: policy.clone(),
                version: version.clone(),
            });
        }
        actions.push(Action::DeletePolicy { name: policy });
    }

    actions
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{Credentials, EnabledCache, NodeRoles, Password};

    const SECRET_ARN: &str =
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:ecr-pullthroughcache/demo-AbCdEf";

    const CACHE_URI: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/docker-hub-demo";

    fn rack() -> Rack {
        Rack::parse("demo").unwrap()
    }

    fn target() -> Target {
        Target {
            partition: "aws".into(),
            region: "us-east-1".into(),
            account: "123456789012".into(),
        }
    }

    fn enabled() -> Desired {
        Desired::Enabled(EnabledCache {
            credentials: Credentials {
                username: "user".into(),
                password: Password::new("token"),
            },
            node_roles: NodeRoles::default_for(&rack()),
            retention_days: None,
        })
    }

    fn enabled_with_retention(days: u32) -> Desired {
        let Desired::Enabled(mut cache) = enabled() else {
            unreachable!()
        };
        cache.retention_days = Some(days);
        Desired::Enabled(cache)
    }

    /// The template hubcache writes for `days`, as ECR returns it.
    fn template_for(days: u32) -> ObservedTemplate {
        ObservedTemplate {
            description: Some(template_description(&rack(), days)),
            lifecycle_policy: Some(lifecycle_policy(days).to_string()),
            applied_for: vec![TEMPLATE_APPLIED_FOR.into()],
        }
    }

    fn converged() -> Observed {
        Observed {
            secret: Some(ObservedSecret {
                arn: SECRET_ARN.into(),
                state: SecretState::Current,
            }),
            rule: Some(ObservedRule {
                upstream_registry_url: UPSTREAM_REGISTRY_URL.into(),
                credential_arn: Some(SECRET_ARN.into()),
            }),
            policy: Some(ObservedPolicy {
                arn: "arn:aws:iam::123456789012:policy/demo-ecr-pull-through".into(),
                document_matches: true,
                attached_to: vec![Entity::Role("demo-nodes".into())],
                non_default_versions: vec![],
            }),
            node_roles: vec!["demo-nodes".into()],
            published_prefix: Some(CACHE_URI.into()),
            template: None,
            recorded_template: false,
        }
    }

    fn descriptions(actions: &[Action]) -> Vec<String> {
        actions.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn enable_from_nothing() {
        let observed = Observed {
            node_roles: vec!["demo-nodes".into(), "demo-build-nodes".into()],
            ..Observed::default()
        };

        let actions = plan(&rack(), &target(), &enabled(), &observed).unwrap();

        assert_eq!(
            descriptions(&actions),
            [
                "create secret ecr-pullthroughcache/demo",
                "create pull-through cache rule docker-hub-demo",
                "create IAM policy demo-ecr-pull-through",
                "attach IAM policy demo-ecr-pull-through to role demo-nodes",
                "attach IAM policy demo-ecr-pull-through to role demo-build-nodes",
                "publish cache prefix 123456789012.dkr.ecr.us-east-1.amazonaws.com/docker-hub-demo",
            ]
        );
    }

    #[test]
    fn enable_converged_is_empty() {
        assert_eq!(
            plan(&rack(), &target(), &enabled(), &converged()),
            Ok(vec![])
        );
    }

    #[test]
    fn enable_rotation_changes_only_secret() {
        let mut observed = converged();
        observed.secret.as_mut().unwrap().state = SecretState::Outdated;

        let actions = plan(&rack(), &target(), &enabled(), &observed).unwrap();

        assert_eq!(
            descriptions(&actions),
            ["update the value of secret ecr-pullthroughcache/demo"]
        );
    }

    #[test]
    fn enable_repoints_rule_at_secret() {
        let mut observed = converged();
        observed.rule.as_mut().unwrap().credential_arn = Some(SECRET_ARN.replace("demo", "other"));

        let actions = plan(&rack(), &target(), &enabled(), &observed).unwrap();

        assert_eq!(
            actions,
            [Action::UpdateRuleCredential {
                prefix: "docker-hub-demo".into()
            }]
        );
    }

    #[test]
    fn enable_recreates_secret_and_repoints_rule() {
        let mut observed = converged();
        observed.secret = None;

        let actions = plan(&rack(), &target(), &enabled(), &observed).unwrap();

        assert_eq!(
            descriptions(&actions),
            [
                "create secret ecr-pullthroughcache/demo",
                "update the credential of pull-through cache rule docker-hub-demo",
            ]
        );
    }

    #[test]
    fn enable_restores_pending_deletion_secret() {
        let mut observed = converged();
        observed.secret.as_mut().unwrap().state = SecretState::PendingDeletion;

        let actions = plan(&rack(), &target(), &enabled(), &observed).unwrap();

        assert_eq!(
            descriptions(&actions),
            [
                "restore secret ecr-pullthroughcache/demo",
                "update the value of secret ecr-pullthroughcache/demo",
            ]
        );
    }

    #[test]
    fn enable_replaces_rule_of_other_upstream() {
        let mut observed = converged();
        observed.rule.as_mut().unwrap().upstream_registry_url = "quay.io".into();

        let actions = plan(&rack(), &target(), &enabled(), &observed).unwrap();

        assert_eq!(
            descriptions(&actions),
            [
                "delete pull-through cache rule docker-hub-demo",
                "create pull-through cache rule docker-hub-demo",
            ]
        );
    }

    #[test]
    fn enable_updates_differing_document() {
        let mut observed = converged();
        let policy = observed.policy.as_mut().unwrap();
        policy.document_matches = false;
        policy.non_default_versions = vec!["v1".into(), "v2".into(), "v3".into(), "v4".into()];

        let actions = plan(&rack(), &target(), &enabled(), &observed).unwrap();

        assert_eq!(
            descriptions(&actions),
            [
                "delete version v1 of IAM policy demo-ecr-pull-through",
                "update the document of IAM policy demo-ecr-pull-through",
            ]
        );
    }

    #[test]
    fn enable_attaches_missing_roles_only() {
        let mut observed = converged();
        observed.node_roles.push("demo-karpenter-nodes".into());

        let actions = plan(&rack(), &target(), &enabled(), &observed).unwrap();

        assert_eq!(
            descriptions(&actions),
            ["attach IAM policy demo-ecr-pull-through to role demo-karpenter-nodes"]
        );
    }

    #[test]
    fn enable_detaches_stale_entities() {
        let mut observed = converged();
        let policy = observed.policy.as_mut().unwrap();
        policy.attached_to.push(Entity::Role("old-nodes".into()));
        policy.attached_to.push(Entity::User("ops".into()));

        let actions = plan(&rack(), &target(), &enabled(), &observed).unwrap();

        assert_eq!(
            descriptions(&actions),
            [
                "detach IAM policy demo-ecr-pull-through from role old-nodes",
                "detach IAM policy demo-ecr-pull-through from user ops",
            ]
        );
    }

    #[test]
    fn enable_requires_nodes_role() {
        let observed = Observed {
            node_roles: vec!["demo-build-nodes".into()],
            ..Observed::default()
        };

        let error = plan(&rack(), &target(), &enabled(), &observed).unwrap_err();

        assert_eq!(
            error.to_string(),
            "Rack demo: IAM role demo-nodes not found, so policy demo-ecr-pull-through cannot be \
             attached to it. Check the rack name and parameter ecr_docker_hub_cache_node_roles, \
             or install the rack first."
        );
    }

    #[test]
    fn enable_attaches_listed_roles() {
        let Desired::Enabled(mut cache) = enabled() else {
            unreachable!()
        };
        cache.node_roles = NodeRoles {
            required: vec!["eks-a".into(), "eks-b".into()],
            optional: vec![],
        };
        let listed = Desired::Enabled(cache);
        let mut observed = converged();
        observed.node_roles = vec!["eks-a".into(), "eks-b".into()];

        let actions = plan(&rack(), &target(), &listed, &observed).unwrap();
        observed.node_roles.pop();
        let error = plan(&rack(), &target(), &listed, &observed).unwrap_err();

        assert_eq!(
            descriptions(&actions),
            [
                "attach IAM policy demo-ecr-pull-through to role eks-a",
                "attach IAM policy demo-ecr-pull-through to role eks-b",
                "detach IAM policy demo-ecr-pull-through from role demo-nodes",
            ]
        );
        assert!(matches!(error, PlanError::NodeRoleMissing { ref role, .. } if role == "eks-b"));
    }

    #[test]
    fn disable_removes_in_order() {
        let mut observed = converged();
        let policy = observed.policy.as_mut().unwrap();
        policy.attached_to.push(Entity::User("ops".into()));
        policy.non_default_versions = vec!["v1".into()];

        let actions = plan(&rack(), &target(), &Desired::Disabled, &observed).unwrap();

        assert_eq!(
            descriptions(&actions),
            [
                "remove the published cache prefix",
                "delete pull-through cache rule docker-hub-demo",
                "delete secret ecr-pullthroughcache/demo",
                "detach IAM policy demo-ecr-pull-through from role demo-nodes",
                "detach IAM policy demo-ecr-pull-through from user ops",
                "delete version v1 of IAM policy demo-ecr-pull-through",
                "delete IAM policy demo-ecr-pull-through",
            ]
        );
    }

    #[test]
    fn disable_nothing_is_empty() {
        assert_eq!(
            plan(&rack(), &target(), &Desired::Disabled, &Observed::default()),
            Ok(vec![])
        );
    }

    #[test]
    fn publish_prefix_when_missing_or_stale() {
        let mut observed = converged();
        observed.published_prefix =
            Some("111111111111.dkr.ecr.us-east-1.amazonaws.com/docker-hub-demo".into());

        let stale = plan(&rack(), &target(), &enabled(), &observed).unwrap();
        observed.published_prefix = None;
        let missing = plan(&rack(), &target(), &enabled(), &observed).unwrap();

        let expected = [Action::PublishCachePrefix {
            uri: CACHE_URI.into(),
        }];
        assert_eq!(stale, expected);
        assert_eq!(missing, expected);
    }

    #[test]
    fn retention_set_on_converged_rack() {
        let actions = plan(
            &rack(),
            &target(),
            &enabled_with_retention(30),
            &converged(),
        )
        .unwrap();

        assert_eq!(
            descriptions(&actions),
            [
                "record repository creation template docker-hub-demo as managed by hubcache",
                "create repository creation template docker-hub-demo (expire images not pulled for 30 days)",
            ]
        );
    }

    #[test]
    fn retention_template_goes_before_rule() {
        let observed = Observed {
            node_roles: vec!["demo-nodes".into()],
            ..Observed::default()
        };

        let actions = plan(&rack(), &target(), &enabled_with_retention(1), &observed).unwrap();

        assert_eq!(
            descriptions(&actions)[..4],
            [
                "create secret ecr-pullthroughcache/demo",
                "record repository creation template docker-hub-demo as managed by hubcache",
                "create repository creation template docker-hub-demo (expire images not pulled for 1 day)",
                "create pull-through cache rule docker-hub-demo",
            ]
        );
    }

    #[test]
    fn retention_converged_template_is_empty() {
        let mut observed = converged();
        observed.template = Some(template_for(30));
        observed.recorded_template = true;

        assert_eq!(
            plan(&rack(), &target(), &enabled_with_retention(30), &observed),
            Ok(vec![])
        );
    }

    #[test]
    fn retention_change_updates_template() {
        let mut observed = converged();
        observed.template = Some(template_for(30));
        observed.recorded_template = true;

        let actions = plan(&rack(), &target(), &enabled_with_retention(7), &observed).unwrap();

        assert_eq!(
            actions,
            [Action::UpdateTemplate {
                prefix: "docker-hub-demo".into(),
                days: 7
            }]
        );
    }

    #[test]
    fn retention_hand_edited_template_updated() {
        let edits: [fn(&mut ObservedTemplate); 4] = [
            |template| template.applied_for = vec!["REPLICATION".into()],
            |template| template.description = None,
            |template| template.lifecycle_policy = Some("{}".into()),
            |template| template.lifecycle_policy = Some("not json".into()),
        ];
        for edit in edits {
            let mut observed = converged();
            let mut template = template_for(30);
            edit(&mut template);
            observed.template = Some(template);
            observed.recorded_template = true;

            let actions = plan(&rack(), &target(), &enabled_with_retention(30), &observed).unwrap();

            assert_eq!(
                descriptions(&actions),
                [
                    "update repository creation template docker-hub-demo (expire images not pulled for 30 days)"
                ]
            );
        }
    }

    #[test]
    fn retention_unset_deletes_recorded_template_only() {
        let mut observed = converged();
        observed.template = Some(template_for(30));
        observed.recorded_template = true;

        let actions = plan(&rack(), &target(), &enabled(), &observed).unwrap();

        assert_eq!(
            descriptions(&actions),
            [
                "delete repository creation template docker-hub-demo",
                "remove the record of repository creation template docker-hub-demo",
            ]
        );

        observed.recorded_template = false;
        assert_eq!(plan(&rack(), &target(), &enabled(), &observed), Ok(vec![]));

        observed.recorded_template = true;
        observed.template = None;
        assert_eq!(
            descriptions(&plan(&rack(), &target(), &enabled(), &observed).unwrap()),
            ["remove the record of repository creation template docker-hub-demo"]
        );
    }

    #[test]
    fn disable_deletes_template_after_rule() {
        let mut observed = converged();
        observed.template = Some(template_for(30));
        observed.recorded_template = true;

        let actions = plan(&rack(), &target(), &Desired::Disabled, &observed).unwrap();

        assert_eq!(
            descriptions(&actions)[..5],
            [
                "remove the published cache prefix",
                "delete pull-through cache rule docker-hub-demo",
                "delete repository creation template docker-hub-demo",
                "remove the record of repository creation template docker-hub-demo",
                "delete secret ecr-pullthroughcache/demo",
            ]
        );
    }

    #[test]
    fn template_retention_days_read_back() {
        assert_eq!(template_for(30).retention_days(), Some(30));
        assert_eq!(template_for(1).retention_days(), Some(1));

        let mut reformatted = lifecycle_policy(14);
        reformatted["rules"][0]["description"] = json!("edited");
        reformatted["rules"][0]["selection"]["storageClass"] = json!("standard");
        let reformatted = ObservedTemplate {
            lifecycle_policy: Some(serde_json::to_string_pretty(&reformatted).unwrap()),
            ..template_for(14)
        };
        assert_eq!(reformatted.retention_days(), Some(14));
        assert!(reformatted.matches(&rack(), 14));
    }

    #[test]
    fn template_other_policies_have_no_retention() {
        let two_rules = json!({"rules": [
            lifecycle_policy(7)["rules"][0].clone(),
            lifecycle_policy(9)["rules"][0].clone(),
        ]});
        let mut pushed = lifecycle_policy(7);
        pushed["rules"][0]["selection"]["countType"] = json!("sinceImagePushed");
        let mut tagged = lifecycle_policy(7);
        tagged["rules"][0]["selection"]["tagStatus"] = json!("tagged");
        let mut zero = lifecycle_policy(7);
        zero["rules"][0]["selection"]["countNumber"] = json!(0);
        let mut transition = lifecycle_policy(7);
        transition["rules"][0]["action"]["type"] = json!("transition");

        for policy in [
            json!({"rules": []}),
            json!({}),
            two_rules,
            pushed,
            tagged,
            zero,
            transition,
        ] {
            let template = ObservedTemplate {
                lifecycle_policy: Some(policy.to_string()),
                ..template_for(7)
            };

            assert_eq!(template.retention_days(), None, "{policy}");
            assert!(!template.matches(&rack(), 7), "{policy}");
        }
    }

    #[test]
    fn lifecycle_policy_exact() {
        assert_eq!(
            lifecycle_policy(30),
            json!({
                "rules": [{
                    "rulePriority": 1,
                    "description": "Expire images not pulled for 30 days",
                    "selection": {
                        "tagStatus": "any",
                        "countType": "sinceImagePulled",
                        "countUnit": "days",
                        "countNumber": 30
                    },
                    "action": {"type": "expire"}
                }]
            })
        );
    }

    #[test]
    fn policy_document_exact() {
        assert_eq!(
            policy_document(&target(), &rack()),
            json!({
                "Version": "2012-10-17",
                "Statement": [{
                    "Sid": "PullThroughDockerHubCache",
                    "Effect": "Allow",
                    "Action": ["ecr:CreateRepository", "ecr:BatchImportUpstreamImage"],
                    "Resource": "arn:aws:ecr:us-east-1:123456789012:repository/docker-hub-demo/*",
                }],
            })
        );
    }
}
