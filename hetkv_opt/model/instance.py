"""The placement problem of docs/model.md, as validated in-memory arrays.

An :class:`Instance` is immutable by convention: every array is owned by the instance and
marked read-only.  Reads and writes are kept sorted by ``(epoch, item)`` so that every
consumer (evaluator, model builder, policies) can rely on that order.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

SCHEMA_INSTANCE = "hetkv-instance"
SCHEMA_VERSION = 1
MODES = ("exclusive", "inclusive")
ITEM_LABELS = ("kind", "layer", "request", "block")
EPOCH_LABELS = ("step", "layer")

# Limits that keep every number the toolkit computes finite and exact (docs/model.md section 1
# states the problem; these are what a file may hold so that no sum wraps, no time
# overflows or underflows, and no array is allocated beyond reason).  Refused with the field.
#: bytes of one item, one access, one capacity, and of all items together: exact in float64
MAX_BYTES = 2 ** 53
#: all reads (or all writes) of an instance together: their int64 sums never wrap
MAX_TOTAL_ACCESS_BYTES = 2 ** 62
#: epochs and items (checked before anything of that length is allocated)
MAX_EPOCHS = 10 ** 7
MAX_ITEMS = 10 ** 8
#: a rate (device or link, bytes/s): one byte to 2**53 bytes take normal, finite seconds
MIN_RATE_BPS, MAX_RATE_BPS = 1e-3, 1e18
#: a compute floor (seconds): 0, or in this range
MIN_FLOOR_S, MAX_FLOOR_S = 1e-15, 1e9


class ModelError(ValueError):
    """An instance or schedule breaks a rule of docs/model.md.

    Parameters
    ----------
    field : str
        Dotted name of the offending field, e.g. ``"reads.bytes"``.
    reason : str
        What is wrong, in words.
    source : str, optional
        The file the data came from, when there is one.
    """

    def __init__(self, field: str, reason: str, source: str | None = None):
        self.field = field
        self.reason = reason
        self.source = source
        super().__init__(self._text())

    def _text(self) -> str:
        where = f"{self.source}: " if self.source else ""
        if self.field == "(file)":
            return f"{where}{self.reason}"
        return f"{where}field '{self.field}': {self.reason}"

    def with_source(self, source: str) -> "ModelError":
        """Return the same error, naming the file it came from."""
        return type(self)(self.field, self.reason, source)


@dataclass(frozen=True)
class Tier:
    """One memory tier.

    Parameters
    ----------
    name : str
        Display name, e.g. ``"hbm"``.
    capacity_bytes : int or None
        Capacity; ``None`` means unbounded.
    bandwidth_Bps : float
        Device bandwidth shared by every read, write and copy on the tier.
    link_read_Bps, link_write_Bps : float or None
        Link limits tier -> accelerator and accelerator -> tier (tiers >= 1 only).
    """

    name: str
    capacity_bytes: int | None
    bandwidth_Bps: float
    link_read_Bps: float | None = None
    link_write_Bps: float | None = None

    def read_rate_Bps(self) -> float:
        """Best rate at which the accelerator can read this tier: min(device, link)."""
        if self.link_read_Bps is None:
            return self.bandwidth_Bps
        return min(self.bandwidth_Bps, self.link_read_Bps)


def tier_specs(tiers) -> list[dict]:
    """Tiers as the mappings the instance file and :func:`make_instance` take (tier 0 has
    no link keys)."""
    out = []
    for k, t in enumerate(tiers):
        d = {"name": t.name, "capacity_bytes": t.capacity_bytes, "bandwidth_Bps": t.bandwidth_Bps}
        if k > 0:
            d["link_read_Bps"] = t.link_read_Bps
            d["link_write_Bps"] = t.link_write_Bps
        out.append(d)
    return out


#: accesses summed at a time by :func:`per_epoch_sum`
_SUM_SLICE = 1 << 22


def per_epoch_sum(epoch: np.ndarray, values: np.ndarray, num_epochs: int) -> np.ndarray:
    """Sum of ``values`` per epoch, shape (num_epochs,), float64.

    Slice by slice, so that no float copy of a read list of hundreds of millions of
    entries is made; the values are whole bytes, whose float64 sums are exact in any
    order, so the result is the one of a single ``np.bincount``.
    """
    out = np.zeros(num_epochs)
    for lo in range(0, epoch.size, _SUM_SLICE):
        out += np.bincount(epoch[lo:lo + _SUM_SLICE], weights=values[lo:lo + _SUM_SLICE],
                           minlength=num_epochs)
    return out


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """``np.unique(values)`` for a 1-d array, by sorting: numpy 2.4's default ``np.unique``
    hashes, and on millions of distinct integers that took 28 s for 14M entries where a
    sort takes a fraction of a second (runs already in order are merged in linear time).

    >>> sorted_unique(np.array([3, 1, 3, 2, 1])).tolist()
    [1, 2, 3]
    """
    s = np.sort(np.asarray(values).ravel(), kind="stable")
    if s.size < 2:
        return s
    keep = np.empty(s.size, bool)
    keep[0] = True
    np.not_equal(s[1:], s[:-1], out=keep[1:])
    return s[keep]


def accesses_by_item(inst: "Instance", kind: str):
    """The reads (``kind="read"``) or writes of ``inst`` grouped by item, in epoch order:
    ``(epochs, bytes as float, starts)``; item i's accesses are ``[starts[i],
    starts[i + 1])``."""
    item, epoch = getattr(inst, f"{kind}_item"), getattr(inst, f"{kind}_epoch")
    order = np.lexsort((epoch, item))
    starts = np.searchsorted(item[order], np.arange(inst.num_items + 1))
    return epoch[order], getattr(inst, f"{kind}_bytes")[order].astype(float), starts


def _ro(a: np.ndarray) -> np.ndarray:
    """A read-only view (the caller's own array object stays writable)."""
    a = np.ascontiguousarray(a).view()
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class Instance:
    """A validated hetkv placement instance (docs/model.md sections 1-3).

    Build one with :func:`make_instance` (which validates) or load one with
    :func:`hetkv_opt.io.files.load_instance`.

    Attributes
    ----------
    name : str
    mode : {"exclusive", "inclusive"}
    tiers : tuple of Tier
    size_bytes, birth, death, pinned_tier, initial_tier : ndarray of int64, shape (N,)
    min_time_s : ndarray of float64, shape (E,)
    read_epoch, read_item, read_bytes : ndarray of int64, shape (R,), sorted by (epoch, item)
    write_epoch, write_item, write_bytes : ndarray of int64, shape (W,), same order
        (int32 where the values fit in the compact form of :func:`narrow_accesses`,
        which only the policy engine and the evaluator are given)
    item_labels, epoch_labels : dict of str -> ndarray
    metadata : dict
    """

    name: str
    mode: str
    tiers: tuple[Tier, ...]
    size_bytes: np.ndarray
    birth: np.ndarray
    death: np.ndarray
    pinned_tier: np.ndarray
    initial_tier: np.ndarray
    num_epochs: int
    min_time_s: np.ndarray
    read_epoch: np.ndarray
    read_item: np.ndarray
    read_bytes: np.ndarray
    write_epoch: np.ndarray
    write_item: np.ndarray
    write_bytes: np.ndarray
    item_labels: Mapping[str, np.ndarray] = field(default_factory=dict)
    epoch_labels: Mapping[str, np.ndarray] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def num_items(self) -> int:
        return int(self.size_bytes.shape[0])

    @property
    def num_tiers(self) -> int:
        return len(self.tiers)

    @property
    def num_steps(self) -> int:
        """Distinct ``step`` labels, or the number of epochs when there are none."""
        step = self.epoch_labels.get("step")
        if step is None:
            return self.num_epochs
        return int(np.unique(step).size)

    def reads_per_epoch_bytes(self) -> np.ndarray:
        """Total read bytes of every epoch, shape (E,)."""
        return per_epoch_sum(self.read_epoch, self.read_bytes, self.num_epochs)

    def equals(self, other: "Instance") -> bool:
        """True when both instances carry exactly the same content."""
        if not isinstance(other, Instance):
            return False
        for f in dataclasses.fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if isinstance(a, np.ndarray):
                if a.dtype != b.dtype or a.shape != b.shape or not np.array_equal(a, b):
                    return False
            elif isinstance(a, Mapping) and f.name != "metadata":
                if set(a) != set(b) or any(not np.array_equal(a[k], b[k]) for k in a):
                    return False
            elif f.name == "metadata":
                # as files carry it: a tuple and a list of the same values are the same
                if _json_form(a) != _json_form(b):
                    return False
            elif a != b:
                return False
        return True


def _json_form(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))


