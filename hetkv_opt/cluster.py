"""Where the decomposed work runs: this process, a local Dask cluster, or a running one.

``open_client(workers=N)`` starts a ``distributed.LocalCluster`` of N single-threaded worker
processes for the length of a ``with`` block; ``open_client(scheduler="tcp://HOST:PORT")``
connects to a scheduler someone started (``dask scheduler`` on one machine, ``dask worker
tcp://HOST:PORT`` on each of the others: docs/scale.md says how).  With neither it yields
None and everything runs here.  Dask is the ``dask`` extra; without it a request for
workers is refused with the install hint.
"""

from __future__ import annotations

import contextlib
import importlib
import re

DASK_HINT = "pip install 'hetkv-opt[dask]'  (dask[distributed])"
#: most local workers one call may start
MAX_WORKERS = 256
ADDRESS = re.compile(r"^[a-z][a-z0-9+]*://\S+$")


class ClusterError(ValueError):
    """A cluster that cannot be had (no Dask, a bad address, a scheduler out of reach)."""


def check_cluster(workers, scheduler) -> None:
    """Refuse a worker count or scheduler address that cannot work, with the reason."""
    if isinstance(workers, bool) or not isinstance(workers, int) or not 0 <= workers <= MAX_WORKERS:
        raise ClusterError(f"workers must be a whole number from 0 to {MAX_WORKERS}, "
                           f"got {workers!r}")
    if scheduler is not None and (not isinstance(scheduler, str) or not ADDRESS.match(scheduler)):
        raise ClusterError(f"scheduler: expected an address such as tcp://HOST:PORT, got "
                           f"{scheduler!r}")
    if workers and scheduler is not None:
        raise ClusterError("give workers (a local cluster) or a scheduler address, not both")


def require_dask():
    """The ``distributed`` module, or a :class:`ClusterError` with the install hint."""
    try:
        return importlib.import_module("distributed")
    except ImportError:
        raise ClusterError(f"running on Dask workers needs Dask, which is not installed: "
                           f"{DASK_HINT}") from None


@contextlib.contextmanager
def open_client(workers: int = 0, scheduler: str | None = None):
    """A ``distributed.Client`` for the block (None when neither is given); a cluster
    started here is closed at the end."""
    check_cluster(workers, scheduler)
    if not workers and scheduler is None:
        yield None
        return
    distributed = require_dask()
    import logging
    if scheduler is not None:
        try:
            client = distributed.Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as exc:
            raise ClusterError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
        with client:
            yield client
        return
    with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                  dashboard_address=":0", silence_logs=logging.ERROR) as cluster:
        with distributed.Client(cluster) as client:
            yield client


__all__ = ["ClusterError", "DASK_HINT", "check_cluster", "open_client", "require_dask"]
