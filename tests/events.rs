//! Every payload in events/ parses and dispatches, without any AWS call.

use std::fs;
use std::path::{Path, PathBuf};

use aws_lambda_events::eventbridge::EventBridgeEvent;
use hubcache::custom_resource::{self, Operation};
use hubcache::events::{ParameterChange, Trigger, dispatch};
use hubcache::names::Rack;
use serde_json::Value;

fn event_files() -> Vec<PathBuf> {
    let folder = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("events");
    let mut files: Vec<PathBuf> = fs::read_dir(&folder)
        .unwrap_or_else(|error| panic!("reading {}: {error}", folder.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "json")
        })
        .collect();
    files.sort();
    files
}

fn load(path: &PathBuf) -> Value {
    let text = fs::read_to_string(path).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

fn is_custom_resource(path: &Path) -> bool {
    path.file_name()
        .and_then(|name| name.to_str())
        .is_some_and(|name| name.starts_with("cfn-"))
}

#[test]
fn event_files_dispatch_to_demo() {
    let files = event_files();
    assert!(
        files.len() >= 12,
        "expected the event fixtures, found {files:?}"
    );

    for path in files.iter().filter(|path| !is_custom_resource(path)) {
        let payload = load(path);

        let trigger = dispatch(&payload, "/convox/");

        assert_eq!(
            trigger,
            Ok(Trigger::Reconcile(Rack::parse("demo").unwrap())),
            "{}",
            path.display()
        );
    }
}

#[test]
fn parameter_events_round_trip() {
    for path in event_files() {
        let payload = load(&path);
        if payload.get("detail-type").is_none() {
            continue;
        }

        let event: EventBridgeEvent<ParameterChange> = serde_json::from_value(payload.clone())
            .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        let again: EventBridgeEvent<ParameterChange> =
            serde_json::from_value(serde_json::to_value(&event).unwrap()).unwrap();

        assert_eq!(again, event, "{}", path.display());
        assert!(
            event.detail.name.starts_with("/convox/demo/"),
            "{}",
            path.display()
        );
    }
}

#[test]
fn event_files_ignored_under_other_prefix() {
    for path in event_files() {
        let payload = load(&path);
        if payload.get("detail-type").is_none() {
            continue;
        }

        let trigger = dispatch(&payload, "/other/");

        assert!(
            matches!(trigger, Ok(Trigger::Ignore(_))),
            "{}: {trigger:?}",
            path.display()
        );
    }
}

#[test]
fn custom_resource_files_parse() {
    let files: Vec<PathBuf> = event_files()
        .into_iter()
        .filter(|path| is_custom_resource(path))
        .collect();
    assert_eq!(files.len(), 5, "{files:?}");

    for path in &files {
        let payload = load(path);
        assert!(custom_resource::is_request(&payload), "{}", path.display());

        let request = custom_resource::parse(&payload).unwrap();

        let properties = match request.operation {
            Ok(Operation::Create { properties }) => properties,
            Ok(Operation::Update {
                properties,
                old_properties,
            }) => {
                custom_resource::parse_properties(&old_properties).unwrap();
                properties
            }
            Ok(Operation::Delete { properties }) => properties,
            Err(problem) => panic!("{}: {problem}", path.display()),
        };
        let parsed = custom_resource::parse_properties(&properties)
            .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        assert!(
            parsed.rack.as_str().starts_with("demo"),
            "{}",
            path.display()
        );
        assert_eq!(request.envelope.logical_resource_id, "DockerHubCache");
    }
}

#[test]
fn template_rule_matches_only_settings() {
    let template =
        fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/template.yaml")).unwrap();

    let mut matched: Vec<&str> = template
        .lines()
        .filter_map(|line| {
            line.trim()
                .strip_prefix("- !Sub ${ParameterPrefix}${RackName}/")
        })
        .collect();
    matched.sort_unstable();

    let mut settings: Vec<&str> = hubcache::settings::Parameter::ALL
        .iter()
        .map(|parameter| parameter.name())
        .collect();
    settings.sort_unstable();
    assert_eq!(
        matched, settings,
        "the EventBridge rule matches exactly the setting parameters"
    );
    assert!(!matched.contains(&hubcache::ssm::CACHE_PREFIX_PARAMETER));
    assert!(!matched.contains(&hubcache::ssm::TEMPLATE_PARAMETER));
}