def _check_list(values: Any, name: str, what: str) -> None:
    """A list from a JSON file holds numbers only: ``true`` and ``"1"`` are not numbers
    (numpy would turn them into 1 and 1.0 without a word)."""
    if not isinstance(values, (list, tuple)):
        return
    kinds = set(map(type, values))
    if kinds <= {int, float}:
        return
    for k, v in enumerate(values):
        if isinstance(v, bool):
            raise ModelError(name, f"must contain {what}: entry {k} is the boolean {str(v).lower()}")
        if isinstance(v, str):
            raise ModelError(name, f"must contain {what}: entry {k} is the string {v!r}")


def _int_array(values: Any, name: str, length: int | None = None) -> np.ndarray:
    _check_list(values, name, "integers")
    try:
        arr = np.asarray(values)
    except Exception as exc:  # ragged lists and the like
        raise ModelError(name, f"not an array ({exc})") from None
    if arr.ndim != 1:
        if arr.size == 0:
            arr = arr.reshape(0)
        else:
            raise ModelError(name, f"must be a flat list, got shape {arr.shape}")
    if arr.size == 0:
        arr = arr.astype(np.int64)
    if arr.dtype.kind == "O" and all(isinstance(v, int) and not isinstance(v, bool) for v in arr.tolist()):
        raise ModelError(name, f"holds a whole number beyond 64 bits (at most {2 ** 63 - 1})")
    if arr.dtype.kind == "b" or arr.dtype.kind not in "iuf":
        raise ModelError(name, f"must contain integers, got {arr.dtype}")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise ModelError(name, "must contain whole numbers")
        if np.any(np.abs(arr) > MAX_BYTES):
            k = int(np.flatnonzero(np.abs(arr) > MAX_BYTES)[0])
            raise ModelError(name, f"entry {k}: {arr[k]:g} is beyond the whole numbers a float "
                             f"holds exactly (2**53); write it as an integer")
    if arr.dtype.kind == "u" and arr.size and int(arr.max()) > 2 ** 63 - 1:
        raise ModelError(name, f"holds a whole number beyond 64 bits (at most {2 ** 63 - 1})")
    out = arr.astype(np.int64, copy=False)     # no copy of an int64 array: large read lists
    if length is not None and out.shape[0] != length:
        raise ModelError(name, f"has {out.shape[0]} entries, expected {length}")
    return out


