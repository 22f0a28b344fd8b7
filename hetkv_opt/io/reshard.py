"""Converting an instance file to the sharded layout (:mod:`hetkv_opt.io.shards`) without
loading its read list (docs/model.md section 6, docs/scale.md "Sharded instance files").

:func:`npz_to_sharded` turns ``NAME.npz`` into ``NAME.hetkv/``.  The small members (header,
items, epochs) are loaded and validated as :func:`~hetkv_opt.io.files.load_instance` does;
the read and write lists are then read from their ``.npy`` members a chunk at a time
(decompressed as they are read), every chunk checked as the loader checks the whole list
(ranges, ``0 < bytes <= size``, lives, sorted by (epoch, item) without duplicates, the
total), and dealt to one spool per layer by
:class:`~hetkv_opt.io.shards_stream.ShardedInstanceWriter`, which writes the folder
(temporary folder, then a rename).  Memory stays at the items, the epochs and one chunk
(:data:`_CHUNK` entries), whatever the number of reads, and the folder is the same bytes
as ``save_sharded(load_instance(path), out)``.

A file is refused with the loader's message, naming the file and the field: a problem in
the accesses is located by a second streamed pass that applies the loader's checks in the
loader's order (the first epoch out of range before the first item out of range, and so
on), and a bad item or epoch label is reported only after the accesses, as the loader
does.  A file that is not in the form this reads (members that are not 1-D little-endian
int64 arrays, accesses out of (epoch, item) order, which the loader sorts, anything odd in
the zip) is loaded whole instead (:func:`load_instance` + :func:`save_sharded`): it is
converted or refused exactly as loading it would.

:func:`convert_instance` is ``hetkv convert``: this for ``.npz`` to ``.hetkv``, and
``load_instance`` + ``save_instance`` for every other pair of forms.

>>> import os, tempfile
>>> from hetkv_opt.io.files import save_instance
>>> from hetkv_opt.io.shards import open_sharded
>>> from hetkv_opt.workloads.paper import paper_instance
>>> inst = paper_instance(layers=2, prompt_tokens=32, steps=4)
>>> d = tempfile.mkdtemp()
>>> save_instance(inst, os.path.join(d, "p.npz"))
>>> out = npz_to_sharded(os.path.join(d, "p.npz"), os.path.join(d, "p.hetkv"))
>>> out["streamed"], out["layers"], open_sharded(os.path.join(d, "p.hetkv")).load_all().equals(inst)
(True, [0, 1], True)
"""

from __future__ import annotations

import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from hetkv_opt.io.files import _unflatten, instance_from_dict, load_instance, save_instance
from hetkv_opt.io.formats import (_ITEM_ARRAYS, FileFormatError, check_header, check_readable_file,
                                  instance_hash, read_npz_with_header)
from hetkv_opt.io.npz_stream import check_chunk
from hetkv_opt.io.shards import open_sharded
from hetkv_opt.io.shards_stream import ShardedInstanceWriter
from hetkv_opt.io.shards_write import SUFFIX, _check_target, is_sharded_path, save_sharded
from hetkv_opt.io.summary import _Fallback, _member
from hetkv_opt.model.instance import (EPOCH_LABELS, ITEM_LABELS, MAX_TOTAL_ACCESS_BYTES,
                                      SCHEMA_INSTANCE, SCHEMA_VERSION, Instance, ModelError)

_CHUNK = 1 << 20                        # entries per chunk of a streamed member (24 MB a chunk)
_I8 = np.dtype("<i8")
_KINDS = ("reads", "writes")
_ACCESS = ("epoch", "item", "bytes")
_MEMBERS = frozenset(f"{k}.{c}" for k in _KINDS for c in _ACCESS)
#: the fields of the label checks, which the loader makes after the accesses
_LABEL_FIELDS = frozenset({f"items.{k}" for k in ITEM_LABELS} | {f"epochs.{k}" for k in EPOCH_LABELS})
_DAMAGE = (zipfile.BadZipFile, zlib.error, EOFError)

Progress = Callable[[int, int], None]


class _Unsorted(Exception):
    """Accesses out of (epoch, item) order: valid in a file (the loader sorts them), but
    not streamable."""


@dataclass
class _Plan:
    """What the small members of a streamable file gave: the validated instance without
    accesses, a label error to raise after the accesses, and the lengths of the members."""

    static: Instance
    deferred: ModelError | None
    lengths: dict


# ----------------------------------------------------------------------------- the API

