//! Shared by the integration tests: clients aimed at the AWS emulator that
//! `scripts/test` starts on 127.0.0.1, a log of the calls they make, and
//! helpers that set up racks there.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_ecr::config::{Credentials, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_types::config_bag::ConfigBag;
use hubcache::names::{Rack, Target};
use hubcache::reconcile::{Clients, Context};
use hubcache::settings::Parameter;

pub const ACCOUNT: &str = "123456789012";
pub const REGION: &str = "us-east-1";
pub const PREFIX: &str = "/convox/";

/// Returns the emulator's URL, which `scripts/test` exports.
pub fn endpoint() -> String {
    let url = std::env::var("HUBCACHE_TEST_ENDPOINT").expect(
        "HUBCACHE_TEST_ENDPOINT is not set: run the tests with scripts/test, which starts the AWS \
         emulator on 127.0.0.1 and exports its URL",
    );
    assert!(
        url.starts_with("http://127.0.0.1:"),
        "HUBCACHE_TEST_ENDPOINT must be on 127.0.0.1, got {url}"
    );
    url
}

pub fn sdk_config() -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(endpoint())
        .credentials_provider(aws_sdk_ecr::config::SharedCredentialsProvider::new(
            Credentials::for_tests(),
        ))
        .build()
}

/// Names of the operations the clients sent, such as "PutSecretValue", in order.
#[derive(Clone, Debug, Default)]
pub struct CallLog(Arc<Mutex<Vec<String>>>);

impl CallLog {
    pub fn calls(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    /// Returns the calls that change something: every operation that does not
    /// start with Get, Describe or List.
    pub fn writes(&self) -> Vec<String> {
        self.calls()
            .into_iter()
            .filter(|name| {
                !["Get", "Describe", "List"]
                    .iter()
                    .any(|read| name.starts_with(read))
            })
            .collect()
    }

    pub fn clear(&self) {
        self.0.lock().unwrap().clear();
    }
}

impl Intercept for CallLog {
    fn name(&self) -> &'static str {
        "CallLog"
    }

    fn read_before_serialization(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let name = cfg.load::<Metadata>().map_or("unknown", Metadata::name);
        self.0.lock().unwrap().push(name.to_owned());
        Ok(())
    }
}

/// Clients aimed at the emulator that record every call in the returned log.
pub fn logged_clients() -> (Clients, CallLog) {
    let config = sdk_config();
    let log = CallLog::default();
    let clients = Clients {
        ecr: aws_sdk_ecr::Client::from_conf(
            aws_sdk_ecr::config::Builder::from(&config)
                .interceptor(log.clone())
                .build(),
        ),
        iam: aws_sdk_iam::Client::from_conf(
            aws_sdk_iam::config::Builder::from(&config)
                .interceptor(log.clone())
                .build(),
        ),
        secrets: aws_sdk_secretsmanager::Client::from_conf(
            aws_sdk_secretsmanager::config::Builder::from(&config)
                .interceptor(log.clone())
                .build(),
        ),
        ssm: aws_sdk_ssm::Client::from_conf(
            aws_sdk_ssm::config::Builder::from(&config)
                .interceptor(log.clone())
                .build(),
        ),
    };
    (clients, log)
}

pub fn target() -> Target {
    Target {
        partition: "aws".into(),
        region: REGION.into(),
        account: ACCOUNT.into(),
    }
}

/// A reconcile context on the emulator, and the log of its calls.
pub fn context() -> (Context, CallLog) {
    let (clients, log) = logged_clients();
    let context = Context {
        clients,
        target: target(),
        parameter_prefix: PREFIX.into(),
    };
    (context, log)
}

pub fn rack(name: &str) -> Rack {
    Rack::parse(name).unwrap()
}

/// Creates the named IAM roles, as a rack's installation would.
pub async fn create_roles(clients: &Clients, names: &[String]) {
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    for name in names {
        clients
            .iam
            .create_role()
            .role_name(name)
            .assume_role_policy_document(trust)
            .send()
            .await
            .unwrap_or_else(|error| {
                panic!("creating role {name} on the emulator failed: {error:?}")
            });
    }
}

