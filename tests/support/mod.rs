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

/// Returns the SDK configuration of the tests: the emulator's endpoint, test
/// credentials, and the SDK's standard retry policy, as the Lambda has it.
pub fn sdk_config() -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .retry_config(aws_sdk_ecr::config::retry::RetryConfig::standard())
        .http_client(hubcache::http::https_client())
        .sleep_impl(aws_smithy_async::rt::sleep::SharedAsyncSleep::new(
            aws_smithy_async::rt::sleep::TokioSleep::new(),
        ))
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
    /// start with Get, Describe, List or Validate.
    pub fn writes(&self) -> Vec<String> {
        self.calls()
            .into_iter()
            .filter(|name| {
                !["Get", "Describe", "List", "Validate"]
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

/// Returns a reconcile context on the emulator, and the log of its calls.
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

/// Stores the rack's retention in days, or removes it when `days` is `None`.
pub async fn set_retention(clients: &Clients, rack: &Rack, days: Option<&str>) {
    let parameter = Parameter::RetentionDays;
    match days {
        Some(days) => hubcache::ssm::write(&clients.ssm, PREFIX, rack, parameter, days).await,
        None => hubcache::ssm::delete(&clients.ssm, PREFIX, rack, parameter).await,
    }
    .unwrap_or_else(|error| panic!("storing {parameter} failed: {error}"));
}

/// Returns the countNumber of the lifecycle rule in the repository creation
/// template for `prefix`, or `None` without a template.
pub async fn template_count_number(clients: &Clients, prefix: &str) -> Option<u64> {
    let output = clients
        .ecr
        .describe_repository_creation_templates()
        .prefixes(prefix)
        .send()
        .await
        .unwrap();
    let template = output.repository_creation_templates().first()?;
    let policy: serde_json::Value = serde_json::from_str(template.lifecycle_policy()?).unwrap();
    policy["rules"][0]["selection"]["countNumber"].as_u64()
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
#[derive(Debug, Default, PartialEq)]
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

/// Runs Python code with boto3 against the emulator, through the
/// interpreter of the emulator's virtualenv that `scripts/test` exports.
fn run_python(code: &str, arguments: &[&str]) -> String {
    let python = std::env::var("HUBCACHE_TEST_PYTHON").expect(
        "HUBCACHE_TEST_PYTHON is not set: run the tests with scripts/test, which exports the \
         emulator virtualenv's Python",
    );
    let output = std::process::Command::new(python)
        .arg("-c")
        .arg(code)
        .args(arguments)
        .env("AWS_ENDPOINT_URL", endpoint())
        .env("AWS_ACCESS_KEY_ID", "hubcache-test-key")
        .env("AWS_SECRET_ACCESS_KEY", "hubcache-test-secret")
        .env("AWS_DEFAULT_REGION", REGION)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("running the emulator's Python");
    assert!(
        output.status.success(),
        "Python helper failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Creates `bucket` on the emulator's S3 and returns a pre-signed PUT URL
/// for `key`, as CloudFormation puts in ResponseURL.
pub fn presigned_put_url(bucket: &str, key: &str) -> String {
    let code = r#"
import sys, boto3
bucket, key = sys.argv[1], sys.argv[2]
s3 = boto3.client("s3")
try:
    s3.create_bucket(Bucket=bucket)
except s3.exceptions.BucketAlreadyOwnedByYou:
    pass
print(s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=600))
"#;
    let url = run_python(code, &[bucket, key]).trim().to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "pre-signed URL {url}");
    assert!(url.contains("Signature="), "pre-signed URL {url}");
    url
}

/// Returns the object at `bucket`/`key` on the emulator's S3.
pub fn read_object(bucket: &str, key: &str) -> String {
    let code = r#"
import sys, boto3
body = boto3.client("s3").get_object(Bucket=sys.argv[1], Key=sys.argv[2])["Body"].read()
sys.stdout.write(body.decode())
"#;
    run_python(code, &[bucket, key])
}

/// One request received by a [`ResponseCatcher`].
#[derive(Clone, Debug)]
pub struct CaughtRequest {
    pub method: String,
    /// `None` when the request had no Content-Type header.
    pub content_type: Option<String>,
    pub body: String,
}

/// Behaviour of a [`ResponseCatcher`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CatcherMode {
    /// 200, unless Content-Type is non-empty: then 403, as S3 does for a
    /// URL signed without a Content-Type.
    LikeS3,
    /// 503 to the first `n` requests, then as `LikeS3`.
    FailFirst(usize),
    /// Accept connections and never respond.
    Silent,
}

/// An HTTP endpoint on 127.0.0.1 that records what it receives.
pub struct ResponseCatcher {
    pub url: String,
    requests: Arc<Mutex<Vec<CaughtRequest>>>,
}

impl ResponseCatcher {
    pub async fn start(mode: CatcherMode) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/response?X-Amz-Signature=test",
            listener.local_addr().unwrap()
        );
        let requests = Arc::new(Mutex::new(Vec::new()));
        let recorded = requests.clone();
        tokio::spawn(async move {
            let mut open_connections = Vec::new();
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                if mode == CatcherMode::Silent {
                    open_connections.push(socket);
                    continue;
                }
                let recorded = recorded.clone();
                tokio::spawn(async move { serve_one(socket, mode, recorded).await });
            }
        });
        Self { url, requests }
    }

    pub fn requests(&self) -> Vec<CaughtRequest> {
        self.requests.lock().unwrap().clone()
    }
}

