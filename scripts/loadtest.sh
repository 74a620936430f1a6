#!/usr/bin/env bash
# `make loadtest`: the seeds' three load profiles and a heavy soak against `make run`'s
# suite (the release build), with the default scenario. Writes docs/loadtest-report.md,
# one plot per run (docs/loadtest/*.svg) and the JSON reports (docs/loadtest/*.json).
#
# On a 2-core machine the profiles are shortened (the seeds run 2, 10 and 30 minutes);
# the soak is not. Settings: LOADTEST_LIGHT, LOADTEST_MEDIUM, LOADTEST_HEAVY (durations,
# default 1m, 2m, 8m), LOADTEST_SOAK (default 10m). The heavy run is the longest of the
# three because it also warms the soak's suite: the RAG service's L1 cache takes about
# seven minutes of heavy load to fill to its budget (CACHE_L1_MAX_MB), and a soak that
# began cold would show that filling as growth.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck disable=SC1091
. .local/env

LIGHT="${LOADTEST_LIGHT:-1m}"
MEDIUM="${LOADTEST_MEDIUM:-2m}"
HEAVY="${LOADTEST_HEAVY:-8m}"
SOAK="${LOADTEST_SOAK:-10m}"
DOCS="$ROOT/docs/loadtest"
WORK="$ROOT/target/loadtest"
mkdir -p "$DOCS" "$WORK"

cargo build --quiet --release --bin agentic
AGENTIC="$ROOT/target/release/agentic"
if "$AGENTIC" health --addr http://127.0.0.1:50051 >/dev/null 2>&1; then
  echo "[loadtest] a suite already answers on 127.0.0.1:50051: stop it (make run) first" >&2
  exit 1
fi

# The suite as `make run` starts it, optimised, with the per-address limits scaled (every
# virtual user comes from 127.0.0.1; scripts/loadtest/ratelimits.toml says why).
export RATE_LIMIT_RULES="$ROOT/scripts/loadtest/ratelimits.toml"
export RUST_LOG=warn
AGENTIC_BUILD=release scripts/run.sh >"$WORK/suite.log" 2>&1 &
SUITE=$!
stop_suite() { kill -TERM "$SUITE" 2>/dev/null || true; wait "$SUITE" 2>/dev/null || true; }
trap stop_suite EXIT
for port in 50051 50052 50053 50054; do
  for _ in $(seq 1 300); do
    "$AGENTIC" health --addr "http://127.0.0.1:$port" >/dev/null 2>&1 && break
    sleep 0.2
  done
  "$AGENTIC" health --addr "http://127.0.0.1:$port" >/dev/null || { cat "$WORK/suite.log" >&2; exit 1; }
done
WATCH=()
for service in user agent conversation rag; do
  pid="$(pgrep -f "target/release/agentic serve $service " | head -1)"
  WATCH+=(--watch "$service=$pid")
done

JWT_SECRET="$(cat .local/jwt_secret)"
export JWT_SECRET
failed=0
run_profile() { # name profile duration p95 errors [extra flags]
  local name=$1 profile=$2 duration=$3 p95=$4 errors=$5
  shift 5
  echo "[loadtest] $name: profile $profile for $duration" >&2
  "$AGENTIC" load --profile "$profile" --duration "$duration" \
    --threshold "p95<$p95" --threshold "errors<$errors" "$@" \
    --report "$DOCS/$name.json" --summary "$WORK/$name.md" --plot "$DOCS/$name.svg" \
    >/dev/null || failed=1
}
run_profile light light "$LIGHT" 200ms 0.1%
run_profile medium medium "$MEDIUM" 300ms 0.5%
run_profile heavy heavy "$HEAVY" 500ms 1%
# The soak: no errors at all, and each service's memory flat (last minute within 10 % of
# the second).
run_profile soak heavy "$SOAK" 500ms 1% "${WATCH[@]}" --threshold "errors<=0%" \
  --threshold "rate_limited<=0%" --threshold "memory_change<10%"

{
  cat <<EOF
# Load test report

\`make loadtest\` on $(date -u +%Y-%m-%d), $(nproc) cores, against \`make run\`'s suite (release
build, the four services, PostgreSQL and Redis on the same machine as the load tester).
The default scenario (\`crates/cli/scenarios/suite.toml\`): every virtual user a member with
its own token, 1–3 s of think time between steps, all four services, answers by the local
model included. What the figures mean, and the report's schema: [loadtest.md](loadtest.md).

Durations are shortened on this 2-core machine (the seeds run 2, 10 and 30 minutes):
light $LIGHT, medium $MEDIUM, heavy $HEAVY; the soak runs the heavy profile for $SOAK, right
after the heavy run, which warms the caches the soak then holds at (the RAG service's L1
cache fills to its budget, \`CACHE_L1_MAX_MB\`, in about seven minutes of heavy load).

The seeds' baselines:

| profile | users | p95 | errors |
|---|---:|---:|---:|
| light | 10 | < 200 ms | < 0.1 % |
| medium | 50 | < 300 ms | < 0.5 % |
| heavy | 200 | < 500 ms | < 1 % |

EOF
  for name in light medium heavy soak; do
    echo "## $name"
    echo
    cat "$WORK/$name.md"
    echo
    echo "![$name over time](loadtest/$name.svg)"
    echo
  done
} >"$ROOT/docs/loadtest-report.md"
echo "[loadtest] wrote docs/loadtest-report.md" >&2
exit "$failed"
