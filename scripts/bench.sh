#!/usr/bin/env bash
# `make bench`: the user, agent and conversation services beside bare baselines, in one run.
#
# Targets (all release builds, loopback, RUST_LOG=warn):
#   echo      agentic-baseline echo: tonic answering Health/Check with a constant; and the
#             same over the platform's write-coalescing connections (for information: the
#             services' layers weighed apart from the writes that coalescing saves)
#   by-key    agentic-baseline by-key: tonic + tokio-postgres, GetUser by primary key, one
#             request per connection at a time over as many connections as the service's
#             pool may open (the goal's baseline); and pipelined over 8 (for information)
#   cached    the user service (L1 + Redis)
#   uncached  the user service with CACHE_ENABLED=false
#   agent     the agent service (L1 + Redis): cached GetAgent, BatchGetAgents (100),
#             ListAgents (20), beside its own Health/Check
#   conversation  the conversation service (calling the user and agent services above):
#             GetConversation, ListMessages (50), beside its own Health/Check; and
#             AppendMessages (10 messages, new ids each call) by `agentic load`
#   replicas  the user and agent services reading from a streaming replica of the bench
#             database (`scripts/infra.sh replica recreate`): ListUsers and ListAgents beside
#             the same services without one, with each database's queries per call
#   rag       the RAG service, driven by `agentic-rag-bench`: Search (top 10, dense and
#             hybrid) over BENCH_RAG_CHUNKS (100,000) chunks, uncached and cached, beside
#             the same search as raw SQL through the platform's pool; and ingestion
#             throughput (chunks/s) with the local model
#
# Throughput comes from h2load (16 connections x 32 streams, BENCH_DURATION each), in
# BENCH_ROUNDS interleaved rounds; the report gives medians and the ratios the services
# are held to. h2load does not read gRPC trailers, so every target is first driven for a
# second by `agentic load`, which checks each response's status. ListUsers and CreateUser
# (a different request each call) are measured by `agentic load` alone.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck disable=SC1091
. .local/env

DURATION="${BENCH_DURATION:-10s}"
ROUNDS="${BENCH_ROUNDS:-3}"
CONCURRENCY="${BENCH_CONCURRENCY:-32}"
OUT="$ROOT/bench/out"
export JWT_SECRET="${JWT_SECRET:-bench-secret-0123456789abcdef0123456789}"
export SECRETS_KEY="${SECRETS_KEY:-bench-secrets-key-0123456789abcdef0123}"
mkdir -p "$OUT"
: >"$OUT/results.jsonl"
: >"$OUT/status-checks.jsonl"

if ! command -v h2load >/dev/null 2>&1; then
  echo "[bench] installing h2load (Debian nghttp2-client)"
  apt-get install -y -qq nghttp2-client >/dev/null
fi

echo "[bench] building release binaries"
cargo build --release --quiet --bin agentic --bin agentic-baseline --bin agentic-rag-bench --bin agentic-write-bench
BIN="$ROOT/target/release/agentic"
BASELINE="$ROOT/target/release/agentic-baseline"
# The service's pool defaults (DB_POOL_SIZE + DB_MAX_OVERFLOW), read from its --help.
DEFAULT_POOL_SIZE=$("$BIN" serve user --help | awk '/--db-pool-size/ {f=1} f && /default:/ {gsub(/[^0-9]/, ""); print; exit}')
DEFAULT_MAX_OVERFLOW=$("$BIN" serve user --help | awk '/--db-max-overflow/ {f=1} f && /default:/ {gsub(/[^0-9]/, ""); print; exit}')

# A streaming replica left by an earlier run replays every write of this one on the same
# cores: only the read-replica stage runs beside one.
scripts/infra.sh replica down >/dev/null 2>&1 || true
PSQL=("$PG_BIN/psql" -X -q -h 127.0.0.1 -p 55432 -U postgres)
"${PSQL[@]}" -c "DROP DATABASE IF EXISTS agentic_bench WITH (FORCE)"
"${PSQL[@]}" -c "CREATE DATABASE agentic_bench"
BENCH_URL="postgres://postgres@127.0.0.1:55432/agentic_bench"
"$BIN" migrate --database-url "$BENCH_URL" >/dev/null

