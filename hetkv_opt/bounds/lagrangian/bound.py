"""The driver of the Lagrangian bound: :func:`lagrangian_bound` maximises L over the prices
and returns the bound with its :class:`BoundCertificate`; :func:`solve_lagrangian` wraps it
as a :class:`hetkv_opt.result.SolveResult`.

It prepares the problem (:mod:`~hetkv_opt.bounds.lagrangian.problem`), picks the oracle
(dense, :mod:`~hetkv_opt.bounds.lagrangian.oracle`, or by events,
:mod:`~hetkv_opt.bounds.lagrangian.events`) and the master
(:mod:`~hetkv_opt.bounds.lagrangian.master`), and turns the best prices into a proof.

>>> from hetkv_opt.model.instance import tiny_instance
>>> bound, cert = lagrangian_bound(tiny_instance(), iterations=50)
>>> 1.0 <= bound <= 2.0, cert.metadata["master"]
(True, 'dw')
"""

from __future__ import annotations

import time

import numpy as np

from hetkv_opt.bounds.lagrangian.certificate import METHOD, BoundCertificate
from hetkv_opt.bounds.lagrangian.events import choose as choose_event_oracle
from hetkv_opt.bounds.lagrangian.master import (Space, Tracker, bundle_phase, clip_sums,
                                                dw_phase, initial_prices)
from hetkv_opt.bounds.lagrangian.oracle import evaluate as dense_evaluate
from hetkv_opt.bounds.lagrangian.parts import PartsOracle, decomposable
from hetkv_opt.bounds.lagrangian.problem import finish_value, prepare
from hetkv_opt.io.files import instance_hash
from hetkv_opt.model.feasibility import capacity_precheck
from hetkv_opt.model.instance import Instance
from hetkv_opt.model.epoch_bound import basic_bounds
from hetkv_opt.result import finish


