"""Hardware and model presets: versioned TOML data files with units and a source per number.

Two kinds of preset ship in this package (``hetkv_opt/presets/hardware/*.toml`` and
``hetkv_opt/presets/models/*.toml``); a user adds their own by writing a file of the same
form and passing its path wherever a preset name is accepted.

**Hardware** (``schema = "hetkv-hardware"``): the memory tiers as in docs/model.md section 1
(``capacity_bytes`` -- omitted means unbounded -- ``bandwidth_Bps``, and for tiers >= 1
``link_read_Bps`` / ``link_write_Bps``), plus an optional ``peak_flops`` (dense FLOP/s of
the accelerator, used for a compute floor).

**Model** (``schema = "hetkv-model"``): the transformer's shape -- ``layers``, ``hidden``,
``heads``, ``kv_heads``, ``head_dim``, ``intermediate``, ``vocab``, ``dtype_bytes``,
optional ``experts`` / ``top_k`` (mixture of experts) and ``tied_embeddings`` -- from which
KV and weight sizes are derived (:class:`ModelSpec`).

Every number ``key`` carries a sibling string ``key_source`` saying where it comes from (a
datasheet, the paper, a config.json; "assumption" when it is one).  The loaders check the
schema, the types, the ranges and the sources, and raise :class:`PresetError` naming the
file, the field and the reason.

Examples
--------
>>> m = load_model("llama-3.1-8b")
>>> m.kv_bytes_per_token_layer()          # 2 (K, V) x 8 KV heads x 128 x 2 bytes (bf16)
4096
>>> hw = load_hardware("gh200-paper")
>>> [t.name for t in hw.tiers], hw.tiers[0].bandwidth_Bps
(['hbm', 'lpddr'], 4900000000000.0)
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from hetkv_opt.io.files import check_header
from hetkv_opt.model.instance import ModelError, Tier, make_tier, tier_specs

SCHEMA_HARDWARE = "hetkv-hardware"
SCHEMA_MODEL = "hetkv-model"
SCHEMA_VERSION = 1
KINDS = ("hardware", "model")
PRESET_ROOT = Path(__file__).resolve().parent
_DIRS = {"hardware": PRESET_ROOT / "hardware", "model": PRESET_ROOT / "models"}
_SCHEMAS = {"hardware": SCHEMA_HARDWARE, "model": SCHEMA_MODEL}


class PresetError(ModelError):
    """A preset that is missing or breaks its schema (names the file, the field, the reason)."""


# ----------------------------------------------------------------------------- data types

@dataclass(frozen=True)
class HardwareSpec:
    """A hardware preset: memory tiers (tier 0 = the accelerator's memory) and peak compute.

    Attributes
    ----------
    name, summary, source : str
    tiers : tuple of hetkv_opt.model.instance.Tier
    peak_flops : float or None
        Dense FLOP/s of the accelerator (for a compute floor), ``None`` when not given.
    sources : dict of str -> str
        ``"tiers[0].bandwidth_Bps" -> "where the number comes from"``.
    path : str
        The file it was loaded from.
    """

    name: str
    summary: str
    source: str
    tiers: tuple[Tier, ...]
    peak_flops: float | None = None
    sources: Mapping[str, str] = field(default_factory=dict)
    path: str = ""

    def tier_dicts(self) -> list[dict]:
        """The tiers as mappings, as ``make_instance`` and the JSON file take them."""
        return tier_specs(self.tiers)


@dataclass(frozen=True)
class ModelSpec:
    """A transformer's shape, and the sizes derived from it.

    Parameters (all counts, except ``dtype_bytes``)
    ----------
    layers, hidden, heads, kv_heads, head_dim, intermediate, vocab : int
        As in a Hugging Face ``config.json`` (``intermediate`` is per expert for MoE).
    dtype_bytes : int
        Bytes per weight and per KV element (bf16: 2).
    experts, top_k : int
        Experts per layer and experts routed per token; ``experts = 1`` is a dense model.
    tied_embeddings : bool
        The output projection shares the input embedding.

    Notes
    -----
    Attention is ``q, o: hidden x heads*head_dim`` and ``k, v: hidden x kv_heads*head_dim``
    (grouped-query attention); the MLP is SwiGLU, three ``hidden x intermediate`` matrices;
    two RMSNorm vectors per layer; MoE adds a ``hidden x experts`` router.  Biases: none.
    """

    name: str
    summary: str
    source: str
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    dtype_bytes: int
    experts: int = 1
    top_k: int = 1
    tied_embeddings: bool = False
    sources: Mapping[str, str] = field(default_factory=dict)
    path: str = ""

    @property
    def is_moe(self) -> bool:
        return self.experts > 1

    def kv_bytes_per_token_layer(self) -> int:
        """K and V of one token in one layer: ``2 x kv_heads x head_dim x dtype_bytes``."""
        return 2 * self.kv_heads * self.head_dim * self.dtype_bytes

    def attention_params_per_layer(self) -> int:
        """Parameters of q, k, v and o (grouped-query attention, no biases)."""
        q_o = 2 * self.hidden * self.heads * self.head_dim
        k_v = 2 * self.hidden * self.kv_heads * self.head_dim
        return q_o + k_v

    def mlp_params(self) -> int:
        """Parameters of one SwiGLU MLP (gate, up, down): one expert for MoE models."""
        return 3 * self.hidden * self.intermediate

    def norm_params_per_layer(self) -> int:
        """Two RMSNorm weight vectors per layer (before attention, before the MLP)."""
        return 2 * self.hidden

    def router_params_per_layer(self) -> int:
        return self.hidden * self.experts if self.is_moe else 0

    def weight_params_per_layer(self) -> int:
        """Parameters of a layer's weights *item*: everything but the experts of a MoE."""
        dense_mlp = 0 if self.is_moe else self.mlp_params()
        return (self.attention_params_per_layer() + dense_mlp + self.norm_params_per_layer()
                + self.router_params_per_layer())

    def weight_bytes_per_layer(self) -> int:
        """Bytes of a layer's weights item (attention, norms, router; dense MLP if not MoE)."""
        return self.weight_params_per_layer() * self.dtype_bytes

    def expert_bytes(self) -> int:
        """Bytes of one expert (0 for a dense model)."""
        return self.mlp_params() * self.dtype_bytes if self.is_moe else 0

    def total_params(self) -> int:
        """All parameters: layers, experts, embeddings (and output head unless tied), final norm."""
        per_layer = self.weight_params_per_layer() + (self.experts * self.mlp_params() if self.is_moe else 0)
        emb = self.vocab * self.hidden * (1 if self.tied_embeddings else 2)
        return self.layers * per_layer + emb + self.hidden

    def flops_per_token_layer(self, context_tokens) -> Any:
        """FLOPs of one decode token in one layer: ``2 x`` the weights it multiplies
        (attention, router, the ``top_k`` experts or the dense MLP) plus ``4 x heads x
        head_dim x context`` for the scores and the weighted sum of values.

        ``context_tokens`` may be an int or an array (broadcast)."""
        mlp = self.top_k * self.mlp_params() if self.is_moe else self.mlp_params()
        dense = self.attention_params_per_layer() + self.router_params_per_layer() + mlp
        return 2 * dense + 4 * self.heads * self.head_dim * context_tokens


# ----------------------------------------------------------------------------- loading

def list_presets(kind: str | None = None) -> dict[str, dict[str, Path]]:
    """The bundled presets by kind and name: ``{"hardware": {"gh200-paper": Path}, ...}``."""
    kinds = KINDS if kind is None else (kind,)
    out: dict[str, dict[str, Path]] = {}
    for k in kinds:
        if k not in _DIRS:
            raise PresetError("kind", f"must be one of {', '.join(KINDS)}, got {k!r}")
        d = _DIRS[k]
        out[k] = {p.stem: p for p in sorted(d.glob("*.toml"))} if d.is_dir() else {}
    return out


def _resolve(kind: str, name_or_path: str | Path) -> Path:
    p = Path(name_or_path)
    if p.suffix.lower() == ".toml" or p.is_file() or "/" in str(name_or_path):
        if not p.is_file():
            raise PresetError("(file)", "no such file", str(p))
        return p
    known = list_presets(kind)[kind]
    if str(name_or_path) not in known:
        raise PresetError(kind, f"unknown {kind} preset {str(name_or_path)!r} (known: "
                          f"{', '.join(known) or 'none'}; or give the path of a .toml file)")
    return known[str(name_or_path)]


def _read(kind: str, path: Path) -> dict:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise PresetError("(file)", f"not valid TOML ({exc})", str(path)) from None
    check_header(data, schema=_SCHEMAS[kind], versions=SCHEMA_VERSION, path=path, error=PresetError)
    return data


def _text(d: Mapping, key: str, where: str, required: bool = True) -> str:
    v = d.get(key)
    if v is None and not required:
        return ""
    if not isinstance(v, str) or not v.strip():
        raise PresetError(f"{where}{key}", "missing required key" if v is None else "must be a non-empty string")
    return v


def _sources(d: Mapping, numbers: tuple[str, ...], where: str, known: set[str]) -> dict[str, str]:
    """Check keys and the ``<key>_source`` of every number present; return them by dotted name."""
    allowed = known | set(numbers) | {f"{k}_source" for k in numbers}
    for key in d:
        if key not in allowed:
            raise PresetError(f"{where}{key}", "unknown key")
    out = {}
    for key in numbers:
        if key in d:
            src = d.get(f"{key}_source")
            if not isinstance(src, str) or not src.strip():
                raise PresetError(f"{where}{key}_source", f"every number needs a source: say where "
                                  f"'{key}' comes from (a datasheet, the paper, or 'assumption: ...')")
            out[f"{where}{key}"] = src
        elif f"{key}_source" in d and key != "capacity_bytes":
            raise PresetError(f"{where}{key}", "has a source but no value")
    return out


_TIER_NUMBERS = ("capacity_bytes", "bandwidth_Bps", "link_read_Bps", "link_write_Bps")


def load_hardware(name_or_path: str | Path) -> HardwareSpec:
    """Load a hardware preset by name (``gh200-paper``) or by the path of a TOML file.

    Raises
    ------
    PresetError
        Naming the file, the field (e.g. ``tiers[1].link_read_Bps``) and the reason.

    Examples
    --------
    >>> hw = load_hardware("gh200-cxl")
    >>> len(hw.tiers), hw.tiers[2].name
    (3, 'cxl')
    """
    path = _resolve("hardware", name_or_path)
    try:
        d = _read("hardware", path)
        top = {"schema", "schema_version", "name", "summary", "source", "tiers"}
        sources = _sources(d, ("peak_flops",), "", top)
        name = _text(d, "name", "")
        summary = _text(d, "summary", "")
        source = _text(d, "source", "")
        peak = d.get("peak_flops")
        if peak is not None:
            if isinstance(peak, bool) or not isinstance(peak, (int, float)) or not math.isfinite(peak) or peak <= 0:
                raise PresetError("peak_flops", f"must be a number > 0 (FLOP/s), got {peak!r}")
            peak = float(peak)
        tiers_raw = d.get("tiers")
        if not isinstance(tiers_raw, list) or not tiers_raw:
            raise PresetError("tiers", "missing required key: at least one [[tiers]] table"
                              if tiers_raw is None else "must be a non-empty list of [[tiers]] tables")
        tiers = []
        for k, t in enumerate(tiers_raw):
            where = f"tiers[{k}]."
            if not isinstance(t, dict):
                raise PresetError(f"tiers[{k}]", "must be a table")
            sources.update(_sources(t, _TIER_NUMBERS, where, {"name"}))
            spec = {key: t[key] for key in ("name", *_TIER_NUMBERS) if key in t}
            for key in _TIER_NUMBERS:
                v = spec.get(key)
                if isinstance(v, float) and key == "capacity_bytes" and v.is_integer():
                    spec[key] = int(v)
            try:
                tiers.append(make_tier(spec, k))
            except ModelError as exc:
                raise PresetError(exc.field, exc.reason) from None
        names = [t.name for t in tiers]
        if len(set(names)) != len(names):
            raise PresetError("tiers", f"tier names must be distinct, got {names}")
        return HardwareSpec(name=name, summary=summary, source=source, tiers=tuple(tiers),
                            peak_flops=peak, sources=sources, path=str(path))
    except PresetError as exc:
        raise exc.with_source(str(path)) if exc.source is None else exc from None


_MODEL_INTS = ("layers", "hidden", "heads", "kv_heads", "head_dim", "intermediate", "vocab",
               "dtype_bytes", "experts", "top_k")
_MODEL_REQUIRED = ("layers", "hidden", "heads", "kv_heads", "head_dim", "intermediate", "vocab",
                   "dtype_bytes")


def load_model(name_or_path: str | Path) -> ModelSpec:
    """Load a model preset by name (``llama-3.1-8b``) or by the path of a TOML file.

    Raises
    ------
    PresetError
        Naming the file, the field and the reason.

    Examples
    --------
    >>> m = load_model("mixtral-8x7b")
    >>> m.experts, m.top_k, m.expert_bytes()    # 3 x 4096 x 14336 x 2 bytes
    (8, 2, 352321536)
    """
    path = _resolve("model", name_or_path)
    try:
        d = _read("model", path)
        top = {"schema", "schema_version", "name", "summary", "source"}
        sources = _sources(d, _MODEL_INTS + ("tied_embeddings",), "", top)
        name = _text(d, "name", "")
        summary = _text(d, "summary", "")
        source = _text(d, "source", "")
        vals: dict[str, Any] = {}
        for key in _MODEL_INTS:
            if key not in d:
                if key in _MODEL_REQUIRED:
                    raise PresetError(key, "missing required key")
                continue
            v = d[key]
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise PresetError(key, f"must be a whole number >= 1, got {v!r}")
            vals[key] = v
        tied = d.get("tied_embeddings", False)
        if not isinstance(tied, bool):
            raise PresetError("tied_embeddings", f"must be true or false, got {tied!r}")
        if vals["heads"] % vals["kv_heads"]:
            raise PresetError("kv_heads", f"{vals['kv_heads']} must divide heads ({vals['heads']})")
        experts = vals.get("experts", 1)
        top_k = vals.get("top_k", 1)
        if top_k > experts:
            raise PresetError("top_k", f"{top_k} experts per token, but only {experts} experts")
        return ModelSpec(name=name, summary=summary, source=source, tied_embeddings=tied,
                         sources=sources, path=str(path), **vals)
    except PresetError as exc:
        raise exc.with_source(str(path)) if exc.source is None else exc from None


def hardware_table() -> dict[str, dict]:
    """Every bundled hardware preset as ``{"source": str, "tiers": [dict, ...]}``
    (the form of :data:`hetkv_opt.workloads.drift.HARDWARE`)."""
    out = {}
    for name, path in list_presets("hardware")["hardware"].items():
        hw = load_hardware(path)
        out[name] = {"source": hw.source, "tiers": hw.tier_dicts()}
    return out


__all__ = ["HardwareSpec", "ModelSpec", "PresetError", "hardware_table", "list_presets",
           "load_hardware", "load_model"]
