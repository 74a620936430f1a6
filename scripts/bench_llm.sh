#!/usr/bin/env bash
# The answering part of `make bench` (run by scripts/bench.sh, or alone), written to
# bench/out/llm.md:
#   - the local model (release build, in-process) beside llama.cpp (PyPI llama-cpp-python,
#     installed into .local/venv on first use) on the same GGUF file: time to first token
#     and decode tokens/s, a short and a long prompt, interleaved runs, medians;
#   - the suite's overhead over an OpenAI-compatible provider that answers at once: time to
#     first token of Respond and of RunAgent alone, minus the provider's own, at 1, 64 and
#     512 concurrent streams (twenty messages of history, no retrieval);
#   - workflow runs of five steps over that provider at 1 and 64 concurrent runs: the
#     suite's overhead per step (run time minus five provider answers, over five);
#   - Health/Check of the agent service idle, and while the local model answers at full
#     capacity.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck disable=SC1091
. .local/env
OUT="$ROOT/bench/out"
mkdir -p "$OUT"
export JWT_SECRET="${JWT_SECRET:-bench-secret-0123456789abcdef0123456789}"
export SECRETS_KEY="${SECRETS_KEY:-bench-secrets-key-0123456789abcdef0123}"
RUNS="${BENCH_LLM_RUNS:-5}"
CALLS="${BENCH_LLM_CALLS:-1000}"
MODEL="$ROOT/.local/models/SmolLM2-135M-Instruct.Q4_1.gguf"

if ! .local/venv/bin/python -c 'import llama_cpp' 2>/dev/null; then
  echo "[bench-llm] installing llama-cpp-python (builds llama.cpp: several minutes, once)" >&2
  .local/venv/bin/pip install --quiet "llama-cpp-python==${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
fi
cargo build --release --quiet --bin agentic --bin agentic-llm-bench
BIN="$ROOT/target/release/agentic"
LLM="$ROOT/target/release/agentic-llm-bench"

LONG_PROMPT="Summarise this text. $(for _ in $(seq 1 40); do printf 'The quick brown fox jumps over the lazy dog. '; done)"
: >"$OUT/llm-engines.jsonl"
for round in 1 2; do
  for prompt in short long; do
    text="Write a long story about a dragon who learns to cook."
    [ "$prompt" = long ] && text="$LONG_PROMPT"
    echo "[bench-llm] round $round, $prompt prompt: agentic, then llama.cpp" >&2
    "$LLM" local --model "$MODEL" --runs "$RUNS" --prompt "$text" | sed "s#^{#{\"prompt\":\"$prompt\",#" >>"$OUT/llm-engines.jsonl"
    .local/venv/bin/python scripts/llama_cpp_bench.py --model "$MODEL" --runs "$RUNS" --prompt "$text" |
      sed "s#^{#{\"prompt\":\"$prompt\",#" >>"$OUT/llm-engines.jsonl"
  done
done

PSQL=("$PG_BIN/psql" -X -q -h 127.0.0.1 -p 55432 -U postgres)
"${PSQL[@]}" -c "DROP DATABASE IF EXISTS agentic_bench_llm WITH (FORCE)"
"${PSQL[@]}" -c "CREATE DATABASE agentic_bench_llm"
DB="postgres://postgres@127.0.0.1:55432/agentic_bench_llm"
"$BIN" migrate --database-url "$DB" >/dev/null

