"""An instance cut into the items of each layer (docs/scale.md, "Layers").

With epochs of (decode step, layer), a KV page or the weights of layer l are read and
written only in layer l's epochs, so the time row of an epoch holds one layer's items;
layers share only the capacity of every tier.  :func:`split_by_layer` cuts an instance
into one :class:`LayerPart` per layer label: the same tiers, epochs and compute floors,
the part's items renumbered ``0..n-1`` (in their global order) with their reads and
writes.  A part is a valid instance by construction (a subset of a valid one), so it is
built without validating again; on its own its capacities are those of the whole, which
is what a decomposition wants (the coupling is priced by the master).

Items without a ``layer`` label (or with a negative one) form one part with layer -1.

>>> from hetkv_opt.workloads.paper import paper_instance
>>> inst = paper_instance(layers=2, prompt_tokens=64, steps=8, sparsity=0.6)
>>> parts = split_by_layer(inst)
>>> [p.layer for p in parts], sum(p.instance.num_items for p in parts) == inst.num_items
([0, 1], True)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from hetkv_opt.model.instance import Instance


@dataclass(frozen=True, eq=False)
class LayerPart:
    """The items of one layer: ``items`` are their global indices (ascending), and
    ``instance`` holds them as items ``0..len(items)-1``."""

    layer: int
    items: np.ndarray
    instance: Instance


def item_layers(inst: Instance) -> np.ndarray:
    """The layer label of every item, -1 where there is none."""
    lab = inst.item_labels.get("layer")
    if lab is None:
        return np.full(inst.num_items, -1, np.int64)
    lab = np.asarray(lab)
    if lab.dtype.kind not in "iu":
        return np.full(inst.num_items, -1, np.int64)
    return np.where(lab >= 0, lab, -1).astype(np.int64)


def is_layered(inst: Instance) -> bool:
    """True when items carry at least two layer labels and each epoch's reads and writes
    touch the items of at most one layer (what the decomposition by layer relies on)."""
    lay = item_layers(inst)
    if np.unique(lay).size < 2:
        return False
    for epoch, item in ((inst.read_epoch, inst.read_item), (inst.write_epoch, inst.write_item)):
        if epoch.size == 0:
            continue
        li = lay[item]
        first = np.full(inst.num_epochs, -2, np.int64)
        first[epoch[::-1]] = li[::-1]                 # the layer of the first access wins
        if np.any(li != first[epoch]):
            return False
    return True


def _subset(inst: Instance, items: np.ndarray, name: str) -> Instance:
    remap = np.full(inst.num_items, -1, np.int64)
    remap[items] = np.arange(items.size, dtype=np.int64)

    def acc(epoch, item, nbytes):
        keep = remap[item] >= 0
        return epoch[keep], remap[item[keep]], nbytes[keep]

    re, ri, rb = acc(inst.read_epoch, inst.read_item, inst.read_bytes)
    we, wi, wb = acc(inst.write_epoch, inst.write_item, inst.write_bytes)
    ro = []
    for a in (inst.size_bytes[items], inst.birth[items], inst.death[items],
              inst.pinned_tier[items], inst.initial_tier[items], re, ri, rb, we, wi, wb):
        a = np.ascontiguousarray(a)
        a.setflags(write=False)
        ro.append(a)
    labels = {}
    for k, v in inst.item_labels.items():
        a = np.ascontiguousarray(np.asarray(v)[items])
        a.setflags(write=False)
        labels[k] = a
    return dataclasses.replace(
        inst, name=name, size_bytes=ro[0], birth=ro[1], death=ro[2], pinned_tier=ro[3],
        initial_tier=ro[4], read_epoch=ro[5], read_item=ro[6], read_bytes=ro[7],
        write_epoch=ro[8], write_item=ro[9], write_bytes=ro[10], item_labels=labels)


def prefix_instance(inst: Instance, stop: int) -> Instance:
    """The instance cut after its first ``stop`` epochs (0 < stop <= E).

    Items born before ``stop`` keep their data, their death cut at ``stop``; the accesses
    of those epochs (a prefix of the sorted lists) keep theirs.  The result is a valid
    instance by construction: every rule of one item, access or epoch holds in a prefix.
    Used to tune a policy's hyper-parameters on the start of a long run.
    """
    stop = int(stop)
    if not 0 < stop <= inst.num_epochs:
        raise ValueError(f"prefix_instance: stop must be in 1..{inst.num_epochs}, got {stop}")
    if stop == inst.num_epochs:
        return inst
    r = int(np.searchsorted(inst.read_epoch, stop))
    w = int(np.searchsorted(inst.write_epoch, stop))
    cut = dataclasses.replace(
        inst, num_epochs=stop, death=np.minimum(inst.death, stop),
        min_time_s=inst.min_time_s[:stop],
        read_epoch=inst.read_epoch[:r], read_item=inst.read_item[:r],
        read_bytes=inst.read_bytes[:r], write_epoch=inst.write_epoch[:w],
        write_item=inst.write_item[:w], write_bytes=inst.write_bytes[:w],
        epoch_labels={k: np.ascontiguousarray(np.asarray(v)[:stop])
                      for k, v in inst.epoch_labels.items()})
    return _subset(cut, np.flatnonzero(inst.birth < stop), f"{inst.name}[:{stop}]")


def split_by_layer(inst: Instance) -> list[LayerPart]:
    """One part per layer label, ascending (the unlabelled part, layer -1, first)."""
    lay = item_layers(inst)
    parts = []
    for layer in np.unique(lay):
        items = np.flatnonzero(lay == layer).astype(np.int64)
        items.setflags(write=False)
        parts.append(LayerPart(int(layer), items,
                               _subset(inst, items, f"{inst.name}/layer{int(layer)}")))
    return parts


__all__ = ["LayerPart", "is_layered", "item_layers", "prefix_instance", "split_by_layer"]
