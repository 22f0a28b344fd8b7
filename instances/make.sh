#!/usr/bin/env bash
# Regenerates every generated instance shipped in instances/ (same seed, same bytes).
# Run from the repository root after `pip install -e .`.
set -euo pipefail
cd "$(dirname "$0")"
python -c "from hetkv_opt import tiny_instance, save_instance; save_instance(tiny_instance(), 'tiny.json')"
hetkv generate drift-32x16.json --blocks 32 --steps 16 --seed 1 -f json > /dev/null
hetkv generate drift-64x32.npz --blocks 64 --steps 32 --seed 0 -f json > /dev/null
hetkv generate drift-inclusive-32x16.json --blocks 32 --steps 16 --seed 2 --mode inclusive -f json > /dev/null
hetkv generate drift-256x64.npz --blocks 256 --steps 64 --seed 0 -f json > /dev/null