def _float_array(values: Any, name: str, length: int) -> np.ndarray:
    _check_list(values, name, "numbers")
    try:
        raw = np.asarray(values)
    except Exception:
        raise ModelError(name, "must contain numbers") from None
    if raw.size and (raw.dtype.kind == "b" or raw.dtype.kind not in "iuf"):
        raise ModelError(name, f"must contain numbers, got {raw.dtype}")
    arr = raw.astype(np.float64, copy=False).reshape(-1)
    if arr.shape[0] != length:
        raise ModelError(name, f"has {arr.shape[0]} entries, expected {length}")
    if not np.all(np.isfinite(arr)):
        raise ModelError(name, "must be finite")
    return arr


def _check_bytes(arr: np.ndarray, name: str, what: str) -> None:
    """Every entry at most :data:`MAX_BYTES` (2**53)."""
    if arr.size and int(arr.max()) > MAX_BYTES:
        k = int(np.argmax(arr))
        raise ModelError(name, f"entry {k}: {arr[k]} bytes {what}: at most 2**53 "
                         f"({MAX_BYTES}) bytes, so that sums stay exact")


def _total(arr: np.ndarray) -> float:
    """The sum of a non-negative int64 array, without wrapping (float64: close enough to
    compare with a limit)."""
    return float(np.sum(arr, dtype=np.float64))


