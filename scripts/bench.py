"""Measure hubcache-reconciler and write docs/benchmarks.md.

Runs the release binary against the AWS emulator through a minimal Lambda
Runtime API served here on 127.0.0.1, one process per cold start, and counts
the AWS calls of each reconcile with moto's request recorder. Started by
scripts/bench, which builds the binaries and starts the emulator.

Usage: bench.py --reconciler PATH --cli PATH --out PATH [--runs N]
"""

import argparse
import base64
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RACK = "bench"
FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:hubcache-reconciler"
PREFIX = "/convox/"


class RuntimeApi:
    """A Lambda Runtime API that serves a fixed list of events and records timings."""

    def __init__(self, events):
        self.events = list(events)
        self.served = 0
        self.first_next = None
        self.responses = []
        self.errors = []
        self.done = threading.Event()
        self.stopping = threading.Event()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_):
                pass

            def do_GET(self):
                if not self.path.endswith("/runtime/invocation/next"):
                    self.send_error(404)
                    return
                if api.first_next is None:
                    api.first_next = time.perf_counter()
                if api.served >= len(api.events):
                    # Keep the request open until the process is killed, as
                    # Lambda does with an idle function.
                    api.stopping.wait()
                    return
                event = json.dumps(api.events[api.served]).encode()
                api.served += 1
                deadline_ms = int((time.time() + 60) * 1000)
                self.send_response(200)
                self.send_header("Lambda-Runtime-Aws-Request-Id", str(uuid.uuid4()))
                self.send_header("Lambda-Runtime-Deadline-Ms", str(deadline_ms))
                self.send_header("Lambda-Runtime-Invoked-Function-Arn", FUNCTION_ARN)
                self.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
                self.send_header("Content-Length", str(len(event)))
                self.end_headers()
                self.wfile.write(event)

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()
                if self.path.endswith("/response"):
                    api.responses.append((time.perf_counter(), json.loads(body or b"null")))
                else:
                    api.errors.append(body.decode(errors="replace"))
                if len(api.responses) + len(api.errors) >= len(api.events):
                    api.done.set()

        ThreadingHTTPServer.daemon_threads = True
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.done.set()
        self.stopping.set()
        self.server.shutdown()


def run_reconciler(command, events, endpoint):
    """Runs one cold process of `command` (a path, or a list of arguments) for `events`.

    Returns timings (ms), peak RSS (kB) and responses.
    """
    api = RuntimeApi(events)
    env = dict(os.environ)
    env.update(
        AWS_LAMBDA_RUNTIME_API=api.address,
        AWS_LAMBDA_FUNCTION_NAME="hubcache-reconciler",
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE="128",
        AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
        AWS_LAMBDA_LOG_STREAM_NAME="bench",
        AWS_LAMBDA_LOG_GROUP_NAME="bench",
        AWS_LAMBDA_LOG_LEVEL="warn",
        AWS_ENDPOINT_URL=endpoint,
        HUBCACHE_PARAMETER_PREFIX=PREFIX,
    )
    started = time.perf_counter()
    command = [command] if isinstance(command, str) else command
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        if not api.done.wait(120):
            raise RuntimeError("the reconciler sent no response within 120 s")
        with open(f"/proc/{process.pid}/status") as status:
            peak_kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    finally:
        process.kill()
        stderr = process.communicate()[1].decode(errors="replace")
        api.close()
    if api.errors:
        raise RuntimeError(f"invocation failed: {api.errors[0]}\n{stderr}")

    return {
        "init_ms": (api.first_next - started) * 1000,
        "first_event_ms": (api.responses[0][0] - started) * 1000,
        "all_events_ms": (api.responses[-1][0] - api.first_next) * 1000,
        "peak_rss_kb": peak_kb,
        "responses": [body for _, body in api.responses],
    }


class Recorder:
    """moto's request recorder: counts the AWS operations the emulator received."""

    def __init__(self, endpoint):
        self.endpoint = endpoint

    def _call(self, path, method="POST"):
        request = urllib.request.Request(f"{self.endpoint}/moto-api/recorder/{path}", method=method)
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.read().decode()

    def start(self):
        self._call("reset-recording")
        self._call("start-recording")

    def stop(self):
        self._call("stop-recording")
        lines = self._call("download-recording", method="GET").splitlines()
        return Counter(operation(json.loads(line)) for line in lines if line.strip())


def operation(entry):
    """Returns the AWS operation of a recorded request."""
    headers = {name.lower(): value for name, value in entry["headers"].items()}
    target = headers.get("x-amz-target")
    if target:
        return target.rsplit(".", 1)[-1]
    body = entry.get("body") or ""
    if entry.get("body_encoded"):
        body = base64.b64decode(body).decode(errors="replace")
    action = urllib.parse.parse_qs(body).get("Action", ["?"])[0]
    return action


def create_nodes_role(endpoint):
    import boto3

    boto3.client("iam", endpoint_url=endpoint).create_role(
        RoleName=f"{RACK}-nodes",
        AssumeRolePolicyDocument='{"Version":"2012-10-17","Statement":[{"Effect":"Allow",'
        '"Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}',
    )


