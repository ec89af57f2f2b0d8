//! Names and ARNs of everything hubcache manages for a rack.

use std::fmt;

/// Prefix of every pull-through cache rule hubcache creates.
pub const RULE_PREFIX_START: &str = "docker-hub-";
/// Secrets Manager only lets ECR read secrets whose name starts with this.
pub const SECRET_NAME_START: &str = "ecr-pullthroughcache/";
/// ECR limits a repository prefix to 30 characters.
pub const MAX_PREFIX_LENGTH: usize = 30;
/// Maximum length of a rack name whose rule prefix `docker-hub-<rack>` stays within 30 characters.
pub const MAX_RACK_LENGTH: usize = MAX_PREFIX_LENGTH - RULE_PREFIX_START.len();
/// Docker Hub's registry endpoint, the upstream URL of every rule.
pub const UPSTREAM_REGISTRY_URL: &str = "registry-1.docker.io";
/// ECR's name for Docker Hub as an upstream registry.
pub const UPSTREAM_REGISTRY: &str = "docker-hub";

/// A rack name that is valid as part of every resource name: lowercase,
/// alphanumeric runs joined by single `.`, `_` or `-`, at most 19 characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Rack(String);

/// A rack name that cannot be part of an ECR repository prefix.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RackNameError {
    #[error("Rack name is empty; give the rack's name, such as production.")]
    Empty,
    #[error(
        "Rack name {rack:?} is {length} characters long, but at most {MAX_RACK_LENGTH} are allowed \
         because the ECR repository prefix docker-hub-<rack> is limited to {MAX_PREFIX_LENGTH} characters."
    )]
    TooLong { rack: String, length: usize },
    #[error(
        "Rack name {rack:?} is invalid: the ECR repository prefix docker-hub-<rack> allows only \
         lowercase letters and digits, joined by single '.', '_' or '-' characters, with a letter \
         or digit at each end."
    )]
    InvalidCharacters { rack: String },
}

impl Rack {
    /// Parses a rack name, lowercasing it first, as Convox does.
    pub fn parse(name: &str) -> Result<Self, RackNameError> {
        let rack = name.to_lowercase();
        if rack.is_empty() {
            return Err(RackNameError::Empty);
        }

        let length = rack.chars().count();
        if length > MAX_RACK_LENGTH {
            return Err(RackNameError::TooLong {
                rack: name.to_owned(),
                length,
            });
        }

        if !is_separated_alphanumeric(&rack) {
            return Err(RackNameError::InvalidCharacters {
                rack: name.to_owned(),
            });
        }

        Ok(Self(rack))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// ECR repository prefix of the rack's pull-through cache rule.
    pub fn rule_prefix(&self) -> String {
        format!("{RULE_PREFIX_START}{}", self.0)
    }

    /// Name of the Secrets Manager secret that contains the Docker Hub credentials.
    pub fn secret_name(&self) -> String {
        format!("{SECRET_NAME_START}{}", self.0)
    }

    /// Name of the IAM managed policy that lets nodes pull through the cache.
    pub fn policy_name(&self) -> String {
        format!("{}-ecr-pull-through", self.0)
    }

    /// Returns the node role that every rack has.
    pub fn nodes_role(&self) -> String {
        format!("{}-nodes", self.0)
    }

    /// Node roles that only some racks have, attached to when they exist.
    pub fn optional_node_roles(&self) -> [String; 2] {
        [
            format!("{}-karpenter-nodes", self.0),
            format!("{}-build-nodes", self.0),
        ]
    }
}

impl fmt::Display for Rack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Returns whether `name` is runs of `[a-z0-9]` joined by single `.`, `_` or `-`.
fn is_separated_alphanumeric(name: &str) -> bool {
    name.split(['.', '_', '-']).all(|run| {
        !run.is_empty()
            && run
                .bytes()
                .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit())
    })
}

/// The AWS account, partition and region the rack's resources live in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub partition: String,
    pub region: String,
    pub account: String,
}

impl Target {
    /// Reads the partition, region and account from an ARN such as a Lambda
    /// function's `arn:aws:lambda:us-east-1:123456789012:function:name`.
    pub fn from_arn(arn: &str) -> Option<Self> {
        let mut parts = arn.splitn(6, ':');
        let (Some("arn"), Some(partition), Some(_service), Some(region), Some(account)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        if partition.is_empty() || region.is_empty() || account.is_empty() {
            return None;
        }

        Some(Self {
            partition: partition.to_owned(),
            region: region.to_owned(),
            account: account.to_owned(),
        })
    }

    /// Returns the partition that contains `region`, as AWS names them.
    pub fn partition_of(region: &str) -> &'static str {
        if region.starts_with("cn-") {
            "aws-cn"
        } else if region.starts_with("us-gov-") {
            "aws-us-gov"
        } else if region.starts_with("us-iso-") {
            "aws-iso"
        } else if region.starts_with("us-isob-") {
            "aws-iso-b"
        } else {
            "aws"
        }
    }

