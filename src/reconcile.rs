//! Brings one rack's AWS resources to what its parameters ask for:
//! read the parameters, observe AWS, plan, apply.

use aws_config::SdkConfig;
use tracing::{Instrument, info, info_span};

use crate::error::{AwsError, Error, RequestId};
use crate::names::{Rack, Target};
use crate::plan::{self, Action, Observed};
use crate::settings::{Credentials, Desired, Outputs, StoredParameters};
use crate::{ecr, iam, secrets, ssm};

/// One client per AWS service hubcache calls.
#[derive(Clone, Debug)]
pub struct Clients {
    pub ecr: aws_sdk_ecr::Client,
    pub iam: aws_sdk_iam::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub ssm: aws_sdk_ssm::Client,
}

impl Clients {
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            ecr: aws_sdk_ecr::Client::new(config),
            iam: aws_sdk_iam::Client::new(config),
            secrets: aws_sdk_secretsmanager::Client::new(config),
            ssm: aws_sdk_ssm::Client::new(config),
        }
    }
}

/// Environment of a reconcile: the AWS clients, the account and region, and
/// the SSM path under which rack parameters live.
#[derive(Clone, Debug)]
pub struct Context {
    pub clients: Clients,
    pub target: Target,
    pub parameter_prefix: String,
}

/// Outcome of one reconcile. No changes means the rack had converged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub rack: Rack,
    pub enabled: bool,
    pub changes: Vec<Action>,
    /// ARN of the rack's secret, when the cache is enabled.
    pub secret_arn: Option<String>,
    /// ARN of the rack's policy, when the cache is enabled.
    pub policy_arn: Option<String>,
    /// The upstream credential check, made after the rule or its credential changed.
    pub upstream: Option<UpstreamCheck>,
}

/// Reconciles `rack` with its stored parameters.
///
/// The parameters are read from SSM on every call, never taken from the
/// event that triggered it, so duplicate and out-of-order events converge on
/// the current setting. An invalid setting, or a state that cannot be reached
/// (the rack's node role is missing), stops before the first write. A failed
/// write stops the reconcile; every step is idempotent, so the next reconcile
/// continues from what AWS then holds.
pub async fn reconcile(context: &Context, rack: &Rack) -> Result<Report, Error> {
    let span = info_span!("reconcile", rack = %rack);
    async {
        let result = reconcile_rack(context, rack).await;
        if let Err(error) = &result {
            tracing::error!(rack = %rack, kind = error.kind(), %error, "reconcile failed");
        }
        result
    }
    .instrument(span)
    .await
}

/// Reads `rack`'s stored parameters, naming the path in the error.
pub async fn read_parameters(context: &Context, rack: &Rack) -> Result<StoredParameters, Error> {
    ssm::read(&context.clients.ssm, &context.parameter_prefix, rack)
        .await
        .map_err(|source| Error::ReadFailed {
            rack: rack.to_string(),
            resource: format!(
                "parameters under {}",
                ssm::rack_path(&context.parameter_prefix, rack)
            ),
            source,
        })
}

async fn reconcile_rack(context: &Context, rack: &Rack) -> Result<Report, Error> {
    let parameters = read_parameters(context, rack).await?;
    let desired = parameters.desired(rack)?;

    converge(context, rack, &desired, &parameters.outputs()).await
}

