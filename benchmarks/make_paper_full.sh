#!/usr/bin/env bash
# The instances of the paper-full suite: the paper's workload at full scale (Llama-3.1-8B,
# one request, 31,299-token prompt, 10,240 decode steps, 32 layers) at 40, 50, 60, 80 and
# 90 % sparsity, as sharded folders (about 2 minutes, 160 MB of memory and 175 MB of disk
# each at 60 %).  An instance already there is kept: rerun to finish an interrupted set.
#
#   bash benchmarks/make_paper_full.sh [OUT_DIR]        # default: bench-instances/
set -euo pipefail
out="${1:-bench-instances}"
mkdir -p "$out"
for s in 40 50 60 80 90; do
    f="$out/paper-s$s.hetkv"
    if [ -f "$f/manifest.json" ]; then
        echo "$f: already there"
        continue
    fi
    hetkv generate "$f" --preset-workload paper --sparsity "0.$s" -q
    echo "$f: written"
done
