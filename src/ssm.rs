//! Reads and writes the rack parameters in SSM Parameter Store.

use aws_sdk_ssm::Client;
use aws_sdk_ssm::types::ParameterType;

use crate::error::{AwsError, RequestId, request_id_of};
use crate::names::Rack;
use crate::settings::{Parameter, StoredParameters};

/// Default parent path of every rack's parameters, as Convox lays them out.
pub const DEFAULT_PARAMETER_PREFIX: &str = "/convox/";
/// Parameter in which the reconciler publishes the rack's cache prefix for
/// deploy tooling. It is output, not a setting, so no event of it triggers a
/// reconcile.
pub const CACHE_PREFIX_PARAMETER: &str = "ecr_docker_hub_cache_prefix";
/// Parameter in which the reconciler records the repository creation template
/// it manages, before creating it. Output, not a setting, like the cache prefix.
pub const TEMPLATE_PARAMETER: &str = "ecr_docker_hub_cache_template";

/// Returns whether `short_name` is one of the parameters the reconciler writes.
pub fn is_output(short_name: &str) -> bool {
    short_name == CACHE_PREFIX_PARAMETER || short_name == TEMPLATE_PARAMETER
}

/// A parameter prefix that is not an absolute SSM path.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "Parameter prefix {prefix:?} is invalid: it must be an SSM path that starts and ends with '/', \
     such as /convox/."
)]
pub struct InvalidPrefix {
    pub prefix: String,
}

/// Checks that `prefix` is an absolute SSM path such as `/convox/`. The
/// trailing slash may be left out.
pub fn check_prefix(prefix: &str) -> Result<(), InvalidPrefix> {
    let valid = prefix.starts_with('/')
        && prefix.split('/').all(|part| {
            part.bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || b"_.-".contains(&byte))
        });
    if valid {
        Ok(())
    } else {
        Err(InvalidPrefix {
            prefix: prefix.to_owned(),
        })
    }
}

/// Returns the SSM path that contains `rack`'s parameters, such as `/convox/demo/`.
pub fn rack_path(prefix: &str, rack: &Rack) -> String {
    format!("{}/{rack}/", prefix.trim_end_matches('/'))
}

/// Returns the full SSM name of one of `rack`'s parameters.
pub fn parameter_name(prefix: &str, rack: &Rack, parameter: Parameter) -> String {
    format!("{}{}", rack_path(prefix, rack), parameter.name())
}

/// Reads the rack's hubcache parameters and outputs, decrypting the password.
/// Other parameters under the rack's path are left alone.
pub async fn read(
    client: &Client,
    prefix: &str,
    rack: &Rack,
) -> Result<StoredParameters, AwsError> {
    let path = rack_path(prefix, rack);
    let mut stored = StoredParameters::default();

    let mut pages = client
        .get_parameters_by_path()
        .path(&path)
        .recursive(false)
        .with_decryption(true)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(AwsError::from_sdk)?;
        for found in page.parameters() {
            let (Some(name), Some(value)) = (found.name(), found.value()) else {
                continue;
            };
            let Some(short_name) = name.strip_prefix(&path) else {
                continue;
            };
            if short_name == CACHE_PREFIX_PARAMETER {
                stored.published_cache_prefix = Some(value.to_owned());
            } else if short_name == TEMPLATE_PARAMETER {
                stored.recorded_template = Some(value.to_owned());
            } else if let Some(parameter) = Parameter::from_name(short_name) {
                stored.set(parameter, Some(value.to_owned()));
            }
        }
    }

    Ok(stored)
}

