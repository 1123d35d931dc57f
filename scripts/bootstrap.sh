#!/usr/bin/env bash
# Installs the project's pinned tools outside cargo (moto server, cargo-lambda + ziglang, cfn-lint,
# aws-sam-cli) into ./.venv. Idempotent: a stamp file records the requirements it was built from.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv
stamp=$venv/.requirements.sha256
want=$(sha256sum requirements-dev.txt | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
echo "$want" > "$stamp"
echo "bootstrap: tools installed into $venv"
