# Sourced by scripts/test and scripts/demo: dummy AWS settings aimed only at
# 127.0.0.1, the pinned Python tools, and the AWS emulator's start and stop.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV_ROOT=${HUBCACHE_VENV_ROOT:-$ROOT/.venv}
RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/hubcache.XXXXXX")

# Dummy credentials and no metadata lookups: no AWS call may leave this machine.
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_SECURITY_TOKEN AWS_ROLE_ARN AWS_WEB_IDENTITY_TOKEN_FILE
unset AWS_CONTAINER_CREDENTIALS_RELATIVE_URI AWS_CONTAINER_CREDENTIALS_FULL_URI
export AWS_ACCESS_KEY_ID=hubcache-dummy-key-id
export AWS_SECRET_ACCESS_KEY=hubcache-dummy-secret-key
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
export AWS_CONFIG_FILE=$RUN_DIR/aws-config AWS_SHARED_CREDENTIALS_FILE=$RUN_DIR/aws-credentials
touch "$AWS_CONFIG_FILE" "$AWS_SHARED_CREDENTIALS_FILE"
# SAM CLI sends usage data and checks for updates unless these are set.
export SAM_CLI_TELEMETRY=0 SAM_CLI_DISABLE_UPDATE_CHECK=1

log() { printf '==> %s\n' "$*" >&2; }

# ensure_venv NAME: creates $VENV_ROOT/NAME from scripts/requirements/NAME.txt,
# reinstalling only when that file changed.
ensure_venv() {
  local name=$1
  local requirements=$ROOT/scripts/requirements/$name.txt
  local venv=$VENV_ROOT/$name
  local stamp=$venv/.requirements.sha256
  local wanted
  wanted=$(sha256sum "$requirements" | cut -d' ' -f1)
  if [[ -f $stamp && $(cat "$stamp") == "$wanted" ]]; then
    return
  fi
  log "Installing the $name environment into $venv (pinned in ${requirements#"$ROOT"/})"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
  echo "$wanted" >"$stamp"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

EMULATOR_PID=
# start_emulator [ARGUMENT...]: starts moto with hubcache's ECR extension on a
# free port of 127.0.0.1, passing the arguments to scripts/aws-emulator.py,
# and exports AWS_ENDPOINT_URL and HUBCACHE_TEST_ENDPOINT.
start_emulator() {
  ensure_venv emulator
  local port ready=$RUN_DIR/emulator.ready
  port=$(free_port)
  # The request recorder stays off unless scripts/bench starts it. Its
  # file contains request bodies, so it lives in the run's temporary folder.
  MOTO_RECORDER_FILEPATH=$RUN_DIR/moto_recording \
    "$VENV_ROOT/emulator/bin/python" "$ROOT/scripts/aws-emulator.py" \
    --port "$port" --ready-file "$ready" "$@" >"$RUN_DIR/emulator.log" 2>&1 &
  EMULATOR_PID=$!
  for _ in $(seq 1 300); do
    [[ -s $ready ]] && break
    if ! kill -0 "$EMULATOR_PID" 2>/dev/null; then
      cat "$RUN_DIR/emulator.log" >&2
      echo "The AWS emulator exited during start-up; its log is above." >&2
      return 1
    fi
    sleep 0.1
  done
  if [[ ! -s $ready ]]; then
    echo "The AWS emulator did not start within 30 seconds; see $RUN_DIR/emulator.log." >&2
    return 1
  fi
  export AWS_ENDPOINT_URL=http://127.0.0.1:$port
  export HUBCACHE_TEST_ENDPOINT=$AWS_ENDPOINT_URL
  log "AWS emulator (moto) on $AWS_ENDPOINT_URL"
}

stop_emulator() {
  if [[ -n $EMULATOR_PID ]] && kill -0 "$EMULATOR_PID" 2>/dev/null; then
    kill "$EMULATOR_PID"
    wait "$EMULATOR_PID" 2>/dev/null || true
  fi
  EMULATOR_PID=
}

cleanup() {
  stop_emulator
  rm -rf "$RUN_DIR"
}