    pub fn policy_arn(&self, rack: &Rack) -> String {
        format!(
            "arn:{}:iam::{}:policy/{}",
            self.partition,
            self.account,
            rack.policy_name()
        )
    }

    /// ARN pattern of every repository the rack's rule creates.
    pub fn cached_repositories_arn(&self, rack: &Rack) -> String {
        format!(
            "arn:{}:ecr:{}:{}:repository/{}/*",
            self.partition,
            self.region,
            self.account,
            rack.rule_prefix()
        )
    }

    /// Registry URI under which the rack's cached images are pulled.
    pub fn cache_uri(&self, rack: &Rack) -> String {
        let suffix = if self.partition == "aws-cn" {
            "amazonaws.com.cn"
        } else {
            "amazonaws.com"
        };
        format!(
            "{}.dkr.ecr.{}.{suffix}/{}",
            self.account,
            self.region,
            rack.rule_prefix()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rack_resource_names() {
        let rack = Rack::parse("Demo").unwrap();

        assert_eq!(rack.as_str(), "demo");
        assert_eq!(rack.rule_prefix(), "docker-hub-demo");
        assert_eq!(rack.secret_name(), "ecr-pullthroughcache/demo");
        assert_eq!(rack.policy_name(), "demo-ecr-pull-through");
        assert_eq!(rack.nodes_role(), "demo-nodes");
        assert_eq!(
            rack.optional_node_roles(),
            [
                "demo-karpenter-nodes".to_owned(),
                "demo-build-nodes".to_owned()
            ]
        );
    }

    #[test]
    fn rack_length_limit() {
        let nineteen = "a".repeat(19);
        let twenty = "a".repeat(20);

        assert_eq!(Rack::parse(&nineteen).unwrap().rule_prefix().len(), 30);
        assert_eq!(
            Rack::parse(&twenty),
            Err(RackNameError::TooLong {
                rack: twenty.clone(),
                length: 20
            })
        );
        assert_eq!(
            Rack::parse(&twenty).unwrap_err().to_string(),
            format!(
                "Rack name \"{twenty}\" is 20 characters long, but at most 19 are allowed because \
                 the ECR repository prefix docker-hub-<rack> is limited to 30 characters."
            )
        );
    }

    #[test]
    fn rack_rejects_malformed_names() {
        for name in [
            "-demo", "demo-", "de--mo", "de-.mo", "_", ".", "/", "de/mo", "dé", "de mo", "a_",
        ] {
            assert_eq!(
                Rack::parse(name),
                Err(RackNameError::InvalidCharacters {
                    rack: name.to_owned()
                }),
                "rack name {name:?} should be rejected"
            );
        }
        assert_eq!(Rack::parse(""), Err(RackNameError::Empty));
    }

    #[test]
    fn rack_accepts_separated_runs() {
        for name in ["a", "prod", "prod-1", "my_rack.v2", "r-1-2-3"] {
            assert_eq!(Rack::parse(name).unwrap().as_str(), name);
        }
    }

    #[test]
    fn target_from_function_arn() {
        let target =
            Target::from_arn("arn:aws-cn:lambda:cn-north-1:123456789012:function:hubcache")
                .unwrap();

        assert_eq!(target.partition, "aws-cn");
        assert_eq!(target.region, "cn-north-1");
        assert_eq!(target.account, "123456789012");
        assert_eq!(Target::from_arn("not-an-arn"), None);
        assert_eq!(Target::from_arn("arn:aws:lambda::123:function:x"), None);
    }

    #[test]
    fn target_arns_and_uri() {
        let target = Target {
            partition: "aws".into(),
            region: "eu-west-1".into(),
            account: "123456789012".into(),
        };
        let rack = Rack::parse("demo").unwrap();

        assert_eq!(
            target.policy_arn(&rack),
            "arn:aws:iam::123456789012:policy/demo-ecr-pull-through"
        );
        assert_eq!(
            target.cached_repositories_arn(&rack),
            "arn:aws:ecr:eu-west-1:123456789012:repository/docker-hub-demo/*"
        );
        assert_eq!(
            target.cache_uri(&rack),
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/docker-hub-demo"
        );
        assert_eq!(Target::partition_of("us-gov-west-1"), "aws-us-gov");
        assert_eq!(Target::partition_of("eu-central-1"), "aws");
    }
}
