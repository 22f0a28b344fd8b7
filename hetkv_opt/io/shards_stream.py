"""Streaming a large instance straight to the sharded layout (:mod:`hetkv_opt.io.shards`).

:class:`ShardedInstanceWriter` is :class:`hetkv_opt.io.npz_stream.NpzInstanceWriter` for a
``NAME.hetkv`` folder: it takes the items and epochs up front (validated as
:func:`~hetkv_opt.model.instance.make_instance` does), then reads and writes in global
``(epoch, item)`` order, a chunk at a time, each checked as it arrives.  Every chunk is
cut by layer: each shard's entries go to a raw spool file of its own (epoch, the item's
index in the shard, bytes), and the run of shards the chunk visits is recorded (one run
per epoch when epochs are (step, layer): a few bytes per epoch).  :meth:`~ShardedInstanceWriter.close`
writes every shard from its spool, ``epochs.npz`` and the manifest into a temporary
folder next to the target and renames it; an error or an interruption leaves no folder
and no spool behind.  Memory stays at one chunk plus three numbers per epoch (read
bytes, reads, writes).

The instance hash (:func:`hetkv_opt.io.formats.instance_hash`, stored in the manifest) is
computed at close from the spools and the runs, in the global order: a streamed folder,
the folder :func:`~hetkv_opt.io.shards.save_sharded` writes of the same instance and its
NPZ file carry the same hash, and the two folders are the same bytes.

Examples
--------
>>> import os, tempfile
>>> from hetkv_opt.io.shards import open_sharded, save_sharded
>>> from hetkv_opt.workloads.paper import paper_instance
>>> inst = paper_instance(layers=2, prompt_tokens=32, steps=4)
>>> path = os.path.join(tempfile.mkdtemp(), "p.hetkv")
>>> sha = stream_sharded(inst, path)
>>> open_sharded(path).load_all().equals(inst), sha == open_sharded(path).manifest["instance_sha256"]
(True, True)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from hetkv_opt.io.formats import _instance_arrays, hash_array
from hetkv_opt.io.npz_stream import check_chunk, static_instance, write_through
from hetkv_opt.io.shards_write import (_CHUNK, Chunks, _check_target, commit_folder, layer_groups,
                                       shard_entry, shard_file_name, shard_header, static_members,
                                       temp_folder, write_epochs_file, write_manifest, write_npz)
from hetkv_opt.model.instance import Instance, ModelError

_KINDS = ("reads", "writes")
_REC = np.dtype([("epoch", "<i8"), ("item", "<i8"), ("bytes", "<i8")])
_RUN = np.dtype([("shard", "<i8"), ("count", "<i8")])


class ShardedInstanceWriter:
    """Stream an instance to a sharded folder (the layout of :func:`~hetkv_opt.io.shards.save_sharded`).

    Parameters
    ----------
    path : str or PathLike
        The ``*.hetkv`` folder to write (replaced atomically on :meth:`close` if it is a
        sharded instance; any other file or folder there is refused).
    name, tiers, num_epochs, items, epochs, mode, metadata, compresslevel
        As :class:`hetkv_opt.io.npz_stream.NpzInstanceWriter`.

    Attributes
    ----------
    counts, totals_bytes : dict
        Reads and writes added so far, and their bytes.
    sha256 : str or None
        The instance hash, after :meth:`close`.

    Raises
    ------
    ModelError
        For items, epochs, tiers or a target that break docs/model.md (at construction),
        and for reads or writes that do (in :meth:`add_reads` / :meth:`add_writes`).
    """

    def __init__(self, path: str | os.PathLike, *, name: str, tiers, num_epochs: int,
                 items: Mapping[str, Any], epochs: Mapping[str, Any] | None = None,
                 mode: str = "exclusive", metadata: Mapping[str, Any] | None = None,
                 compresslevel: int = 6):
        if not (0 <= int(compresslevel) <= 9):
            raise ModelError("compresslevel", f"must be 0..9, got {compresslevel}")
        self.compresslevel = int(compresslevel)
        static = static_instance(name=name, tiers=tiers, num_epochs=num_epochs, items=items,
                                 epochs=epochs, mode=mode, metadata=metadata)
        self.path = _check_target(path)
        self._static: Instance = static
        self._groups = layer_groups(static)
        self._pos = np.empty(static.num_items, np.int64)
        self._local = np.empty(static.num_items, np.int64)
        for s, (_, its) in enumerate(self._groups):
            self._pos[its] = s
            self._local[its] = np.arange(its.size)
        self._small = np.int8 if len(self._groups) < 127 else np.int32
        self.num_epochs = static.num_epochs
        self.counts = {k: 0 for k in _KINDS}
        self.totals_bytes = {k: 0 for k in _KINDS}
        self._shard_counts = [{"reads": 0, "writes": 0, "read_bytes": 0, "write_bytes": 0}
                              for _ in self._groups]
        self._last = {k: (-1, -1) for k in _KINDS}
        self._run = {k: [-1, 0] for k in _KINDS}          # the open run: (shard, entries)
        self._read_bytes = np.zeros(static.num_epochs)
        self._per_epoch = {k: np.zeros(static.num_epochs, np.int64) for k in _KINDS}
        self.sha256: str | None = None
        self._closed = False
        self._tmp = temp_folder(self.path)
        self._spool_dir = self._tmp / ".spool"
        try:
            self._spool_dir.mkdir()
            self._spool = {(k, s): open(self._spool_file(k, s), "wb")
                           for k in _KINDS for s in range(len(self._groups))}
            self._runs = {k: open(self._spool_dir / f"{k}.runs", "wb") for k in _KINDS}
        except BaseException:
            shutil.rmtree(self._tmp, ignore_errors=True)
            raise

    def _spool_file(self, kind: str, s: int) -> Path:
        return self._spool_dir / f"{kind}.{s}"

    # ------------------------------------------------------------------ accesses
    def add_reads(self, epoch, item, nbytes) -> None:
        """Append reads (global item indices), sorted by ``(epoch, item)`` and after every
        earlier read."""
        self._add("reads", epoch, item, nbytes)

    def add_writes(self, epoch, item, nbytes) -> None:
        """Append writes, sorted by ``(epoch, item)`` and after every earlier write."""
        self._add("writes", epoch, item, nbytes)

    def _add(self, kind: str, epoch, item, nbytes) -> None:
        if self._closed:
            raise ModelError(kind, "the writer is closed")
        st = self._static
        e, i, b = check_chunk(kind, epoch, item, nbytes, base=self.counts[kind],
                              last=self._last[kind], num_epochs=self.num_epochs,
                              size=st.size_bytes, birth=st.birth, death=st.death)
        self._deal(kind, e, i, b)

    def _deal(self, kind: str, e: np.ndarray, i: np.ndarray, b: np.ndarray) -> None:
        """Spool a chunk that :func:`~hetkv_opt.io.npz_stream.check_chunk` has passed
        (int64 arrays, after every earlier entry of ``kind``): cut it by shard, and count it."""
        if e.size == 0:
            return
        self._last[kind] = (int(e[-1]), int(i[-1]))
        sid = self._pos[i]
        self._add_runs(kind, sid)
        rec = np.empty(e.size, _REC)
        rec["epoch"], rec["item"], rec["bytes"] = e, self._local[i], b
        if sid[0] == sid[-1] and np.all(sid == sid[0]):
            groups = [(int(sid[0]), rec)]
        else:
            order = np.argsort(sid.astype(self._small), kind="stable")
            cuts = np.searchsorted(sid[order], np.arange(len(self._groups) + 1))
            groups = [(s, rec[order[lo:hi]]) for s, (lo, hi) in enumerate(zip(cuts[:-1], cuts[1:]))
                      if hi > lo]
        for s, part in groups:
            part.tofile(self._spool[(kind, s)])
            c = self._shard_counts[s]
            c[kind] += int(part.size)
            c[f"{kind[:-1]}_bytes"] += int(part["bytes"].sum())
        self.counts[kind] += int(e.size)
        self.totals_bytes[kind] += int(b.sum())
        first = np.flatnonzero(np.diff(e, prepend=-1))            # e is sorted
        self._per_epoch[kind][e[first]] += np.diff(np.append(first, e.size))
        if kind == "reads":
            self._read_bytes[e[first]] += np.add.reduceat(b.astype(np.float64), first)

    def _add_runs(self, kind: str, sid: np.ndarray) -> None:
        starts = np.concatenate([[0], np.flatnonzero(sid[1:] != sid[:-1]) + 1])
        lens = np.diff(np.append(starts, sid.size))
        shards = sid[starts]
        run = self._run[kind]
        if shards[0] == run[0]:
            run[1] += int(lens[0])
            shards, lens = shards[1:], lens[1:]
        if shards.size == 0:
            return
        out = np.empty(shards.size, _RUN)
        out["shard"] = np.concatenate([[run[0]], shards[:-1]])
        out["count"] = np.concatenate([[run[1]], lens[:-1]])
        (out[1:] if run[1] == 0 else out).tofile(self._runs[kind])
        run[0], run[1] = int(shards[-1]), int(lens[-1])

    # ------------------------------------------------------------------ finishing
    def close(self) -> str:
        """Write the shards, ``epochs.npz`` and the manifest (temporary folder + rename),
        remove the spools, and return the instance hash."""
        if self._closed:
            return self.sha256
        for kind in _KINDS:
            run = self._run[kind]
            if run[1]:
                np.array([tuple(run)], _RUN).tofile(self._runs[kind])
        self._close_spools()
        st = self._static
        try:
            sha = self._instance_hash()
            entries = []
            for s, (layer, its) in enumerate(self._groups):
                members = static_members(st, its)
                c = self._shard_counts[s]
                for kind in _KINDS:
                    for col in ("epoch", "item", "bytes"):
                        members[f"{kind}.{col}"] = Chunks(
                            c[kind], lambda kind=kind, s=s, col=col: self._shard_column(kind, s, col))
                fsha = write_npz(self._tmp / shard_file_name(layer), shard_header(st, layer),
                                 members, self.compresslevel)
                entries.append(shard_entry(st, layer, its, c, fsha))
            shutil.rmtree(self._spool_dir)
            esha = write_epochs_file(self._tmp, st, self._read_bytes, self._per_epoch["reads"],
                                     self._per_epoch["writes"], self.compresslevel)
            write_manifest(self._tmp, st, entries, esha, sha)
            commit_folder(self._tmp, self.path)
            self.sha256 = sha
        except BaseException:
            shutil.rmtree(self._tmp, ignore_errors=True)
            raise
        finally:
            self._closed = True
        return self.sha256

    def abort(self) -> None:
        """Drop everything written so far: no folder, no spool."""
        self._close_spools()
        self._closed = True
        shutil.rmtree(self._tmp, ignore_errors=True)

    def _close_spools(self) -> None:
        for fh in (*self._spool.values(), *self._runs.values()):
            fh.close()

    def __enter__(self) -> "ShardedInstanceWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _shard_column(self, kind: str, s: int, col: str) -> Iterator[np.ndarray]:
        """One column of a shard's spool, a chunk at a time."""
        with open(self._spool_file(kind, s), "rb") as fh:
            while True:
                rec = np.fromfile(fh, _REC, count=_CHUNK)
                if rec.size == 0:
                    return
                yield np.ascontiguousarray(rec[col])

    def _global_column(self, kind: str, col: str) -> Iterator[np.ndarray]:
        """One column of all reads (or writes) in the global order, with global item
        indices, rebuilt from the shards' spools and the runs, a chunk at a time."""
        files = [open(self._spool_file(kind, s), "rb") for s in range(len(self._groups))]
        try:
            with open(self._spool_dir / f"{kind}.runs", "rb") as runs:
                while True:
                    r = np.fromfile(runs, _RUN, count=_CHUNK)
                    if r.size == 0:
                        return
                    yield from self._batches(files, r["shard"], r["count"], col)
        finally:
            for fh in files:
                fh.close()

    def _batches(self, files, sid: np.ndarray, cnt: np.ndarray, col: str) -> Iterator[np.ndarray]:
        pieces = -(-cnt // _CHUNK)                      # a long run: pieces of _CHUNK entries
        if np.any(pieces > 1):
            first = np.cumsum(pieces) - pieces
            k = np.arange(int(pieces.sum())) - np.repeat(first, pieces)
            sid = np.repeat(sid, pieces)
            cnt = np.minimum(_CHUNK, np.repeat(cnt, pieces) - k * _CHUNK)
        start = np.cumsum(cnt) - cnt
        batch = start // _CHUNK                          # at most 2 x _CHUNK entries a batch
        cuts = np.concatenate([[0], np.flatnonzero(np.diff(batch)) + 1, [sid.size]])
        for lo, hi in zip(cuts[:-1], cuts[1:]):
            bs, bc = sid[lo:hi], cnt[lo:hi]
            at = np.cumsum(bc) - bc
            out = np.empty(int(bc.sum()), np.int64)
            for s in np.unique(bs):
                m = bs == s
                c = bc[m]
                n = int(c.sum())
                rec = np.fromfile(files[s], _REC, count=n)
                if rec.size != n:          # a writer bug, never a user's error
                    raise RuntimeError(f"spool of shard {s}: {rec.size} entries, expected {n}")
                vals = rec[col]
                if col == "item":
                    vals = self._groups[s][1][vals]
                out[np.repeat(at[m] - (np.cumsum(c) - c), c) + np.arange(n)] = vals
            yield out

    def _instance_hash(self) -> str:
        """:func:`hetkv_opt.io.formats.instance_hash` of the whole instance."""
        arrays, header = _instance_arrays(self._static)
        h = hashlib.sha256()
        h.update(json.dumps(header, sort_keys=True, separators=(",", ":")).encode())
        for key in sorted(k for k in arrays if not k.startswith(_KINDS)):
            hash_array(h, key, arrays[key])
        for kind in _KINDS:                 # sorted keys: reads.bytes, reads.epoch, reads.item, ...
            for col in ("bytes", "epoch", "item"):
                h.update(f"{kind}.{col}".encode())
                for chunk in self._global_column(kind, col):
                    h.update(np.ascontiguousarray(chunk, dtype="<i8").tobytes())
        return h.hexdigest()


def stream_sharded(inst: Instance, path: str | os.PathLike, epochs_per_chunk: int = 4096,
                   compresslevel: int = 6) -> str:
    """Write an in-memory instance through :class:`ShardedInstanceWriter` (returns its
    hash); for tests and converting (:func:`~hetkv_opt.io.shards.save_sharded` is the
    same folder without the spools)."""
    return write_through(ShardedInstanceWriter, inst, path, epochs_per_chunk, compresslevel)


__all__ = ["ShardedInstanceWriter", "stream_sharded"]
