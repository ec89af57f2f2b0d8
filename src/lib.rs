//! hubcache keeps an ECR pull-through cache of Docker Hub for each rack whose
//! `ecr_docker_hub_cache` parameter is `true`, and removes it when `false`.

pub mod cli;
pub mod custom_resource;
pub mod ecr;
pub mod error;
pub mod events;
pub mod http;
pub mod iam;
pub mod images;
pub mod lambda;
pub mod names;
pub mod params;
pub mod plan;
pub mod reconcile;
pub mod response_url;
pub mod secrets;
pub mod settings;
pub mod ssm;
pub mod status;