async fn serve_one(
    mut socket: tokio::net::TcpStream,
    mode: CatcherMode,
    recorded: Arc<Mutex<Vec<CaughtRequest>>>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mut data = Vec::new();
    let mut buffer = [0u8; 8192];
    let header_end = loop {
        let read = socket.read(&mut buffer).await.unwrap_or(0);
        if read == 0 {
            return;
        }
        data.extend_from_slice(&buffer[..read]);
        if let Some(at) = data.windows(4).position(|window| window == b"\r\n\r\n") {
            break at;
        }
    };
    let head = String::from_utf8_lossy(&data[..header_end]).to_string();
    let mut lines = head.split("\r\n");
    let method = lines
        .next()
        .unwrap_or_default()
        .split(' ')
        .next()
        .unwrap_or_default()
        .to_owned();
    let mut content_type = None;
    let mut length = 0;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        match name.trim().to_ascii_lowercase().as_str() {
            "content-type" => content_type = Some(value.trim().to_owned()),
            "content-length" => length = value.trim().parse().unwrap_or(0),
            _ => {}
        }
    }
    let mut body = data[header_end + 4..].to_vec();
    while body.len() < length {
        let read = socket.read(&mut buffer).await.unwrap_or(0);
        if read == 0 {
            break;
        }
        body.extend_from_slice(&buffer[..read]);
    }

    let count = {
        let mut requests = recorded.lock().unwrap();
        requests.push(CaughtRequest {
            method,
            content_type: content_type.clone(),
            body: String::from_utf8_lossy(&body).to_string(),
        });
        requests.len()
    };
    let status = match (mode, content_type.as_deref()) {
        (CatcherMode::FailFirst(n), _) if count <= n => "503 Service Unavailable",
        (_, Some(value)) if !value.is_empty() => "403 Forbidden",
        _ => "200 OK",
    };
    let answer = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    let _ = socket.write_all(answer.as_bytes()).await;
}

/// An AWS service whose client gets an injected fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    Ecr,
    Iam,
    Secrets,
    Ssm,
}

/// Returns clients like [`logged_clients`], where `service`'s client responds to the
/// first call that `rule` matches with the rule's response.
///
/// aws-smithy-mocks replaces the response after the request was sent, so the
/// faulted call still reaches the emulator: the fault is a call whose outcome
/// the caller never learns, the hardest case for a reconciler.
pub fn faulty_clients(service: Service, rule: &aws_smithy_mocks::Rule) -> (Clients, CallLog) {
    let (mut clients, log) = logged_clients();
    let config = sdk_config();
    let fault = || {
        aws_smithy_mocks::MockResponseInterceptor::new()
            .rule_mode(aws_smithy_mocks::RuleMode::MatchAny)
            .with_rule(rule)
            .allow_passthrough()
    };
    match service {
        Service::Ecr => {
            clients.ecr = aws_sdk_ecr::Client::from_conf(
                aws_sdk_ecr::config::Builder::from(&config)
                    .interceptor(log.clone())
                    .interceptor(fault())
                    .build(),
            )
        }
        Service::Iam => {
            clients.iam = aws_sdk_iam::Client::from_conf(
                aws_sdk_iam::config::Builder::from(&config)
                    .interceptor(log.clone())
                    .interceptor(fault())
                    .build(),
            )
        }
        Service::Secrets => {
            clients.secrets = aws_sdk_secretsmanager::Client::from_conf(
                aws_sdk_secretsmanager::config::Builder::from(&config)
                    .interceptor(log.clone())
                    .interceptor(fault())
                    .build(),
            )
        }
        Service::Ssm => {
            clients.ssm = aws_sdk_ssm::Client::from_conf(
                aws_sdk_ssm::config::Builder::from(&config)
                    .interceptor(log.clone())
                    .interceptor(fault())
                    .build(),
            )
        }
    }
    (clients, log)
}

/// Runs the `hubcache` binary with only test credentials in its environment,
/// aimed at `endpoint`.
pub fn hubcache_at(endpoint: &str, arguments: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_hubcache"))
        .args(arguments)
        .env_clear()
        .env("AWS_ACCESS_KEY_ID", "hubcache-test-key")
        .env("AWS_SECRET_ACCESS_KEY", "hubcache-test-secret")
        .env("AWS_REGION", REGION)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_ENDPOINT_URL", endpoint)
        .output()
        .expect("running the hubcache binary")
}

/// A writer that keeps everything tracing prints during one test.
#[derive(Clone, Default)]
pub struct CapturedLogs(pub Arc<Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLogs {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLogs {
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

/// Creates a credential secret by hand, as another tool would, and returns its ARN.
pub async fn create_secret_by_hand(clients: &Clients, name: &str) -> String {
    let output = clients
        .secrets
        .create_secret()
        .name(name)
        .secret_string(r#"{"username":"x","accessToken":"y"}"#)
        .send()
        .await
        .unwrap_or_else(|error| panic!("creating secret {name}: {error:?}"));
    output.arn().unwrap().to_owned()
}

/// Creates a Docker Hub pull-through cache rule by hand, reading `secret_arn`.
pub async fn create_rule_by_hand(clients: &Clients, prefix: &str, secret_arn: &str) {
    clients
        .ecr
        .create_pull_through_cache_rule()
        .ecr_repository_prefix(prefix)
        .upstream_registry_url("registry-1.docker.io")
        .upstream_registry(aws_sdk_ecr::types::UpstreamRegistry::DockerHub)
        .credential_arn(secret_arn)
        .send()
        .await
        .unwrap_or_else(|error| panic!("creating rule {prefix}: {error:?}"));
}