def hubcache(cli, endpoint, *arguments):
    env = dict(os.environ, AWS_ENDPOINT_URL=endpoint)
    subprocess.run([cli, *arguments, "--rack", RACK], env=env, check=True, stdout=subprocess.DEVNULL)


def measure_scenario(command, endpoint, recorder, events):
    recorder.start()
    result = run_reconciler(command, events, endpoint)
    result["calls"] = recorder.stop()
    return result


def parameter_event(name):
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Parameter Store Change",
        "source": "aws.ssm",
        "account": "123456789012",
        "time": "2026-12-04T18:30:00Z",
        "region": "us-east-1",
        "resources": [f"arn:aws:ssm:us-east-1:123456789012:parameter{PREFIX}{RACK}/{name}"],
        "detail": {"operation": "Update", "name": f"{PREFIX}{RACK}/{name}", "type": "String"},
    }


def spawn_baseline_ms(runs):
    """Median time to start and wait for /bin/true: the machine's process cost."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(["/bin/true"], check=True)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def machine():
    model = "unknown CPU"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    return f"{model}, {os.cpu_count()} cores, {platform.system()} {platform.release()}; {rustc}"


def release_profile():
    """Describes Cargo.toml's release profile, as the figures depend on it."""
    import tomllib

    with open(os.path.join(os.path.dirname(__file__), "..", "Cargo.toml"), "rb") as manifest:
        profile = tomllib.load(manifest).get("profile", {}).get("release", {})
    return ", ".join(f"{key} = {json.dumps(value)}" for key, value in profile.items()) or "defaults"


def bootstrap_size(path):
    if not path:
        return "not measured: the aarch64 Rust standard library is not installed"
    size = os.path.getsize(path)
    return f"{size / 1e6:.1f} MB ({size} bytes)"