def _rate(value: Any, name: str, allow_none: bool) -> float | None:
    """A bandwidth in bytes/s: > 0 and in [MIN_RATE_BPS, MAX_RATE_BPS]."""
    v = _positive_number(value, name, allow_none)
    if v is not None and not MIN_RATE_BPS <= v <= MAX_RATE_BPS:
        raise ModelError(name, f"{value!r} bytes/s is outside [{MIN_RATE_BPS:g}, {MAX_RATE_BPS:g}]: "
                         f"the times it gives would overflow or underflow")
    return v


def _positive_number(value: Any, name: str, allow_none: bool) -> float | None:
    if value is None:
        if allow_none:
            return None
        raise ModelError(name, "is required")
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ModelError(name, f"must be a number, got {type(value).__name__}")
    try:
        v = float(value)
    except OverflowError:
        raise ModelError(name, f"must be a finite number, got {value}") from None
    if not math.isfinite(v) or v <= 0:
        raise ModelError(name, f"must be > 0, got {value}")
    return v


def make_tier(spec: Mapping[str, Any], index: int) -> Tier:
    """Validate one tier mapping (as in the JSON file) and build a :class:`Tier`."""
    p = f"tiers[{index}]"
    if not isinstance(spec, Mapping):
        raise ModelError(p, "must be an object")
    known = {"name", "capacity_bytes", "bandwidth_Bps", "link_read_Bps", "link_write_Bps"}
    unknown = set(spec) - known
    if unknown:
        raise ModelError(f"{p}.{sorted(unknown)[0]}", "unknown key")
    for key in ("name", "bandwidth_Bps"):
        if key not in spec:
            raise ModelError(f"{p}.{key}", "missing required key")
    name = spec["name"]
    if not isinstance(name, str) or not name:
        raise ModelError(f"{p}.name", "must be a non-empty string")
    cap = spec.get("capacity_bytes")
    if cap is not None:
        if isinstance(cap, bool) or not isinstance(cap, (int, float, np.integer, np.floating)):
            raise ModelError(f"{p}.capacity_bytes", "must be a number or null")
        if cap < 0 or (isinstance(cap, (float, np.floating)) and (
                not math.isfinite(float(cap)) or float(cap) != round(float(cap)))):
            raise ModelError(f"{p}.capacity_bytes", f"must be a whole number >= 0, got {cap}")
        if cap > MAX_BYTES:
            raise ModelError(f"{p}.capacity_bytes", f"{cap} bytes: at most 2**53 ({MAX_BYTES}) "
                             f"bytes, so that sums stay exact (null means unbounded)")
        cap = int(cap)
    bw = _rate(spec.get("bandwidth_Bps"), f"{p}.bandwidth_Bps", allow_none=False)
    lr = _rate(spec.get("link_read_Bps"), f"{p}.link_read_Bps", allow_none=True)
    lw = _rate(spec.get("link_write_Bps"), f"{p}.link_write_Bps", allow_none=True)
    if index == 0 and (lr is not None or lw is not None):
        which = "link_read_Bps" if lr is not None else "link_write_Bps"
        raise ModelError(f"{p}.{which}", "tier 0 is the accelerator's memory and has no link")
    return Tier(name=name, capacity_bytes=cap, bandwidth_Bps=bw, link_read_Bps=lr, link_write_Bps=lw)


