#!/usr/bin/env bash
# Lambda cold start benchmark (run by hand; not part of the test suite). Usage:
#   bench/lambda-start.sh [--runs N] [other bench/lambda_start.py options]
# Builds dormant-lambda, starts the emulator, then measures start-to-ready, the first (cheap,
# ignored) invocation and peak RSS of dormant-lambda against a fake Lambda Runtime API, next to a
# minimal Python + boto3 runtime loop. See "Lambda cold start" in bench/README.md.
#
# Environment:
#   BENCH_RELEASE=1   build and use target/release/dormant-lambda (the production number; a clean
#                     release build takes ~13 min on 2 cores). Default: the debug build.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup-venv

if [ "${BENCH_RELEASE:-0}" = 1 ]; then
  echo "== building dormant-lambda (release)" >&2
  cargo build --quiet --release --bin dormant-lambda
  bin=target/release/dormant-lambda profile=release
else
  echo "== building dormant-lambda (debug; BENCH_RELEASE=1 measures a release build)" >&2
  cargo build --quiet --bin dormant-lambda
  bin=target/debug/dormant-lambda profile=debug
fi

portfile=$(mktemp -u /tmp/dormant-bench-port.XXXXXX)
.venv/bin/python tests/emulator/launcher.py --port 0 --port-file "$portfile" --idle-exit 900 \
  > /dev/null 2> bench/.emulator.log &
emulator=$!
trap 'kill $emulator 2>/dev/null || true; rm -f "$portfile"' EXIT
for _ in $(seq 100); do [ -s "$portfile" ] && break; sleep 0.1; done
[ -s "$portfile" ] || { echo "the emulator did not start (bench/.emulator.log)" >&2; exit 1; }

# The Python peer runs on .venv's boto3 (pinned with moto in tests/emulator/requirements.txt).
.venv/bin/python bench/lambda_start.py --lambda-bin "$bin" --profile "$profile" \
  --endpoint "http://127.0.0.1:$(cat "$portfile")" --peer-python "$PWD/.venv/bin/python" "$@"
