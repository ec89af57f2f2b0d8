//! Current state of a rack's cache: settings, resources, drift from the
//! desired state, and the repositories already cached.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::ecr::{self, CachedRepository};
use crate::error::Error;
use crate::names::Rack;
use crate::plan::{self, Entity, SecretState};
use crate::reconcile::{self, Context, Reads};
use crate::settings::{Desired, Parameter, Password};

/// A rack's status, as `hubcache status` prints it.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Status {
    pub rack: String,
    /// The rack's parameters, the password masked; absent ones are left out.
    pub settings: BTreeMap<String, String>,
    pub enabled: bool,
    pub secret: Option<SecretStatus>,
    pub rule: Option<RuleStatus>,
    pub policy: Option<PolicyStatus>,
    pub published_prefix: Option<String>,
    pub template: Option<TemplateStatus>,
    /// The error of the optional template read, made when the rack has no
    /// retention, when that read failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template_error: Option<String>,
    /// The error of invalid settings. Drift is then not computed, and the
    /// resources are shown as found, without comparing their content.
    pub settings_error: Option<String>,
    /// The error that stops a reconcile from planning, such as a missing node role.
    pub plan_error: Option<String>,
    /// Changes a reconcile would make, each one a difference from the desired
    /// state, or `None` when they could not be computed.
    pub drift: Option<Vec<String>>,
    pub cached_repositories: Vec<CachedRepository>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct SecretStatus {
    pub name: String,
    pub arn: String,
    /// `current`, `differs`, `pending deletion` or `not compared`.
    pub state: &'static str,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct RuleStatus {
    pub prefix: String,
    pub upstream_registry_url: String,
    pub credential_arn: Option<String>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct PolicyStatus {
    pub arn: String,
    /// `None` when the settings are invalid and the document was not compared.
    pub document_matches: Option<bool>,
    pub attached_to: Vec<String>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct TemplateStatus {
    pub prefix: String,
    /// Days after their last pull that images expire, when the template's
    /// lifecycle policy is the one hubcache writes.
    pub retention_days: Option<u32>,
    pub applied_for: Vec<String>,
    /// Whether the rack's parameters record the template as hubcache's.
    pub managed: bool,
}

/// Reads the rack's status. Writes nothing.
pub async fn read(context: &Context, rack: &Rack) -> Result<Status, Error> {
    let stored = reconcile::read_parameters(context, rack).await?;
    // With invalid settings the resources are still shown: they are read as
    // for disabling, which finds each one without comparing its content.
    let (desired, settings_error) = match stored.desired(rack) {
        Ok(desired) => (desired, None),
        Err(error) => (Desired::Disabled, Some(error.to_string())),
    };
    let compared = settings_error.is_none();

    let mut observed =
        reconcile::observe(context, rack, &desired, &stored.outputs(), Reads::Complete).await?;
    let planned = plan::plan(rack, &context.target, &desired, &observed);
    let (drift, plan_error) = match (&settings_error, planned) {
        (Some(_), _) => (None, None),
        (None, Ok(actions)) => (
            Some(actions.iter().map(ToString::to_string).collect()),
            None,
        ),
        (None, Err(error)) => (None, Some(error.to_string())),
    };

    // A template made by hand is shown too; reading it is optional, because
    // an operator who does not use retention may lack the permission.
    let mut template_error = None;
    if !reconcile::reads_template(&desired, &stored.outputs()) {
        match ecr::observe_template(&context.clients.ecr, rack).await {
            Ok(found) => observed.template = found,
            Err(error) => template_error = Some(error.to_string()),
        }
    }
    let cached_repositories = ecr::cached_repositories(&context.clients.ecr, rack)
        .await
        .map_err(|source| Error::ReadFailed {
            rack: rack.to_string(),
            resource: format!("repositories under {}/", rack.rule_prefix()),
            source,
        })?;

    let settings = Parameter::ALL
        .iter()
        .filter_map(|parameter| {
            let value = stored.get(*parameter)?;
            let displayed = if parameter.is_secret() {
                Password::MASK
            } else {
                value
            };
            Some((parameter.name().to_owned(), displayed.to_owned()))
        })
        .collect();

    Ok(Status {
        rack: rack.to_string(),
        settings,
        enabled: stored.enabled(rack).unwrap_or(false),
        secret: observed.secret.map(|secret| SecretStatus {
            name: rack.secret_name(),
            arn: secret.arn,
            state: match secret.state {
                SecretState::PendingDeletion => "pending deletion",
                _ if !compared => "not compared",
                SecretState::Current => "current",
                SecretState::Outdated => "differs",
            },
        }),
        rule: observed.rule.map(|rule| RuleStatus {
            prefix: rack.rule_prefix(),
            upstream_registry_url: rule.upstream_registry_url,
            credential_arn: rule.credential_arn,
        }),
        policy: observed.policy.map(|policy| PolicyStatus {
            arn: policy.arn,
            document_matches: compared.then_some(policy.document_matches),
            attached_to: policy.attached_to.iter().map(Entity::to_string).collect(),
        }),
        published_prefix: stored.published_cache_prefix,
        template: observed.template.map(|template| TemplateStatus {
            prefix: rack.rule_prefix(),
            retention_days: template.retention_days(),
            applied_for: template.applied_for,
            managed: observed.recorded_template,
        }),
        template_error,
        settings_error,
        plan_error,
        drift,
        cached_repositories,
    })
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = if self.enabled { "enabled" } else { "disabled" };
        writeln!(f, "Rack {}: cache {state}", self.rack)?;

        writeln!(f, "Settings:")?;
        if self.settings.is_empty() {
            writeln!(f, "  (none)")?;
        }
        for (name, value) in &self.settings {
            writeln!(f, "  {name} = {value}")?;
        }

        writeln!(f, "Resources:")?;
        match &self.secret {
            Some(secret) => writeln!(
                f,
                "  secret {} ({}): {}",
                secret.name, secret.arn, secret.state
            )?,
            None => writeln!(f, "  secret: none")?,
        }
        match &self.rule {
            Some(rule) => writeln!(
                f,
                "  rule {} -> {}, credential {}",
                rule.prefix,
                rule.upstream_registry_url,
                rule.credential_arn.as_deref().unwrap_or("none")
            )?,
            None => writeln!(f, "  rule: none")?,
        }
        match &self.policy {
            Some(policy) => {
                let document = match policy.document_matches {
                    Some(true) => "document current",
                    Some(false) => "document differs",
                    None => "document not compared",
                };
                let attached = if policy.attached_to.is_empty() {
                    "attached to nothing".to_owned()
                } else {
                    format!("attached to {}", policy.attached_to.join(", "))
                };
                writeln!(f, "  policy {}: {document}, {attached}", policy.arn)?
            }
            None => writeln!(f, "  policy: none")?,
        }
        match &self.template {
            Some(template) => {
                let expiry = match template.retention_days {
                    Some(days) => format!(
                        "expires images not pulled for {}",
                        crate::plan::days_text(days)
                    ),
                    None => "lifecycle policy not hubcache's".to_owned(),
                };
                let owner = if template.managed {
                    "managed by hubcache"
                } else {
                    "not managed by hubcache"
                };
                writeln!(
                    f,
                    "  repository creation template {}: {expiry}, applied for {}, {owner}",
                    template.prefix,
                    template.applied_for.join(", ")
                )?
            }
            None => match &self.template_error {
                Some(error) => writeln!(f, "  repository creation template: unknown ({error})")?,
                None => writeln!(f, "  repository creation template: none")?,
            },
        }
        writeln!(
            f,
            "  published prefix: {}",
            self.published_prefix.as_deref().unwrap_or("none")
        )?;

        writeln!(f, "Drift:")?;
        let unknown = match (&self.settings_error, &self.plan_error) {
            (Some(error), _) => Some(("unknown until the settings are valid:", error)),
            (None, Some(error)) => Some(("unknown, because a reconcile cannot plan:", error)),
            (None, None) => None,
        };
        if let Some((heading, error)) = unknown {
            writeln!(f, "  {heading}")?;
            for line in error.lines() {
                writeln!(f, "  {line}")?;
            }
        }
        match self.drift.as_deref() {
            Some([]) => writeln!(f, "  none")?,
            Some(changes) => {
                for change in changes {
                    writeln!(f, "  would {change}")?;
                }
            }
            None => {}
        }

        writeln!(f, "Cached repositories:")?;
        if self.cached_repositories.is_empty() {
            writeln!(f, "  none")?;
        }
        for repository in &self.cached_repositories {
            writeln!(f, "  {}: {}", repository.name, repository.contents())?;
        }
        Ok(())
    }
}
