#!/usr/bin/env bash
# The README's test command (`make test`): pinned tools, formatting, lints, template lint, then the
# whole suite against a moto server this script starts on a free port and stops at the end (the
# fuzz targets' seeds and kept crash inputs replay there as ordinary tests: fuzz/tests/corpus.rs),
# then a short storm against a whole `make dev` stack of its own (scripts/storm.py --short). The
# instrumented fuzz build and its timed runs are `make fuzz`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"

echo "== cargo fmt"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== template lint"
bash scripts/lint-template.sh
echo "== emulator tests"
python -m unittest -v scripts/test_emulator.py
echo "== storm script tests"
python -m unittest -v scripts/test_storm.py

mkdir -p .local
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python scripts/emulator.py -H 127.0.0.1 -p "$port" > .local/moto-test.log 2>&1 &
moto_pid=$!
trap 'kill "$moto_pid" 2>/dev/null || true' EXIT
python3 - "$port" <<'PY'
import sys, time, urllib.request
url = f"http://127.0.0.1:{sys.argv[1]}/moto-api/"
for _ in range(150):
    try:
        urllib.request.urlopen(url, timeout=1)
        sys.exit(0)
    except Exception:
        time.sleep(0.2)
sys.exit("moto server did not start; see .local/moto-test.log")
PY
export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_REGION=us-east-1
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test

echo "== tests (emulator at $AWS_ENDPOINT_URL)"
cargo nextest run --workspace --locked --no-fail-fast "$@"

# A few dozen events x 3 through the whole stack with sink faults (docs/RELIABILITY.md); it starts
# and stops its own stack, on free ports, and exits non-zero when an invariant is broken.
echo "== storm (short)"
python scripts/storm.py --short
