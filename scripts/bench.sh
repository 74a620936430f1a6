#!/usr/bin/env bash
# `make bench`: drives the user service (release build) over real gRPC with `agentic load`
# (a separate process) and writes bench/out/report.md. Not a test: it measures.
#
#   BENCH_DURATION=10s BENCH_CONCURRENCY=32 make bench
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck disable=SC1091
. .local/env

DURATION="${BENCH_DURATION:-10s}"
CONCURRENCY="${BENCH_CONCURRENCY:-32}"
OUT="$ROOT/bench/out"
PORT_CACHED=50061 ADMIN_CACHED=9161
PORT_UNCACHED=50062 ADMIN_UNCACHED=9162
export JWT_SECRET="${JWT_SECRET:-bench-secret-0123456789abcdef0123456789}"
mkdir -p "$OUT"
: >"$OUT/results.jsonl"

echo "[bench] building release binaries"
cargo build --release --quiet --bin agentic
BIN="$ROOT/target/release/agentic"

# A fresh database, so runs compare.
PSQL=("$PG_BIN/psql" -X -q -h 127.0.0.1 -p 55432 -U postgres)
"${PSQL[@]}" -c "DROP DATABASE IF EXISTS agentic_bench WITH (FORCE)"
"${PSQL[@]}" -c "CREATE DATABASE agentic_bench"
BENCH_URL="postgres://postgres@127.0.0.1:55432/agentic_bench"
"$BIN" migrate --database-url "$BENCH_URL" >/dev/null

pids=()
cleanup() { kill -TERM "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT

# Starts a service and sets SERVICE_PID (no subshell, so the pid stays ours to watch).
start_service() { # cache_enabled grpc_port admin_port
  DATABASE_URL="$BENCH_URL" CACHE_ENABLED="$1" GRPC_ADDR="127.0.0.1:$2" ADMIN_ADDR="127.0.0.1:$3" \
    CACHE_KEY_PREFIX="bench-$$" RUST_LOG=warn "$BIN" serve user >"$OUT/service-$2.log" 2>&1 &
  SERVICE_PID=$!
  pids+=("$SERVICE_PID")
  for _ in $(seq 1 100); do
    "$BIN" health --addr "http://127.0.0.1:$2" >/dev/null 2>&1 && break
    sleep 0.1
  done
  kill -0 "$SERVICE_PID" 2>/dev/null || { cat "$OUT/service-$2.log" >&2; exit 1; }
}

load() { # port scenario label
  echo "[bench] $3 ($DURATION, $CONCURRENCY concurrent)" >&2
  "$BIN" load --addr "http://127.0.0.1:$1" --scenario "$2" --duration "$DURATION" \
    --concurrency "$CONCURRENCY" | sed "s#^{#{\"label\":\"$3\",#" | tee -a "$OUT/results.jsonl"
}

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
hwm_kib() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }

start_service true "$PORT_CACHED" "$ADMIN_CACHED"
cached_pid=$SERVICE_PID
load "$PORT_CACHED" health "Health/Check"
load "$PORT_CACHED" get-user "GetUser (cached)"
load "$PORT_CACHED" list-users "ListUsers (20)"
load "$PORT_CACHED" create-user "CreateUser"
cached_rss="$(rss_kib "$cached_pid")"
cached_hwm="$(hwm_kib "$cached_pid")"

start_service false "$PORT_UNCACHED" "$ADMIN_UNCACHED"
uncached_pid=$SERVICE_PID
load "$PORT_UNCACHED" get-user "GetUser (cache off)"
uncached_rss="$(rss_kib "$uncached_pid")"

python3 - "$OUT/results.jsonl" "$OUT/report.md" "$cached_rss" "$cached_hwm" "$uncached_rss" "$DURATION" "$CONCURRENCY" <<'PY'
import json, sys, platform, os
results_path, report_path, rss, hwm, rss_off, duration, concurrency = sys.argv[1:8]
rows = [json.loads(line) for line in open(results_path) if line.strip()]
by_label = {r["label"]: r for r in rows}
health = by_label["Health/Check"]["rps"]
cached = by_label["GetUser (cached)"]["rps"]
lines = [
    "# User service benchmark",
    "",
    f"`make bench` on {os.cpu_count()} cores ({platform.machine()}), release build, "
    f"{duration} per scenario after a warm-up, {concurrency} requests in flight over 4 HTTP/2 "
    "connections. The load generator (`agentic load`) runs on the same machine as the service, "
    "PostgreSQL and Redis.",
    "",
    "| scenario | requests/s | p50 ms | p95 ms | p99 ms | errors |",
    "|---|---:|---:|---:|---:|---:|",
]
for r in rows:
    lines.append(f"| {r['label']} | {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | {r['p99_ms']:.2f} | {r['errors']} |")
ratio = cached / health if health else 0
lines += [
    "",
    f"Cached GetUser reaches **{ratio:.0%}** of Health/Check's throughput on the same server (target: at least 70%).",
    "",
    f"Resident memory of the cached service after its runs: {int(rss)/1024:.1f} MiB "
    f"(peak {int(hwm)/1024:.1f} MiB); the cache-off service: {int(rss_off)/1024:.1f} MiB.",
    "",
]
open(report_path, "w").write("\n".join(lines))
print("\n".join(lines))
PY
