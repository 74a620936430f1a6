#!/usr/bin/env bash
# `make run`: migrations, then the services in the foreground with their logs, until
# Ctrl-C. PostgreSQL and Redis keep running (`make stop` stops them).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck disable=SC1091
. .local/env

# A development secret, made once and kept (readable by this user only), so tokens
# survive restarts. The banner says where it is, never what it is.
SECRET_HINT="your JWT_SECRET"
if [ -z "${JWT_SECRET:-}" ]; then
  (umask 077 && [ -s .local/jwt_secret ] || head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >.local/jwt_secret)
  JWT_SECRET="$(cat .local/jwt_secret)"
  SECRET_HINT="\$(cat $ROOT/.local/jwt_secret)"
fi
export JWT_SECRET
# The key that seals stored secrets (MCP server headers), made and kept the same way.
if [ -z "${SECRETS_KEY:-}" ]; then
  (umask 077 && [ -s .local/secrets_key ] || head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >.local/secrets_key)
  SECRETS_KEY="$(cat .local/secrets_key)"
fi
export SECRETS_KEY
export RUST_LOG="${RUST_LOG:-info}"

# AGENTIC_BUILD=release runs the optimised build (what `make loadtest` measures).
if [ "${AGENTIC_BUILD:-debug}" = release ]; then
  cargo build --quiet --release --bin agentic
  AGENTIC="$ROOT/target/release/agentic"
else
  cargo build --quiet --bin agentic
  AGENTIC="$ROOT/target/debug/agentic"
fi
"$AGENTIC" migrate

pids=()
stop() {
  trap - INT TERM
  echo
  echo "stopping services (PostgreSQL and Redis keep running: make stop)"
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  exit 0
}
trap stop INT TERM

# Loopback only: a development secret must not guard a port others can reach.
"$AGENTIC" serve user --grpc-addr 127.0.0.1:50051 --admin-addr 127.0.0.1:9151 &
pids+=($!)
"$AGENTIC" serve agent --grpc-addr 127.0.0.1:50052 --admin-addr 127.0.0.1:9152 &
pids+=($!)
"$AGENTIC" serve conversation --grpc-addr 127.0.0.1:50053 --admin-addr 127.0.0.1:9153 &
pids+=($!)
"$AGENTIC" serve rag --grpc-addr 127.0.0.1:50054 --admin-addr 127.0.0.1:9154 &
pids+=($!)

for port in 50051 50052 50053 50054; do
  for _ in $(seq 1 100); do
    "$ROOT/.local/bin/grpcurl" -plaintext "127.0.0.1:$port" grpc.health.v1.Health/Check >/dev/null 2>&1 && break
    sleep 0.2
  done
done

cat <<INFO

  Agentic Platform is running.

  user service   grpc 127.0.0.1:50051   admin http://127.0.0.1:9151/metrics
  agent service  grpc 127.0.0.1:50052   admin http://127.0.0.1:9152/metrics
  conversation   grpc 127.0.0.1:50053   admin http://127.0.0.1:9153/metrics
  rag            grpc 127.0.0.1:50054   admin http://127.0.0.1:9154/metrics
  PostgreSQL     ${DATABASE_URL}
  Redis          ${REDIS_URL:-none (in-process cache only)}

  Try it (in another terminal):
    export JWT_SECRET=${SECRET_HINT}
    alias grpcurl=$ROOT/.local/bin/grpcurl
    grpcurl -plaintext 127.0.0.1:50051 list
    TOKEN=\$($AGENTIC token --platform)
    grpcurl -plaintext -H "authorization: Bearer \$TOKEN" \\
      -d '{"name": "Acme", "slug": "acme"}' 127.0.0.1:50051 agentic.user.v1.UserService/CreateTenant

  Ctrl-C stops the services.

INFO
wait "${pids[@]}"