def _access_arrays(name: str, epoch, item, nbytes, n_items: int, n_epochs: int,
                   birth: np.ndarray, death: np.ndarray, size: np.ndarray):
    e = _int_array(epoch, f"{name}.epoch")
    i = _int_array(item, f"{name}.item", e.shape[0])
    b = _int_array(nbytes, f"{name}.bytes", e.shape[0])
    if e.size:
        bad = np.flatnonzero((e < 0) | (e >= n_epochs))
        if bad.size:
            raise ModelError(f"{name}.epoch", f"entry {bad[0]}: epoch {e[bad[0]]} outside 0..{n_epochs - 1}")
        bad = np.flatnonzero((i < 0) | (i >= n_items))
        if bad.size:
            raise ModelError(f"{name}.item", f"entry {bad[0]}: item {i[bad[0]]} outside 0..{n_items - 1}")
        bad = np.flatnonzero(b <= 0)
        if bad.size:
            raise ModelError(f"{name}.bytes", f"entry {bad[0]}: {b[bad[0]]} bytes, must be > 0")
        if _total(b) > MAX_TOTAL_ACCESS_BYTES:
            raise ModelError(f"{name}.bytes", f"{_total(b):.4g} bytes in all: at most 2**62, "
                             f"so that sums do not wrap")
        bad = np.flatnonzero(b > size[i])
        if bad.size:
            k = bad[0]
            raise ModelError(f"{name}.bytes", f"entry {k}: {b[k]} bytes of item {i[k]} exceed its size {size[i[k]]}")
        bad = np.flatnonzero((e < birth[i]) | (e >= death[i]))
        if bad.size:
            k = bad[0]
            raise ModelError(f"{name}.epoch", f"entry {k}: item {i[k]} is accessed at epoch {e[k]} "
                             f"outside its life [{birth[i[k]]}, {death[i[k]]})")
    if e.size > 1 and not np.all((e[1:] > e[:-1]) | ((e[1:] == e[:-1]) & (i[1:] > i[:-1]))):
        order = np.lexsort((i, e))         # sorted input (every generator's) is kept as is
        e, i, b = e[order], i[order], b[order]
        del order
    if e.size > 1:
        dup = np.flatnonzero((e[1:] == e[:-1]) & (i[1:] == i[:-1]))
        if dup.size:
            k = dup[0]
            raise ModelError(f"{name}.item", f"duplicate entry for epoch {e[k]}, item {i[k]}")
    return _ro(e), _ro(i), _ro(b)


