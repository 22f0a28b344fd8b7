"""The LP relaxation in a second process, while the portfolio works on in this one.

``auto`` runs single-threaded; on a machine with a spare core the LP relaxation (the
strongest bound the toolkit has below the MILP, and a schedule by rounding) can run beside
the Lagrangian bound and the search instead of before them.  Then the LP no longer has to
be *predicted* to finish in a share of the time: it gets all of it, and when it does not
finish, nothing else was given up for it.

The child is a :class:`~hetkv_opt.methods.child.Child` (a plain ``python -m`` process, not
a ``multiprocessing`` fork or spawn: no re-import of the caller's script, no fork of a
process that holds solver threads).  The instance goes to it as a pickle in a private
temporary folder; the child writes its answer whole (temporary file, then rename) and
exits; its standard output goes nowhere (HiGHS's banner must not reach a ``--format json``
stdout).  The parent polls, and kills the child when the deadline has passed or the caller
is done.

The bound the child sends back is the weak-duality bound of :func:`solve_lp`: a proof
whatever happened in the child.  Its rounded schedule is re-scored by the caller's
evaluator like every other offer.
"""

from __future__ import annotations

import os
import time

from hetkv_opt.deadline import Deadline
from hetkv_opt.methods.child import Abandoned, Child
from hetkv_opt.milp.config import SolverConfig
from hetkv_opt.model.instance import Instance

#: seconds the parent keeps for reading the child's answer and using it
COLLECT_RESERVE_S = 1.0
#: a child is not started with less than this many seconds to run (its start-up alone,
#: importing numpy and highspy, takes about a second)
MIN_CHILD_S = 5.0


def spare_cores() -> int:
    """Cores this process may use beyond the one it runs on."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:          # pragma: no cover - not Linux
        n = os.cpu_count() or 1
    return max(0, n - 1)


class BackgroundLP:
    """The LP relaxation of ``instance`` (and its rounding) in a child process
    (:class:`~hetkv_opt.methods.child.Child`), stopped at ``deadline`` less
    :data:`COLLECT_RESERVE_S`.

    ``poll()`` returns None while it runs, then once its answer: a dict with ``status``
    (``done``, ``failed``), ``bound_s`` (the weak-duality LP bound or None), ``schedule``
    (the rounded LP solution or None), ``lp`` (the LP's details) and ``runtime_s``.
    ``cancel()`` kills it (idempotent); use it as a context manager so that it always is.
    """

    def __init__(self, instance: Instance, config: SolverConfig, deadline: Deadline):
        self.started = time.perf_counter()
        self._answer: dict | None = None
        left = deadline.remaining_s()
        limit = None if left is None else max(0.0, left - COLLECT_RESERVE_S)
        self.limit_s = limit
        self._child = Child(*_job(instance, config, limit))

    def running(self) -> bool:
        return self._answer is None and self._child.running()

    def poll(self) -> dict | None:
        """The child's answer once it has ended (the same dict on every later call)."""
        if self._answer is not None:
            return self._answer
        try:
            ans = self._child.poll()
        except Abandoned as exc:
            ans = {"status": "failed", "bound_s": None, "schedule": None, "lp": {},
                   "message": f"the LP process failed: {exc}"}
        if ans is None:
            return None
        ans["runtime_s"] = time.perf_counter() - self.started
        self._answer = ans
        return ans

    def wait(self, deadline: Deadline) -> dict | None:
        """Wait for the answer until ``deadline`` (then kill the child and return None)."""
        while self.poll() is None:
            left = deadline.remaining_s()
            if left is not None and left <= 0:
                self.cancel()
                return None
            time.sleep(0.05 if left is None else min(0.05, max(left, 0.001)))
        return self._answer

    def cancel(self) -> None:
        self._child.cancel()

    def __enter__(self) -> "BackgroundLP":
        return self

    def __exit__(self, *exc) -> None:
        self.cancel()


def _job(instance: Instance, config: SolverConfig, limit_s: float | None) -> tuple:
    """What the child runs: ``(target, args)`` for :class:`Child`."""
    return "hetkv_opt.methods.background:lp_answer", (instance, config, limit_s)


def lp_answer(instance: Instance, config: SolverConfig, limit_s: float | None) -> dict:
    """The LP relaxation and its rounding, as :class:`BackgroundLP` reports them (run in
    the child process)."""
    from hetkv_opt.methods.exact import solve_lp
    rounded: list = []
    res = solve_lp(instance, time_limit_s=limit_s, config=config, rounding=rounded)
    return {"status": "infeasible" if res.status == "infeasible" else "done",
            "bound_s": res.details.get("bounds_s", {}).get("lp"),
            "schedule": rounded[0] if rounded else None,
            "lp": res.details.get("lp") or {}, "message": res.message}
