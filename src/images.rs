//! Chooses the image each resource of a Convox app pulls, through the rack's
//! cache when it is enabled, and rewrites Docker Hub references to the cache.

use std::collections::BTreeMap;
use std::fmt;

use oci_spec::distribution::Reference;
use serde::Deserialize;

/// Host names under which Docker Hub serves images. `oci-spec` already
/// normalizes `index.docker.io` to `docker.io`.
const DOCKER_HUB_REGISTRIES: [&str; 3] = ["docker.io", "index.docker.io", "registry-1.docker.io"];
/// Namespace of Docker Hub's official images.
const OFFICIAL_NAMESPACE: &str = "library";

/// A managed resource type, its image repository and its default version.
struct ResourceType {
    name: &'static str,
    repository: &'static str,
    default_version: &'static str,
}

/// The resource types a rack manages, with the images it runs by default.
const RESOURCE_TYPES: [ResourceType; 6] = [
    ResourceType {
        name: "redis",
        repository: "redis",
        default_version: "4.0.10",
    },
    ResourceType {
        name: "postgres",
        repository: "postgres",
        default_version: "10.5",
    },
    ResourceType {
        name: "mysql",
        repository: "mysql",
        default_version: "5.7.23",
    },
    ResourceType {
        name: "mariadb",
        repository: "mariadb",
        default_version: "10.6.0",
    },
    ResourceType {
        name: "memcached",
        repository: "memcached",
        default_version: "1.4.34",
    },
    ResourceType {
        name: "postgis",
        repository: "postgis/postgis",
        default_version: "10-3.2",
    },
];

/// An image reference or resource that cannot be resolved.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImageError {
    #[error("Invalid image reference {reference:?}: {reason}.")]
    InvalidReference { reference: String, reason: String },
    #[error("Resource {resource:?} has unknown type {kind:?}; known types are {known}.")]
    UnknownType {
        resource: String,
        kind: String,
        known: String,
    },
    #[error(
        "Resource {resource:?} has options.version {version:?}, which is not a valid image tag."
    )]
    InvalidVersion { resource: String, version: String },
    #[error(
        "Resource {resource:?} has options.version {version}, which YAML reads as a {kind}; \
         quote it, for example version: \"{version}\"."
    )]
    UnquotedVersion {
        resource: String,
        version: String,
        kind: &'static str,
    },
    #[error(
        "Cache prefix {prefix:?} is invalid: expected a registry host and a path without a \
         scheme, such as 123456789012.dkr.ecr.us-east-1.amazonaws.com/docker-hub-prod."
    )]
    InvalidCachePrefix { prefix: String },
}

/// Checks that `prefix` is `<registry host>/<path>`, as published by the
/// reconciler, and returns it without trailing slashes.
pub fn check_cache_prefix(prefix: &str) -> Result<&str, ImageError> {
    let trimmed = trim_prefix(prefix);
    let invalid = || ImageError::InvalidCachePrefix {
        prefix: prefix.to_owned(),
    };

    let (host, path) = trimmed.split_once('/').ok_or_else(invalid)?;
    let explicit_host = host.contains('.') || host.contains(':') || host == "localhost";
    if !explicit_host || path.is_empty() || trimmed.contains("://") {
        return Err(invalid());
    }
    let probe: Reference = format!("{trimmed}/probe:latest")
        .parse()
        .map_err(|_| invalid())?;
    if probe.registry() != host {
        return Err(invalid());
    }
    Ok(trimmed)
}

/// The image a reference resolves to, and why it was or was not rewritten.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    pub image: String,
    pub rewritten: bool,
    /// Reason the image was left as it is, when it was.
    pub unchanged_because: Option<String>,
}

impl fmt::Display for Resolved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.unchanged_because {
            None => write!(f, "{} (through the cache)", self.image),
            Some(reason) => write!(f, "{} (unchanged: {reason})", self.image),
        }
    }
}

/// Returns `cache_prefix` without trailing slashes.
fn trim_prefix(cache_prefix: &str) -> &str {
    cache_prefix.trim_end_matches('/')
}