def make_instance(*, name: str, tiers, size_bytes, num_epochs: int, birth=None, death=None,
                  pinned_tier=None, initial_tier=None, min_time_s=None,
                  reads=((), (), ()), writes=((), (), ()), mode: str = "exclusive",
                  item_labels: Mapping[str, Any] | None = None,
                  epoch_labels: Mapping[str, Any] | None = None,
                  metadata: Mapping[str, Any] | None = None) -> Instance:
    """Validate arrays and build an :class:`Instance`.

    Parameters
    ----------
    name : str
    tiers : sequence of Tier or of mappings as in the JSON file
    size_bytes : array-like of int, shape (N,)
    num_epochs : int
        E, the number of epochs.
    birth, death, pinned_tier, initial_tier : array-like of int, shape (N,), optional
        Defaults 0, E, -1, -1.
    min_time_s : array-like of float, shape (E,), optional
        Compute floor c_e (default 0).
    reads, writes : triple of array-likes (epoch, item, bytes)
        int64 numpy arrays are not copied (a large read list is held once): the instance
        keeps read-only views of them, so do not modify them afterwards.
    mode : {"exclusive", "inclusive"}

    Returns
    -------
    Instance

    Raises
    ------
    ModelError
        Naming the field and the reason, for every rule of docs/model.md the data breaks.

    Examples
    --------
    >>> inst = make_instance(name="one", tiers=[{"name": "hbm", "capacity_bytes": 1,
    ...     "bandwidth_Bps": 2.0}, {"name": "dram", "capacity_bytes": None,
    ...     "bandwidth_Bps": 1.0}], size_bytes=[1], num_epochs=1, reads=([0], [0], [1]))
    >>> inst.num_items, inst.num_epochs
    (1, 1)
    """
    if not isinstance(name, str):
        raise ModelError("name", "must be a string")
    if mode not in MODES:
        raise ModelError("mode", f"must be one of {', '.join(MODES)}, got {mode!r}")
    # Tier objects are validated like dicts (and their numbers normalised to float)
    tiers = tuple(make_tier(dataclasses.asdict(t) if isinstance(t, Tier) else t, k)
                  for k, t in enumerate(tiers))
    if len(tiers) < 1:
        raise ModelError("tiers", "at least one tier is required")
    names = [t.name for t in tiers]
    if len(set(names)) != len(names):
        raise ModelError("tiers", f"tier names must be distinct, got {names}")
    if mode == "inclusive" and len(tiers) != 2:
        raise ModelError("mode", f"inclusive mode needs exactly 2 tiers, got {len(tiers)}")
    if isinstance(num_epochs, bool) or not isinstance(num_epochs, (int, np.integer)) or num_epochs < 1:
        raise ModelError("epochs.count", f"must be a whole number >= 1, got {num_epochs!r}")
    if num_epochs > MAX_EPOCHS:
        raise ModelError("epochs.count", f"{num_epochs} epochs: at most {MAX_EPOCHS:,} "
                         f"(every epoch costs memory in every method)")
    E = int(num_epochs)
    size = _int_array(size_bytes, "items.size_bytes")
    N = size.shape[0]
    if N > MAX_ITEMS:
        raise ModelError("items.size_bytes", f"{N} items: at most {MAX_ITEMS:,}")
    if N and np.any(size <= 0):
        k = int(np.flatnonzero(size <= 0)[0])
        raise ModelError("items.size_bytes", f"item {k}: size {size[k]} must be > 0")
    _check_bytes(size, "items.size_bytes", "in one item")
    if _total(size) > MAX_BYTES:
        raise ModelError("items.size_bytes", f"{_total(size):.4g} bytes in all items: at most "
                         f"2**53 ({MAX_BYTES}), so that sums stay exact")
    birth = np.zeros(N, np.int64) if birth is None else _int_array(birth, "items.birth", N)
    death = np.full(N, E, np.int64) if death is None else _int_array(death, "items.death", N)
    pinned = np.full(N, -1, np.int64) if pinned_tier is None else _int_array(pinned_tier, "items.pinned_tier", N)
    initial = np.full(N, -1, np.int64) if initial_tier is None else _int_array(initial_tier, "items.initial_tier", N)
    if N:
        for arr, fname, lo, hi in ((birth, "items.birth", 0, E - 1), (death, "items.death", 1, E)):
            bad = np.flatnonzero((arr < lo) | (arr > hi))
            if bad.size:
                k = bad[0]
                raise ModelError(fname, f"item {k}: {arr[k]} outside {lo}..{hi}")
        bad = np.flatnonzero(death <= birth)
        if bad.size:
            k = bad[0]
            raise ModelError("items.death", f"item {k}: death {death[k]} must be after birth {birth[k]}")
        K = len(tiers)
        for arr, fname in ((pinned, "items.pinned_tier"), (initial, "items.initial_tier")):
            bad = np.flatnonzero((arr < -1) | (arr >= K))
            if bad.size:
                k = bad[0]
                raise ModelError(fname, f"item {k}: tier {arr[k]} does not exist (tiers 0..{K - 1}, or -1)")
        bad = np.flatnonzero((pinned >= 0) & (initial >= 0) & (pinned != initial))
        if bad.size:
            k = bad[0]
            raise ModelError("items.initial_tier", f"item {k}: initial tier {initial[k]} contradicts pin to tier {pinned[k]}")
    if min_time_s is None:
        c = np.zeros(E)
    else:
        c = _float_array(min_time_s, "epochs.min_time_s", E)
        if np.any(c < 0):
            raise ModelError("epochs.min_time_s", f"epoch {int(np.flatnonzero(c < 0)[0])}: must be >= 0")
        bad = np.flatnonzero((c != 0) & ((c < MIN_FLOOR_S) | (c > MAX_FLOOR_S)))
        if bad.size:
            e = int(bad[0])
            raise ModelError("epochs.min_time_s", f"epoch {e}: {c[e]!r} s is outside "
                             f"[{MIN_FLOOR_S:g}, {MAX_FLOOR_S:g}] (or 0): times would overflow "
                             f"or underflow")
    r = _access_arrays("reads", *reads, N, E, birth, death, size)
    w = _access_arrays("writes", *writes, N, E, birth, death, size)
    ilab = {}
    for key, vals in (item_labels or {}).items():
        if key not in ITEM_LABELS:
            raise ModelError(f"items.{key}", "unknown item label")
        arr = np.asarray(vals)
        if arr.shape != (N,):
            raise ModelError(f"items.{key}", f"has {arr.size} entries, expected {N}")
        if key == "kind":
            arr = arr.astype(str)
        else:
            arr = _int_array(arr, f"items.{key}", N)
        ilab[key] = _ro(arr)
    elab = {}
    for key, vals in (epoch_labels or {}).items():
        if key not in EPOCH_LABELS:
            raise ModelError(f"epochs.{key}", "unknown epoch label")
        elab[key] = _ro(_int_array(vals, f"epochs.{key}", E))
    return Instance(name=name, mode=mode, tiers=tiers, size_bytes=_ro(size), birth=_ro(birth),
                    death=_ro(death), pinned_tier=_ro(pinned), initial_tier=_ro(initial),
                    num_epochs=E, min_time_s=_ro(c), read_epoch=r[0], read_item=r[1],
                    read_bytes=r[2], write_epoch=w[0], write_item=w[1], write_bytes=w[2],
                    item_labels=ilab, epoch_labels=elab, metadata=dict(metadata or {}))


