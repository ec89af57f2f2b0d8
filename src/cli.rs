//! The `hubcache` command: set and read rack parameters, and reconcile a rack
//! from a workstation.

use std::io::IsTerminal;
use std::process::ExitCode;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use clap::{Args, Parser, Subcommand};

use crate::error::{AwsError, Error};
use crate::names::{Rack, Target};
use crate::reconcile::{self, Clients, Context};
use crate::settings::{self, Assignment, Parameter, Password};
use crate::{images, params, ssm};

#[derive(Debug, Parser)]
#[command(
    name = "hubcache",
    version,
    about = "Manage a rack's ECR pull-through cache of Docker Hub."
)]
pub struct Cli {
    /// AWS endpoint URL for every service, such as a local emulator.
    #[arg(long, global = true, env = "AWS_ENDPOINT_URL", value_name = "URL")]
    endpoint_url: Option<String>,

    /// AWS region; defaults to the region of your AWS configuration.
    #[arg(long, global = true, value_name = "REGION")]
    region: Option<String>,

    /// SSM path under which each rack's parameters live.
    #[arg(
        long,
        global = true,
        env = "HUBCACHE_PARAMETER_PREFIX",
        default_value = ssm::DEFAULT_PARAMETER_PREFIX,
        value_name = "PATH"
    )]
    parameter_prefix: String,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Read or change a rack's hubcache parameters.
    #[command(subcommand)]
    Params(ParamsCommand),
    /// Bring the rack's cache resources to what its parameters ask for, and print each change.
    Reconcile(RackArg),
    /// Print the changes a reconcile would make, without making any. Exits 0
    /// when the rack has converged, 2 when changes are pending, 1 on error.
    Plan(RackArg),
    /// Show the rack's settings, resources, drift and cached repositories.
    Status {
        #[command(flatten)]
        rack: RackArg,
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
    /// Manage the repositories the cache filled.
    #[command(subcommand)]
    Cache(CacheCommand),
    /// Show which images pull through a rack's cache.
    #[command(subcommand)]
    Image(ImageCommand),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum CacheCommand {
    /// Delete the repositories cached under docker-hub-<rack>/; without --yes, only list them.
    Purge {
        #[command(flatten)]
        rack: RackArg,
        /// Delete them; without it, the command only lists what it would delete.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
enum ImageCommand {
    /// Rewrite Docker Hub image references to the cache; other references are printed unchanged.
    Rewrite {
        #[command(flatten)]
        cache: CacheArg,
        /// Image references, such as redis:7 or bitnami/redis:7.2.
        #[arg(required = true, value_name = "IMAGE")]
        images: Vec<String>,
    },
    /// Print the image each resource of a Convox manifest runs, and whether it is rewritten.
    Resources {
        #[command(flatten)]
        cache: CacheArg,
        /// Path of the app's manifest.
        #[arg(
            short = 'f',
            long = "file",
            default_value = "convox.yml",
            value_name = "PATH"
        )]
        file: String,
    },
}

/// Source of the cache prefix: a rack's published parameter, or a prefix given as is.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
struct CacheArg {
    /// Rack whose published cache prefix to use; without one the cache is disabled.
    #[arg(long, value_name = "NAME")]
    rack: Option<String>,
    /// Cache prefix to use, such as 123456789012.dkr.ecr.us-east-1.amazonaws.com/docker-hub-prod.
    #[arg(long, value_name = "URI")]
    prefix: Option<String>,
}

#[derive(Debug, Subcommand)]
enum ParamsCommand {
    /// Set parameters, for example: ecr_docker_hub_cache=true. An empty value removes one.
    Set {
        /// KEY=VALUE pairs. Keys: ecr_docker_hub_cache, docker_hub_username,
        /// docker_hub_password, ecr_docker_hub_cache_node_roles,
        /// ecr_docker_hub_cache_retention_days.
        #[arg(required = true, value_name = "KEY=VALUE")]
        assignments: Vec<String>,
        #[command(flatten)]
        rack: RackArg,
    },
    /// Print the rack's parameters, with the password masked.
    Get(RackArg),
}

#[derive(Debug, Args)]
struct RackArg {
    /// Rack name; it is lowercased.
    #[arg(long, value_name = "NAME")]
    rack: String,
}

/// A failure of the command, printed as is.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Reconcile(Box<Error>),
    #[error(transparent)]
    Settings(#[from] settings::SettingsError),
    #[error(transparent)]
    Params(Box<params::ParamsError>),
    #[error(transparent)]
    RackName(#[from] crate::names::RackNameError),
    #[error("Failed to {step}: {source}")]
    Aws {
        step: String,
        #[source]
        source: AwsError,
    },
    #[error("No AWS region is set. Pass --region or set AWS_REGION.")]
    MissingRegion,
    #[error(transparent)]
    InvalidPrefix(#[from] ssm::InvalidPrefix),
    #[error(transparent)]
    Image(#[from] images::ImageError),
    #[error(transparent)]
    Manifest(#[from] images::ManifestError),
    #[error("{failed} of {total} {entries} could not be resolved; see the messages above.")]
    Unresolved {
        failed: usize,
        total: usize,
        entries: &'static str,
    },
    #[error("Failed to read manifest {path}: {source}")]
    ReadManifest {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl From<Error> for CliError {
    fn from(error: Error) -> Self {
        CliError::Reconcile(Box::new(error))
    }
}

impl From<params::ParamsError> for CliError {
    fn from(error: params::ParamsError) -> Self {
        CliError::Params(Box::new(error))
    }
}

/// Runs the command line and returns the process exit code.
pub async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();

    match run(cli).await {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::ChangesPending) => ExitCode::from(PENDING_EXIT_CODE),
        Err(error) => {
            eprintln!("{error}");
            ExitCode::FAILURE
        }
    }
}

/// Sends logs to stderr at the level in `HUBCACHE_LOG` (for example `info`
/// or `debug`). Without it nothing is logged, because the commands print
/// their results and errors themselves.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HUBCACHE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

/// Exit status of `plan` when a reconcile would change something.
const PENDING_EXIT_CODE: u8 = 2;

/// Result of a command that succeeded.
enum Outcome {
    Done,
    /// `plan` found changes to make.
    ChangesPending,
}

async fn run(cli: Cli) -> Result<Outcome, CliError> {
    let done = |result: Result<(), CliError>| result.map(|()| Outcome::Done);
    ssm::check_prefix(&cli.parameter_prefix)?;
    let config = load_config(cli.endpoint_url.as_deref(), cli.region.as_deref()).await;
    if config.region().is_none() {
        return Err(CliError::MissingRegion);
    }
    let clients = Clients::new(&config);
    let prefix = cli.parameter_prefix;

    match cli.command {
        Command::Params(ParamsCommand::Set { assignments, rack }) => {
            done(set_parameters(&clients, &prefix, &Rack::parse(&rack.rack)?, &assignments).await)
        }
        Command::Params(ParamsCommand::Get(rack)) => {
            done(get_parameters(&clients, &prefix, &Rack::parse(&rack.rack)?).await)
        }
        Command::Image(ImageCommand::Rewrite { cache, images }) => {
            let prefix = cache_prefix(&clients, &prefix, &cache).await?;
            done(rewrite_images(prefix.as_deref(), &images))
        }
        Command::Image(ImageCommand::Resources { cache, file }) => {
            let prefix = cache_prefix(&clients, &prefix, &cache).await?;
            done(print_resources(prefix.as_deref(), &file))
        }
        Command::Reconcile(rack) => {
            let rack = Rack::parse(&rack.rack)?;
            let context = reconcile_context(clients, &config, prefix).await?;
            done(reconcile_rack(&context, &rack).await)
        }
        Command::Status { rack, output } => {
            let rack = Rack::parse(&rack.rack)?;
            let context = reconcile_context(clients, &config, prefix).await?;
            let status = crate::status::read(&context, &rack).await?;
            match output {
                OutputFormat::Text => print!("{status}"),
                OutputFormat::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&status).unwrap_or_default()
                ),
            }
            Ok(Outcome::Done)
        }
        Command::Cache(CacheCommand::Purge { rack, yes }) => {
            done(purge_cache(&clients, &Rack::parse(&rack.rack)?, yes).await)
        }
        Command::Plan(rack) => {
            let rack = Rack::parse(&rack.rack)?;
            let context = reconcile_context(clients, &config, prefix).await?;
            plan_rack(&context, &rack).await
        }
    }
}

async fn load_config(endpoint_url: Option<&str>, region: Option<&str>) -> SdkConfig {
    let mut loader =
        aws_config::defaults(BehaviorVersion::latest()).http_client(crate::http::https_client());
    if let Some(url) = endpoint_url {
        loader = loader.endpoint_url(url);
    }
    if let Some(region) = region {
        loader = loader.region(Region::new(region.to_owned()));
    }
    loader.load().await
}

/// Builds the context of a reconcile, plan or status run from the CLI.
async fn reconcile_context(
    clients: Clients,
    config: &SdkConfig,
    prefix: String,
) -> Result<Context, CliError> {
    let target = cli_target(&clients, config).await?;
    Ok(Context {
        clients,
        target,
        parameter_prefix: prefix,
    })
}

/// Learns the account from ECR's registry id, since the CLI has no function ARN.
async fn cli_target(clients: &Clients, config: &SdkConfig) -> Result<Target, CliError> {
    let region = config.region().ok_or(CliError::MissingRegion)?.to_string();
    let account = crate::ecr::registry_id(&clients.ecr)
        .await
        .map_err(|source| CliError::Aws {
            step: "read the account id from ECR DescribeRegistry".into(),
            source,
        })?;

    Ok(Target {
        partition: Target::partition_of(&region).to_owned(),
        region,
        account,
    })
}

async fn set_parameters(
    clients: &Clients,
    prefix: &str,
    rack: &Rack,
    arguments: &[String],
) -> Result<(), CliError> {
    let assignments = arguments
        .iter()
        .map(|argument| Assignment::parse(argument))
        .collect::<Result<Vec<_>, _>>()?;

    params::set(&clients.ssm, prefix, rack, assignments).await?;

    println!("Setting parameters... OK");
    Ok(())
}

async fn get_parameters(clients: &Clients, prefix: &str, rack: &Rack) -> Result<(), CliError> {
    let current = read_parameters(clients, prefix, rack).await?;

    let width = Parameter::ALL
        .iter()
        .map(|parameter| parameter.name().len())
        .max()
        .unwrap_or(0)
        + 2;
    for parameter in Parameter::ALL {
        let value = match (current.get(parameter), parameter.is_secret()) {
            (None, _) => "(not set)",
            (Some(_), true) => Password::MASK,
            (Some(value), false) => value,
        };
        println!("{:<width$}{value}", parameter.name());
    }
    Ok(())
}

async fn read_parameters(
    clients: &Clients,
    prefix: &str,
    rack: &Rack,
) -> Result<settings::StoredParameters, CliError> {
    ssm::read(&clients.ssm, prefix, rack)
        .await
        .map_err(|source| CliError::Aws {
            step: format!("read parameters under {}", ssm::rack_path(prefix, rack)),
            source,
        })
}

async fn reconcile_rack(context: &Context, rack: &Rack) -> Result<(), CliError> {
    let report = reconcile::reconcile(context, rack).await?;

    if report.changes.is_empty() {
        println!("Rack {rack}: no changes");
    }
    for change in &report.changes {
        println!("Rack {rack}: {change}");
    }
    if let Some(check) = &report.upstream {
        println!("Rack {rack}: {check}");
    }
    Ok(())
}

/// Returns the cache prefix given with --prefix, or the one the rack
/// published; `None` when the rack's cache is disabled.
async fn cache_prefix(
    clients: &Clients,
    parameter_prefix: &str,
    cache: &CacheArg,
) -> Result<Option<String>, CliError> {
    if let Some(prefix) = &cache.prefix {
        return Ok(Some(prefix.clone()));
    }
    let Some(rack) = &cache.rack else {
        return Ok(None);
    };

    let rack = Rack::parse(rack)?;
    let stored = read_parameters(clients, parameter_prefix, &rack).await?;
    if stored.published_cache_prefix.is_none() {
        eprintln!(
            "Rack {rack} publishes no cache prefix ({} is not set), so images are not rewritten.",
            ssm::CACHE_PREFIX_PARAMETER
        );
    }
    Ok(stored.published_cache_prefix)
}

fn rewrite_images(prefix: Option<&str>, references: &[String]) -> Result<(), CliError> {
    if let Some(prefix) = prefix {
        images::check_cache_prefix(prefix)?;
    }

    let mut failed = 0;
    for reference in references {
        let resolved = match prefix {
            Some(prefix) => images::rewrite(reference, prefix),
            None => Ok(images::Resolved {
                image: reference.clone(),
                rewritten: false,
                unchanged_because: Some("the rack's cache is disabled".into()),
            }),
        };
        match resolved {
            Ok(resolved) => println!("{reference} -> {resolved}"),
            Err(error) => {
                eprintln!("{error}");
                failed += 1;
            }
        }
    }

    finish(failed, references.len(), "image references")
}

fn print_resources(prefix: Option<&str>, path: &str) -> Result<(), CliError> {
    if let Some(prefix) = prefix {
        images::check_cache_prefix(prefix)?;
    }
    let text = std::fs::read_to_string(path).map_err(|source| CliError::ReadManifest {
        path: path.to_owned(),
        source,
    })?;
    let manifest = images::parse_manifest(path, &text)?;

    if manifest.resources.is_empty() {
        println!("{path} has no resources.");
    }
    let mut failed = 0;
    for (name, spec) in &manifest.resources {
        match images::resource_image(name, spec, prefix) {
            Ok(resolved) => println!("{name} ({}): {resolved}", spec.kind),
            Err(error) => {
                eprintln!("{error}");
                failed += 1;
            }
        }
    }

    finish(failed, manifest.resources.len(), "resources")
}

/// Fails the command when some of the entries it printed could not be resolved.
fn finish(failed: usize, total: usize, entries: &'static str) -> Result<(), CliError> {
    if failed == 0 {
        Ok(())
    } else {
        Err(CliError::Unresolved {
            failed,
            total,
            entries,
        })
    }
}

async fn plan_rack(context: &Context, rack: &Rack) -> Result<Outcome, CliError> {
    let stored = read_parameters(&context.clients, &context.parameter_prefix, rack).await?;
    let desired = stored.desired(rack)?;

    let changes = reconcile::dry_run(context, rack, &desired, &stored.outputs()).await?;

    if changes.is_empty() {
        println!("Rack {rack}: no changes");
        return Ok(Outcome::Done);
    }
    for change in &changes {
        println!("Rack {rack}: {change}");
    }
    Ok(Outcome::ChangesPending)
}

async fn purge_cache(clients: &Clients, rack: &Rack, yes: bool) -> Result<(), CliError> {
    let repositories = crate::ecr::cached_repositories(&clients.ecr, rack)
        .await
        .map_err(|source| CliError::Aws {
            step: format!("list the repositories under {}/", rack.rule_prefix()),
            source,
        })?;

    if repositories.is_empty() {
        println!(
            "Rack {rack}: no cached repositories under {}/",
            rack.rule_prefix()
        );
        return Ok(());
    }
    for repository in &repositories {
        if !yes {
            println!(
                "Rack {rack}: would delete {} ({})",
                repository.name,
                repository.contents()
            );
            continue;
        }
        crate::ecr::delete_repository(&clients.ecr, &repository.name)
            .await
            .map_err(|source| CliError::Aws {
                step: format!("delete repository {}", repository.name),
                source,
            })?;
        println!(
            "Rack {rack}: deleted {} ({})",
            repository.name,
            repository.contents()
        );
    }
    if !yes {
        println!("Run again with --yes to delete them.");
    }
    Ok(())
}
