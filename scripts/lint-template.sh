#!/usr/bin/env bash
# Lints template.yaml with the project's pinned tools (cfn-lint, then SAM's own validation with its
# cfn-lint pass). Offline: no AWS account or credentials needed. Exits non-zero on any finding,
# warnings included; a deliberate exception belongs in template.yaml's Metadata cfn-lint config,
# with its reason.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"
# sam wants a region; it never calls AWS for these checks. No telemetry from CI.
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
export SAM_CLI_TELEMETRY=0

template=template.yaml
status=0

echo "lint-template: cfn-lint $(cfn-lint --version | awk '{print $2}')"
# Errors, warnings and informational findings all fail (exit codes 2, 4, 8).
cfn-lint --include-checks I --format parseable -- "$template" || status=1

echo "lint-template: sam validate --lint"
sam validate --lint --template "$template" --region "$AWS_DEFAULT_REGION" || status=1

if [ "$status" -ne 0 ]; then
  echo "lint-template: FAILED" >&2
else
  echo "lint-template: clean"
fi
exit "$status"
