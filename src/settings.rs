//! The rack parameters that switch the cache on and hold the Docker Hub
//! credentials, their validation, and the merge that `params set` performs.

use std::fmt;

use crate::names::Rack;

/// One of the rack parameters hubcache reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Parameter {
    /// `ecr_docker_hub_cache`: `true` or `false`, absent means `false`.
    Flag,
    /// `docker_hub_username`.
    Username,
    /// `docker_hub_password`: a read-only Docker Hub access token.
    Password,
    /// `ecr_docker_hub_cache_node_roles`: comma-separated IAM roles to attach
    /// the pull-through policy to, in place of the rack's default node roles.
    NodeRoles,
    /// `ecr_docker_hub_cache_retention_days`: cached images not pulled for
    /// this many days expire. Absent keeps every image.
    RetentionDays,
}

impl Parameter {
    pub const ALL: [Parameter; 5] = [
        Parameter::Flag,
        Parameter::Username,
        Parameter::Password,
        Parameter::NodeRoles,
        Parameter::RetentionDays,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Parameter::Flag => "ecr_docker_hub_cache",
            Parameter::Username => "docker_hub_username",
            Parameter::Password => "docker_hub_password",
            Parameter::NodeRoles => "ecr_docker_hub_cache_node_roles",
            Parameter::RetentionDays => "ecr_docker_hub_cache_retention_days",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|parameter| parameter.name() == name)
    }

    /// Returns whether SSM stores the value encrypted, as a SecureString.
    pub fn is_secret(self) -> bool {
        self == Parameter::Password
    }
}

impl fmt::Display for Parameter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A Docker Hub access token. Debug and Display print a mask, so the value
/// reaches a log line or an error message only through [`Password::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub const MASK: &'static str = "********";

    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// Returns the token itself, for the secret value and the SSM write only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Self::MASK)
    }
}

impl fmt::Display for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Self::MASK)
    }
}

/// The rack's parameters as stored, before validation. `None` is an absent parameter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredParameters {
    pub flag: Option<String>,
    pub username: Option<String>,
    pub password: Option<Password>,
    pub node_roles: Option<String>,
    pub retention_days: Option<String>,
    /// The cache prefix the reconciler last published: output, not a setting.
    pub published_cache_prefix: Option<String>,
    /// The repository creation template the reconciler created, recorded
    /// before it was created: output, not a setting. A template is deleted
    /// only when it is recorded, so one made by hand is left alone.
    pub recorded_template: Option<String>,
}

/// Values the reconciler last wrote to a rack's parameters for others to read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outputs {
    /// The published cache prefix.
    pub cache_prefix: Option<String>,
    /// The recorded repository creation template.
    pub template: Option<String>,
}

/// Docker Hub credentials, both non-empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: Password,
}

/// IAM roles the pull-through policy is attached to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeRoles {
    /// Roles that must exist: enabling fails before any write without them.
    pub required: Vec<String>,
    /// Roles attached to only where they exist.
    pub optional: Vec<String>,
}

impl NodeRoles {
    /// Returns the rack's default roles: `<rack>-nodes`, and
    /// `<rack>-karpenter-nodes` and `<rack>-build-nodes` where they exist.
    pub fn default_for(rack: &Rack) -> Self {
        Self {
            required: vec![rack.nodes_role()],
            optional: rack.optional_node_roles().to_vec(),
        }
    }

    pub fn all(&self) -> impl Iterator<Item = &String> {
        self.required.iter().chain(&self.optional)
    }
}

/// Desired state of a rack's cache, from its parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Desired {
    Disabled,
    Enabled(EnabledCache),
}

/// Settings of an enabled cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnabledCache {
    pub credentials: Credentials,
    pub node_roles: NodeRoles,
    /// Days after their last pull that cached images expire, or `None` to keep them.
    pub retention_days: Option<u32>,
}

impl Desired {
    pub fn credentials(&self) -> Option<&Credentials> {
        match self {
            Desired::Enabled(cache) => Some(&cache.credentials),
            Desired::Disabled => None,
        }
    }

    pub fn is_enabled(&self) -> bool {
        matches!(self, Desired::Enabled(_))
    }

    /// Returns the retention in days when the cache is enabled with one.
    pub fn retention_days(&self) -> Option<u32> {
        match self {
            Desired::Enabled(cache) => cache.retention_days,
            Desired::Disabled => None,
        }
    }
}

