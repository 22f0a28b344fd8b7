"""A hand-made attention trace (random but valid scores), shared by the trace tests."""

from __future__ import annotations

import numpy as np

from hetkv_opt.trace.capture import Trace

MODEL = {"name": "hand", "num_layers": 3, "num_heads": 4, "num_kv_heads": 2, "head_dim": 8,
         "hidden_size": 32, "intermediate_size": 64, "dtype": "float32", "dtype_bytes": 4}


def hand_trace(prompt_tokens=5, steps=4, layers=(0, 2), seed=0) -> Trace:
    """A trace with random but valid scores (rows of each KV head sum to 1)."""
    rng = np.random.default_rng(seed)
    widths = prompt_tokens + 1 + np.arange(steps)
    offsets = np.concatenate([[0], np.cumsum(widths)])
    kv_cols, hm_cols = [], []
    for w in widths:
        a = rng.dirichlet(np.ones(w), size=(len(layers), MODEL["num_heads"]))
        kv_cols.append(a.reshape(len(layers), 2, 2, w).mean(axis=2))
        hm_cols.append(a.max(axis=1))
    return Trace(metadata={"model": dict(MODEL), "prompt": {"name": "hand", "tokens": prompt_tokens},
                           "generation": {"text": "xyz"}},
                 layers=np.array(layers), prompt_ids=np.arange(prompt_tokens),
                 generated_ids=np.arange(steps), offsets=offsets,
                 kv_mean=np.concatenate(kv_cols, -1).astype(np.float16),
                 head_max=np.concatenate(hm_cols, -1).astype(np.float16))