def lagrangian_bound(inst: Instance, *, iterations: int = 300, time_limit_s: float | None = None,
                     prices=None, progress=None, target_s: float | None = None,
                     tol: float = 1e-6, master: str = "auto",
                     dw_max_item_epochs: int = 70_000,
                     stop_on_interrupt: bool = False,
                     oracle: str = "auto", client=None,
                     groups: int | None = None,
                     reuse: dict | None = None,
                     keep: dict | None = None) -> tuple[float, "BoundCertificate"]:
    """Maximise the Lagrangian bound over the prices; return it and its certificate.

    Parameters
    ----------
    inst : Instance
    iterations : int
        Oracle calls at most (each call solves every item's shortest path once).
    time_limit_s : float, optional
        Stop after about this many seconds with the best prices so far.
    prices : BoundCertificate or (lambda, mu_s_per_byte), optional
        Warm start, e.g. the certificate of an earlier run on the same instance.
    progress : callable(dict), optional
        Called after every oracle call with ``phase``, ``iteration``, ``elapsed_s``,
        ``bound_s`` (best so far, before the margin) and ``upper_s`` (the restricted
        master's value: no price set can do better than it; None before the master runs).
    target_s : float, optional
        A known schedule time: the bundle phase stops once the bound is within ``tol``.
    tol : float
        Relative stopping tolerance.
    master : {"auto", "bundle", "dw"}
        ``bundle``: a proximal bundle method with aggregated cuts (memory O(E) per cut;
        scales to any instance).  ``dw``: a short bundle warm-up, then disaggregated
        cutting planes (Dantzig-Wolfe column generation, the master solved by HiGHS), which
        reaches the LP relaxation's value; its master grows with items x paths.
        ``auto``: ``dw`` up to ``dw_max_item_epochs`` free item-epochs, else ``bundle``.
    stop_on_interrupt : bool
        Ctrl-C (KeyboardInterrupt) ends the optimisation and returns the bound of the best
        prices so far (``metadata["interrupted"]``) instead of propagating.
    oracle : {"auto", "dense", "events", "layers"}
        The bundle master's oracle: ``dense`` steps every item through every epoch;
        ``events`` (two tiers) works only at each item's events
        (:mod:`hetkv_opt.bounds.lagrangian.events`; same value, a supergradient);
        ``layers`` is the event oracle run one layer at a time
        (:mod:`hetkv_opt.bounds.lagrangian.parts`: epochs of (step, layer), layers coupled
        only by capacity; its transient memory is one layer's).  ``auto`` picks ``layers``
        or ``events`` when the instance's events are sparse enough.  The ``dw`` master (it
        needs the paths) always uses the dense oracle; the final value comes from the
        oracle the bundle used.  ``metadata["oracle"]`` says which.
    client : dask.distributed.Client, optional
        With ``layers``: the layer groups run on its workers (``groups``, default one per
        worker); the bound is the same as in one process.
    reuse : dict, optional
        Keeps the prepared problem and the oracle between calls on the same instance (a
        caller that runs the bound several times, e.g. ``auto``'s phases, passes the same
        dict): building the event oracle of a large instance costs many oracle calls.
    keep : dict, optional
        When the ``dw`` master ran, ``keep["dw_master"]`` is set to it
        (:class:`~hetkv_opt.bounds.lagrangian.master.DWMaster`: its columns are the items'
        paths, which :mod:`hetkv_opt.methods.columns` makes a schedule of).

    Returns
    -------
    (bound_s, certificate)
        ``bound_s`` is proven <= T of every feasible schedule (margin subtracted).

    Raises
    ------
    ValueError
        When the instance is infeasible (an item fits no tier at some epoch) or the
        warm-start prices have the wrong shape.
    """
    if master not in ("auto", "bundle", "dw"):
        raise ValueError(f"master must be auto, bundle or dw, got {master!r}")
    if oracle not in ("auto", "dense", "events", "layers"):
        raise ValueError(f"oracle must be auto, dense, events or layers, got {oracle!r}")
    t_start = time.perf_counter()
    held = reuse if reuse is not None and reuse.get("instance") is inst else None
    p = held["problem"] if held else prepare(inst)
    space = Space(p)
    C = space.C
    if prices is None:
        lam0, mu0 = initial_prices(p)
    else:
        lam0, mu0s = ((prices.lam, prices.mu_s_per_byte) if isinstance(prices, BoundCertificate)
                      else prices)
        lam0, mu0 = np.asarray(lam0, float), np.asarray(mu0s, float) / p.t0
        if lam0.shape != (p.J, p.E) or mu0.shape != (C, p.E):
            raise ValueError(f"warm-start prices have shapes {lam0.shape}, {mu0.shape}; this "
                             f"instance needs {(p.J, p.E)}, {(C, p.E)}")
    tr = Tracker(p, space, t_start, time_limit_s, max(int(iterations), 1), progress)
    if target_s is not None and target_s > 0:
        tr.target = target_s / p.t0 * (1 - tol)
    item_epochs = int((p.death - p.birth).sum())
    use_dw = master == "dw" or (master == "auto" and item_epochs <= dw_max_item_epochs)
    # workers run the layer parts: with a client, layers (and the bundle master) by default
    want_layers = oracle == "layers" or (client is not None and oracle == "auto")
    if want_layers and master == "auto":
        use_dw = False
    key = (oracle, use_dw, id(client), groups)
    if held and held.get("key") == key:
        tr.events = held["oracle"]
    elif not use_dw and oracle in ("auto", "layers") and decomposable(p, inst) and (
            want_layers or choose_event_oracle(p, sparse_only=True)):
        n_groups = groups or (len(client.scheduler_info()["workers"]) if client else 1)
        tr.events = PartsOracle(p, inst, groups=n_groups, client=client)
    elif oracle == "layers" or (want_layers and client is not None and not decomposable(p, inst)
                                and oracle != "auto"):
        raise ValueError("oracle 'layers' needs two tiers, at most a few distinct free-item "
                         "sizes, and epochs that each touch one layer's items")
    elif not use_dw and oracle != "dense":
        tr.events = choose_event_oracle(p, force=oracle == "events")
    if reuse is not None:
        reuse.update(instance=inst, problem=p, key=key, oracle=tr.events)
    y0 = space.join(lam0, mu0)
    interrupted = False
    try:
        if use_dw and p.free.size:
            paths: list = []
            center = bundle_phase(tr, y0, max_calls=min(20, max(tr.iterations // 4, 1)),
                                   tol=tol, paths=paths, master_iters=100)
            dw = dw_phase(tr, center, paths, tol)
            if keep is not None:
                keep["dw_master"] = dw
        else:
            bundle_phase(tr, y0, max_calls=tr.iterations, tol=tol * 1e-2)
    except KeyboardInterrupt:
        if not stop_on_interrupt:
            raise
        interrupted = True        # Ctrl-C: the best prices so far still give a proof
    lam, mu = space.split(tr.best_y if tr.best_y is not None else space.proj(y0))
    lam = clip_sums(lam.copy())
    mu_s = np.maximum(mu, 0.0) * p.t0
    final = tr.events.evaluate if tr.events is not None else (
        lambda la, m, gradient: dense_evaluate(p, la, m, gradient=gradient))
    value_s = final(lam, mu_s / p.t0, gradient=False).value * p.t0
    bound_s = finish_value(inst, lam, mu_s, p.rooms, value_s)
    kind = "dense" if tr.events is None else (
        "layers" if isinstance(tr.events, PartsOracle) else "events")
    meta = {"method": METHOD, "master": "dw" if use_dw else "bundle",
            "oracle": kind, "oracle_calls": tr.calls,
            "runtime_s": round(time.perf_counter() - t_start, 6)}
    if interrupted:
        meta["interrupted"] = True
    if client is not None and not isinstance(tr.events, PartsOracle):
        meta["workers_unused"] = "the instance is not layered (or the event oracle does not apply)"
    if isinstance(tr.events, PartsOracle):
        meta["parts"] = len(tr.events.parts)
        if client is not None:
            meta["groups"] = len(tr.events.groups)
            meta["bytes_per_call"] = {
                "sent": round(tr.events.bytes_sent / max(tr.events.calls, 1)),
                "received": round(tr.events.bytes_received / max(tr.events.calls, 1))}
    if tr.upper is not None:
        meta["master_value_s"] = tr.upper * p.t0
        meta["gap_to_master"] = max(0.0, (tr.upper * p.t0 - bound_s) / (tr.upper * p.t0)) \
            if tr.upper > 0 else 0.0
    cert = BoundCertificate(
        instance_sha256=instance_hash(inst), instance_name=inst.name, mode=inst.mode,
        terms=list(p.names), capacity_tiers=list(p.cap_tiers), lam=lam, mu_s_per_byte=mu_s,
        bound_s=bound_s, metadata=meta)
    return bound_s, cert


def solve_lagrangian(inst: Instance, *, time_limit_s: float | None = 60.0, iterations: int = 300,
                     master: str = "auto", progress=None, prices=None,
                     stop_on_interrupt: bool = False, client=None, reuse: dict | None = None):
    """The Lagrangian bound as a :class:`hetkv_opt.result.SolveResult` (``bound_only``).

    ``details["lagrangian"]`` holds the optimiser's counters (JSON-ready); the
    :class:`BoundCertificate` is the result's field ``certificate`` (write it with
    ``.save(path)``).  ``client``: a Dask client; the layer parts then run on its workers.

    >>> from hetkv_opt.model.instance import tiny_instance
    >>> r = solve_lagrangian(tiny_instance())
    >>> r.status, r.bound_method, round(r.bound_s, 6)
    ('bound_only', 'lagrangian', 1.8)
    """
    t_start = time.perf_counter()
    pre = capacity_precheck(inst)
    if pre:
        return finish(inst, METHOD, status="infeasible", t_start=t_start, message=pre)
    bounds = basic_bounds(inst)
    try:
        bound, cert = lagrangian_bound(inst, iterations=iterations, time_limit_s=time_limit_s,
                                       master=master, progress=progress, prices=prices,
                                       stop_on_interrupt=stop_on_interrupt, client=client,
                                       reuse=reuse)
    except ValueError as exc:
        if str(exc).startswith("infeasible"):
            return finish(inst, METHOD, status="infeasible", bounds=bounds, t_start=t_start, message=str(exc))
        raise
    bounds[METHOD] = bound
    return finish(inst, METHOD, status="bound_only", bounds=bounds, t_start=t_start,
                  details={"lagrangian": dict(cert.metadata)}, certificate=cert)

__all__ = ["lagrangian_bound", "solve_lagrangian"]