/// Rewrites a Docker Hub image reference to pull through `cache_prefix`
/// (`<account>.dkr.ecr.<region>.amazonaws.com/docker-hub-<rack>`), and
/// leaves any other reference as it is. Official images gain `library/`,
/// an absent tag becomes `latest`, and a digest is kept.
pub fn rewrite(reference: &str, cache_prefix: &str) -> Result<Resolved, ImageError> {
    let cache_prefix = check_cache_prefix(cache_prefix)?;
    let unchanged = |reason: String| Resolved {
        image: reference.to_owned(),
        rewritten: false,
        unchanged_because: Some(reason),
    };

    if reference
        .strip_prefix(cache_prefix)
        .is_some_and(|rest| rest.starts_with('/'))
    {
        return Ok(unchanged("already under the cache prefix".into()));
    }

    let parsed: Reference =
        reference
            .parse()
            .map_err(|error: oci_spec::distribution::ParseError| {
                let mut reason = error.to_string().trim_end_matches('.').to_owned();
                let name = reference.split(['@', ':']).next().unwrap_or_default();
                if name.chars().any(|character| character.is_ascii_uppercase()) {
                    reason.push_str("; repository names must be lowercase");
                }
                ImageError::InvalidReference {
                    reference: reference.to_owned(),
                    reason,
                }
            })?;
    let registry = parsed.registry();
    if !DOCKER_HUB_REGISTRIES.contains(&registry) {
        return Ok(unchanged(format!("registry {registry} is not Docker Hub")));
    }

    let mut image = format!("{cache_prefix}/");
    if !parsed.repository().contains('/') {
        image.push_str(OFFICIAL_NAMESPACE);
        image.push('/');
    }
    image.push_str(parsed.repository());
    if let Some(tag) = parsed.tag() {
        image.push(':');
        image.push_str(tag);
    }
    if let Some(digest) = parsed.digest() {
        image.push('@');
        image.push_str(digest);
    }

    Ok(Resolved {
        image,
        rewritten: true,
        unchanged_because: None,
    })
}

/// A Convox app manifest; only its resources matter here.
#[derive(Debug, Deserialize)]
pub struct Manifest {
    #[serde(default)]
    pub resources: BTreeMap<String, ResourceSpec>,
}

/// One entry of a manifest's `resources:` section.
#[derive(Debug, Deserialize)]
pub struct ResourceSpec {
    #[serde(rename = "type")]
    pub kind: String,
    /// An image chosen by the app; it is used as it is, never rewritten.
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub options: ResourceOptions,
}

#[derive(Debug, Default, Deserialize)]
pub struct ResourceOptions {
    #[serde(default)]
    pub version: Option<Version>,
}

/// `options.version` as written in the manifest: a string, or any YAML
/// scalar, which [`resource_image`] accepts only when it is unambiguous.
pub type Version = serde_yaml_ng::Value;

/// Returns the image tag that `version` names. A bare whole number is taken
/// as written. Other bare scalars are rejected, because YAML reads `10.10`
/// as the number 10.1 and `true` as a boolean.
fn version_tag(resource: &str, version: &Version) -> Result<String, ImageError> {
    let unquoted = |version: String, kind| ImageError::UnquotedVersion {
        resource: resource.to_owned(),
        version,
        kind,
    };
    match version {
        Version::String(text) => Ok(text.clone()),
        Version::Number(number) if number.is_u64() => Ok(number.to_string()),
        Version::Number(number) => Err(unquoted(number.to_string(), "number")),
        Version::Bool(flag) => Err(unquoted(flag.to_string(), "boolean")),
        other => Err(ImageError::InvalidVersion {
            resource: resource.to_owned(),
            version: serde_yaml_ng::to_string(other)
                .unwrap_or_default()
                .trim()
                .to_owned(),
        }),
    }
}

/// A manifest that is not valid YAML of the expected shape.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {location}{message}")]
pub struct ManifestError {
    pub path: String,
    /// `line L, column C: `, when the parser reports where the problem is.
    pub location: String,
    pub message: String,
}

/// Parses a manifest, reporting the line and column of a problem.
pub fn parse_manifest(path: &str, text: &str) -> Result<Manifest, ManifestError> {
    serde_yaml_ng::from_str(text).map_err(|error| {
        let location = error.location();
        let mut message = error.to_string();
        if let Some(at) = &location {
            // The parser's message repeats the location at its end.
            let suffix = format!(" at line {} column {}", at.line(), at.column());
            if let Some(start) = message.find(&suffix) {
                message.replace_range(start..start + suffix.len(), "");
            }
        }
        ManifestError {
            path: path.to_owned(),
            location: location
                .map(|at| format!("line {}, column {}: ", at.line(), at.column()))
                .unwrap_or_default(),
            message,
        }
    })
}