/// Returns the racks that have hubcache parameters under `prefix`, sorted.
/// Rack paths that are not valid lowercase rack names are skipped with a warning.
pub async fn list_racks(client: &Client, prefix: &str) -> Result<Vec<Rack>, AwsError> {
    let root = format!("{}/", prefix.trim_end_matches('/'));
    let mut racks: Vec<Rack> = Vec::new();

    let mut pages = client
        .get_parameters_by_path()
        .path(&root)
        .recursive(true)
        .with_decryption(false)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(AwsError::from_sdk)?;
        for name in page.parameters().iter().filter_map(|found| found.name()) {
            let Some((rack_name, short_name)) = name
                .strip_prefix(&root)
                .and_then(|rest| rest.split_once('/'))
            else {
                continue;
            };
            if Parameter::from_name(short_name).is_none() && !is_output(short_name) {
                continue;
            }
            match Rack::parse(rack_name) {
                Ok(rack) if rack.as_str() == rack_name => {
                    if !racks.contains(&rack) {
                        racks.push(rack);
                    }
                }
                _ => {
                    tracing::warn!(parameter = %name, "skipped a parameter whose path is not a valid rack name")
                }
            }
        }
    }

    racks.sort();
    Ok(racks)
}

/// Writes one parameter, the password as a SecureString, replacing any value.
pub async fn write(
    client: &Client,
    prefix: &str,
    rack: &Rack,
    parameter: Parameter,
    value: &str,
) -> Result<(), AwsError> {
    let kind = if parameter.is_secret() {
        ParameterType::SecureString
    } else {
        ParameterType::String
    };
    put(
        client,
        &parameter_name(prefix, rack, parameter),
        value,
        kind,
    )
    .await
    .map(drop)
}

/// Deletes one parameter; an absent parameter is not an error.
pub async fn delete(
    client: &Client,
    prefix: &str,
    rack: &Rack,
    parameter: Parameter,
) -> Result<(), AwsError> {
    delete_name(client, &parameter_name(prefix, rack, parameter))
        .await
        .map(drop)
}

/// Writes `value` to the rack's output parameter `name`, such as
/// [`CACHE_PREFIX_PARAMETER`].
pub async fn put_output(
    client: &Client,
    prefix: &str,
    rack: &Rack,
    name: &str,
    value: &str,
) -> Result<RequestId, AwsError> {
    let full_name = format!("{}{name}", rack_path(prefix, rack));
    put(client, &full_name, value, ParameterType::String).await
}

/// Deletes the rack's output parameter `name`. An absent one is not an error.
pub async fn delete_output(
    client: &Client,
    prefix: &str,
    rack: &Rack,
    name: &str,
) -> Result<RequestId, AwsError> {
    delete_name(client, &format!("{}{name}", rack_path(prefix, rack))).await
}

async fn put(
    client: &Client,
    name: &str,
    value: &str,
    kind: ParameterType,
) -> Result<RequestId, AwsError> {
    let output = client
        .put_parameter()
        .name(name)
        .value(value)
        .r#type(kind)
        .overwrite(true)
        .send()
        .await
        .map_err(AwsError::from_sdk)?;
    Ok(request_id_of(&output))
}

async fn delete_name(client: &Client, name: &str) -> Result<RequestId, AwsError> {
    match client.delete_parameter().name(name).send().await {
        Ok(output) => Ok(request_id_of(&output)),
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|e| e.is_parameter_not_found()) =>
        {
            Ok(None)
        }
        Err(error) => Err(AwsError::from_sdk(error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_prefix_cases() {
        for valid in ["/convox/", "/convox", "/", "/a/b.c_d-e/"] {
            assert_eq!(check_prefix(valid), Ok(()), "{valid:?}");
        }
        for invalid in ["", "convox", "convox/", "/con vox/", "/convox/*"] {
            assert_eq!(
                check_prefix(invalid),
                Err(InvalidPrefix {
                    prefix: invalid.into()
                }),
                "{invalid:?}"
            );
        }
    }

    #[test]
    fn rack_path_joins_prefix() {
        let rack = Rack::parse("demo").unwrap();

        assert_eq!(rack_path("/convox/", &rack), "/convox/demo/");
        assert_eq!(rack_path("/convox", &rack), "/convox/demo/");
        assert_eq!(
            parameter_name("/racks/", &rack, Parameter::Password),
            "/racks/demo/docker_hub_password"
        );
    }
}
