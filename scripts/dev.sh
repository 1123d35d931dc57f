#!/usr/bin/env bash
# `make dev`: the whole stack on one machine, no AWS account.
#
#   moto server (AWS emulator)   http://127.0.0.1:4566   table + queues as template.yaml declares
#   hookline sink                http://127.0.0.1:9100   target of every follow-up action
#   hookline pump                follow-up queue -> followup-worker, reconciler every 30 s
#   cargo lambda watch           http://127.0.0.1:9000/lambda-url/<function>/   (foreground)
#
# Injected sink faults (docs/LOCAL.md): HOOKLINE_SINK_FAIL_FIRST=N answers 503 to the first N
# requests (watch the backoff, FAILED after 8 attempts with the message in the DLQ, and `hookline dlq redrive`); HOOKLINE_SINK_FAIL_RATE=0.3 (seeded
# by HOOKLINE_SINK_SEED) to that share of them; HOOKLINE_SINK_DOWN_AFTER=N with
# HOOKLINE_SINK_DOWN_FOR=20s to every request for that long after the Nth.
# HOOKLINE_{MOTO,WATCH,SINK}_PORT move the ports (the `hookline` CLI reads the same variables);
# HOOKLINE_STATE_DIR moves the pid files and logs (default .local/, git-ignored). Ctrl-C stops everything this run started. `scripts/dev.sh down`
# stops what a previous run left behind. Walk-through: docs/LOCAL.md.
#
# Ready means ready: the line that says how to send a first webhook is printed only once every
# receiver has answered a probe request, so that first webhook succeeds.
set -euo pipefail
cd "$(dirname "$0")/.."

moto_port=${HOOKLINE_MOTO_PORT:-4566}
watch_port=${HOOKLINE_WATCH_PORT:-9000}
sink_port=${HOOKLINE_SINK_PORT:-9100}
state=${HOOKLINE_STATE_DIR:-.local}
mkdir -p "$state"

# Stops the process in $state/<name>.pid if it is still the one we started (watch: its whole
# process group, which holds the function processes it started).
stop() {
  local name=$1 pidfile="$state/$1.pid" pid target
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  target=$pid
  [ "$name" = watch ] && target=-$pid
  if kill -0 "$pid" 2>/dev/null && grep -qa -- "$2" "/proc/$pid/cmdline" 2>/dev/null; then
    kill -- "$target" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    echo "dev: stopped $name (pid $pid)"
  fi
  rm -f "$pidfile"
}

down() {
  stop watch lambda
  stop pump hookline
  stop sink hookline
  stop moto emulator.py
}

if [ "${1:-}" = down ]; then
  down
  exit 0
fi

bash scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"
export AWS_ENDPOINT_URL="http://127.0.0.1:$moto_port" AWS_REGION=us-east-1
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-test} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-test}

started=()
cleanup() {
  local name
  for name in "${started[@]}"; do
    case $name in
      moto) stop moto emulator.py ;;
      watch) stop watch lambda ;;
      *) stop "$name" hookline ;;
    esac
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

answers() {
  python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' \
    "$AWS_ENDPOINT_URL/moto-api/" 2>/dev/null
}

if answers; then
  echo "dev: emulator already answering at $AWS_ENDPOINT_URL"
else
  python scripts/emulator.py -H 127.0.0.1 -p "$moto_port" >"$state/moto.log" 2>&1 &
  echo $! >"$state/moto.pid"
  started+=(moto)
  for _ in $(seq 150); do
    answers && break
    kill -0 "$(cat "$state/moto.pid")" 2>/dev/null || { cat "$state/moto.log"; exit 1; }
    sleep 0.2
  done
  answers || { echo "dev: moto server did not answer; see $state/moto.log" >&2; exit 1; }
  echo "dev: moto server at $AWS_ENDPOINT_URL (log: $state/moto.log)"
fi