/// Returns the image a resource runs: its own `image:` as it is, or the
/// type's image at `options.version` (else the default version), through
/// `cache_prefix` when the rack's cache is enabled.
pub fn resource_image(
    name: &str,
    spec: &ResourceSpec,
    cache_prefix: Option<&str>,
) -> Result<Resolved, ImageError> {
    if let Some(image) = &spec.image {
        return Ok(Resolved {
            image: image.clone(),
            rewritten: false,
            unchanged_because: Some("the resource sets its own image".into()),
        });
    }

    let Some(kind) = RESOURCE_TYPES.iter().find(|kind| kind.name == spec.kind) else {
        let known: Vec<&str> = RESOURCE_TYPES.iter().map(|kind| kind.name).collect();
        return Err(ImageError::UnknownType {
            resource: name.to_owned(),
            kind: spec.kind.clone(),
            known: known.join(", "),
        });
    };
    let version = match &spec.options.version {
        Some(version) => version_tag(name, version)?,
        None => kind.default_version.to_owned(),
    };
    let image = format!("{}:{version}", kind.repository);
    if image.parse::<Reference>().is_err() || version.contains(['/', '@', ':']) {
        return Err(ImageError::InvalidVersion {
            resource: name.to_owned(),
            version,
        });
    }

    match cache_prefix {
        Some(prefix) => rewrite(&image, prefix),
        None => Ok(Resolved {
            image,
            rewritten: false,
            unchanged_because: Some("the rack's cache is disabled".into()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFIX: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/docker-hub-demo";
    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn rewrite_docker_hub_references() {
        let cases = [
            ("redis", format!("{PREFIX}/library/redis:latest")),
            ("redis:7", format!("{PREFIX}/library/redis:7")),
            (
                "docker.io/library/redis:7",
                format!("{PREFIX}/library/redis:7"),
            ),
            ("docker.io/redis", format!("{PREFIX}/library/redis:latest")),
            (
                "index.docker.io/library/redis:7",
                format!("{PREFIX}/library/redis:7"),
            ),
            (
                "index.docker.io/redis:7",
                format!("{PREFIX}/library/redis:7"),
            ),
            (
                "registry-1.docker.io/library/redis:7",
                format!("{PREFIX}/library/redis:7"),
            ),
            (
                "registry-1.docker.io/redis:7",
                format!("{PREFIX}/library/redis:7"),
            ),
            ("bitnami/redis:7.2", format!("{PREFIX}/bitnami/redis:7.2")),
            (
                "postgis/postgis:10-3.2",
                format!("{PREFIX}/postgis/postgis:10-3.2"),
            ),
            (
                &format!("redis@{DIGEST}"),
                format!("{PREFIX}/library/redis@{DIGEST}"),
            ),
            (
                &format!("redis:7@{DIGEST}"),
                format!("{PREFIX}/library/redis:7@{DIGEST}"),
            ),
        ];
        for (reference, expected) in cases {
            let resolved = rewrite(reference, PREFIX).unwrap();

            assert_eq!(resolved.image, expected, "{reference}");
            assert!(resolved.rewritten, "{reference}");
        }
    }

    #[test]
    fn rewrite_tolerates_trailing_slash() {
        let resolved = rewrite("redis:7", &format!("{PREFIX}/")).unwrap();

        assert_eq!(resolved.image, format!("{PREFIX}/library/redis:7"));
    }

    #[test]
    fn rewrite_leaves_other_registries() {
        let cases = [
            (
                "quay.io/prometheus/node-exporter:v1.8.0",
                "registry quay.io is not Docker Hub",
            ),
            ("ghcr.io/org/tool:1", "registry ghcr.io is not Docker Hub"),
            (
                "public.ecr.aws/docker/library/redis:7",
                "registry public.ecr.aws is not Docker Hub",
            ),
            (
                "localhost:5000/x",
                "registry localhost:5000 is not Docker Hub",
            ),
            (
                "registry.example.com:5000/ns/img",
                "registry registry.example.com:5000 is not Docker Hub",
            ),
            (
                "123456789012.dkr.ecr.us-east-1.amazonaws.com/docker-hub-demo/library/redis:7",
                "already under the cache prefix",
            ),
        ];
        for (reference, reason) in cases {
            let resolved = rewrite(reference, PREFIX).unwrap();

            assert_eq!(
                resolved,
                Resolved {
                    image: reference.to_owned(),
                    rewritten: false,
                    unchanged_because: Some(reason.to_owned()),
                },
                "{reference}"
            );
        }
    }

    #[test]
    fn rewrite_rejects_invalid_references() {
        for reference in ["", "Redis:7", "redis:", "redis@sha256:short", "a b"] {
            let error = rewrite(reference, PREFIX).unwrap_err();

            assert!(
                matches!(&error, ImageError::InvalidReference { reference: quoted, .. } if quoted == reference),
                "{reference:?}: {error:?}"
            );
            assert!(
                error
                    .to_string()
                    .starts_with(&format!("Invalid image reference {reference:?}"))
            );
        }
    }

    fn spec(kind: &str, version: Option<Version>, image: Option<&str>) -> ResourceSpec {
        ResourceSpec {
            kind: kind.into(),
            image: image.map(str::to_owned),
            options: ResourceOptions { version },
        }
    }

    #[test]
    fn resource_defaults_through_cache() {
        let cases = [
            ("redis", format!("{PREFIX}/library/redis:4.0.10")),
            ("postgres", format!("{PREFIX}/library/postgres:10.5")),
            ("mysql", format!("{PREFIX}/library/mysql:5.7.23")),
            ("mariadb", format!("{PREFIX}/library/mariadb:10.6.0")),
            ("memcached", format!("{PREFIX}/library/memcached:1.4.34")),
            ("postgis", format!("{PREFIX}/postgis/postgis:10-3.2")),
        ];
        for (kind, expected) in cases {
            let resolved = resource_image("r", &spec(kind, None, None), Some(PREFIX)).unwrap();

            assert_eq!(resolved.image, expected);
            assert!(resolved.rewritten);
        }
    }

    #[test]
    fn resource_defaults_without_cache() {
        let cases = [
            ("redis", "redis:4.0.10"),
            ("postgres", "postgres:10.5"),
            ("mysql", "mysql:5.7.23"),
            ("mariadb", "mariadb:10.6.0"),
            ("memcached", "memcached:1.4.34"),
            ("postgis", "postgis/postgis:10-3.2"),
        ];
        for (kind, expected) in cases {
            let resolved = resource_image("r", &spec(kind, None, None), None).unwrap();

            assert_eq!(resolved.image, expected);
            assert!(!resolved.rewritten);
        }
    }

    #[test]
    fn resource_version_and_override() {
        let versioned = spec("postgres", Some(Version::String("13.4".into())), None);
        let numbered = spec("redis", Some(Version::Number(7.into())), None);
        let custom = spec(
            "redis",
            Some(Version::String("7".into())),
            Some("my/redis:custom"),
        );

        assert_eq!(
            resource_image("db", &versioned, Some(PREFIX))
                .unwrap()
                .image,
            format!("{PREFIX}/library/postgres:13.4")
        );
        assert_eq!(
            resource_image("cache", &numbered, Some(PREFIX))
                .unwrap()
                .image,
            format!("{PREFIX}/library/redis:7")
        );
        assert_eq!(
            resource_image("cache", &custom, Some(PREFIX)).unwrap(),
            Resolved {
                image: "my/redis:custom".into(),
                rewritten: false,
                unchanged_because: Some("the resource sets its own image".into()),
            }
        );
    }

    #[test]
    fn resource_errors() {
        assert_eq!(
            resource_image("q", &spec("rabbitmq", None, None), None)
                .unwrap_err()
                .to_string(),
            "Resource \"q\" has unknown type \"rabbitmq\"; known types are redis, postgres, mysql, \
             mariadb, memcached, postgis."
        );
        assert_eq!(
            resource_image(
                "db",
                &spec("postgres", Some(Version::String("13/x".into())), None),
                None
            ),
            Err(ImageError::InvalidVersion {
                resource: "db".into(),
                version: "13/x".into()
            })
        );
    }

    #[test]
    fn manifest_resources() {
        let manifest = parse_manifest(
            "convox.yml",
            "resources:\n  cache:\n    type: redis\n    options:\n      version: 6.2\n  db:\n    type: postgres\n",
        )
        .unwrap();

        assert_eq!(manifest.resources.len(), 2);
        assert_eq!(manifest.resources["cache"].kind, "redis");
        assert_eq!(
            resource_image("cache", &manifest.resources["cache"], None),
            Err(ImageError::UnquotedVersion {
                resource: "cache".into(),
                version: "6.2".into(),
                kind: "number"
            })
        );
        assert!(manifest.resources["db"].options.version.is_none());
    }

    #[test]
    fn check_cache_prefix_cases() {
        assert_eq!(check_cache_prefix(&format!("{PREFIX}/")), Ok(PREFIX));
        assert_eq!(
            check_cache_prefix("localhost:5000/cache"),
            Ok("localhost:5000/cache")
        );
        for invalid in [
            "",
            "docker-hub-demo",
            "https://example.com/cache",
            "not a uri",
            "example.com/",
            "cache/path",
            "Example.com/UPPER",
        ] {
            assert_eq!(
                check_cache_prefix(invalid),
                Err(ImageError::InvalidCachePrefix {
                    prefix: invalid.into()
                }),
                "{invalid:?}"
            );
        }
    }

    #[test]
    fn rewrite_explains_uppercase() {
        let error = rewrite("Redis:7", PREFIX).unwrap_err();

        assert_eq!(
            error.to_string(),
            "Invalid image reference \"Redis:7\": invalid reference format; repository names must be lowercase."
        );
    }

    #[test]
    fn manifest_error_has_location() {
        let error =
            parse_manifest("convox.yml", "resources:\n  cache:\n    type: [redis\n").unwrap_err();

        assert!(
            error.to_string().starts_with("convox.yml: line "),
            "{error}"
        );
        assert!(error.to_string().contains(", column "), "{error}");
    }
}