def npz_to_sharded(npz_path: str | os.PathLike, out_dir: str | os.PathLike, *,
                   compresslevel: int = 6, progress: Progress | None = None) -> dict:
    """Convert an instance NPZ file to a sharded folder ``out_dir`` (``*.hetkv``), streaming.

    Parameters
    ----------
    npz_path : str or PathLike
        An instance ``.npz`` file (any other file is loaded whole: :func:`load_instance`).
    out_dir : str or PathLike
        The folder to write, ending in ``.hetkv``; a sharded instance there is replaced
        whole, anything else there is refused before the input is read.
    compresslevel : int
        zlib level of the folder's files (6: the bytes of :func:`save_sharded`).
    progress : callable, optional
        ``progress(done, total)``: accesses converted so far, of all reads and writes
        (the streaming path only).

    Returns
    -------
    dict
        ``path``, ``source``, ``name``, ``items``, ``epochs``, ``reads``, ``writes``,
        ``read_bytes``, ``write_bytes``, ``layers`` (of the shards), ``sha256`` (the
        instance hash) and ``streamed`` (False when the file was loaded whole).

    Raises
    ------
    ModelError
        Naming the file, the field and the reason, as :func:`load_instance` does for the
        same file; a bad target, naming it.  Nothing is left under ``out_dir`` then.
    """
    src, out = Path(npz_path), Path(out_dir)
    if not (0 <= int(compresslevel) <= 9):
        raise ModelError("compresslevel", f"must be 0..9, got {compresslevel}")
    _check_target(out)
    try:
        plan = _plan(src)
    except ModelError as exc:
        raise exc.with_source(str(src)) from None
    if plan is None:
        return _whole(src, out, compresslevel)
    try:
        _stream(src, out, plan, int(compresslevel), progress)
    except (_Fallback, _Unsorted):
        return _whole(src, out, compresslevel)
    return _result(src, out, streamed=True)


def convert_instance(source: str | os.PathLike, target: str | os.PathLike, *,
                     compresslevel: int = 6, progress: Progress | None = None) -> dict:
    """``hetkv convert``: an instance file in another form.  ``.npz`` to ``.hetkv`` streams
    (:func:`npz_to_sharded`); every other pair (a ``.hetkv`` folder to ``.npz``, JSON either
    way) loads the instance whole (:func:`load_instance` + :func:`save_instance`).

    Returns the dict of :func:`npz_to_sharded` (``layers`` only for a ``.hetkv`` target)."""
    src, dst = Path(source), Path(target)
    if dst.suffix.lower() == SUFFIX:
        if src.suffix.lower() == ".npz" and not is_sharded_path(src):
            return npz_to_sharded(src, dst, compresslevel=compresslevel, progress=progress)
        return _whole(src, _check_target(dst), compresslevel)
    inst = load_instance(src)
    save_instance(inst, dst)
    return {"path": str(dst), "source": str(src), **_counts(inst), "sha256": instance_hash(inst),
            "streamed": False}


# ----------------------------------------------------------------------------- the small members

def _plan(src: Path) -> _Plan | None:
    """Read and validate everything but the accesses, as the loader does; None for a file
    this does not stream (the loader decides about it)."""
    check_readable_file(src)
    if not zipfile.is_zipfile(src):
        return None                      # the loader's "not an NPZ file"
    try:
        with zipfile.ZipFile(src) as zf:
            names = zf.namelist()
    except (*_DAMAGE, OSError):
        return None
    if len(set(names)) != len(names) or not all(n.endswith(".npy") for n in names):
        return None
    keys = {n[:-4] for n in names}
    if any(k.startswith(("reads.", "writes.")) for k in keys - _MEMBERS):
        return None
    big = keys & _MEMBERS
    arrays, header = read_npz_with_header(src, "instance", skip=frozenset(big))
    if not isinstance(header, dict):
        instance_from_dict(header)       # refused as the loader refuses it
        return None                      # pragma: no cover - never reached
    if header.get("schema") == SCHEMA_INSTANCE:
        check_header(header, schema=SCHEMA_INSTANCE, versions=SCHEMA_VERSION)
    if "reads" in header or "writes" in header:
        return None                      # accesses in the header: odd, the loader decides
    lengths = {}
    try:
        with zipfile.ZipFile(src) as zf:
            for key in sorted(big):
                fh, n = _member(zf, key)
                fh.close()
                lengths[key] = n
    except _Fallback:
        return None
    except _DAMAGE as exc:
        raise _damaged(exc) from None
    empty = np.zeros(0, np.int64)
    d = _unflatten(header, {**arrays, **{k: empty for k in big}})
    try:
        return _Plan(instance_from_dict(d), None, lengths)
    except ModelError as exc:
        if exc.field not in _LABEL_FIELDS:
            raise
        deferred = exc                   # the loader checks labels after the accesses
    for block, labels in (("items", ITEM_LABELS), ("epochs", EPOCH_LABELS)):
        if isinstance(d.get(block), dict):
            d[block] = {k: v for k, v in d[block].items() if k not in labels}
    return _Plan(instance_from_dict(d), deferred, lengths)