pids=()
cleanup() { kill -TERM "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT

wait_healthy() { # port log
  for _ in $(seq 1 100); do
    "$BIN" health --addr "http://127.0.0.1:$1" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  cat "$2" >&2
  exit 1
}

# Rate limits are off unless a service's extra settings turn them on: h2load's single
# token would spend any default budget in a moment.
start_service() { # name cache_enabled grpc_port admin_port [service] [principal_check] [extra env]
  # shellcheck disable=SC2086 # the extra settings are NAME=value words
  env USER_SERVICE_URL=http://127.0.0.1:27061 AGENT_SERVICE_URL=http://127.0.0.1:27063 \
    PRINCIPAL_CHECK="${6:-true}" RATE_LIMIT_ENABLED=false \
    DATABASE_URL="$BENCH_URL" CACHE_ENABLED="$2" GRPC_ADDR="127.0.0.1:$3" ADMIN_ADDR="127.0.0.1:$4" \
    CACHE_KEY_PREFIX="bench-$$" RUST_LOG=warn ${7:-} "$BIN" serve "${5:-user}" >"$OUT/$1.log" 2>&1 &
  pids+=($!)
  eval "PID_$1=$!"
  wait_healthy "$3" "$OUT/$1.log"
}

start_service cached true 27061 9161
start_service uncached false 27062 9162
# The same build with the principal check off: what the check costs cached GetUser.
start_service unchecked true 27066 9166 user false
# The same build with rate limits on and a budget never reached: what limiting costs.
start_service limited true 27067 9167 user true \
  "RATE_LIMIT_ENABLED=true RATE_LIMIT_PER_MINUTE=1000000000000 RATE_LIMIT_PER_HOUR=1000000000000"
# The same, with the limit state sent only on rejections: what the fields cost.
start_service limited_quiet true 27069 9169 user true \
  "RATE_LIMIT_ENABLED=true RATE_LIMIT_PER_MINUTE=1000000000000 RATE_LIMIT_PER_HOUR=1000000000000 RATE_LIMIT_HEADERS=false"
# A per-user limit of 1000 a second, which one client holds at 90% (900 calls a second).
cat >"$OUT/near-limit-rules.toml" <<'TOML'
[[rules]]
name = "per-user"
key = "user"
windows = [{ limit = 1000, per = "second" }]
TOML
start_service near_limit true 27068 9168 user true \
  "RATE_LIMIT_ENABLED=true RATE_LIMIT_RULES=$OUT/near-limit-rules.toml"
start_service agent true 27063 9163 agent
start_service conversation true 27064 9164 conversation
# agentic-rag-bench acts in a tenant of its own making, which the user service never
# saw: the RAG service runs without the principal check here.
start_service rag true 27065 9165 rag false
"$BASELINE" --addr 127.0.0.1:27070 echo >"$OUT/echo.log" 2>&1 &
pids+=($!)
"$BASELINE" --addr 127.0.0.1:27073 echo --coalesced-writes >"$OUT/echo-coalesced.log" 2>&1 &
pids+=($!)
POOL_MAX=$(( ${DB_POOL_SIZE:-$DEFAULT_POOL_SIZE} + ${DB_MAX_OVERFLOW:-$DEFAULT_MAX_OVERFLOW} ))
DATABASE_URL="$BENCH_URL" "$BASELINE" --addr 127.0.0.1:27071 by-key --connections "$POOL_MAX" >"$OUT/by-key.log" 2>&1 &
pids+=($!)
DATABASE_URL="$BENCH_URL" "$BASELINE" --addr 127.0.0.1:27072 by-key --connections 8 --pipelined >"$OUT/by-key-pipelined.log" 2>&1 &
pids+=($!)
DATABASE_URL="$BENCH_URL" "$BASELINE" --addr 127.0.0.1:27074 search >"$OUT/search.log" 2>&1 &
pids+=($!)
sleep 1

# label port rpc: the h2load request file and headers of one target.
TARGETS=(
  "bare echo, Health/Check|27070|health"
  "bare echo with coalesced writes, Health/Check|27073|health"
  "service, Health/Check|27061|health"
  "service, GetUser (cached)|27061|get-user"
  "service, GetUser (cached), principal check off|27066|get-user"
  "service, GetUser (cached), rate limits on|27067|get-user"
  "service, GetUser (cached), rate limits on, state only on rejections|27069|get-user"
  "bare tokio-postgres, GetUser by key|27071|get-user"
  "service, GetUser (cache off)|27062|get-user"
  "bare tokio-postgres pipelined, GetUser by key|27072|get-user"
  "agent service, Health/Check|27063|health"
  "agent service, GetAgent (cached)|27063|get-agent"
  "agent service, BatchGetAgents (100)|27063|batch-get-agents"
  "agent service, ListAgents (20)|27063|list-agents"
  "conversation service, Health/Check|27064|health"
  "conversation service, GetConversation|27064|get-conversation"
  "conversation service, ListMessages (50)|27064|list-messages"
)

agentic_load() { # port rpc duration label
  "$BIN" load --addr "http://127.0.0.1:$1" --fixture-addr http://127.0.0.1:27061 --agent-addr http://127.0.0.1:27063 \
    --rpc "$2" --duration "$3" --concurrency "$CONCURRENCY" |
    sed "s#^{#{\"label\":\"$4\",#"
}

for i in "${!TARGETS[@]}"; do
  IFS='|' read -r label port rpc <<<"${TARGETS[$i]}"
  echo "[bench] checking every status: $label" >&2
  agentic_load "$port" "$rpc" 1s "$label" >>"$OUT/status-checks.jsonl"
  "$BIN" load --addr "http://127.0.0.1:$port" --fixture-addr http://127.0.0.1:27061 --agent-addr http://127.0.0.1:27063 \
    --rpc "$rpc" --h2load-request "$OUT/request-$i.bin" >"$OUT/request-$i.txt"
done

for round in $(seq 1 "$ROUNDS"); do
  for i in "${!TARGETS[@]}"; do
    IFS='|' read -r label port _ <<<"${TARGETS[$i]}"
    method="$(sed -n 1p "$OUT/request-$i.txt")"
    auth="$(sed -n 2p "$OUT/request-$i.txt")"
    echo "[bench] round $round: $label ($DURATION)" >&2
    h2load -c 16 -m 32 -t 1 -D "${DURATION%s}" --warm-up-time 1 \
      -H "content-type: application/grpc" -H "te: trailers" -H "$auth" \
      -d "$OUT/request-$i.bin" "http://127.0.0.1:$port$method" >"$OUT/h2load-$i-$round.txt"
    python3 - "$OUT/h2load-$i-$round.txt" "$label" "$round" >>"$OUT/results.jsonl" <<'PY'
import json, re, sys
text = open(sys.argv[1]).read()
rps = float(re.search(r"finished in [\d.]+s, ([\d.]+) req/s", text).group(1))
done = re.search(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored", text)
print(json.dumps({"label": sys.argv[2], "round": int(sys.argv[3]), "rps": rps,
                  "failed": int(done.group(4)) + int(done.group(5))}))
PY
  done
done

# One client at 900 calls a second: a key held at 90% of its 1000/s limit, against the
# same rate with limits off. h2load reads no gRPC status, so rejections are read from the
# limited service's metrics.
GET_USER=""
for i in "${!TARGETS[@]}"; do
  if [[ -z "$GET_USER" && "${TARGETS[$i]}" == *"|27061|get-user" ]]; then GET_USER=$i; fi
done
for target in "near-limit|27068" "limits-off|27061"; do
  IFS='|' read -r name port <<<"$target"
  echo "[bench] GetUser at 900/s, $name ($DURATION)" >&2
  h2load -c 1 -m 1 -t 1 --rps 900 -D "${DURATION%s}" --warm-up-time 1 \
    -H "content-type: application/grpc" -H "te: trailers" -H "$(sed -n 2p "$OUT/request-$GET_USER.txt")" \
    -d "$OUT/request-$GET_USER.bin" "http://127.0.0.1:$port$(sed -n 1p "$OUT/request-$GET_USER.txt")" \
    >"$OUT/h2load-paced-$name.txt"
done

echo "[bench] ListUsers, CreateUser and AppendMessages ($DURATION each)" >&2
agentic_load 27061 list-users "$DURATION" "ListUsers (20)" >"$OUT/latency.jsonl"
agentic_load 27061 create-user "$DURATION" "CreateUser" >>"$OUT/latency.jsonl"
# The bare transaction before and after the service, so neither side alone meets what
# the earlier stages leave behind (the disk still writing their pages back, for one); in
# BENCH_ROUNDS rounds, as one 6-s sample of each side moves by a tenth between runs.
bare_append() { # round when
  "$ROOT/target/release/agentic-write-bench" --duration "$DURATION" append --database-url "$BENCH_URL" \
    --concurrency "$CONCURRENCY" --connections "$POOL_MAX" |
    sed "s/(10 messages)\"/(10 messages), $2 the service\",\"round\":$1/" >>"$OUT/latency.jsonl"
}
for round in $(seq 1 "$ROUNDS"); do
  echo "[bench] round $round: AppendMessages beside the bare transaction ($DURATION each)" >&2
  bare_append "$round" before
  agentic_load 27064 append-messages "$DURATION" "AppendMessages (10, over 16 conversations)" |
    sed "s#^{#{\"round\":$round,#" >>"$OUT/latency.jsonl"
  bare_append "$round" after
done
agentic_load 27061 create-user-with-password "$DURATION" "CreateUser with a password" >>"$OUT/latency.jsonl"
"$ROOT/target/release/agentic-write-bench" --duration "$DURATION" argon2 >>"$OUT/latency.jsonl"

# Read replicas: ListUsers and ListAgents on services reading from a streaming replica of
# the bench database, beside the services above (no replica), with each database's
# queries counted from the services' own metrics.
echo "[bench] read replicas: ListUsers and ListAgents with a streaming replica ($DURATION each)" >&2
scripts/infra.sh replica recreate >/dev/null 2>&1
REPLICA_URL="postgres://postgres@127.0.0.1:${AGENTIC_REPLICA_PORT:-55433}/agentic_bench"
start_service user_replica true 27075 9175 user true "DATABASE_REPLICA_URL=$REPLICA_URL"
start_service agent_replica true 27076 9176 agent true "DATABASE_REPLICA_URL=$REPLICA_URL"
metric_sum() { # admin_port name label_filter...
  python3 - "$@" <<'PY'
import sys, urllib.request
port, name, filters = sys.argv[1], sys.argv[2], sys.argv[3:]
page = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
print(sum(float(l.rsplit(" ", 1)[1]) for l in page.splitlines()
          if l.startswith(name + "{") and all(f in l for f in filters)))
PY
}
: >"$OUT/replicas.jsonl"
for target in "ListUsers|list-users|user|27061|9161|without a replica" \
              "ListUsers|list-users|user|27075|9175|with a replica" \
              "ListAgents|list-agents|agent|27063|9163|without a replica" \
              "ListAgents|list-agents|agent|27076|9176|with a replica"; do
  IFS='|' read -r method rpc pool port admin label <<<"$target"
  count() {
    echo "$(metric_sum "$admin" db_queries_total "pool=\"$pool\"") $(metric_sum "$admin" db_queries_total "pool=\"$pool-replica-1\"") $(metric_sum "$admin" grpc_server_handled_total "grpc_method=\"$method\"")"
  }
  read -r primary0 replica0 calls0 <<<"$(count)"
  result="$(agentic_load "$port" "$rpc" "$DURATION" "$method ($label)")"
  read -r primary1 replica1 calls1 <<<"$(count)"
  python3 -c 'import json, sys
r = json.loads(sys.argv[1]); p0, r0, c0, p1, r1, c1 = map(float, sys.argv[2:8])
calls = max(c1 - c0, 1)
r.update(method=sys.argv[8], primary_per_call=(p1 - p0) / calls, replica_per_call=(r1 - r0) / calls)
print(json.dumps(r))' "$result" "$primary0" "$replica0" "$calls0" "$primary1" "$replica1" "$calls1" "$method" >>"$OUT/replicas.jsonl"
done
kill -TERM "$PID_user_replica" "$PID_agent_replica" 2>/dev/null || true
scripts/infra.sh replica down >/dev/null 2>&1 || true

echo "[bench] RAG: fixture, ingestion and Search rounds" >&2
"$ROOT/target/release/agentic-rag-bench" --database-url "$BENCH_URL" \
  --service http://127.0.0.1:27065 --baseline http://127.0.0.1:27074 \
  --chunks "${BENCH_RAG_CHUNKS:-100000}" --duration "$DURATION" --rounds "$ROUNDS" >"$OUT/rag.jsonl"

rss_mib() { awk '/^VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
python3 - "$OUT" "$(rss_mib "$PID_cached")" "$(rss_mib "$PID_uncached")" "$DURATION" "$ROUNDS" "$(rss_mib "$PID_agent")" "$(rss_mib "$PID_rag")" "${BENCH_RAG_CHUNKS:-100000}" <<'PY'
import json, os, platform, statistics, sys
out, rss_cached, rss_uncached, duration, rounds, rss_agent, rss_rag, rag_chunks = sys.argv[1:9]
rows = [json.loads(l) for l in open(f"{out}/results.jsonl") if l.strip()]
checks = [json.loads(l) for l in open(f"{out}/status-checks.jsonl") if l.strip()]
latency = [json.loads(l) for l in open(f"{out}/latency.jsonl") if l.strip()]
labels = list(dict.fromkeys(r["label"] for r in rows))
median = {l: statistics.median(r["rps"] for r in rows if r["label"] == l) for l in labels}
errors = {c["label"]: c["errors"] for c in checks}
echo = median["bare echo, Health/Check"]
by_key = median["bare tokio-postgres, GetUser by key"]
def ratio(label, base): return median[label] / base
goals = [
    ("service Health/Check / bare echo", ratio("service, Health/Check", echo), 0.95),
    ("service cached GetUser / bare echo", ratio("service, GetUser (cached)", echo), 0.75),
    ("service GetUser, cache off / bare tokio-postgres", ratio("service, GetUser (cache off)", by_key), 0.90),
    ("service cached GetUser / the same with the principal check off",
     ratio("service, GetUser (cached)", median["service, GetUser (cached), principal check off"]), 0.90),
    ("service cached GetUser, rate limits on / the same with limits off",
     ratio("service, GetUser (cached), rate limits on", median["service, GetUser (cached)"]), 0.90),
    ("the same, limit state only on rejections (RATE_LIMIT_HEADERS=false) / limits off",
     ratio("service, GetUser (cached), rate limits on, state only on rejections", median["service, GetUser (cached)"]), 0.90),
    ("service cached GetUser / service Health/Check",
     median["service, GetUser (cached)"] / median["service, Health/Check"], 0.70),
    ("agent cached GetAgent / agent Health/Check",
     median["agent service, GetAgent (cached)"] / median["agent service, Health/Check"], 0.70),
    ("conversation GetConversation / conversation Health/Check",
     median["conversation service, GetConversation"] / median["conversation service, Health/Check"], 0.70),
]
lines = [
    "# Benchmark: the services beside bare baselines",
    "",
    f"`make bench` on {os.cpu_count()} cores ({platform.machine()}), release builds, one run. "
    f"h2load (16 connections x 32 streams, {duration} per measurement, {rounds} interleaved "
    "rounds, medians) shares the cores with the servers, PostgreSQL and Redis. Before the "
    "rounds, `agentic load` drove each target for a second and checked every response's gRPC "
    "status (errors column).",
    "",
    "| target | requests/s (median) | rounds | status errors |",
    "|---|---:|---|---:|",
]
for l in labels:
    each = ", ".join(f"{r['rps']:.0f}" for r in rows if r["label"] == l)
    lines.append(f"| {l} | {median[l]:.0f} | {each} | {errors.get(l, '?')} |")
lines += ["", "| ratio | measured | goal |", "|---|---:|---:|"]
for name, value, goal in goals:
    mark = "met" if value >= goal else "**not met**"
    lines.append(f"| {name} | {value:.3f} | >= {goal:.2f} ({mark}) |")
# For information: the service pipelines point reads too, so the fair floor is also shown.
pipelined = median["bare tokio-postgres pipelined, GetUser by key"]
lines.append(f"| service GetUser, cache off / bare tokio-postgres pipelined | "
             f"{median['service, GetUser (cache off)'] / pipelined:.2f} | (information) |")
# For information: the services coalesce their writes, which bare tonic does not; against
# an echo that does too, what is left is the cost of the layers and the handler.
coalesced = median["bare echo with coalesced writes, Health/Check"]
for label in ("service, Health/Check", "service, GetUser (cached)"):
    lines.append(f"| {label} / bare echo with coalesced writes | "
                 f"{median[label] / coalesced:.2f} | (information) |")
# A key held at 90% of its limit (one client pacing 900 GetUser a second against a
# 1000/s per-user limit), beside the same pace with limits off.
import re, urllib.request
def paced(name):
    text = open(f"{out}/h2load-paced-{name}.txt").read()
    rps = float(re.search(r"finished in [\d.]+s, ([\d.]+) req/s", text).group(1))
    t = re.search(r"time for request:\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)", text)
    return rps, t.group(1), t.group(3), t.group(2)
page = urllib.request.urlopen("http://127.0.0.1:9168/metrics").read().decode()
def decisions(result):
    return sum(float(l.rsplit(" ", 1)[1]) for l in page.splitlines()
               if l.startswith("ratelimit_decisions_total") and f'result="{result}"' in l)
lines += ["", "GetUser (cached) paced at 900 calls a second by one client (h2load `--rps 900`, one stream): "
          "a key held at 90% of a 1000/second per-user limit, beside the same pace with limits off:", "",
          "| target | requests/s | min | mean | max |", "|---|---:|---:|---:|---:|"]
for name, label in (("near-limit", "limits on, key at 90%"), ("limits-off", "limits off")):
    rps, low, mean, high = paced(name)
    lines.append(f"| {label} | {rps:.0f} | {low} | {mean} | {high} |")
lines.append(f"\nThe limited service's decisions: {decisions('allowed'):.0f} allowed, "
             f"{decisions('rejected'):.0f} rejected.")
lines += ["", "Latency under load (`agentic load`, 32 in flight over 4 connections):", "",
          "| scenario | requests/s | p50 ms | p95 ms | p99 ms | errors |", "|---|---:|---:|---:|---:|---:|"]
for r in latency:
    label = r["label"] + (f", round {r['round']}" if "round" in r else "")
    lines.append(f"| {label} | {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | {r['p99_ms']:.2f} | {r['errors']} |")
by_label = {r["label"]: r for r in latency}
def find(prefix):
    return next(r for label, r in by_label.items() if label.startswith(prefix))
# Each round: the service beside the mean of the bare transaction before and after it.
append_ratios = []
for n in sorted({r["round"] for r in latency if "round" in r}):
    bare = [r["rps"] for r in latency if r.get("round") == n and r["label"].startswith("bare tokio-postgres")]
    service = next(r["rps"] for r in latency if r.get("round") == n and r["label"].startswith("AppendMessages"))
    append_ratios.append(service / (sum(bare) / len(bare)))
append_ratio = statistics.median(append_ratios)
append_rounds = ", ".join(f"{x:.2f}" for x in append_ratios)
hash_share = find("CreateUser with a password")["rps"] / find("argon2id hash alone")["rps"]
lines += ["", "Write paths beside their bare baselines (same run):", "",
          "| ratio | measured | goal |", "|---|---:|---:|",
          f"| AppendMessages (10) / bare tokio-postgres transaction (mean of before and after; median of rounds {append_rounds}) | {append_ratio:.3f} | >= 0.80 ({'met' if append_ratio >= 0.8 else '**not met**'}) |",
          f"| CreateUser with a password / argon2id hashes alone | {hash_share:.2f} | (information: the rest is the hash) |"]
replicas = [json.loads(l) for l in open(f"{out}/replicas.jsonl") if l.strip()]
lines += ["", "Read replicas (`agentic load`, 32 in flight; the same build with and without "
          "DATABASE_REPLICA_URL naming a streaming replica of the bench database on the same "
          "machine; queries per call counted from each service's `db_queries_total`):", "",
          "| scenario | requests/s | p50 ms | p95 ms | primary queries per call | replica queries per call | errors |",
          "|---|---:|---:|---:|---:|---:|---:|"]
for r in replicas:
    lines.append(f"| {r['label']} | {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | "
                 f"{r['primary_per_call']:.3f} | {r['replica_per_call']:.3f} | {r['errors']} |")
rag = [json.loads(l) for l in open(f"{out}/rag.jsonl") if l.strip()]
rag_labels = list(dict.fromkeys(r["label"] for r in rag))
rag_median = {l: statistics.median(r["value"] for r in rag if r["label"] == l) for l in rag_labels}
lines += ["", f"RAG service over {int(rag_chunks):,} chunks of 256 dimensions (`agentic-rag-bench`: "
          f"16 searches in flight, {duration} per measurement, {rounds} interleaved rounds, medians; "
          "raw SQL is the service's own search statement run through the platform's pool in the "
          "load generator's process, given the query's vector):", "",
          "| target | median | rounds | errors |", "|---|---:|---|---:|"]
for l in rag_labels:
    each = [r for r in rag if r["label"] == l]
    unit = each[0]["unit"]
    values = ", ".join(f"{r['value']:.0f}" for r in each)
    lines.append(f"| {l} | {rag_median[l]:.0f} {unit} | {values} | {sum(r['errors'] for r in each)} |")
lines += ["", "| ratio | measured | goal |", "|---|---:|---:|"]
value = rag_median["service, uncached Search by vector, dense"] / rag_median["bare tonic server, Search by vector, dense"]
mark = "met" if value >= 0.9 else "**not met**"
lines.append(f"| uncached dense Search by vector / bare tonic server, same statement | {value:.3f} | >= 0.90 ({mark}) |")
value = rag_median["IngestDocuments with wait, local model"] / rag_median["raw multi-row INSERT of the same chunks"]
mark = "met" if value >= 0.8 else "**not met**"
lines.append(f"| IngestDocuments / raw multi-row INSERT of the same chunks | {value:.3f} | >= 0.80 ({mark}) |")
for mode in ("dense", "hybrid"):
    value = rag_median[f"service, uncached Search, {mode}"] / rag_median[f"raw SQL through the pool, {mode}"]
    lines.append(f"| uncached Search / raw SQL in the load generator, {mode} | {value:.2f} | (information) |")
lines += ["", f"Resident memory after the run: cached user service {rss_cached} MiB, cache-off user service {rss_uncached} MiB, agent service {rss_agent} MiB, RAG service {rss_rag} MiB.", ""]
open(f"{out}/report.md", "w").write("\n".join(lines))
print("\n".join(lines))
PY

# Answering (the local model beside llama.cpp, the suite's overhead, health under load).
cleanup
pids=()
scripts/bench_llm.sh
cat "$OUT/llm.md" >>"$OUT/report.md"