#: the access arrays of an instance (:func:`narrow_accesses`, :func:`widen_accesses`)
ACCESS_FIELDS = ("read_epoch", "read_item", "read_bytes", "write_epoch", "write_item",
                 "write_bytes")

_INT32_MAX = np.iinfo(np.int32).max


def access_dtype(max_value: int) -> np.dtype:
    """The dtype of a compact access array whose entries are at most ``max_value``:
    int32 when it holds them, else int64."""
    return np.dtype(np.int32) if int(max_value) <= _INT32_MAX else np.dtype(np.int64)


def narrow_accesses(inst: Instance) -> Instance:
    """``inst`` with its access arrays in the compact form: each int32 where its values
    fit (epochs, items, and bytes below 2**31), else left int64; the same content in half
    the memory or less (docs/scale.md, "Compact read lists").

    Only the policy engine (:mod:`hetkv_opt.policies.run`, whose views hand out int64
    slices) and the evaluator take the compact form; :func:`widen_accesses` gives the
    int64 form back, and ``solve`` widens what it is given.

    Examples
    --------
    >>> c = narrow_accesses(tiny_instance())
    >>> c.read_item.dtype.name, widen_accesses(c).equals(tiny_instance())
    ('int32', True)
    """
    new = {}
    for name in ACCESS_FIELDS:
        a = getattr(inst, name)
        top = int(a.max()) if a.size else 0
        dt = access_dtype(top)
        if a.dtype != dt:
            new[name] = _ro(a.astype(dt))
    return dataclasses.replace(inst, **new) if new else inst


def widen_accesses(inst: Instance) -> Instance:
    """``inst`` with every access array int64 (itself when they already are)."""
    new = {name: _ro(getattr(inst, name).astype(np.int64)) for name in ACCESS_FIELDS
           if getattr(inst, name).dtype != np.int64}
    return dataclasses.replace(inst, **new) if new else inst


def tiny_instance() -> Instance:
    """The worked example of docs/model.md section 6 (optimal T = 2.0 s).

    Examples
    --------
    >>> tiny_instance().num_items
    3
    """
    return make_instance(
        name="tiny",
        tiers=[{"name": "hbm", "capacity_bytes": 2, "bandwidth_Bps": 4.0},
               {"name": "dram", "capacity_bytes": None, "bandwidth_Bps": 1.0,
                "link_read_Bps": 1.0, "link_write_Bps": 1.0}],
        size_bytes=[1, 1, 1], birth=[0, 0, 1], death=[3, 3, 3], num_epochs=3,
        reads=([0, 0, 1, 2, 2], [0, 1, 2, 0, 2], [1, 1, 1, 1, 1]),
        writes=([1], [2], [1]))
