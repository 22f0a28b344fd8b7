"""Write an NPZ instance file chunk by chunk, without holding its reads in memory.

:func:`hetkv_opt.io.files.save_instance` needs the whole :class:`~hetkv_opt.model.instance.Instance`
in memory, and ``np.savez_compressed`` then keeps another compressed copy of it: at the
scale of the paper's workload (hundreds of millions of reads) that is many gigabytes.
:class:`NpzInstanceWriter` takes the small arrays (items, epochs) up front, validates them,
and then accepts reads and writes in ``(epoch, item)`` order, a chunk at a time.  Each big
array is spooled to a raw temporary file next to the target; :meth:`NpzInstanceWriter.close`
then writes the NPZ (one compressed ``.npy`` member per array, exactly the layout and
dtypes of ``save_instance``) to a temporary file and renames it, so an interrupted run
leaves no half file and no spool behind.  Memory stays at one chunk plus a copy buffer.

Every chunk is checked against docs/model.md as it arrives (epoch range, the item's life,
``0 < bytes <= size``, strictly increasing ``(epoch, item)``), so a file this writer
completes always loads; :attr:`NpzInstanceWriter.sha256` is the
:func:`hetkv_opt.io.files.instance_hash` of the file's content, computed while writing.

Examples
--------
>>> import os, tempfile
>>> from hetkv_opt.model.instance import tiny_instance
>>> from hetkv_opt.io.files import instance_hash, load_instance
>>> inst = tiny_instance()
>>> path = os.path.join(tempfile.mkdtemp(), "tiny.npz")
>>> with NpzInstanceWriter(path, name="tiny", tiers=inst.tiers, num_epochs=3,
...                        items={"size_bytes": [1, 1, 1], "birth": [0, 0, 1]}) as w:
...     w.add_reads([0, 0, 1], [0, 1, 2], [1, 1, 1])
...     w.add_reads([2, 2], [0, 2], [1, 1])
...     w.add_writes([1], [2], [1])
>>> load_instance(path).equals(inst), w.sha256 == instance_hash(inst)
(True, True)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from hetkv_opt.model.instance import Instance, ModelError, make_instance
from hetkv_opt.io.formats import hash_array

_ACCESS = ("epoch", "item", "bytes")
_COPY_BYTES = 1 << 24                  # copy buffer: 16 MiB
_I8 = np.dtype("<i8")


def static_instance(*, name: str, tiers, num_epochs: int, items: Mapping[str, Any],
                    epochs: Mapping[str, Any] | None = None, mode: str = "exclusive",
                    metadata: Mapping[str, Any] | None = None) -> Instance:
    """The items, epochs and header of a streamed instance, validated as
    :func:`~hetkv_opt.model.instance.make_instance` does, with no reads or writes yet."""
    from hetkv_opt.model.instance import EPOCH_LABELS, ITEM_LABELS
    items = dict(items)
    epochs = dict(epochs or {})
    if "size_bytes" not in items:
        raise ModelError("items.size_bytes", "missing required key")
    unknown = set(items) - {"size_bytes", "birth", "death", "pinned_tier", "initial_tier", *ITEM_LABELS}
    if unknown:
        raise ModelError(f"items.{sorted(unknown)[0]}", "unknown key")
    unknown = set(epochs) - {"min_time_s", *EPOCH_LABELS}
    if unknown:
        raise ModelError(f"epochs.{sorted(unknown)[0]}", "unknown key")
    return make_instance(
        name=name, tiers=tiers, size_bytes=items["size_bytes"], num_epochs=num_epochs,
        birth=items.get("birth"), death=items.get("death"),
        pinned_tier=items.get("pinned_tier"), initial_tier=items.get("initial_tier"),
        min_time_s=epochs.get("min_time_s"), mode=mode,
        item_labels={k: items[k] for k in ITEM_LABELS if k in items},
        epoch_labels={k: epochs[k] for k in EPOCH_LABELS if k in epochs},
        metadata=metadata)


def check_chunk(kind: str, epoch, item, nbytes, *, base: int, last: tuple[int, int],
                num_epochs: int, size: np.ndarray, birth: np.ndarray, death: np.ndarray):
    """One chunk of reads or writes as int64 arrays, checked against docs/model.md (epoch
    range, item range, ``0 < bytes <= size``, inside the item's life, strictly after
    ``last`` and increasing in ``(epoch, item)``); ``base`` is the index of its first
    entry, named in the error."""
    e = np.asarray(epoch, dtype=_I8).reshape(-1)
    i = np.asarray(item, dtype=_I8).reshape(-1)
    b = np.asarray(nbytes, dtype=_I8).reshape(-1)
    if not (e.shape == i.shape == b.shape):
        raise ModelError(f"{kind}.item", f"epoch, item and bytes have {e.size}, {i.size}, {b.size} entries")
    if e.size == 0:
        return e, i, b
    num_items = size.shape[0]
    bad = np.flatnonzero((e < 0) | (e >= num_epochs))
    if bad.size:
        raise ModelError(f"{kind}.epoch", f"entry {base + bad[0]}: epoch {e[bad[0]]} outside 0..{num_epochs - 1}")
    bad = np.flatnonzero((i < 0) | (i >= num_items))
    if bad.size:
        raise ModelError(f"{kind}.item", f"entry {base + bad[0]}: item {i[bad[0]]} outside 0..{num_items - 1}")
    bad = np.flatnonzero(b <= 0)
    if bad.size:
        raise ModelError(f"{kind}.bytes", f"entry {base + bad[0]}: {b[bad[0]]} bytes, must be > 0")
    bad = np.flatnonzero(b > size[i])
    if bad.size:
        k = bad[0]
        raise ModelError(f"{kind}.bytes", f"entry {base + k}: {b[k]} bytes of item {i[k]} exceed its size {size[i[k]]}")
    bad = np.flatnonzero((e < birth[i]) | (e >= death[i]))
    if bad.size:
        k = bad[0]
        raise ModelError(f"{kind}.epoch", f"entry {base + k}: item {i[k]} is accessed at epoch {e[k]} "
                         f"outside its life [{birth[i[k]]}, {death[i[k]]})")
    # strictly increasing (epoch, item), within the chunk and after the previous chunk
    pe, pi = last
    ee = np.concatenate([[pe], e])
    ii = np.concatenate([[pi], i])
    bad = np.flatnonzero((ee[1:] < ee[:-1]) | ((ee[1:] == ee[:-1]) & (ii[1:] <= ii[:-1])))
    if bad.size:
        k = bad[0]
        raise ModelError(f"{kind}.item", f"entry {base + k}: (epoch {e[k]}, item {i[k]}) is not after "
                         f"(epoch {ee[k]}, item {ii[k]}): add accesses sorted by (epoch, item), without duplicates")
    return e, i, b


class NpzInstanceWriter:
    """Stream an instance to an NPZ file (the layout of :func:`hetkv_opt.io.files.save_instance`).

    Parameters
    ----------
    path : str or PathLike
        The ``.npz`` file to write (replaced atomically on :meth:`close`).
    name : str
    tiers : sequence of Tier or tier mappings
    num_epochs : int
    items : mapping of str -> array-like, shape (N,)
        ``size_bytes`` (required), ``birth``, ``death``, ``pinned_tier``, ``initial_tier``
        and the labels ``kind``, ``layer``, ``request``, ``block``.
    epochs : mapping of str -> array-like, shape (E,), optional
        ``min_time_s`` and the labels ``step``, ``layer``.
    mode : {"exclusive", "inclusive"}
    metadata : dict, optional
    compresslevel : int
        zlib level of the members (6 = ``np.savez_compressed``; 1 is faster, larger).

    Raises
    ------
    ModelError
        For items, epochs or tiers that break docs/model.md (at construction), and for reads
        or writes that do (in :meth:`add_reads` / :meth:`add_writes`).
    """

    def __init__(self, path: str | os.PathLike, *, name: str, tiers, num_epochs: int,
                 items: Mapping[str, Any], epochs: Mapping[str, Any] | None = None,
                 mode: str = "exclusive", metadata: Mapping[str, Any] | None = None,
                 compresslevel: int = 6):
        from hetkv_opt.io.formats import _instance_arrays
        self.path = Path(path)
        if self.path.suffix.lower() != ".npz":
            raise ModelError("(file)", f"{self.path}: a streamed instance must end in .npz")
        if not (0 <= int(compresslevel) <= 9):
            raise ModelError("compresslevel", f"must be 0..9, got {compresslevel}")
        self.compresslevel = int(compresslevel)
        static = static_instance(name=name, tiers=tiers, num_epochs=num_epochs, items=items,
                                 epochs=epochs, mode=mode, metadata=metadata)
        arrays, header = _instance_arrays(static)
        self.header = header
        self._static = {k: v for k, v in arrays.items() if not k.startswith(("reads.", "writes."))}
        self._size = static.size_bytes
        self._birth = static.birth
        self._death = static.death
        self.num_epochs = static.num_epochs
        self.num_items = static.num_items
        self.counts = {"reads": 0, "writes": 0}
        self.totals_bytes = {"reads": 0, "writes": 0}
        self._last = {"reads": (-1, -1), "writes": (-1, -1)}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._spool_dir = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.spool.", dir=self.path.parent))
        self._spool = {f"{kind}.{k}": open(self._spool_dir / f"{kind}.{k}", "wb")
                       for kind in ("reads", "writes") for k in _ACCESS}
        self.sha256: str | None = None
        self._closed = False

    # ------------------------------------------------------------------ accesses
    def add_reads(self, epoch, item, nbytes) -> None:
        """Append reads, sorted by ``(epoch, item)`` and after every earlier read."""
        self._add("reads", epoch, item, nbytes)

    def add_writes(self, epoch, item, nbytes) -> None:
        """Append writes, sorted by ``(epoch, item)`` and after every earlier write."""
        self._add("writes", epoch, item, nbytes)

    def _add(self, kind: str, epoch, item, nbytes) -> None:
        if self._closed:
            raise ModelError(kind, "the writer is closed")
        e, i, b = check_chunk(kind, epoch, item, nbytes, base=self.counts[kind],
                              last=self._last[kind], num_epochs=self.num_epochs,
                              size=self._size, birth=self._birth, death=self._death)
        if e.size == 0:
            return
        self._last[kind] = (int(e[-1]), int(i[-1]))
        for key, arr in zip(_ACCESS, (e, i, b)):
            arr.tofile(self._spool[f"{kind}.{key}"])
        self.counts[kind] += int(e.size)
        self.totals_bytes[kind] += int(b.sum())

    # ------------------------------------------------------------------ finishing
    def close(self) -> str:
        """Write the NPZ (temp file + rename) and remove the spool; return the content hash."""
        if self._closed:
            return self.sha256
        for fh in self._spool.values():
            fh.close()
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        os.close(fd)
        try:
            self.sha256 = self._write_zip(tmp)
            from hetkv_opt.io.formats import _umask_mode
            os.chmod(tmp, _umask_mode())
            os.replace(tmp, self.path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        finally:
            self._closed = True
            shutil.rmtree(self._spool_dir, ignore_errors=True)
        return self.sha256

    def abort(self) -> None:
        """Drop everything written so far: no file, no spool."""
        for fh in self._spool.values():
            fh.close()
        self._closed = True
        shutil.rmtree(self._spool_dir, ignore_errors=True)

    def __enter__(self) -> "NpzInstanceWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _write_zip(self, tmp: str) -> str:
        h = hashlib.sha256()
        h.update(json.dumps(self.header, sort_keys=True, separators=(",", ":")).encode())
        big = {f"{kind}.{k}": (self._spool_dir / f"{kind}.{k}", self.counts[kind])
               for kind in ("reads", "writes") for k in _ACCESS}
        keys = sorted(set(self._static) | set(big))
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED,
                             compresslevel=self.compresslevel, allowZip64=True) as zf:
            header = np.array(json.dumps(self.header, separators=(",", ":"), allow_nan=False))
            with zf.open("header.npy", "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, header, allow_pickle=False)
            for key in keys:
                with zf.open(f"{key}.npy", "w", force_zip64=True) as fh:
                    if key in self._static:
                        arr = self._static[key]
                        hash_array(h, key, arr)
                        np.lib.format.write_array(fh, arr, allow_pickle=False)
                        continue
                    spool, count = big[key]
                    np.lib.format.write_array_header_1_0(
                        fh, {"descr": np.lib.format.dtype_to_descr(_I8), "fortran_order": False,
                             "shape": (count,)})
                    h.update(key.encode())
                    with open(spool, "rb") as src:
                        while True:
                            buf = src.read(_COPY_BYTES)
                            if not buf:
                                break
                            h.update(buf)
                            fh.write(buf)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        return h.hexdigest()


def stream_instance(inst: Instance, path: str | os.PathLike, epochs_per_chunk: int = 4096,
                    compresslevel: int = 6) -> str:
    """Write an in-memory instance through :class:`NpzInstanceWriter` (returns its hash).

    Mostly for tests and for converting; ``save_instance`` is simpler when the instance
    fits in memory twice.
    """
    return write_through(NpzInstanceWriter, inst, path, epochs_per_chunk, compresslevel)


def write_through(writer_cls, inst: Instance, path: str | os.PathLike, epochs_per_chunk: int,
                  compresslevel: int) -> str:
    """Feed an in-memory instance to a streaming writer (this module's, or the sharded
    one) in chunks of ``epochs_per_chunk`` epochs; returns the writer's hash."""
    items = {k: getattr(inst, k) for k in ("size_bytes", "birth", "death", "pinned_tier", "initial_tier")}
    items.update(inst.item_labels)
    epochs = {"min_time_s": inst.min_time_s, **inst.epoch_labels}
    with writer_cls(path, name=inst.name, tiers=inst.tiers, num_epochs=inst.num_epochs,
                    items=items, epochs=epochs, mode=inst.mode, metadata=inst.metadata,
                    compresslevel=compresslevel) as w:
        for kind, (e, i, b) in (("reads", (inst.read_epoch, inst.read_item, inst.read_bytes)),
                                ("writes", (inst.write_epoch, inst.write_item, inst.write_bytes))):
            cuts = np.searchsorted(e, np.arange(0, inst.num_epochs + epochs_per_chunk, epochs_per_chunk))
            for lo, hi in zip(cuts[:-1], cuts[1:]):
                if hi > lo:
                    w._add(kind, e[lo:hi], i[lo:hi], b[lo:hi])
    return w.sha256


__all__ = ["NpzInstanceWriter", "check_chunk", "static_instance", "stream_instance", "write_through"]
