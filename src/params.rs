//! Changes a rack's stored parameters the way `hubcache params set` does:
//! merge, validate, then write in an order that is valid at every step.

use crate::error::AwsError;
use crate::names::Rack;
use crate::settings::{self, Assignment, SettingsError, StoredParameters};
use crate::ssm;

/// Failure to change a rack's parameters.
#[derive(Debug, thiserror::Error)]
pub enum ParamsError {
    #[error(transparent)]
    Invalid(#[from] SettingsError),
    #[error("Rack {rack}: failed to read parameters under {path}: {source}")]
    ReadFailed {
        rack: String,
        path: String,
        #[source]
        source: AwsError,
    },
    #[error("Rack {rack}: failed to write parameter {name}: {source}")]
    WriteFailed {
        rack: String,
        name: String,
        #[source]
        source: AwsError,
    },
}

/// Parameter changes that passed validation, ready to be written.
#[derive(Debug)]
pub struct Prepared {
    /// The parameters as they will be stored.
    pub merged: StoredParameters,
    /// The assignments that change something, in a safe order.
    pub changes: Vec<Assignment>,
}

/// Merges `assignments` into `rack`'s stored parameters, rejects an invalid
/// result, and returns what `write` then changes. Nothing is written.
pub async fn prepare(
    client: &aws_sdk_ssm::Client,
    prefix: &str,
    rack: &Rack,
    assignments: Vec<Assignment>,
) -> Result<Prepared, ParamsError> {
    let current =
        ssm::read(client, prefix, rack)
            .await
            .map_err(|source| ParamsError::ReadFailed {
                rack: rack.to_string(),
                path: ssm::rack_path(prefix, rack),
                source,
            })?;

    let (merged, ordered) = settings::merge(rack, &current, assignments)?;

    let changes = ordered
        .into_iter()
        .filter(|assignment| current.get(assignment.parameter) != assignment.value.as_deref())
        .collect();
    Ok(Prepared { merged, changes })
}

/// Writes prepared changes in their order.
pub async fn write(
    client: &aws_sdk_ssm::Client,
    prefix: &str,
    rack: &Rack,
    prepared: &Prepared,
) -> Result<(), ParamsError> {
    for assignment in &prepared.changes {
        let result = match &assignment.value {
            Some(value) => ssm::write(client, prefix, rack, assignment.parameter, value).await,
            None => ssm::delete(client, prefix, rack, assignment.parameter).await,
        };
        result.map_err(|source| ParamsError::WriteFailed {
            rack: rack.to_string(),
            name: ssm::parameter_name(prefix, rack, assignment.parameter),
            source,
        })?;
        tracing::info!(rack = %rack, parameter = %assignment.parameter, "parameter changed");
    }
    Ok(())
}

/// Merges `assignments` into `rack`'s stored parameters, rejects an invalid
/// result before any write, and writes the changed parameters.
///
/// Returns the parameters as now stored.
pub async fn set(
    client: &aws_sdk_ssm::Client,
    prefix: &str,
    rack: &Rack,
    assignments: Vec<Assignment>,
) -> Result<StoredParameters, ParamsError> {
    let prepared = prepare(client, prefix, rack, assignments).await?;
    write(client, prefix, rack, &prepared).await?;
    Ok(prepared.merged)
}