/// Stores the rack's parameters in SSM, skipping `None` values.
pub async fn store_parameters(
    clients: &Clients,
    rack: &Rack,
    flag: Option<&str>,
    username: Option<&str>,
    password: Option<&str>,
) {
    let values = [
        (Parameter::Flag, flag),
        (Parameter::Username, username),
        (Parameter::Password, password),
    ];
    for (parameter, value) in values {
        if let Some(value) = value {
            hubcache::ssm::write(&clients.ssm, PREFIX, rack, parameter, value)
                .await
                .unwrap_or_else(|error| panic!("storing {parameter} failed: {error}"));
        }
    }
}

/// Creates the rack's nodes role and stores parameters that enable the cache.
pub async fn enabled_rack(context: &Context, name: &str, password: &str) -> Rack {
    let rack = rack(name);
    create_roles(&context.clients, &[rack.nodes_role()]).await;
    store_parameters(
        &context.clients,
        &rack,
        Some("true"),
        Some("alice"),
        Some(password),
    )
    .await;
    rack
}

/// What the emulator holds for one rack, read without hubcache's code.
#[derive(Debug, PartialEq)]
pub struct RackResources {
    pub rule_credential_arn: Option<Option<String>>,
    pub secret: Option<(String, serde_json::Value)>,
    pub policy_document: Option<serde_json::Value>,
    pub policy_roles: Vec<String>,
}

pub async fn rack_resources(clients: &Clients, rack: &Rack) -> RackResources {
    let rule = clients
        .ecr
        .describe_pull_through_cache_rules()
        .ecr_repository_prefixes(rack.rule_prefix())
        .send()
        .await;
    let rule_credential_arn = match rule {
        Ok(output) => {
            let rules = output.pull_through_cache_rules();
            assert_eq!(rules.len(), 1, "one rule per prefix");
            assert_eq!(
                rules[0].upstream_registry_url(),
                Some("registry-1.docker.io")
            );
            assert_eq!(
                rules[0].upstream_registry().map(|r| r.as_str()),
                Some("docker-hub")
            );
            Some(rules[0].credential_arn().map(str::to_owned))
        }
        Err(error) => {
            assert_eq!(
                aws_sdk_ecr::error::ProvideErrorMetadata::code(&error),
                Some("PullThroughCacheRuleNotFoundException")
            );
            None
        }
    };

    let secret = match clients
        .secrets
        .get_secret_value()
        .secret_id(rack.secret_name())
        .send()
        .await
    {
        Ok(output) => Some((
            output.arn().unwrap().to_owned(),
            serde_json::from_str(output.secret_string().unwrap()).unwrap(),
        )),
        Err(error) => {
            assert_eq!(
                aws_sdk_secretsmanager::error::ProvideErrorMetadata::code(&error),
                Some("ResourceNotFoundException")
            );
            None
        }
    };

    let policy_arn = target().policy_arn(rack);
    let policy_document = match clients
        .iam
        .get_policy()
        .policy_arn(&policy_arn)
        .send()
        .await
    {
        Ok(output) => {
            let version = output
                .policy()
                .unwrap()
                .default_version_id()
                .unwrap()
                .to_owned();
            let document = clients
                .iam
                .get_policy_version()
                .policy_arn(&policy_arn)
                .version_id(version)
                .send()
                .await
                .unwrap();
            let text = document.policy_version().unwrap().document().unwrap();
            let text = percent_encoding::percent_decode_str(text)
                .decode_utf8()
                .unwrap();
            Some(serde_json::from_str(&text).unwrap())
        }
        Err(error) => {
            assert_eq!(
                aws_sdk_iam::error::ProvideErrorMetadata::code(&error),
                Some("NoSuchEntity")
            );
            None
        }
    };

    let mut policy_roles = Vec::new();
    let [karpenter, build] = rack.optional_node_roles();
    for role in [rack.nodes_role(), karpenter, build] {
        let Ok(attached) = clients
            .iam
            .list_attached_role_policies()
            .role_name(&role)
            .send()
            .await
        else {
            continue;
        };
        if attached
            .attached_policies()
            .iter()
            .any(|policy| policy.policy_arn() == Some(policy_arn.as_str()))
        {
            policy_roles.push(role);
        }
    }

    RackResources {
        rule_credential_arn,
        secret,
        policy_document,
        policy_roles,
    }
}