/// Largest retention accepted: ECR documents a lifecycle rule's countNumber as
/// an integer, taken here as 32-bit signed.
/// NOTE: whether ECR accepts this largest value with sinceImagePulled is not
/// verified; the emulator accepts it.
pub const MAX_RETENTION_DAYS: u32 = i32::MAX as u32;

/// An invalid parameter value or combination.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettingsError {
    #[error(
        "Parameter ecr_docker_hub_cache must be true or false, but it is {value:?}. Set it to one \
         of them, for example: hubcache params set ecr_docker_hub_cache=false --rack {rack}"
    )]
    InvalidFlag { rack: String, value: String },
    #[error(
        "ecr_docker_hub_cache=true requires docker_hub_username and docker_hub_password.\n\
         Set all three in one call: hubcache params set ecr_docker_hub_cache=true \
         docker_hub_username=USER docker_hub_password=TOKEN --rack {rack}\n\
         Or set the two credentials first: hubcache params set docker_hub_username=USER \
         docker_hub_password=TOKEN --rack {rack}"
    )]
    MissingCredentials { rack: String },
    #[error(
        "Unknown parameter {key:?}. hubcache manages ecr_docker_hub_cache, docker_hub_username, \
         docker_hub_password, ecr_docker_hub_cache_node_roles and \
         ecr_docker_hub_cache_retention_days."
    )]
    UnknownParameter { key: String },
    #[error(
        "Argument {argument:?} is not of the form KEY=VALUE, for example ecr_docker_hub_cache=true."
    )]
    MalformedAssignment { argument: String },
    #[error(
        "Parameter ecr_docker_hub_cache_node_roles of rack {rack} must be IAM role names separated \
         by commas, but it is {value:?}. A role name has 1 to 64 letters, digits and +=,.@_- \
         characters."
    )]
    InvalidNodeRoles { rack: String, value: String },
    #[error(
        "Parameter ecr_docker_hub_cache_retention_days of rack {rack} must be a whole number of \
         days from 1 to {max}, but it is {value:?}.\n\
         Set a number of days: hubcache params set ecr_docker_hub_cache_retention_days=30 \
         --rack {rack}\n\
         Or remove it to keep every cached image: hubcache params set \
         ecr_docker_hub_cache_retention_days= --rack {rack}",
        max = MAX_RETENTION_DAYS
    )]
    InvalidRetentionDays { rack: String, value: String },
    #[error(
        "Parameter {parameter} is given more than once; give each parameter at most once per call."
    )]
    DuplicateParameter { parameter: Parameter },
}

impl StoredParameters {
    pub fn outputs(&self) -> Outputs {
        Outputs {
            cache_prefix: self.published_cache_prefix.clone(),
            template: self.recorded_template.clone(),
        }
    }

    pub fn get(&self, parameter: Parameter) -> Option<&str> {
        match parameter {
            Parameter::Flag => self.flag.as_deref(),
            Parameter::Username => self.username.as_deref(),
            Parameter::Password => self.password.as_ref().map(Password::expose),
            Parameter::NodeRoles => self.node_roles.as_deref(),
            Parameter::RetentionDays => self.retention_days.as_deref(),
        }
    }

    pub fn set(&mut self, parameter: Parameter, value: Option<String>) {
        match parameter {
            Parameter::Flag => self.flag = value,
            Parameter::Username => self.username = value,
            Parameter::Password => self.password = value.map(Password::new),
            Parameter::NodeRoles => self.node_roles = value,
            Parameter::RetentionDays => self.retention_days = value,
        }
    }

    /// Validates the parameters of `rack` and returns the desired state.
    ///
    /// A disabled cache needs only the flag, so an invalid node-role list or
    /// retention stored by another tool does not block disabling (tested
    /// below). [`merge`] still checks every value `params set` writes.
    pub fn desired(&self, rack: &Rack) -> Result<Desired, SettingsError> {
        if !self.enabled(rack)? {
            return Ok(Desired::Disabled);
        }
        let node_roles = self.node_roles(rack)?;
        let retention_days = self.retention_days(rack)?;

        let username = self.username.as_deref().unwrap_or_default();
        let password = self
            .password
            .as_ref()
            .map(Password::expose)
            .unwrap_or_default();
        if username.is_empty() || password.is_empty() {
            return Err(SettingsError::MissingCredentials {
                rack: rack.to_string(),
            });
        }

        Ok(Desired::Enabled(EnabledCache {
            credentials: Credentials {
                username: username.to_owned(),
                password: Password::new(password),
            },
            node_roles,
            retention_days,
        }))
    }

