#!/usr/bin/env bash
# Fetches the local embedding model into .local/models: WordLlama `l2_supercat` (256
# dimensions), whose weights and Hugging Face tokenizer ship inside the PyPI wheel
# wordllama. Only those two files are kept; nothing is downloaded at run time.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODELS="$ROOT/.local/models"
WORDLLAMA_VERSION="0.4.0.post1"
WEIGHTS="$MODELS/l2_supercat_256.safetensors"
TOKENIZER="$MODELS/l2_supercat_tokenizer_config.json"

if [ -s "$WEIGHTS" ] && [ -s "$TOKENIZER" ]; then
  exit 0
fi
echo "[models] fetching WordLlama l2_supercat from the wordllama $WORDLLAMA_VERSION wheel" >&2
mkdir -p "$MODELS"
dl="$(mktemp -d)"
trap 'rm -rf "$dl"' EXIT
# The wheel's files do not depend on the platform it was built for: take any.
python3 -m pip download --quiet --no-deps --only-binary=:all: \
  --platform manylinux2014_x86_64 --python-version 3.11 \
  -d "$dl" "wordllama==$WORDLLAMA_VERSION"
python3 - "$dl" "$MODELS" <<'PY'
import glob, sys, zipfile
wheel = glob.glob(f"{sys.argv[1]}/wordllama-*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    for name in ("wordllama/weights/l2_supercat_256.safetensors",
                 "wordllama/tokenizers/l2_supercat_tokenizer_config.json"):
        with open(f"{sys.argv[2]}/{name.rsplit('/', 1)[1]}", "wb") as out:
            out.write(z.read(name))
PY
ls -l "$MODELS" >&2