def calls_table(results):
    lines = ["| scenario | calls | target | by operation |", "| --- | --- | --- | --- |"]
    for name, target, result in results:
        calls = result["calls"]
        by_operation = ", ".join(f"{op} {count}" for op, count in sorted(calls.items()))
        lines.append(f"| {name} | {sum(calls.values())} | {target} | {by_operation} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reconciler", required=True)
    parser.add_argument("--cli", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--arm64-bootstrap", help="cargo lambda build --release --arm64 output")
    parser.add_argument("--x86-64-bootstrap", help="cargo lambda build --release --x86-64 output")
    parser.add_argument(
        "--arm64-sysroot", help="aarch64 C library folder, to run the arm64 bootstrap under qemu-aarch64"
    )
    args = parser.parse_args()

    endpoint = os.environ["AWS_ENDPOINT_URL"]
    if not endpoint.startswith("http://127.0.0.1:"):
        sys.exit(f"AWS_ENDPOINT_URL must be the emulator on 127.0.0.1, got {endpoint}")
    recorder = Recorder(endpoint)
    direct = [{"rack": RACK}]
    create_nodes_role(endpoint)

    hubcache(args.cli, endpoint, "params", "set", "ecr_docker_hub_cache=true",
             "docker_hub_username=bench-user", "docker_hub_password=bench-token-1")
    enable = measure_scenario(args.reconciler, endpoint, recorder, direct)
    converged_runs = [measure_scenario(args.reconciler, endpoint, recorder, direct) for _ in range(args.runs)]
    arm64_check = "not run: needs the arm64 bootstrap, qemu-aarch64 and an aarch64 C library"
    if args.arm64_bootstrap and args.arm64_sysroot:
        command = ["qemu-aarch64", "-L", args.arm64_sysroot, args.arm64_bootstrap]
        response = measure_scenario(command, endpoint, recorder, direct)["responses"][0]
        if response.get("changes") != []:
            sys.exit(f"the arm64 bootstrap did not find the rack converged: {response}")
        arm64_check = "handled a converged reconcile under qemu-aarch64 (emulated, so not timed)"
    hubcache(args.cli, endpoint, "params", "set", "docker_hub_password=bench-token-2")
    rotate = measure_scenario(args.reconciler, endpoint, recorder, direct)
    hubcache(args.cli, endpoint, "params", "set", "ecr_docker_hub_cache_retention_days=30")
    retain = measure_scenario(args.reconciler, endpoint, recorder, direct)
    retained = measure_scenario(args.reconciler, endpoint, recorder, direct)
    hubcache(args.cli, endpoint, "params", "set", "ecr_docker_hub_cache_retention_days=")
    release = measure_scenario(args.reconciler, endpoint, recorder, direct)
    hubcache(args.cli, endpoint, "params", "set", "ecr_docker_hub_cache=false")
    disable = measure_scenario(args.reconciler, endpoint, recorder, direct)
    hubcache(args.cli, endpoint, "params", "set", "ecr_docker_hub_cache=true")
    burst = measure_scenario(
        args.reconciler, endpoint, recorder, [parameter_event("ecr_docker_hub_cache")] * 50
    )

    scenarios = [("enable", enable), ("rotate", rotate), ("retain", retain), ("disable", disable)]
    for name, result in scenarios:
        changes = result["responses"][0].get("changes", [])
        print(f"{name}: {len(changes)} changes, {sum(result['calls'].values())} calls", file=sys.stderr)

    converged = converged_runs[0]
    init = statistics.median(run["init_ms"] for run in converged_runs)
    first = statistics.median(run["first_event_ms"] for run in converged_runs)
    rss = statistics.median(run["peak_rss_kb"] for run in converged_runs)
    rss_max = max(
        run["peak_rss_kb"]
        for run in converged_runs + [enable, rotate, retain, retained, release, disable, burst]
    )
    baseline = spawn_baseline_ms(args.runs)
    size = os.path.getsize(args.reconciler)
    cli_size = os.path.getsize(args.cli)
    burst_calls = sum(burst["calls"].values())

    report = f"""# Benchmarks

Produced by `scripts/bench` on {time.strftime('%Y-%m-%d')}, on {machine()}.
Every figure comes from the release build of `hubcache-reconciler`
({release_profile()}), run against the AWS emulator
(moto 5.2.5 with hubcache's extension) on 127.0.0.1 through a minimal Lambda
Runtime API in `scripts/bench.py`. Times on this shared two-core machine are
noisy, so each is shown beside its ratio to starting `/bin/true`, measured in
the same run.

## AWS calls per reconcile

Counted by moto's request recorder, one reconcile each, in this order.

{calls_table([
    ("enable from nothing", "at most 12", enable),
    ("converged (nothing to change)", "at most 8, reads only", converged),
    ("password rotation", "", rotate),
    ("set a retention (template recorded, then created)", "", retain),
    ("converged with a retention", "reads only", retained),
    ("remove the retention", "", release),
    ("disable", "at most 10", disable),
])}

A rack with a retention reads its repository creation template too, so its
converged reconcile makes one call more than a rack without one.

## Cold start

Median of {args.runs} cold processes on a converged rack; each process handles
one direct invocation `{{"rack": "{RACK}"}}`.

| figure | median | ratio to `/bin/true` ({baseline:.1f} ms) |
| --- | --- | --- |
| init: process start to the first request for an event | {init:.1f} ms | {init / baseline:.1f}× |
| process start to the first event handled | {first:.1f} ms | {first / baseline:.1f}× |

Init loads the SDK configuration from the environment and makes no AWS call;
the AWS clients are built on the first event that needs them.

## Size and memory

| figure | value | target |
| --- | --- | --- |
| `hubcache-reconciler`, x86-64, stripped (`cargo build --release`) | {size / 1e6:.1f} MB ({size} bytes) | at most 8 MB |
| bootstrap, arm64 (`cargo lambda build --release --arm64`, the one deployed) | {bootstrap_size(args.arm64_bootstrap)} | at most 8 MB |
| bootstrap, x86-64 (`cargo lambda build --release --x86-64`) | {bootstrap_size(args.x86_64_bootstrap)} | at most 8 MB |
| bootstrap, arm64, run | {arm64_check} | |
| `hubcache` CLI, x86-64, stripped | {cli_size / 1e6:.1f} MB | |
| peak RSS of one invocation (VmHWM), median | {rss / 1024:.1f} MiB | at most 25 MB |
| peak RSS, largest of all runs here | {rss_max / 1024:.1f} MiB | |

## Burst of 50 parameter events

One process handles 50 "Parameter Store Change" events for rack `{RACK}`
in a row, as Lambda does with a reserved concurrency of one; the first one
enables the cache again.

| figure | value |
| --- | --- |
| total time, first request for an event to last response | {burst['all_events_ms']:.0f} ms |
| AWS calls | {burst_calls} ({burst_calls / 50:.1f} per event) |
| by operation | {", ".join(f"{op} {count}" for op, count in sorted(burst['calls'].items()))} |
"""
    with open(args.out, "w") as out:
        out.write(report)
    print(report)

    limits = [
        ("calls to enable", sum(enable["calls"].values()), 12),
        ("calls of a converged reconcile", sum(converged["calls"].values()), 8),
        ("calls to disable", sum(disable["calls"].values()), 10),
        ("bytes of hubcache-reconciler", size, 8_000_000),
        ("peak RSS in kB", rss_max, 25_000),
    ]
    for path in (args.arm64_bootstrap, args.x86_64_bootstrap):
        if path:
            limits.append((f"bytes of {path}", os.path.getsize(path), 8_000_000))
    missed = [f"{name}: {value} > {limit}" for name, value, limit in limits if value > limit]
    reads = ("Get", "Describe", "List")
    writes = [op for op in converged["calls"] if not op.startswith(reads)]
    if writes:
        missed.append(f"a converged reconcile wrote: {', '.join(writes)}")
    if missed:
        sys.exit("Targets missed:\n" + "\n".join(missed))


if __name__ == "__main__":
    main()