/// Brings `rack`'s resources to `desired`, whatever its parameters contain.
/// The CloudFormation Delete uses it to remove a rack's cache.
///
/// Another reconcile of the same rack may run at the same time, for example
/// the one that a parameter change triggers while a CloudFormation request is
/// being handled. When a write fails because that other run got there first
/// (the resource already exists, or is already gone), this one observes and
/// plans again, at most [`MAX_PASSES`] times in all.
pub async fn converge(
    context: &Context,
    rack: &Rack,
    desired: &Desired,
    outputs: &Outputs,
) -> Result<Report, Error> {
    let mut changes = Vec::new();
    let mut pass = 1;
    let mut outputs = outputs.clone();
    let arns = loop {
        let observed = observe(context, rack, desired, &outputs, Reads::Fewest).await?;

        let actions = plan::plan(rack, &context.target, desired, &observed)?;
        if actions.is_empty() {
            tracing::debug!(rack = %rack, "no changes");
        }

        let applied_before = changes.len();
        let result = apply(context, rack, desired, &observed, &actions, &mut changes).await;
        for change in &changes[applied_before..] {
            match change {
                Action::PublishCachePrefix { uri } => outputs.cache_prefix = Some(uri.clone()),
                Action::UnpublishCachePrefix => outputs.cache_prefix = None,
                Action::RecordTemplate { prefix } => outputs.template = Some(prefix.clone()),
                Action::ForgetTemplate { .. } => outputs.template = None,
                _ => {}
            }
        }
        match result {
            Ok(arns) => break arns,
            Err(Error::ApplyFailed { source, action, .. })
                if pass < MAX_PASSES && is_race(&source) =>
            {
                tracing::info!(rack = %rack, %action, error = %source, pass, "changed concurrently; observing again");
                pass += 1;
            }
            Err(error) => return Err(error),
        }
    };

    let enabled = desired.is_enabled();
    let credential_changed = changes.iter().any(|change| {
        matches!(
            change,
            Action::CreateRule { .. }
                | Action::UpdateRuleCredential { .. }
                | Action::UpdateSecretValue { .. }
        )
    });
    let upstream = if enabled && credential_changed {
        Some(validate_upstream(context, rack).await)
    } else {
        None
    };

    Ok(Report {
        rack: rack.clone(),
        enabled,
        changes,
        secret_arn: arns.secret.filter(|_| enabled),
        policy_arn: Some(arns.policy).filter(|_| enabled),
        upstream,
    })
}

/// Checks with ECR that the rule's credential signs in to Docker Hub. The
/// outcome is reported, loudly when invalid, but never fails the reconcile:
/// Docker Hub may be unreachable for a while, and the credential is the one
/// the operator set.
pub async fn validate_upstream(context: &Context, rack: &Rack) -> UpstreamCheck {
    match ecr::validate(&context.clients.ecr, rack).await {
        Ok(validation) if validation.valid => {
            info!(rack = %rack, "Docker Hub accepts the rule's credential");
            UpstreamCheck::Valid
        }
        Ok(validation) => {
            let reason = validation
                .failure
                .unwrap_or_else(|| "no reason given".into());
            tracing::warn!(rack = %rack, %reason, "Docker Hub rejects the rule's credential; check docker_hub_username and docker_hub_password");
            UpstreamCheck::Invalid(reason)
        }
        Err(error) => {
            tracing::warn!(rack = %rack, %error, "could not validate the rule's credential");
            UpstreamCheck::Unknown(error.to_string())
        }
    }
}

/// Outcome of checking the rule's credential with Docker Hub.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpstreamCheck {
    Valid,
    /// Docker Hub rejected the credential, for the reason given.
    Invalid(String),
    /// The check itself failed, with this error.
    Unknown(String),
}

impl std::fmt::Display for UpstreamCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpstreamCheck::Valid => f.write_str("Docker Hub accepts the credential"),
            UpstreamCheck::Invalid(reason) => write!(
                f,
                "Docker Hub rejects the credential ({reason}); check docker_hub_username and docker_hub_password"
            ),
            UpstreamCheck::Unknown(error) => {
                write!(f, "the credential could not be checked: {error}")
            }
        }
    }
}

/// Returns the changes that bringing `rack` to `desired` would make now,
/// without making any. Fails as the reconcile would: on a read error, or when
/// `desired` cannot be reached, such as with a node role that does not exist.
pub async fn dry_run(
    context: &Context,
    rack: &Rack,
    desired: &Desired,
    outputs: &Outputs,
) -> Result<Vec<Action>, Error> {
    let observed = observe(context, rack, desired, outputs, Reads::Complete).await?;
    Ok(plan::plan(rack, &context.target, desired, &observed)?)
}

/// Maximum number of observe, plan and apply passes of one reconcile.
pub const MAX_PASSES: u32 = 3;

/// Returns whether `error` shows that another writer changed the resource first.
fn is_race(error: &AwsError) -> bool {
    const RACE_CODES: [&str; 9] = [
        "ResourceExistsException",
        "PullThroughCacheRuleAlreadyExistsException",
        "TemplateAlreadyExistsException",
        "EntityAlreadyExists",
        "ResourceNotFoundException",
        "PullThroughCacheRuleNotFoundException",
        "TemplateNotFoundException",
        "NoSuchEntity",
        "DeleteConflict",
    ];
    RACE_CODES.iter().any(|code| error.is_code(code))
}

/// How much [`observe`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reads {
    /// Skip the rule and the policy of a rack without its secret: right for a
    /// reconcile, which observes again when a create finds them.
    Fewest,
    /// Read everything: right for a dry run, whose plan must be exact.
    Complete,
}

