//! The Secrets Manager secret that contains a rack's Docker Hub credentials.

use aws_sdk_secretsmanager::Client;
use serde::Deserialize;
use serde_json::json;

use crate::error::{AwsError, RequestId, request_id_of};
use crate::names::Rack;
use crate::plan::{ObservedSecret, SecretState};
use crate::settings::Credentials;

/// The value ECR expects in a Docker Hub credential secret.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SecretValue {
    username: String,
    access_token: String,
}

/// Returns the secret's JSON value, `{"username": …, "accessToken": …}`.
pub fn secret_string(credentials: &Credentials) -> String {
    json!({
        "username": credentials.username,
        "accessToken": credentials.password.expose(),
    })
    .to_string()
}

fn matches(secret_string: Option<&str>, credentials: &Credentials) -> bool {
    let Some(value) = secret_string.and_then(|text| serde_json::from_str::<SecretValue>(text).ok())
    else {
        return false;
    };
    value.username == credentials.username && value.access_token == credentials.password.expose()
}

/// Reads the rack's secret. With `credentials`, reads its value too and
/// compares it with them; without, only its ARN and deletion state.
pub async fn observe(
    client: &Client,
    rack: &Rack,
    credentials: Option<&Credentials>,
) -> Result<Option<ObservedSecret>, AwsError> {
    let name = rack.secret_name();

    if let Some(credentials) = credentials {
        let result = client.get_secret_value().secret_id(&name).send().await;
        match result {
            Ok(output) => {
                let arn = output
                    .arn()
                    .ok_or_else(|| AwsError::missing_field("GetSecretValue", "ARN"))?;
                let state = if matches(output.secret_string(), credentials) {
                    SecretState::Current
                } else {
                    SecretState::Outdated
                };
                return Ok(Some(ObservedSecret {
                    arn: arn.to_owned(),
                    state,
                }));
            }
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                return Ok(None);
            }
            // A secret scheduled for deletion rejects reads of its value with
            // InvalidRequestException; DescribeSecret below shows which case it is.
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_invalid_request_exception()) => {}
            Err(error) => return Err(AwsError::from_sdk(error)),
        }
    }

    let result = client.describe_secret().secret_id(&name).send().await;
    match result {
        Ok(output) => {
            let arn = output
                .arn()
                .ok_or_else(|| AwsError::missing_field("DescribeSecret", "ARN"))?;
            let state = if output.deleted_date().is_some() {
                SecretState::PendingDeletion
            } else {
                SecretState::Outdated
            };
            Ok(Some(ObservedSecret {
                arn: arn.to_owned(),
                state,
            }))
        }
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception()) =>
        {
            Ok(None)
        }
        Err(error) => Err(AwsError::from_sdk(error)),
    }
}

/// Creates the secret and returns its ARN and the request id.
pub async fn create(
    client: &Client,
    rack: &Rack,
    credentials: &Credentials,
) -> Result<(String, RequestId), AwsError> {
    let output = client
        .create_secret()
        .name(rack.secret_name())
        .description(format!(
            "Docker Hub credentials of the ECR pull-through cache of rack {rack}, managed by hubcache."
        ))
        .secret_string(secret_string(credentials))
        .send()
        .await
        .map_err(AwsError::from_sdk)?;

    let arn = output
        .arn()
        .map(str::to_owned)
        .ok_or_else(|| AwsError::missing_field("CreateSecret", "ARN"))?;
    Ok((arn, request_id_of(&output)))
}

pub async fn restore(client: &Client, rack: &Rack) -> Result<RequestId, AwsError> {
    let output = client
        .restore_secret()
        .secret_id(rack.secret_name())
        .send()
        .await
        .map_err(AwsError::from_sdk)?;
    Ok(request_id_of(&output))
}

pub async fn put_value(
    client: &Client,
    rack: &Rack,
    credentials: &Credentials,
) -> Result<RequestId, AwsError> {
    let output = client
        .put_secret_value()
        .secret_id(rack.secret_name())
        .secret_string(secret_string(credentials))
        .send()
        .await
        .map_err(AwsError::from_sdk)?;
    Ok(request_id_of(&output))
}

/// Deletes the secret at once, without a recovery window, so that enabling
/// the cache again can create it anew. An absent secret is not an error.
pub async fn delete(client: &Client, rack: &Rack) -> Result<RequestId, AwsError> {
    let result = client
        .delete_secret()
        .secret_id(rack.secret_name())
        .force_delete_without_recovery(true)
        .send()
        .await;

    match result {
        Ok(output) => Ok(request_id_of(&output)),
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception()) =>
        {
            Ok(None)
        }
        Err(error) => Err(AwsError::from_sdk(error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Password;

    fn credentials(password: &str) -> Credentials {
        Credentials {
            username: "user".into(),
            password: Password::new(password),
        }
    }

    #[test]
    fn secret_string_escapes_json() {
        let password = "q\"b\\n\nü";

        let text = secret_string(&credentials(password));
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();

        assert_eq!(parsed["username"], "user");
        assert_eq!(parsed["accessToken"], password);
        assert_eq!(parsed.as_object().unwrap().len(), 2);
    }

    #[test]
    fn matches_compares_both_fields() {
        let stored = secret_string(&credentials("token"));

        assert!(matches(Some(&stored), &credentials("token")));
        assert!(!matches(Some(&stored), &credentials("other")));
        assert!(!matches(Some("not json"), &credentials("token")));
        assert!(!matches(None, &credentials("token")));
    }
}
