//! Runs the real `hubcache-reconciler` binary against a minimal Lambda Runtime
//! API on 127.0.0.1, for payloads that never reach hubcache's handler.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the fake Runtime API received back from the function.
#[derive(Debug, Default)]
struct Replies {
    /// (path, body) of each POST, in order.
    posts: Vec<(String, String)>,
}

/// Reads one HTTP request from `socket`: the request line and the body.
async fn read_request(socket: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<(String, String)> {
    let mut chunk = [0u8; 4096];
    let header_end = loop {
        if let Some(at) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            break at;
        }
        let read = socket.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8_lossy(&buffer[..header_end]).to_string();
    let length: usize = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse().ok())
        .unwrap_or(0);
    while buffer.len() < header_end + 4 + length {
        let read = socket.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
    let body =
        String::from_utf8_lossy(&buffer[header_end + 4..header_end + 4 + length]).to_string();
    buffer.drain(..header_end + 4 + length);
    let request_line = head.lines().next().unwrap_or_default().to_owned();
    Some((request_line, body))
}

/// Serves `events` one by one to GET .../next on one keep-alive connection,
/// records every POST, and then keeps the next GET open, as Lambda does.
async fn serve(listener: TcpListener, events: Vec<Vec<u8>>, replies: Arc<Mutex<Replies>>) {
    let mut events = events.into_iter();
    loop {
        let Ok((mut socket, _)) = listener.accept().await else {
            return;
        };
        let mut buffer = Vec::new();
        while let Some((request_line, body)) = read_request(&mut socket, &mut buffer).await {
            let path = request_line
                .split(' ')
                .nth(1)
                .unwrap_or_default()
                .to_owned();
            if request_line.starts_with("GET") {
                let Some(event) = events.next() else {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    return;
                };
                let head = format!(
                    "HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: request-{}\r\n\
                     Lambda-Runtime-Deadline-Ms: 4102444800000\r\n\
                     Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:123456789012:function:hubcache\r\n\
                     Lambda-Runtime-Trace-Id: Root=1-00000000-000000000000000000000000\r\n\
                     Content-Length: {}\r\n\r\n",
                    replies.lock().unwrap().posts.len(),
                    event.len()
                );
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(&event).await;
            } else {
                replies.lock().unwrap().posts.push((path, body));
                let _ = socket
                    .write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")
                    .await;
            }
        }
    }
}

/// What one run of the function left behind.
struct Run {
    posts: Vec<(String, String)>,
    stdout: String,
}

/// Runs `hubcache-reconciler` with `log_env` until it has responded to every
/// event, then stops it. No AWS call can succeed: nothing listens on port 9.
async fn run_function(events: Vec<Vec<u8>>, log_env: &[(&str, &str)]) -> Run {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let replies = Arc::new(Mutex::new(Replies::default()));
    let expected = events.len();
    tokio::spawn(serve(listener, events, replies.clone()));

    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_hubcache-reconciler"));
    command
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", address.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "hubcache-reconciler")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "test")
        .env("AWS_ACCESS_KEY_ID", "hubcache-test-key")
        .env("AWS_SECRET_ACCESS_KEY", "hubcache-test-secret")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .envs(log_env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let mut function = command.spawn().expect("starting hubcache-reconciler");
    let mut stdout = function.stdout.take().unwrap();
    let output = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text).await;
        text
    });

    let waited = tokio::time::timeout(Duration::from_secs(60), async {
        while replies.lock().unwrap().posts.len() < expected {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    function.kill().await.unwrap();

    assert!(
        waited.is_ok(),
        "the function answered {:?}; it is likely stuck",
        replies.lock().unwrap()
    );
    let posts = std::mem::take(&mut replies.lock().unwrap().posts);
    Run {
        posts,
        stdout: output.await.unwrap(),
    }
}

/// Returns an event for a parameter hubcache does not manage, which the
/// function handles without an AWS call.
fn ignored_event() -> Vec<u8> {
    json!({
        "detail-type": "Parameter Store Change",
        "source": "aws.ssm",
        "detail": {"operation": "Update", "name": "/convox/demo/node_type", "type": "String"}
    })
    .to_string()
    .into_bytes()
}

#[tokio::test]
async fn payload_that_is_not_json() {
    let run = run_function(vec![b"not json {".to_vec(), ignored_event()], &[]).await;

    let posts = run.posts;
    assert_eq!(posts[0].0, "/2018-06-01/runtime/invocation/request-0/error");
    let error: Value = serde_json::from_str(&posts[0].1).unwrap();
    assert!(
        error["errorType"]
            .as_str()
            .unwrap_or_default()
            .ends_with("DeserializeError"),
        "{error}"
    );
    assert!(
        error["errorMessage"]
            .as_str()
            .unwrap_or_default()
            .starts_with(
                "failed to deserialize the incoming data into the function's payload type: "
            ),
        "{error}"
    );
    assert_eq!(
        posts[1].0,
        "/2018-06-01/runtime/invocation/request-1/response"
    );
    assert_eq!(
        serde_json::from_str::<Value>(&posts[1].1).unwrap(),
        json!({"ignored": "parameter /convox/demo/node_type is not a hubcache parameter under /convox/"}),
        "the function goes on after a payload that is not JSON"
    );
}

#[tokio::test]
async fn json_logs_follow_lambda_controls() {
    let invalid = json!({"hello": "world"}).to_string().into_bytes();
    let env = [
        ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
        ("AWS_LAMBDA_LOG_LEVEL", "DEBUG"),
    ];

    let run = run_function(vec![ignored_event(), invalid], &env).await;

    let lines: Vec<Value> = run
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("{error}: {line:?}")))
        .collect();
    let ignored = lines
        .iter()
        .find(|line| line["fields"]["message"] == "ignored")
        .unwrap_or_else(|| panic!("no debug line for the ignored event: {lines:?}"));
    assert_eq!(ignored["level"], "DEBUG");
    assert_eq!(ignored["span"]["request_id"], "request-0");
    assert!(ignored.get("timestamp").is_none(), "Lambda adds the time");
    let invalid = lines
        .iter()
        .find(|line| line["fields"]["message"] == "invalid event")
        .unwrap_or_else(|| panic!("no error line for the invalid event: {lines:?}"));
    assert_eq!(invalid["level"], "ERROR");
}

#[tokio::test]
async fn text_logs_filter_by_level() {
    let invalid = json!({"hello": "world"}).to_string().into_bytes();
    let env = [
        ("AWS_LAMBDA_LOG_FORMAT", "Text"),
        ("AWS_LAMBDA_LOG_LEVEL", "ERROR"),
    ];

    let run = run_function(vec![ignored_event(), invalid], &env).await;

    // hubcache logs the invalid event, and lambda_runtime the error it returns.
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines.iter().all(|line| line.starts_with("ERROR ")),
        "only error lines: {lines:?}"
    );
    assert!(lines[0].contains("invalid event"), "{:?}", lines[0]);
    assert!(
        !run.stdout.contains('\u{1b}'),
        "no ANSI colors: {:?}",
        run.stdout
    );
}
