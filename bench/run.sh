#!/usr/bin/env bash
# The benchmark (run by hand; not part of the test suite). Usage: bench/run.sh [N ...]
# (default 1000). Starts the emulator, then for each N seeds identical accounts and measures
# dormant (dry run + real first pass), Cloud Custodian and the per-identity boto3 approach.
# See bench/README.md.
#
# Environment:
#   BENCH_RELEASE=1   build and use target/release/dormant (a clean release build takes ~13 min)
#   BENCH_TOOLS=...   comma-separated subset of dormant,custodian,boto3 (default: all three)
#   BENCH_THREADS=8   seeding threads
#   BENCH_THROTTLE=10/20/20/40   real passes under IAM token buckets (writes/s, write burst,
#                     reads/s, read burst; the emulator's /_dormant/iam/rate), with their floor
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || set -- 1000

./scripts/setup-venv

# Peers in their own venv, so the emulator's pinned .venv is never disturbed.
req=bench/requirements.txt
stamp=bench/.venv/.requirements.sha256
want=$(sha256sum "$req" | cut -d' ' -f1)
if ! { [ -x bench/.venv/bin/python ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; }; then
  echo "== creating bench/.venv with $req" >&2
  python3 -m venv bench/.venv
  bench/.venv/bin/pip install --quiet --disable-pip-version-check -r "$req"
  echo "$want" > "$stamp"
fi

if [ ! -x /usr/bin/time ]; then
  echo "== installing GNU time (peak RSS, CPU time)" >&2
  { apt-get update -qq && apt-get install -y -qq time; } >&2 \
    || { echo "GNU time (/usr/bin/time) is needed: apt-get install time" >&2; exit 1; }
fi

target=${CARGO_TARGET_DIR:-target}
if [ "${BENCH_RELEASE:-0}" = 1 ]; then
  echo "== building dormant (release)" >&2
  cargo build --quiet --release --bin dormant
fi
if [ -x "$target/release/dormant" ]; then
  bin=$target/release/dormant profile=release
  if [ -n "$(find src Cargo.toml Cargo.lock -newer "$bin" -print -quit)" ]; then
    echo "warning: $bin is older than the sources; BENCH_RELEASE=1 rebuilds it" >&2
  fi
else
  echo "== building dormant (debug; BENCH_RELEASE=1 builds and uses a release build)" >&2
  cargo build --quiet --bin dormant
  bin=$target/debug/dormant profile=debug
fi

portfile=$(mktemp -u /tmp/dormant-bench-port.XXXXXX)
# MOTO_IAM_LOAD_MANAGED_POLICIES stays off (the launcher's default): no tool here needs them.
.venv/bin/python tests/emulator/launcher.py --port 0 --port-file "$portfile" --idle-exit 900 \
  > /dev/null 2> bench/.emulator.log &
emulator=$!
trap 'kill $emulator 2>/dev/null || true; rm -f "$portfile"' EXIT
for _ in $(seq 100); do [ -s "$portfile" ] && break; sleep 0.1; done
[ -s "$portfile" ] || { echo "the emulator did not start (bench/.emulator.log)" >&2; exit 1; }

bench/.venv/bin/python bench/bench.py \
  --endpoint "http://127.0.0.1:$(cat "$portfile")" --launcher-pid "$emulator" \
  --dormant "$(realpath "$bin")" --dormant-profile "$profile" --peer-python "$PWD/bench/.venv/bin/python" \
  --tools "${BENCH_TOOLS:-dormant,custodian,boto3}" --threads "${BENCH_THREADS:-8}" \
  ${BENCH_THROTTLE:+--throttle "$BENCH_THROTTLE"} "$@"
