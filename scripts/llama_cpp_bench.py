#!/usr/bin/env python3
"""llama.cpp (PyPI llama-cpp-python) on the suite's local model file: the same prompt in
the same ChatML template as the agent service builds, temperature 0, streamed. Prints
one JSON line per run, as `agentic-llm-bench local` does."""
import argparse
import json
import os
import time

from llama_cpp import Llama

parser = argparse.ArgumentParser()
parser.add_argument("--model", default=".local/models/SmolLM2-135M-Instruct.Q4_1.gguf")
parser.add_argument("--prompt", default="Write a long story about a dragon who learns to cook.")
parser.add_argument("--tokens", type=int, default=128)
parser.add_argument("--runs", type=int, default=5)
args = parser.parse_args()

llm = Llama(model_path=args.model, n_ctx=4096, n_threads=os.cpu_count(), verbose=False)
text = ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        f"<|im_start|>user\n{args.prompt}<|im_end|>\n<|im_start|>assistant\n")
prompt = llm.tokenize(text.encode(), add_bos=False, special=True)
for run in range(args.runs + 1):
    llm.reset()
    started = time.perf_counter()
    first = None
    count = 0
    for _ in llm.generate(prompt, temp=0.0, top_k=1, reset=True):
        count += 1
        if first is None:
            first = time.perf_counter() - started
        if count >= args.tokens:
            break
    total = time.perf_counter() - started
    if run == 0:
        continue  # warm-up
    print(json.dumps({
        "engine": "llama.cpp",
        "prompt_tokens": len(prompt),
        "completion_tokens": count,
        "ttft_ms": first * 1e3,
        "decode_tokens_per_s": (count - 1) / (total - first),
    }), flush=True)