def _damaged(exc: BaseException) -> FileFormatError:
    """The loader's words for a damaged member."""
    return FileFormatError("(file)", f"not a readable NPZ instance file: damaged or truncated "
                           f"({type(exc).__name__}: {exc})")


# ----------------------------------------------------------------------------- the accesses

def _stream(src: Path, out: Path, plan: _Plan, compresslevel: int, progress: Progress | None) -> None:
    st = plan.static
    writer = None
    if plan.deferred is None:
        items = {k: getattr(st, k) for k in _ITEM_ARRAYS}
        items.update(st.item_labels)
        writer = ShardedInstanceWriter(
            out, name=st.name, tiers=st.tiers, num_epochs=st.num_epochs, items=items,
            epochs={"min_time_s": st.min_time_s, **st.epoch_labels}, mode=st.mode,
            metadata=st.metadata, compresslevel=compresslevel)
    total = sum(n for k, n in plan.lengths.items() if k.endswith(".epoch"))
    done = [0]
    try:
        try:
            with zipfile.ZipFile(src) as zf:
                for kind in _KINDS:
                    _stream_kind(zf, kind, plan, writer, progress, done, total)
            if plan.deferred is not None:
                raise plan.deferred
        except ModelError as exc:
            raise exc.with_source(str(src)) from None
        except _DAMAGE as exc:
            raise _damaged(exc).with_source(str(src)) from None
        writer.close()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise


def _stream_kind(zf: zipfile.ZipFile, kind: str, plan: _Plan, writer, progress, done, total) -> None:
    """Check one access list a chunk at a time and deal it to the writer's spools."""
    keys = [f"{kind}.{c}" for c in _ACCESS]
    if not any(k in plan.lengths for k in keys):
        return                           # no writes at all (the loader's default); reads are required
    ne, ni, nb = (plan.lengths[k] for k in keys)
    if ni != ne:
        raise ModelError(f"{kind}.item", f"has {ni} entries, expected {ne}")
    if nb != ne:
        raise ModelError(f"{kind}.bytes", f"has {nb} entries, expected {ne}")
    st = plan.static
    base, last, sum_bytes = 0, (-1, -1), 0.0
    for e, i, b in _columns(zf, kind, ne):
        sum_bytes += float(np.sum(b, dtype=np.float64))
        try:
            if sum_bytes > MAX_TOTAL_ACCESS_BYTES:
                raise ModelError(f"{kind}.bytes", "too many bytes in all")
            e, i, b = check_chunk(kind, e, i, b, base=base, last=last, num_epochs=st.num_epochs,
                                  size=st.size_bytes, birth=st.birth, death=st.death)
        except ModelError:
            _diagnose(zf, kind, st, ne)  # the loader's first problem (or _Unsorted)
            raise                        # pragma: no cover - _diagnose always raises
        if writer is not None:
            writer._deal(kind, e, i, b)
        last = (int(e[-1]), int(i[-1]))
        base += e.size
        done[0] += e.size
        if progress is not None:
            progress(done[0], total)


