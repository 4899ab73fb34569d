#!/usr/bin/env bash
# cdk/ checks: install from the lockfile, type-check, unit tests, synth, cfn-lint, and the IAM
# policies through parliament and cloudsplaining.
# Needs node 20+, npm and python3; works offline once the npm and pip caches are warm.
set -euo pipefail
cd "$(dirname "$0")"
export CDK_DISABLE_CLI_TELEMETRY=true
export JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION=true

t0=$SECONDS
step() { echo "== cdk: $* ($((SECONDS - t0))s)"; }

# npm ci from the committed lockfile; skipped when node_modules was installed by this script from
# the very same lockfile with the same node (set CDK_FORCE_NPM_CI=1 to reinstall anyway).
stamp="$(node --version) $(sha256sum package-lock.json package.json | sha256sum | cut -d' ' -f1)"
if [ "${CDK_FORCE_NPM_CI:-0}" != 1 ] && [ -f node_modules/.dormant-npm-ci ] && [ "$(cat node_modules/.dormant-npm-ci)" = "$stamp" ]; then
  step "npm ci: node_modules already installed from this package-lock.json"
else
  step "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$stamp" > node_modules/.dormant-npm-ci
fi

step "tsc --noEmit"
npx tsc --noEmit

step "jest"
npx jest --ci

step "cdk synth"
rm -rf cdk.out
# With owners' answers: the answers function and roles are linted too (a superset of the default).
npx cdk synth -q --no-notices -c answers=true

# The pinned Python tools (cfn-lint, parliament, cloudsplaining) live in the repository's .venv;
# setup-venv installs them from tests/emulator/requirements.txt, or does nothing when up to date.
../scripts/setup-venv
py=../.venv/bin

step "cfn-lint"
# W3005 (a DependsOn also implied by a GetAtt) comes from CDK's own output.
"$py/cfn-lint" --ignore-checks W3005 -- cdk.out/*.template.json

step "policy lint (parliament, cloudsplaining)"
# Fails on a finding not in policy-lint-allow.json, each entry with the reason it is accepted.
"$py/python" scripts/lint-policies.py cdk.out/*.template.json

step "done"
