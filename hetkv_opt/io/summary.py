"""What ``hetkv info`` reports about an instance file, read without building the instance
when the file allows it.

:func:`describe` gives the sizes, tiers, read and written bytes, the aggregate-bandwidth
bound (docs/model.md section 5) and the instance hash of a JSON file, an NPZ file or a
sharded folder, the same numbers :func:`instance_summary` gives for the loaded instance:

- a **sharded folder** (:mod:`hetkv_opt.io.shards`): the manifest and ``epochs.npz``
  only (the shards are not opened; their checks run when they are loaded);
- an **NPZ file**: the small members (header, items, epochs) are loaded and validated as
  the loader does, and the read and write lists are streamed a chunk at a time through
  the same checks (ranges, sizes, lives, sorted and without duplicates), summed per epoch
  and hashed; memory stays at a few chunks.  A file this cannot read as it expects
  (another dtype, unsorted accesses, any problem at all) is loaded whole by
  :func:`~hetkv_opt.io.files.load_instance` instead, so a bad file is refused with the
  loader's own message and a good one gives the same numbers either way;
- a **JSON file**: loaded (JSON instances are small).

>>> import os, tempfile
>>> from hetkv_opt.io.files import save_instance
>>> from hetkv_opt.model.instance import tiny_instance
>>> path = os.path.join(tempfile.mkdtemp(), "tiny.npz")
>>> save_instance(tiny_instance(), path)
>>> describe(path) == instance_summary(tiny_instance())
True
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from hetkv_opt.io.files import _unflatten, instance_from_dict, load_instance
from hetkv_opt.io.formats import (_instance_arrays, check_readable_file, hash_array, instance_hash,
                                  parse_json)
from hetkv_opt.io.npz_stream import check_chunk
from hetkv_opt.io.shards import is_sharded_path, open_sharded
from hetkv_opt.model.instance import MAX_TOTAL_ACCESS_BYTES, Instance
from hetkv_opt.model import terms

_ACCESS = ("epoch", "item", "bytes")
_I8 = np.dtype("<i8")
_CHUNK = 1 << 20


def _tiers(tiers) -> list[dict]:
    return [{"name": t.name, "capacity_bytes": t.capacity_bytes, "bandwidth_Bps": t.bandwidth_Bps,
             "link_read_Bps": t.link_read_Bps, "link_write_Bps": t.link_write_Bps} for t in tiers]


def instance_summary(inst: Instance) -> dict:
    """The fields of ``hetkv info`` for an instance in memory."""
    return {"name": inst.name, "mode": inst.mode, "items": inst.num_items, "epochs": inst.num_epochs,
            "steps": inst.num_steps, "item_epochs": int((inst.death - inst.birth).sum()),
            "reads": int(inst.read_bytes.size), "read_bytes": int(inst.read_bytes.sum()),
            "writes": int(inst.write_bytes.size), "write_bytes": int(inst.write_bytes.sum()),
            "total_item_bytes": int(inst.size_bytes.sum()),
            "pinned_items": int((inst.pinned_tier >= 0).sum()), "tiers": _tiers(inst.tiers),
            "aggregate_bound_s": terms.aggregate_bound_s(inst), "sha256": instance_hash(inst)}


def describe(path: str | os.PathLike) -> dict:
    """The fields of ``hetkv info`` for an instance file or sharded folder (see the
    module docstring for what is read).

    Raises
    ------
    ModelError
        As :func:`~hetkv_opt.io.files.load_instance` (or
        :func:`~hetkv_opt.io.shards.open_sharded`) for a bad file.
    """
    path = Path(path)
    if is_sharded_path(path):
        return open_sharded(path).summary()
    if path.suffix.lower() == ".npz":
        try:
            out = _npz_summary(path)
        except Exception:          # noqa: BLE001 - anything unexpected: the loader decides
            out = None
        if out is not None:
            return out
    return instance_summary(load_instance(path))


class _Fallback(Exception):
    """The file is not in the form the streaming summary reads."""


def npz_read_count(path: str | os.PathLike) -> int | None:
    """The length of an instance NPZ's read list from its member header alone (None when
    the file is not an NPZ of that form): a cheap size check before loading anything."""
    try:
        with zipfile.ZipFile(path) as zf:
            fh, n = _member(zf, "reads.epoch")
            fh.close()
            return n
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, _Fallback):
        return None


def npz_layer_count(path: str | os.PathLike) -> int:
    """The number of distinct non-negative ``layer`` labels of an instance NPZ's items (0
    when it has none, or is not an NPZ of that form), from that member alone."""
    try:
        with zipfile.ZipFile(path) as zf:
            with zf.open("items.layer.npy") as fh:
                lab = np.lib.format.read_array(fh, allow_pickle=False)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return 0
    if lab.ndim != 1 or lab.dtype.kind not in "iu":
        return 0
    return int(np.unique(lab[lab >= 0]).size)


def _member(zf: zipfile.ZipFile, name: str):
    """An open ``.npy`` member of a 1-D little-endian int64 array, and its length."""
    fh = zf.open(f"{name}.npy")
    try:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        else:
            raise _Fallback(name)
    except BaseException:
        fh.close()
        raise
    if dtype != _I8 or len(shape) != 1 or (fortran and shape[0] > 1):
        fh.close()
        raise _Fallback(name)
    return fh, int(shape[0])


def _chunks(fh, n: int):
    """``n`` int64 entries of an open member, a chunk at a time."""
    left = n
    while left:
        k = min(left, _CHUNK)
        buf = fh.read(8 * k)
        if len(buf) != 8 * k:
            raise _Fallback("short member")
        yield np.frombuffer(buf, dtype=_I8)
        left -= k
    if fh.read(1):
        raise _Fallback("long member")


def _npz_summary(path: Path) -> dict | None:
    """The summary of an instance NPZ file, streamed; None to leave it to the loader."""
    check_readable_file(path)
    if not zipfile.is_zipfile(path):
        return None
    access = {f"{k}.{c}" for k in ("reads", "writes") for c in _ACCESS}
    with np.load(path, allow_pickle=False) as z:
        names = set(z.files)
        if not access <= names or any(n.startswith(("reads.", "writes.")) for n in names - access):
            return None
        arrays = {k: z[k] for k in names - access}      # the small members only
    header = parse_json(str(arrays.pop("header")))
    if not isinstance(header, dict):
        return None
    d = _unflatten(header, arrays)
    empty = np.zeros(0, np.int64)
    d["reads"] = {"epoch": empty, "item": empty, "bytes": empty}
    d["writes"] = {"epoch": empty, "item": empty, "bytes": empty}
    static = instance_from_dict(d)               # header, tiers, items, epochs: validated
    arrays, hdr = _instance_arrays(static)
    h = hashlib.sha256()
    h.update(json.dumps(hdr, sort_keys=True, separators=(",", ":")).encode())
    for key in sorted(k for k in arrays if not k.startswith(("reads.", "writes."))):
        hash_array(h, key, arrays[key])
    totals = {}
    with zipfile.ZipFile(path) as zf:
        for kind in ("reads", "writes"):
            totals[kind] = _stream_accesses(zf, kind, static, h)
    (nr, rb, per_epoch), (nw, wb, _) = totals["reads"], totals["writes"]
    return {"name": static.name, "mode": static.mode, "items": static.num_items,
            "epochs": static.num_epochs, "steps": static.num_steps,
            "item_epochs": int((static.death - static.birth).sum()),
            "reads": nr, "read_bytes": rb, "writes": nw, "write_bytes": wb,
            "total_item_bytes": int(static.size_bytes.sum()),
            "pinned_items": int((static.pinned_tier >= 0).sum()), "tiers": _tiers(static.tiers),
            "aggregate_bound_s": terms.aggregate_bound_from(static.tiers, static.min_time_s, per_epoch),
            "sha256": h.hexdigest()}


def _stream_accesses(zf: zipfile.ZipFile, kind: str, static: Instance, h) -> tuple:
    """Check, count, sum per epoch and hash one access list (in the hash's key order:
    bytes, epoch, item), streaming; the epochs are hashed from their per-epoch counts
    (they are sorted) and the items in a second pass over their member."""
    E = static.num_epochs
    handles = [_member(zf, f"{kind}.{c}") for c in _ACCESS]
    try:
        (fe, ne), (fi, ni), (fb, nb) = handles
        if not ne == ni == nb:
            raise _Fallback("lengths")
        counts = np.zeros(E, np.int64)
        per_epoch = np.zeros(E)
        total = 0
        last = (-1, -1)
        base = 0
        h.update(f"{kind}.bytes".encode())
        ge, gi, gb = _chunks(fe, ne), _chunks(fi, ni), _chunks(fb, nb)
        for e, i, b in zip(ge, gi, gb):
            e, i, b = check_chunk(kind, e, i, b, base=base, last=last, num_epochs=E,
                                  size=static.size_bytes, birth=static.birth, death=static.death)
            last = (int(e[-1]), int(i[-1]))
            base += e.size
            total += int(b.sum())
            if total > MAX_TOTAL_ACCESS_BYTES:
                raise _Fallback("total")
            first = np.flatnonzero(np.diff(e, prepend=-1))
            counts[e[first]] += np.diff(np.append(first, e.size))
            per_epoch[e[first]] += np.add.reduceat(b.astype(np.float64), first)
            h.update(b)
        for g in (ge, gi, gb):         # each to its end: no data left over, CRC checked
            if next(g, None) is not None:
                raise _Fallback("long member")
        if int(counts.sum()) != ne:
            raise _Fallback("counts")
    finally:
        for fh, _ in handles:
            fh.close()
    h.update(f"{kind}.epoch".encode())
    ends = np.cumsum(counts)
    starts = ends - counts
    for lo in range(0, ne, _CHUNK):             # entries lo..hi-1: epochs e0..e1
        hi = min(ne, lo + _CHUNK)
        e0, e1 = np.searchsorted(ends, [lo, hi - 1], side="right")
        c = np.minimum(ends[e0:e1 + 1], hi) - np.maximum(starts[e0:e1 + 1], lo)
        h.update(np.repeat(np.arange(e0, e1 + 1, dtype=_I8), c))
    h.update(f"{kind}.item".encode())
    fi, ni = _member(zf, f"{kind}.item")
    with fi:
        for i in _chunks(fi, ni):
            h.update(i)
    return ne, total, per_epoch


__all__ = ["describe", "instance_summary"]
