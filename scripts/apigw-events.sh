#!/usr/bin/env bash
# Regenerates events/<function>/apigw/*.json: each sample payload wrapped in the API Gateway HTTP
# API (payload v2) request event that delivers it, signed NOW with the local test secret. The
# signatures carry a timestamp, so a file verifies for SIGNATURE_TOLERANCE_SECS (300 s) after it
# was made: refresh right before `cargo lambda invoke <function> --data-file <file>`. The
# committed files are also test fixtures (tests/tests/apigw_fixtures.rs checks them against a
# clock set to their signing time).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q -p hookline-cli
hookline="${CARGO_TARGET_DIR:-target}/debug/hookline"
for fn_dir in events/*/; do
  fn=$(basename "$fn_dir")
  mkdir -p "$fn_dir/apigw"
  for payload in "$fn_dir"*.json; do
    name=$(basename "$payload")
    "$hookline" send "$fn" "$payload" --apigw --id "msg_apigw_${name%.json}" > "$fn_dir/apigw/$name"
  done
  echo "apigw-events: $fn_dir/apigw/ ($(ls "$fn_dir/apigw" | wc -l) events)"
done