cargo build -p hookline-cli
hookline="${CARGO_TARGET_DIR:-target}/debug/hookline"
# The receivers are the registry's (receivers/src/lib.rs): built, configured and probed below.
mapfile -t receivers < <("$hookline" receivers --names)
"$hookline" local up --env-file "$state/lambda.env" --sink-url "http://127.0.0.1:$sink_port"

# Background helpers: output to the terminal (prefixed) and to a log in .local/.
background() {
  local name=$1
  shift
  "$hookline" "$@" > >(tee "$state/$name.log" | sed -u "s/^/[$name] /") 2>&1 &
  echo $! >"$state/$name.pid"
  started+=("$name")
}
stop sink hookline
stop pump hookline
sink_faults=(--fail-first "${HOOKLINE_SINK_FAIL_FIRST:-0}" --fail-rate "${HOOKLINE_SINK_FAIL_RATE:-0}"
  --seed "${HOOKLINE_SINK_SEED:-0}")
if [ -n "${HOOKLINE_SINK_DOWN_AFTER:-}" ]; then
  sink_faults+=(--down-after "$HOOKLINE_SINK_DOWN_AFTER" --down-for "${HOOKLINE_SINK_DOWN_FOR:-30s}")
fi
background sink sink --addr "127.0.0.1:$sink_port" "${sink_faults[@]}" --record "$state/sink.jsonl"
background pump pump \
  --worker-url "http://127.0.0.1:$watch_port/2015-03-31/functions/followup-worker/invocations" \
  --reconciler-url "http://127.0.0.1:$watch_port/2015-03-31/functions/reconciler/invocations"

# Build the functions now so the first request does not wait for a compile (same command line
# shape as the `cargo run --bin <function>` that `cargo lambda watch` runs, so it is reused).
bins=()
for fn in "${receivers[@]}" followup-worker reconciler; do bins+=(--bin "$fn"); done
cargo build "${bins[@]}"

stop watch lambda
setsid cargo lambda watch --invoke-address 127.0.0.1 --invoke-port "$watch_port" \
  --env-file "$state/lambda.env" > >(tee "$state/watch.log") 2>&1 &
echo $! >"$state/watch.pid"
started+=(watch)

# Ready when every receiver answers an unsigned probe with 401: watch is serving, the function
# process is up with its configuration loaded (a forged request writes nothing).
probe() {
  python3 - "http://127.0.0.1:$watch_port/lambda-url/$1/" <<'PY'
import sys, urllib.error, urllib.request
req = urllib.request.Request(sys.argv[1], data=b"{}", method="POST",
                             headers={"content-type": "application/json"})
try:
    urllib.request.urlopen(req, timeout=60)
except urllib.error.HTTPError as e:
    sys.exit(0 if e.code == 401 else 1)
except Exception:
    sys.exit(1)
sys.exit(1)
PY
}
for fn in "${receivers[@]}"; do
  for _ in $(seq 600); do
    probe "$fn" && break
    kill -0 "$(cat "$state/watch.pid")" 2>/dev/null || { echo "dev: cargo lambda watch exited" >&2; exit 1; }
    sleep 0.5
  done
  probe "$fn" || { echo "dev: $fn did not become ready; see $state/watch.log" >&2; exit 1; }
done
# ...and the sink and the pump are still running (a port already taken stops the sink at once).
for name in sink pump; do
  kill -0 "$(cat "$state/$name.pid")" 2>/dev/null ||
    { echo "dev: hookline $name exited; see $state/$name.log" >&2; exit 1; }
done

ports=""
[ "$watch_port" = 9000 ] || ports+="HOOKLINE_WATCH_PORT=$watch_port "
[ "$moto_port" = 4566 ] || ports+="HOOKLINE_MOTO_PORT=$moto_port "
echo "dev: functions at http://127.0.0.1:$watch_port/lambda-url/<function>/ ; Ctrl-C stops everything"
echo "dev: ready; send a first webhook: ${ports}cargo run -p hookline-cli -- send payment-events events/payment-events/invoice.paid.json"
wait "$(cat "$state/watch.pid")"
