"""The slower tiers merged into one: a two-tier relaxation of a three-or-more-tier instance.

Tiers 1..K-1 become one tier whose device bandwidth, link read rate and link write rate are
the *sums* of theirs (a missing link limit stays missing) and whose capacity is the sum of
theirs (unbounded when any is); tier 0, items, epochs, reads and writes are unchanged, and
pins or initial tiers beyond tier 0 become tier 1.

Why every bound of the merged instance is a bound of the original: map a schedule of the
original to the merged instance by reading every tier k >= 1 as tier 1.  Tier 0's traffic
and every capacity stay within their limits (tier 0's are the same; the slower tiers'
occupancies add up to at most the summed capacity), a copy between two slower tiers
disappears (it only had traffic to drop), and each merged time term is a mediant of the
original ones: (x_1 + ... + x_m) / (b_1 + ... + b_m) <= max_k x_k / b_k.  So every epoch of
the image takes at most as long as it did, the merged optimum is at most the original
optimum, and any proof of a lower bound for the merged instance (its LP, its Lagrangian
bound, its MILP's dual bound) proves the same number for the original.

The merged instance is a two-tier instance, where the LP (dual simplex) and the Lagrangian
bound are fast and strong; on the three-tier drift 256 x 64 (GH200 + CXL) its LP bound is
the three-tier LP's value (0.2495 ms), at a fraction of the time.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from hetkv_opt.model.instance import Instance, Tier


def merge_slow_tiers(inst: Instance) -> Instance | None:
    """The two-tier relaxation of ``inst`` (see the module text); None for an instance of
    two tiers (nothing to merge) or in inclusive mode (two tiers by definition)."""
    if inst.num_tiers < 3 or inst.mode != "exclusive":
        return None
    slow = inst.tiers[1:]

    def total(values):
        return None if any(v is None for v in values) else sum(values)

    caps = [t.capacity_bytes for t in slow]
    merged = Tier(name="+".join(t.name for t in slow),
                  capacity_bytes=None if any(c is None for c in caps) else int(sum(caps)),
                  bandwidth_Bps=float(sum(t.bandwidth_Bps for t in slow)),
                  link_read_Bps=total([t.link_read_Bps for t in slow]),
                  link_write_Bps=total([t.link_write_Bps for t in slow]))
    pinned = np.where(inst.pinned_tier >= 1, 1, inst.pinned_tier).astype(inst.pinned_tier.dtype)
    initial = np.where(inst.initial_tier >= 1, 1, inst.initial_tier).astype(inst.initial_tier.dtype)
    return dataclasses.replace(inst, name=f"{inst.name}/merged", tiers=(inst.tiers[0], merged),
                               pinned_tier=pinned, initial_tier=initial)


__all__ = ["merge_slow_tiers"]
