"""Classic cache-replacement policies, as tier-0 placement: lru, lfu, belady.

They treat tier 0 as a cache of the lower tiers.  LRU and LFU are demand policies: an
item is copied in only after it was accessed (at e - 1, the latest epoch they know);
Belady is the offline optimum of the paging problem, adapted to prefetching.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hetkv_opt.policies.base import ScoredPolicy, View
from hetkv_opt.policies.registry import register_policy


def just_accessed(view: View) -> np.ndarray:
    """Items read or written at e - 1, or born at e (the demand set), shape (N,) bool."""
    return np.asarray(view.last_access_epoch) >= view.epoch - 1


def demand(view: View, key: np.ndarray) -> np.ndarray:
    """Score ``key`` for items in tier 0 or just accessed, ``-inf`` (never pulled in) else."""
    eligible = (np.asarray(view.residency) == 0) | just_accessed(view)
    return np.where(eligible, key, -np.inf)


@register_policy("lru")
@dataclass
class LRU(ScoredPolicy):
    """Least recently used (classic paging; e.g. Belady 1966, Mattson et al. 1970).

    Items accessed at e - 1 (or born at e) are pulled into tier 0; when it is full, the
    item whose last read, write or birth is oldest leaves first.
    """

    def score(self, view: View) -> np.ndarray:
        return demand(view, np.asarray(view.last_access_epoch, float))


@register_policy("lfu")
@dataclass
class LFU(ScoredPolicy):
    """Least frequently used (classic paging): the items read in the most past epochs
    stay in tier 0; ties go to the most recently accessed.

    Items accessed at e - 1 (or born at e) compete for tier 0 by their read count (LFU
    with admission by frequency, as in TinyLFU, Einziger et al. 2017).
    """

    def score(self, view: View) -> np.ndarray:
        recency = np.asarray(view.last_access_epoch, float) / (view.num_epochs + 1)
        return demand(view, view.read_count + recency)


@register_policy("belady")
@dataclass
class Belady(ScoredPolicy):
    """Belady's MIN (Belady 1966; an oracle): keep in tier 0 the items read soonest and
    evict the one whose next read is farthest in the future.

    Adapted to prefetching: before e, tier 0 is filled for e + 1 with the items whose
    next read at or after e + 1 comes first; items never read again are never copied in.
    """

    uses_future = True

    def score(self, view: View) -> np.ndarray:
        nxt = view.future.next_read_epoch(view.epoch + 1)
        return np.where(nxt < view.num_epochs, -nxt.astype(float), -np.inf)
