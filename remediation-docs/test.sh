#!/usr/bin/env bash
# Tests of the SSM Automation documents (called by the project's test script; runs on its own too):
#   1. schema: every document against the SSM document JSON schema (ajv), plus broken copies
#      that must be rejected;
#   2. API: every aws:executeAwsApi Service/Api/parameter and every boto3 call in the
#      aws:executeScript scripts against botocore's models, plus broken copies that must be caught;
#   3. simulation: every document run by @cdklabs/cdk-ssm-documents against the moto emulator
#      (tests/emulator/launcher.py), checking IAM state, idempotency, reversal and call order.
# Needs node >= 20, npm, python3. Installs what it needs: the root .venv (scripts/setup-venv)
# and node_modules (npm ci from package-lock.json, skipped when the lock file is unchanged).
set -euo pipefail
cd "$(dirname "$0")"

../scripts/setup-venv
python=../.venv/bin/python

stamp=node_modules/.package-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "== remediation-docs: npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
fi

export PYTHONDONTWRITEBYTECODE=1 NODE_NO_WARNINGS=1
docs=(Dormant-*.yaml)

echo "== remediation-docs: schema (${#docs[@]} documents)"
node test/validate-schema.js "${docs[@]}"
node test/validate-schema.js --self-test "${docs[@]}" | tail -n 1

echo "== remediation-docs: API names and parameters (botocore models)"
"$python" test/check_documents.py "${docs[@]}"
"$python" test/check_documents.py --self-test "${docs[@]}" | tail -n 1

echo "== remediation-docs: simulation against the emulator"
"$python" test/simulate.py
