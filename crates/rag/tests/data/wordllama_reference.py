#!/usr/bin/env python3
"""Writes wordllama_reference.json beside this file: 50 varied sentences and their
embeddings by the `wordllama` Python package itself (WordLlama l2_supercat at 256
dimensions and truncated to 64, norm=True), which crates/rag/tests/wordllama.rs compares the Rust model with.

Run from the repository root after `make tools` (the model files in .local/models):

    python3 -m venv .local/wordllama-venv
    .local/wordllama-venv/bin/pip install wordllama==0.4.0.post1
    .local/wordllama-venv/bin/python crates/rag/tests/data/wordllama_reference.py

The package is pointed at the same two files the service loads, with downloads disabled.
"""

import json
import os
import sys
import tempfile
from pathlib import Path

import wordllama
from wordllama import WordLlama

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[3]
MODELS = ROOT / ".local" / "models"

SENTENCES = [
    "The cat sat on the mat.",
    "A kitten is resting on a rug.",
    "Quarterly revenue grew by 12 percent.",
    "héllo wörld 🙂",
    "PostgreSQL stores rows in heap pages of eight kilobytes.",
    "The mitochondria is the powerhouse of the cell.",
    "Photosynthesis turns sunlight, water and carbon dioxide into sugar.",
    "She sold seashells by the seashore.",
    "The treaty was signed in Vienna in 1815.",
    "Use a mutex to protect shared state between threads.",
    "Our refund policy allows returns within thirty days.",
    "The patient presented with a persistent dry cough and mild fever.",
    "Add two cups of flour and a pinch of salt, then knead the dough.",
    "The striker scored twice in the second half.",
    "Interest rates were left unchanged by the central bank.",
    "Mount Everest is the highest mountain above sea level.",
    "Reset your password from the account settings page.",
    "The violinist played Bach's partita without a single mistake.",
    "Electric cars need fewer moving parts than petrol cars.",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "Le chat dort sur le canapé depuis ce matin.",
    "El tren llega a la estación a las ocho.",
    "東京は日本の首都です。",
    "Water boils at one hundred degrees Celsius at sea level.",
    "The function returns None when the key is missing.",
    "Vaccines train the immune system to recognise pathogens.",
    "Inflation eroded the purchasing power of savings.",
    "A haiku has three lines of five, seven and five syllables.",
    "The satellite entered a geostationary orbit last night.",
    "Please restart the router and try connecting again.",
    "Whales communicate over long distances with low-frequency songs.",
    "The court ruled that the contract was void.",
    "Tokyo, Paris and Nairobi hosted the summit in turn.",
    "GPU memory bandwidth limits large language model inference.",
    "He forgot his umbrella and got soaked on the way home.",
    "The bakery opens at six every morning except Sunday.",
    "Error 404: the requested page could not be found.",
    "Rust's borrow checker prevents data races at compile time.",
    "The glacier has retreated two kilometres since 1950.",
    "Invoice #88213 is overdue by fifteen days.",
    "Meditation can lower stress and improve focus.",
    "The orchestra tuned to an A of 440 hertz.",
    "Bees pollinate roughly a third of the crops we eat.",
    "The spacecraft's heat shield survived re-entry.",
    "Wash whites separately in hot water.",
    "A balanced diet includes vegetables, grains and protein.",
    "The museum's new wing displays Byzantine mosaics.",
    "Latency spikes appeared after the deploy at 14:05 UTC.",
    "Children learn languages faster than adults.",
    "x",
]


def main() -> int:
    assert len(SENTENCES) == 50, len(SENTENCES)
    with tempfile.TemporaryDirectory() as cache:
        cache = Path(cache)
        (cache / "weights").mkdir()
        (cache / "tokenizers").mkdir()
        os.symlink(MODELS / "l2_supercat_256.safetensors",
                   cache / "weights" / "l2_supercat_256.safetensors")
        os.symlink(MODELS / "l2_supercat_tokenizer_config.json",
                   cache / "tokenizers" / "l2_supercat_tokenizer_config.json")
        vectors = {}
        for dim in (256, 64):
            model = WordLlama.load(config="l2_supercat", dim=256, trunc_dim=dim,
                                   cache_dir=cache, disable_download=True)
            embedded = model.embed(SENTENCES, norm=True)
            vectors[str(dim)] = [[round(float(x), 6) for x in row] for row in embedded]
    out = HERE / "wordllama_reference.json"
    out.write_text(json.dumps({
        "wordllama": wordllama.__version__ if hasattr(wordllama, "__version__") else "0.4.0.post1",
        "model": "l2_supercat",
        "sentences": SENTENCES,
        "vectors": vectors,
    }, ensure_ascii=False) + "\n")
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
