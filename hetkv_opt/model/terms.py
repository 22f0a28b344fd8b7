"""Terms of the model that every method shares: the time terms of an epoch, the capacity
rooms, and the capacity-blind aggregate bound."""

from __future__ import annotations

import numpy as np

from hetkv_opt.model.instance import Instance


def aggregate_bound_s(instance: Instance) -> float:
    """The paper's aggregate-bandwidth bound (MODEL.md section 5), in seconds.

    ``sum_e max(c_e, reads(e) / sum_k min(bandwidth_k, link_read_k))``: every read served at
    the combined read rate of all tiers, ignoring capacity, writes and copies.

    Examples
    --------
    >>> from hetkv_opt.model.instance import tiny_instance
    >>> aggregate_bound_s(tiny_instance())
    1.0
    """
    rate = sum(t.read_rate_Bps() for t in instance.tiers)
    per_epoch = instance.reads_per_epoch_bytes() / rate
    return float(np.maximum(instance.min_time_s, per_epoch).sum())