/// Returns whether [`observe`] reads the rack's repository creation template:
/// only when a retention is wanted or a template is recorded. Operators
/// without permission to read templates then keep a working `status` and
/// `plan` as long as they do not use retention.
pub fn reads_template(desired: &Desired, outputs: &Outputs) -> bool {
    outputs.template.is_some() || desired.retention_days().is_some()
}

/// Reads the state the plan needs. `outputs` are the values the reconciler
/// last wrote to the rack's parameters.
///
/// The secret is read first. When the cache is to be enabled and the secret
/// does not exist, the rack has almost always never been enabled, so the rule
/// and the policy are taken as absent without reading them, which saves calls.
/// If they exist after all, creating them fails with an already-exists error,
/// and [`converge`] observes everything again. The repository creation
/// template is read only when [`reads_template`] returns true, so a rack
/// without retention costs no extra call.
pub async fn observe(
    context: &Context,
    rack: &Rack,
    desired: &Desired,
    outputs: &Outputs,
    reads: Reads,
) -> Result<Observed, Error> {
    let clients = &context.clients;
    let read_failed = |resource: String| {
        let rack = rack.to_string();
        move |source| Error::ReadFailed {
            rack,
            resource,
            source,
        }
    };

    let recorded_template = outputs.template.is_some();
    let template = async {
        if !reads_template(desired, outputs) {
            return Ok(None);
        }
        ecr::observe_template(&clients.ecr, rack)
            .await
            .map_err(read_failed(format!(
                "repository creation template {}",
                rack.rule_prefix()
            )))
    };

    let secret = secrets::observe(&clients.secrets, rack, desired.credentials())
        .await
        .map_err(read_failed(format!("secret {}", rack.secret_name())))?;

    if let (Desired::Enabled(cache), None, Reads::Fewest) = (desired, &secret, reads) {
        let candidates: Vec<String> = cache.node_roles.all().cloned().collect();
        let node_roles = iam::existing_roles(&clients.iam, &candidates, &[])
            .await
            .map_err(read_failed(format!(
                "IAM policy {} and node roles",
                rack.policy_name()
            )))?;
        // An unrecorded template is taken as absent, as the rule and the
        // policy are. A recorded one is read.
        let template = if recorded_template {
            template.await?
        } else {
            None
        };
        return Ok(Observed {
            node_roles,
            published_prefix: outputs.cache_prefix.clone(),
            template,
            recorded_template,
            ..Observed::default()
        });
    }

    let rule = async {
        ecr::observe(&clients.ecr, rack)
            .await
            .map_err(read_failed(format!(
                "pull-through cache rule {}",
                rack.rule_prefix()
            )))
    };
    let policy_and_roles = async {
        observe_policy_and_roles(context, rack, desired)
            .await
            .map_err(read_failed(format!(
                "IAM policy {} and node roles",
                rack.policy_name()
            )))
    };
    let (rule, (policy, node_roles), template) =
        tokio::try_join!(rule, policy_and_roles, template)?;

    Ok(Observed {
        secret,
        rule,
        policy,
        node_roles,
        published_prefix: outputs.cache_prefix.clone(),
        template,
        recorded_template,
    })
}

async fn observe_policy_and_roles(
    context: &Context,
    rack: &Rack,
    desired: &Desired,
) -> Result<(Option<plan::ObservedPolicy>, Vec<String>), AwsError> {
    let iam_client = &context.clients.iam;
    let arn = context.target.policy_arn(rack);
    // Disabling deletes the policy whatever its document contains.
    let document = desired
        .is_enabled()
        .then(|| plan::policy_document(&context.target, rack));

    let policy = iam::observe(iam_client, &arn, document.as_ref()).await?;
    let Desired::Enabled(cache) = desired else {
        return Ok((policy, Vec::new()));
    };

    let attached: Vec<String> = policy
        .iter()
        .flat_map(|policy| &policy.attached_to)
        .filter_map(|entity| match entity {
            plan::Entity::Role(name) => Some(name.clone()),
            _ => None,
        })
        .collect();
    let candidates: Vec<String> = cache.node_roles.all().cloned().collect();
    let node_roles = iam::existing_roles(iam_client, &candidates, &attached).await?;

    Ok((policy, node_roles))
}

/// ARNs learned while applying: a new secret's ARN is known only once it exists.
struct Arns {
    secret: Option<String>,
    policy: String,
}

