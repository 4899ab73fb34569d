#!/usr/bin/env bash
# cdk/ checks: install from the lockfile, type-check, unit tests, synth, cfn-lint.
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
npx cdk synth -q --no-notices

step "cfn-lint"
if [ -x ../.venv/bin/cfn-lint ]; then
  cfn_lint=../.venv/bin/cfn-lint
else
  if [ ! -x .venv/bin/cfn-lint ]; then
    python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check cfn-lint==1.58.0
  fi
  cfn_lint=.venv/bin/cfn-lint
fi
# W3005 (a DependsOn also implied by a GetAtt) comes from CDK's own output.
"$cfn_lint" --ignore-checks W3005 -- cdk.out/*.template.json

step "done"
