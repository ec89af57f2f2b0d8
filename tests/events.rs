//! Every payload in events/ parses and dispatches, without any AWS call.

use std::fs;
use std::path::PathBuf;

use aws_lambda_events::eventbridge::EventBridgeEvent;
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

#[test]
fn event_files_dispatch_to_demo() {
    let files = event_files();
    assert!(
        files.len() >= 12,
        "expected the event fixtures, found {files:?}"
    );

    for path in &files {
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