def _columns(zf: zipfile.ZipFile, kind: str, n: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``(epoch, item, bytes)`` of one access list, ``_CHUNK`` entries at a time, each
    member read to its end (so that its CRC is checked)."""
    handles = []
    try:
        for c in _ACCESS:
            handles.append(_member(zf, f"{kind}.{c}")[0])
        left = n
        while left:
            k = min(left, _CHUNK)
            yield tuple(_read(fh, k) for fh in handles)
            left -= k
        for fh in handles:
            if fh.read(1):
                raise _Fallback("long member")     # trailing data: the loader ignores it
    finally:
        for fh in handles:
            fh.close()


def _read(fh, k: int) -> np.ndarray:
    buf = fh.read(8 * k)
    if len(buf) != 8 * k:
        raise _Fallback("short member")            # truncated: the loader's own message
    return np.frombuffer(buf, dtype=_I8)


def _diagnose(zf: zipfile.ZipFile, kind: str, st: Instance, n: int) -> None:
    """Raise what the loader raises for this access list (its checks in its order, each
    the first entry that breaks it), or :class:`_Unsorted` when the list is merely out of
    order (the loader sorts it; duplicates are then found after sorting)."""
    E, N = st.num_epochs, st.num_items
    size, birth, death = st.size_bytes, st.birth, st.death
    first: dict[str, tuple[str, str]] = {}
    total = 0.0
    decrease, dup = False, None
    prev = None
    base = 0
    for e, i, b in _columns(zf, kind, n):
        ic = np.clip(i, 0, N - 1)        # only looked at when every item is in range
        checks = (
            ("epoch", (e < 0) | (e >= E), f"{kind}.epoch", "entry {at}: epoch {e} outside 0..%d" % (E - 1)),
            ("item", (i < 0) | (i >= N), f"{kind}.item", "entry {at}: item {i} outside 0..%d" % (N - 1)),
            ("positive", b <= 0, f"{kind}.bytes", "entry {at}: {b} bytes, must be > 0"),
            ("size", b > size[ic], f"{kind}.bytes", "entry {at}: {b} bytes of item {i} exceed its size {size}"),
            ("life", (e < birth[ic]) | (e >= death[ic]), f"{kind}.epoch",
             "entry {at}: item {i} is accessed at epoch {e} outside its life [{birth}, {death})"),
        )
        for check, mask, field, text in checks:
            if check not in first:
                bad = np.flatnonzero(mask)
                if bad.size:
                    k = int(bad[0])
                    first[check] = (field, text.format(at=base + k, e=e[k], i=i[k], b=b[k], size=size[ic[k]],
                                                       birth=birth[ic[k]], death=death[ic[k]]))
        total += float(np.sum(b, dtype=np.float64))
        ee = e if prev is None else np.concatenate([[prev[0]], e])
        ii = i if prev is None else np.concatenate([[prev[1]], i])
        de, di = ee[1:] - ee[:-1], ii[1:] - ii[:-1]
        decrease = decrease or bool(np.any((de < 0) | ((de == 0) & (di < 0))))
        if dup is None:
            same = np.flatnonzero((de == 0) & (di == 0))
            if same.size:
                dup = (ee[same[0]], ii[same[0]])
        prev = (e[-1], i[-1])
        base += e.size
    for check in ("epoch", "item", "positive"):
        if check in first:
            raise ModelError(*first[check])
    if total > MAX_TOTAL_ACCESS_BYTES:
        raise ModelError(f"{kind}.bytes", f"{total:.4g} bytes in all: at most 2**62, so that sums "
                         f"do not wrap")
    for check in ("size", "life"):
        if check in first:
            raise ModelError(*first[check])
    if decrease:
        raise _Unsorted(kind)
    if dup is not None:
        raise ModelError(f"{kind}.item", f"duplicate entry for epoch {dup[0]}, item {dup[1]}")
    raise RuntimeError(f"{kind}: a chunk was refused but no entry breaks a rule")  # a bug


# ----------------------------------------------------------------------------- the rest

def _whole(src: Path, out: Path, compresslevel: int) -> dict:
    """The fallback: load the file whole and save it sharded."""
    save_sharded(load_instance(src), out, compresslevel)
    return _result(src, out, streamed=False)


def _counts(inst: Instance) -> dict:
    return {"name": inst.name, "items": inst.num_items, "epochs": inst.num_epochs,
            "reads": int(inst.read_bytes.size), "writes": int(inst.write_bytes.size),
            "read_bytes": int(inst.read_bytes.sum()), "write_bytes": int(inst.write_bytes.sum())}


def _result(src: Path, out: Path, streamed: bool) -> dict:
    """What was written, from the new folder's manifest."""
    m = open_sharded(out).manifest
    shards = m["shards"]
    return {"path": str(out), "source": str(src), "name": m["name"], "items": m["items"]["count"],
            "epochs": m["epochs"]["count"],
            **{k: sum(s[k] for s in shards) for k in ("reads", "writes", "read_bytes", "write_bytes")},
            "layers": [s["layer"] for s in shards], "sha256": m["instance_sha256"],
            "streamed": streamed}


__all__ = ["convert_instance", "npz_to_sharded"]