    /// Returns whether the flag is `true`; an absent flag is `false`.
    pub fn enabled(&self, rack: &Rack) -> Result<bool, SettingsError> {
        match self.flag.as_deref() {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(other) => Err(SettingsError::InvalidFlag {
                rack: rack.to_string(),
                value: other.to_owned(),
            }),
        }
    }

    /// Returns the retention in days, `None` when the parameter is absent.
    fn retention_days(&self, rack: &Rack) -> Result<Option<u32>, SettingsError> {
        let Some(value) = self.retention_days.as_deref() else {
            return Ok(None);
        };
        let days = (!value.is_empty() && value.bytes().all(|byte| byte.is_ascii_digit()))
            .then(|| value.parse::<u32>().ok())
            .flatten()
            .filter(|days| (1..=MAX_RETENTION_DAYS).contains(days));
        match days {
            Some(days) => Ok(Some(days)),
            None => Err(SettingsError::InvalidRetentionDays {
                rack: rack.to_string(),
                value: value.to_owned(),
            }),
        }
    }

    /// Returns the listed node roles, or the rack's default roles when none are listed.
    fn node_roles(&self, rack: &Rack) -> Result<NodeRoles, SettingsError> {
        let Some(value) = self.node_roles.as_deref() else {
            return Ok(NodeRoles::default_for(rack));
        };
        let invalid = || SettingsError::InvalidNodeRoles {
            rack: rack.to_string(),
            value: value.to_owned(),
        };

        let mut required: Vec<String> = Vec::new();
        for name in value.split(',').map(str::trim) {
            if !is_role_name(name) {
                return Err(invalid());
            }
            if !required.iter().any(|known| known == name) {
                required.push(name.to_owned());
            }
        }

        Ok(NodeRoles {
            required,
            optional: Vec::new(),
        })
    }
}

/// Returns whether `name` matches IAM's role name pattern `[\w+=,.@-]{1,64}`.
fn is_role_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"_+=.@-".contains(&byte))
}

/// One `KEY=VALUE` argument of `params set`. An empty value removes the parameter.
#[derive(Clone, PartialEq, Eq)]
pub struct Assignment {
    pub parameter: Parameter,
    pub value: Option<String>,
}

impl fmt::Debug for Assignment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = match (&self.value, self.parameter.is_secret()) {
            (None, _) => "<remove>",
            (Some(_), true) => Password::MASK,
            (Some(value), false) => value,
        };
        write!(f, "{}={value}", self.parameter)
    }
}

impl Assignment {
    pub fn parse(argument: &str) -> Result<Self, SettingsError> {
        let Some((key, value)) = argument.split_once('=') else {
            return Err(SettingsError::MalformedAssignment {
                argument: mask_value(argument),
            });
        };
        let parameter =
            Parameter::from_name(key).ok_or_else(|| SettingsError::UnknownParameter {
                key: key.to_owned(),
            })?;

        Ok(Self {
            parameter,
            value: (!value.is_empty()).then(|| value.to_owned()),
        })
    }
}

/// Cuts an argument that may carry a password down to what is safe to print.
fn mask_value(argument: &str) -> String {
    if argument.starts_with(Parameter::Password.name()) {
        Parameter::Password.name().to_owned()
    } else {
        argument.to_owned()
    }
}

/// Checks the value `assignment` writes, whether or not the cache is enabled.
fn check_value(rack: &Rack, assignment: &Assignment) -> Result<(), SettingsError> {
    let mut alone = StoredParameters::default();
    alone.set(assignment.parameter, assignment.value.clone());
    match assignment.parameter {
        Parameter::Flag => alone.enabled(rack).map(drop),
        Parameter::NodeRoles => alone.node_roles(rack).map(drop),
        Parameter::RetentionDays => alone.retention_days(rack).map(drop),
        Parameter::Username | Parameter::Password => Ok(()),
    }
}