async fn apply(
    context: &Context,
    rack: &Rack,
    desired: &Desired,
    observed: &Observed,
    actions: &[Action],
    applied: &mut Vec<Action>,
) -> Result<Arns, Error> {
    let mut arns = Arns {
        secret: observed.secret.as_ref().map(|secret| secret.arn.clone()),
        policy: observed.policy.as_ref().map_or_else(
            || context.target.policy_arn(rack),
            |policy| policy.arn.clone(),
        ),
    };
    let credentials = desired.credentials();

    for action in actions {
        let request_id = apply_one(context, rack, credentials, action, &mut arns)
            .await
            .map_err(|source| Error::ApplyFailed {
                rack: rack.to_string(),
                action: action.clone(),
                source,
            })?;
        info!(
            rack = %rack,
            change = %action,
            aws_request_id = request_id.as_deref().unwrap_or("-"),
            "applied"
        );
        applied.push(action.clone());
    }
    Ok(arns)
}

async fn apply_one(
    context: &Context,
    rack: &Rack,
    credentials: Option<&Credentials>,
    action: &Action,
    arns: &mut Arns,
) -> Result<RequestId, AwsError> {
    let clients = &context.clients;
    let parameters = context.parameter_prefix.as_str();
    let credentials = || {
        credentials.ok_or_else(|| {
            AwsError::internal("a change to the secret was planned without credentials")
        })
    };
    let secret_arn = |arns: &Arns| {
        arns.secret.clone().ok_or_else(|| {
            AwsError::internal("a change to the rule was planned before the secret exists")
        })
    };

    match action {
        Action::CreateSecret { .. } => {
            let (arn, request_id) = secrets::create(&clients.secrets, rack, credentials()?).await?;
            arns.secret = Some(arn);
            Ok(request_id)
        }
        Action::RestoreSecret { .. } => secrets::restore(&clients.secrets, rack).await,
        Action::UpdateSecretValue { .. } => {
            secrets::put_value(&clients.secrets, rack, credentials()?).await
        }
        Action::DeleteSecret { .. } => secrets::delete(&clients.secrets, rack).await,
        Action::CreateRule { .. } => ecr::create(&clients.ecr, rack, &secret_arn(arns)?).await,
        Action::UpdateRuleCredential { .. } => {
            ecr::update_credential(&clients.ecr, rack, &secret_arn(arns)?).await
        }
        Action::DeleteRule { .. } => ecr::delete(&clients.ecr, rack).await,
        Action::CreatePolicy { .. } => {
            let document = plan::policy_document(&context.target, rack);
            let (arn, request_id) = iam::create(&clients.iam, rack, &document).await?;
            arns.policy = arn;
            Ok(request_id)
        }
        Action::UpdatePolicyDocument { .. } => {
            let document = plan::policy_document(&context.target, rack);
            iam::update_document(&clients.iam, &arns.policy, &document).await
        }
        Action::AttachPolicy { role, .. } => iam::attach(&clients.iam, &arns.policy, role).await,
        Action::DetachPolicy { entity, .. } => {
            iam::detach(&clients.iam, &arns.policy, entity).await
        }
        Action::DeletePolicyVersion { version, .. } => {
            iam::delete_version(&clients.iam, &arns.policy, version).await
        }
        Action::DeletePolicy { .. } => iam::delete(&clients.iam, &arns.policy).await,
        Action::PublishCachePrefix { uri } => {
            ssm::put_output(
                &clients.ssm,
                parameters,
                rack,
                ssm::CACHE_PREFIX_PARAMETER,
                uri,
            )
            .await
        }
        Action::UnpublishCachePrefix => {
            ssm::delete_output(&clients.ssm, parameters, rack, ssm::CACHE_PREFIX_PARAMETER).await
        }
        Action::RecordTemplate { prefix } => {
            ssm::put_output(
                &clients.ssm,
                parameters,
                rack,
                ssm::TEMPLATE_PARAMETER,
                prefix,
            )
            .await
        }
        Action::CreateTemplate { days, .. } => {
            ecr::create_template(&clients.ecr, rack, *days).await
        }
        Action::UpdateTemplate { days, .. } => {
            ecr::update_template(&clients.ecr, rack, *days).await
        }
        Action::DeleteTemplate { .. } => ecr::delete_template(&clients.ecr, rack).await,
        Action::ForgetTemplate { .. } => {
            ssm::delete_output(&clients.ssm, parameters, rack, ssm::TEMPLATE_PARAMETER).await
        }
    }
}