pids=()
cleanup() { kill -TERM "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT
"$LLM" fake-provider --addr 127.0.0.1:27080 >"$OUT/llm-provider.log" 2>&1 &
pids+=($!)
start() { # service grpc admin
  env DATABASE_URL="$DB" REDIS_URL="$REDIS_URL" CACHE_KEY_PREFIX="bench-llm-$$" \
    RUST_LOG="warn,agentic_agent::run::local=info" \
    RATE_LIMIT_ENABLED=false PRINCIPAL_CHECK=true \
    USER_SERVICE_URL=http://127.0.0.1:27081 AGENT_SERVICE_URL=http://127.0.0.1:27082 \
    RAG_SERVICE_URL=http://127.0.0.1:27084 CHAT_PROVIDERS="bench/=http://127.0.0.1:27080" \
    LOCAL_MODEL_PATH="$MODEL" GRPC_ADDR="127.0.0.1:$2" ADMIN_ADDR="127.0.0.1:$3" \
    "$BIN" serve "$1" >"$OUT/llm-$1.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do
    "$BIN" health --addr "http://127.0.0.1:$2" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  cat "$OUT/llm-$1.log" >&2
  exit 1
}
start user 27081 9181
start agent 27082 9182
start conversation 27083 9183
# The agent service loads the local model in the background at start (a second or two of
# both cores): measuring before it is done would time the loading.
for _ in $(seq 1 600); do
  grep -q "local chat model loaded" "$OUT/llm-agent.log" && break
  sleep 0.1
done
URLS=(--user-url http://127.0.0.1:27081 --agent-url http://127.0.0.1:27082)
echo "[bench-llm] overhead over an instant provider ($CALLS answers per target and concurrency)" >&2
"$LLM" overhead "${URLS[@]}" --conversation-url http://127.0.0.1:27083 \
  --provider-url http://127.0.0.1:27080 --calls "$CALLS" >"$OUT/llm-overhead.jsonl"
echo "[bench-llm] workflow runs of five steps over the instant provider" >&2
"$LLM" workflow "${URLS[@]}" --provider-url http://127.0.0.1:27080 \
  --runs "${BENCH_WORKFLOW_RUNS:-300}" >"$OUT/llm-workflow.jsonl"
echo "[bench-llm] Health/Check idle, then while the local model answers" >&2
"$LLM" health-under-load "${URLS[@]}" --duration "${BENCH_DURATION:-10s}" >"$OUT/llm-health.jsonl"

python3 - "$OUT" <<'PY'
import json, statistics, sys
out = sys.argv[1]
engines = [json.loads(l) for l in open(f"{out}/llm-engines.jsonl") if l.strip()]
def med(engine, prompt, key):
    return statistics.median(r[key] for r in engines if r["engine"] == engine and r["prompt"] == prompt)
lines = ["# Answering: the local model, the suite's overhead, health under load", "",
         "SmolLM2-135M-Instruct (Q4_1 GGUF, the same file) at temperature 0, 128 tokens, both "
         "engines on every core, interleaved runs, medians:", "",
         "| prompt | engine | prompt tokens | time to first token ms | decode tokens/s |",
         "|---|---|---:|---:|---:|"]
for prompt in ("short", "long"):
    for engine in ("agentic", "llama.cpp"):
        tokens = next(r["prompt_tokens"] for r in engines if r["engine"] == engine and r["prompt"] == prompt)
        lines.append(f"| {prompt} | {engine} | {tokens} | {med(engine, prompt, 'ttft_ms'):.1f} | "
                     f"{med(engine, prompt, 'decode_tokens_per_s'):.1f} |")
lines += ["", "| ratio | measured | goal |", "|---|---:|---:|"]
for prompt in ("short", "long"):
    speed = med("agentic", prompt, "decode_tokens_per_s") / med("llama.cpp", prompt, "decode_tokens_per_s")
    first = med("agentic", prompt, "ttft_ms") / med("llama.cpp", prompt, "ttft_ms")
    lines.append(f"| decode tokens/s, agentic / llama.cpp, {prompt} prompt | {speed:.2f} | >= 0.80 "
                 f"({'met' if speed >= 0.8 else '**not met**'}) |")
    lines.append(f"| time to first token, agentic / llama.cpp, {prompt} prompt | {first:.2f} | <= 1.25 "
                 f"({'met' if first <= 1.25 else '**not met**'}) |")
over = [json.loads(l) for l in open(f"{out}/llm-overhead.jsonl") if l.strip()]
lines += ["", "Time to first token over an OpenAI-compatible provider that answers at once (twenty "
          "messages of history, no retrieval); overhead is the target's percentile minus the "
          "provider's own, called directly at the same concurrency:", "",
          "| target | streams | calls | p50 ms | p99 ms | overhead p50 ms | overhead p99 ms |",
          "|---|---:|---:|---:|---:|---:|---:|"]
for r in over:
    lines.append(f"| {r['target']} | {r['concurrency']} | {r['calls']} | {r['ttft_p50_ms']:.2f} | "
                 f"{r['ttft_p99_ms']:.2f} | {r.get('overhead_p50_ms', 0):.2f} | {r.get('overhead_p99_ms', 0):.2f} |")
one = {r["target"]: r for r in over if r["concurrency"] == 1}
lines += ["", "| goal (one stream) | measured | goal |", "|---|---:|---:|",
          f"| RunAgent overhead p99 | {one['run_agent']['overhead_p99_ms']:.2f} ms | <= 1 ms "
          f"({'met' if one['run_agent']['overhead_p99_ms'] <= 1 else '**not met**'}) |",
          f"| Respond overhead p50 (two stored messages) | {one['respond']['overhead_p50_ms']:.2f} ms | <= 3 ms "
          f"({'met' if one['respond']['overhead_p50_ms'] <= 3 else '**not met**'}) |"]
flows = [json.loads(l) for l in open(f"{out}/llm-workflow.jsonl") if l.strip()]
lines += ["", "Workflow runs of five steps over the instant provider (ExecuteWorkflow to run_finished; "
          "every step's start and end stored); overhead per step is (run time minus five provider "
          "answers in a row, at the same concurrency) over five, per percentile:", "",
          "| concurrent runs | runs | run p50 ms | run p99 ms | provider x5 p50 ms | overhead/step p50 ms | overhead/step p99 ms |",
          "|---:|---:|---:|---:|---:|---:|---:|"]
for r in flows:
    lines.append(f"| {r['concurrency']} | {r['runs']} | {r['run_p50_ms']:.2f} | {r['run_p99_ms']:.2f} | "
                 f"{r['provider_p50_ms']:.2f} | {r['overhead_per_step_p50_ms']:.2f} | {r['overhead_per_step_p99_ms']:.2f} |")
health = {r["target"]: r for r in (json.loads(l) for l in open(f"{out}/llm-health.jsonl") if l.strip())}
idle, busy = health["health_idle"], health["health_while_generating"]
ratio = health["generation_during_health"]["p99_ratio"]
lines += ["", "Agent service Health/Check, one at a time, idle and while the local model answers "
          "at full capacity (LOCAL_MODEL_CONCURRENCY 1, four callers):", "",
          "| phase | p50 ms | p99 ms |", "|---|---:|---:|",
          f"| idle | {idle['ttft_p50_ms']:.3f} | {idle['ttft_p99_ms']:.3f} |",
          f"| generating ({health['generation_during_health']['pieces_per_s']:.0f} pieces/s) | "
          f"{busy['ttft_p50_ms']:.3f} | {busy['ttft_p99_ms']:.3f} |",
          "", f"p99 while generating / idle: {ratio:.2f} (goal <= 2: {'met' if ratio <= 2 else '**not met**'})", ""]
open(f"{out}/llm.md", "w").write("\n".join(lines))
print("\n".join(lines))
PY