/// Applies `assignments` to `current` and validates the result for `rack`.
///
/// Returns the merged parameters and the assignments in an order whose every
/// intermediate state is valid: credentials before the flag when enabling,
/// the flag first otherwise, so a reader never sees the cache enabled without
/// credentials.
pub fn merge(
    rack: &Rack,
    current: &StoredParameters,
    assignments: Vec<Assignment>,
) -> Result<(StoredParameters, Vec<Assignment>), SettingsError> {
    for (index, assignment) in assignments.iter().enumerate() {
        if assignments[..index]
            .iter()
            .any(|earlier| earlier.parameter == assignment.parameter)
        {
            return Err(SettingsError::DuplicateParameter {
                parameter: assignment.parameter,
            });
        }
    }

    let mut merged = current.clone();
    for assignment in &assignments {
        check_value(rack, assignment)?;
        merged.set(assignment.parameter, assignment.value.clone());
    }
    let desired = merged.desired(rack)?;

    let (flag, others): (Vec<Assignment>, Vec<Assignment>) = assignments
        .into_iter()
        .partition(|assignment| assignment.parameter == Parameter::Flag);
    let ordered = match desired {
        Desired::Enabled(_) => [others, flag].concat(),
        Desired::Disabled => [flag, others].concat(),
    };

    Ok((merged, ordered))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIRST_LINE: &str =
        "ecr_docker_hub_cache=true requires docker_hub_username and docker_hub_password.";

    fn demo() -> Rack {
        Rack::parse("demo").unwrap()
    }

    fn stored(
        flag: Option<&str>,
        username: Option<&str>,
        password: Option<&str>,
    ) -> StoredParameters {
        StoredParameters {
            flag: flag.map(str::to_owned),
            username: username.map(str::to_owned),
            password: password.map(Password::new),
            ..StoredParameters::default()
        }
    }

    fn assignments(arguments: &[&str]) -> Vec<Assignment> {
        arguments
            .iter()
            .map(|argument| Assignment::parse(argument).unwrap())
            .collect()
    }

    #[test]
    fn desired_absent_flag_is_disabled() {
        assert_eq!(
            StoredParameters::default().desired(&demo()),
            Ok(Desired::Disabled)
        );
        assert_eq!(
            stored(Some("false"), None, None).desired(&demo()),
            Ok(Desired::Disabled)
        );
    }

    #[test]
    fn desired_enabled_with_credentials() {
        let desired = stored(Some("true"), Some("user"), Some("token")).desired(&demo());

        assert_eq!(
            desired,
            Ok(Desired::Enabled(EnabledCache {
                credentials: Credentials {
                    username: "user".into(),
                    password: Password::new("token"),
                },
                node_roles: NodeRoles {
                    required: vec!["demo-nodes".into()],
                    optional: vec!["demo-karpenter-nodes".into(), "demo-build-nodes".into()],
                },
                retention_days: None,
            }))
        );
    }

    #[test]
    fn desired_retention_days() {
        for (value, days) in [
            ("1", 1),
            ("30", 30),
            ("365", 365),
            ("2147483647", 2147483647),
        ] {
            let mut parameters = stored(Some("true"), Some("user"), Some("token"));
            parameters.retention_days = Some(value.to_owned());

            let desired = parameters.desired(&demo()).unwrap();

            assert_eq!(desired.retention_days(), Some(days), "{value:?}");
        }
        assert_eq!(
            stored(Some("true"), Some("user"), Some("token"))
                .desired(&demo())
                .unwrap()
                .retention_days(),
            None
        );
    }

    #[test]
    fn desired_rejects_invalid_retention_days() {
        for value in [
            "0",
            "-1",
            "+30",
            "30d",
            " 30",
            "30 ",
            "3.5",
            "1e3",
            "",
            "thirty",
            "2147483648",
            "99999999999999999999",
            "٣٠",
        ] {
            let mut parameters = stored(Some("true"), Some("user"), Some("token"));
            parameters.retention_days = Some(value.to_owned());

            let error = parameters.desired(&demo()).unwrap_err();

            assert_eq!(
                error,
                SettingsError::InvalidRetentionDays {
                    rack: "demo".into(),
                    value: value.to_owned(),
                },
                "{value:?}"
            );
            let message = error.to_string();
            assert!(message.contains(&format!("{value:?}")), "{message}");
            assert!(message.contains("from 1 to 2147483647"), "{message}");
        }
    }

    #[test]
    fn desired_disabled_ignores_invalid_extras() {
        let mut parameters = stored(Some("false"), None, None);
        parameters.node_roles = Some("has space".into());
        parameters.retention_days = Some("0".into());

        assert_eq!(parameters.desired(&demo()), Ok(Desired::Disabled));
        assert_eq!(
            StoredParameters {
                flag: None,
                ..parameters
            }
            .desired(&demo()),
            Ok(Desired::Disabled)
        );
    }

    #[test]
    fn merge_rejects_invalid_values_when_disabled() {
        let cases = [
            (
                "ecr_docker_hub_cache_retention_days=0",
                SettingsError::InvalidRetentionDays {
                    rack: "demo".into(),
                    value: "0".into(),
                },
            ),
            (
                "ecr_docker_hub_cache_node_roles=a,,b",
                SettingsError::InvalidNodeRoles {
                    rack: "demo".into(),
                    value: "a,,b".into(),
                },
            ),
            (
                "ecr_docker_hub_cache=yes",
                SettingsError::InvalidFlag {
                    rack: "demo".into(),
                    value: "yes".into(),
                },
            ),
        ];
        for (argument, expected) in cases {
            let result = merge(
                &demo(),
                &stored(Some("false"), None, None),
                assignments(&[argument]),
            );

            assert_eq!(result.unwrap_err(), expected, "{argument}");
        }
    }

    #[test]
    fn merge_disables_despite_invalid_stored_retention() {
        let mut current = stored(Some("true"), Some("user"), Some("token"));
        current.retention_days = Some("99999999999".into());

        let (merged, ordered) = merge(
            &demo(),
            &current,
            assignments(&["ecr_docker_hub_cache=false"]),
        )
        .unwrap();

        assert_eq!(merged.desired(&demo()), Ok(Desired::Disabled));
        assert_eq!(ordered.len(), 1);
    }

    #[test]
    fn merge_accepts_retention_days() {
        let (merged, ordered) = merge(
            &demo(),
            &stored(Some("true"), Some("user"), Some("token")),
            assignments(&["ecr_docker_hub_cache_retention_days=14"]),
        )
        .unwrap();

        assert_eq!(merged.retention_days.as_deref(), Some("14"));
        assert_eq!(ordered.len(), 1);
        assert_eq!(ordered[0].parameter, Parameter::RetentionDays);
    }

    #[test]
    fn desired_listed_node_roles() {
        let mut parameters = stored(Some("true"), Some("user"), Some("token"));
        parameters.node_roles = Some("eks-nodes, gpu-nodes,eks-nodes".into());

        let Ok(Desired::Enabled(cache)) = parameters.desired(&demo()) else {
            panic!("expected an enabled cache");
        };

        assert_eq!(cache.node_roles.required, ["eks-nodes", "gpu-nodes"]);
        assert_eq!(cache.node_roles.optional, Vec::<String>::new());
    }

    #[test]
    fn desired_rejects_invalid_node_roles() {
        for value in ["", "a,,b", "has space", "slash/role", &"r".repeat(65)] {
            let mut parameters = stored(Some("true"), Some("user"), Some("token"));
            parameters.node_roles = Some(value.to_owned());

            assert_eq!(
                parameters.desired(&demo()),
                Err(SettingsError::InvalidNodeRoles {
                    rack: "demo".into(),
                    value: value.to_owned(),
                }),
                "{value:?}"
            );
        }
    }

    #[test]
    fn desired_rejects_other_flag_values() {
        for value in ["TRUE", "yes", "1", "", "True", " true"] {
            let error = stored(Some(value), Some("user"), Some("token"))
                .desired(&demo())
                .unwrap_err();

            assert_eq!(
                error,
                SettingsError::InvalidFlag {
                    rack: "demo".into(),
                    value: value.into()
                }
            );
            assert!(error.to_string().contains(&format!("{value:?}")));
        }
    }

    #[test]
    fn desired_requires_both_credentials() {
        for (username, password) in [
            (None, None),
            (Some("user"), None),
            (None, Some("token")),
            (Some(""), Some("token")),
            (Some("user"), Some("")),
        ] {
            let error = stored(Some("true"), username, password)
                .desired(&demo())
                .unwrap_err();

            assert_eq!(
                error,
                SettingsError::MissingCredentials {
                    rack: "demo".into()
                }
            );
            let message = error.to_string();
            let lines: Vec<&str> = message.lines().collect();
            assert_eq!(lines.len(), 3);
            assert_eq!(lines[0], FIRST_LINE);
            assert!(lines[1].starts_with("Set all three in one call: hubcache params set"));
            assert!(lines[2].starts_with("Or set the two credentials first: hubcache params set"));
        }
    }

    #[test]
    fn password_is_masked() {
        let password = Password::new("dckr_pat_secret");
        let parameters = stored(Some("true"), Some("user"), Some("dckr_pat_secret"));
        let assignment = Assignment::parse("docker_hub_password=dckr_pat_secret").unwrap();

        assert_eq!(format!("{password}"), "********");
        assert_eq!(format!("{password:?}"), "********");
        assert!(!format!("{parameters:?}").contains("dckr_pat_secret"));
        assert!(!format!("{assignment:?}").contains("dckr_pat_secret"));
        assert_eq!(password.expose(), "dckr_pat_secret");
    }

    #[test]
    fn assignment_parse_errors() {
        assert_eq!(
            Assignment::parse("docker_hub_token=x"),
            Err(SettingsError::UnknownParameter {
                key: "docker_hub_token".into()
            })
        );
        assert_eq!(
            Assignment::parse("ecr_docker_hub_cache"),
            Err(SettingsError::MalformedAssignment {
                argument: "ecr_docker_hub_cache".into()
            })
        );
        assert_eq!(
            Assignment::parse("docker_hub_username="),
            Ok(Assignment {
                parameter: Parameter::Username,
                value: None
            })
        );
        assert_eq!(
            Assignment::parse("docker_hub_password=a=b")
                .unwrap()
                .value
                .as_deref(),
            Some("a=b")
        );
    }

    #[test]
    fn merge_enable_alone_with_stored_credentials() {
        let current = stored(None, Some("user"), Some("token"));

        let (merged, order) = merge(
            &demo(),
            &current,
            assignments(&["ecr_docker_hub_cache=true"]),
        )
        .unwrap();

        assert_eq!(merged.flag.as_deref(), Some("true"));
        assert_eq!(order, assignments(&["ecr_docker_hub_cache=true"]));
    }

    #[test]
    fn merge_enable_writes_credentials_first() {
        let (_, order) = merge(
            &demo(),
            &StoredParameters::default(),
            assignments(&[
                "ecr_docker_hub_cache=true",
                "docker_hub_username=user",
                "docker_hub_password=token",
            ]),
        )
        .unwrap();

        let names: Vec<Parameter> = order.iter().map(|a| a.parameter).collect();
        assert_eq!(
            names,
            [Parameter::Username, Parameter::Password, Parameter::Flag]
        );
    }

    #[test]
    fn merge_disable_writes_flag_first() {
        let current = stored(Some("true"), Some("user"), Some("token"));

        let (_, order) = merge(
            &demo(),
            &current,
            assignments(&["docker_hub_password=", "ecr_docker_hub_cache=false"]),
        )
        .unwrap();

        let names: Vec<Parameter> = order.iter().map(|a| a.parameter).collect();
        assert_eq!(names, [Parameter::Flag, Parameter::Password]);
    }

    #[test]
    fn merge_rejects_duplicates() {
        let error = merge(
            &demo(),
            &stored(Some("true"), Some("user"), Some("token")),
            assignments(&["docker_hub_password=", "docker_hub_password=new"]),
        )
        .unwrap_err();

        assert_eq!(
            error.to_string(),
            "Parameter docker_hub_password is given more than once; give each parameter at most \
             once per call."
        );
    }

    #[test]
    fn merge_rejects_enable_without_credentials() {
        let error = merge(
            &demo(),
            &stored(None, Some("user"), None),
            assignments(&["ecr_docker_hub_cache=true"]),
        )
        .unwrap_err();

        assert_eq!(
            error,
            SettingsError::MissingCredentials {
                rack: "demo".into()
            }
        );
    }

    #[test]
    fn merge_rejects_removing_credentials_while_enabled() {
        let error = merge(
            &demo(),
            &stored(Some("true"), Some("user"), Some("token")),
            assignments(&["docker_hub_password="]),
        )
        .unwrap_err();

        assert_eq!(
            error,
            SettingsError::MissingCredentials {
                rack: "demo".into()
            }
        );
    }
}
