"""One wall-clock budget per call, shared by every phase that runs inside it.

A :class:`Deadline` is made once, where the user's time limit enters (``solve``,
``simulate``, a bench cell), and handed down to every phase: the LP, the rounding, the MILP,
the Lagrangian master, the flow heuristic, the rolling windows, the policies.  Each phase
asks how much time is *left* (never "my own N seconds"), and gives a solver what it may use
with :meth:`Deadline.solver_limit_s`; so the phases add up to the limit instead of each
taking its own share of it.

Every method also accepts a plain number (seconds from now) or None (no limit):
:meth:`Deadline.of` turns those into a deadline and passes an existing one through, so a
phase called with its parent's deadline ends when the parent must.

>>> d = Deadline(10.0)
>>> 9.9 < d.remaining_s() <= 10.0, d.expired()
(True, False)
>>> Deadline.of(d) is d, Deadline.of(None).remaining_s()
(True, None)
>>> Deadline(0.0).expired()
True
"""

from __future__ import annotations

import math
import time


class Deadline:
    """A wall-clock limit: ``limit_s`` seconds after ``start`` (``time.perf_counter()``).

    Parameters
    ----------
    limit_s : float or None
        Seconds from ``start``; None for no limit.  Must be >= 0 and not NaN.
    start : float, optional
        ``time.perf_counter()`` at which the budget began (default: now).

    Raises
    ------
    ValueError
        A negative or NaN limit.
    """

    __slots__ = ("limit_s", "start", "parent")

    def __init__(self, limit_s: float | None, *, start: float | None = None,
                 parent: "Deadline | None" = None):
        if limit_s is not None:
            limit_s = float(limit_s)
            if math.isnan(limit_s) or limit_s < 0:
                raise ValueError(f"a time limit must be >= 0 seconds, got {limit_s!r}")
            if math.isinf(limit_s):
                limit_s = None
        self.limit_s = limit_s
        self.start = time.perf_counter() if start is None else float(start)
        self.parent = parent          # a child ends when its parent does (e.g. on Ctrl-C)

    @classmethod
    def of(cls, limit: "Deadline | float | None", *, start: float | None = None) -> "Deadline":
        """A deadline from a number of seconds, None, or a deadline (returned as it is)."""
        if isinstance(limit, Deadline):
            return limit
        return cls(limit, start=start)

    @property
    def unlimited(self) -> bool:
        return self.limit_s is None and (self.parent is None or self.parent.unlimited)

    def elapsed_s(self) -> float:
        """Seconds since the budget began."""
        return time.perf_counter() - self.start

    def remaining_s(self, now: float | None = None) -> float | None:
        """Seconds left (>= 0) at ``now`` (default: now), or None without a limit."""
        now = time.perf_counter() if now is None else now
        own = None if self.limit_s is None else max(0.0, self.limit_s - (now - self.start))
        up = None if self.parent is None else self.parent.remaining_s(now)
        if own is None or up is None:
            return own if up is None else up
        return min(own, up)

    def expired(self, reserve_s: float = 0.0) -> bool:
        """True when no more than ``reserve_s`` seconds are left."""
        left = self.remaining_s()
        return left is not None and left <= reserve_s

    def share_s(self, fraction: float) -> float | None:
        """``fraction`` of the time left (None without a limit)."""
        left = self.remaining_s()
        return None if left is None else max(0.0, fraction * left)

    def child(self, seconds: float | None = None, *, fraction: float | None = None) -> "Deadline":
        """A deadline for one phase: ``seconds`` from now or ``fraction`` of the time left,
        and never past this one."""
        now = time.perf_counter()
        left = self.remaining_s(now)
        want = seconds
        if fraction is not None:
            f = None if left is None else fraction * left
            want = f if want is None else (min(want, f) if f is not None else want)
        if left is not None:
            want = left if want is None else min(want, left)
        return Deadline(want, start=now, parent=self)

    def solver_limit_s(self, reserve_s: float = 0.0, *, floor_s: float = 1e-3) -> float | None:
        """What a solver may be given: the time left less ``reserve_s`` (for the work that
        follows it), at least ``floor_s`` (solvers refuse a zero limit; a run that starts
        with nothing left stops at once).  None without a limit."""
        left = self.remaining_s()
        if left is None:
            return None
        return max(floor_s, left - reserve_s)

    def end(self) -> float | None:
        """The ``time.perf_counter()`` value at which the budget ends (None: never)."""
        now = time.perf_counter()
        left = self.remaining_s(now)
        return None if left is None else now + left

    def __repr__(self) -> str:
        left = self.remaining_s()
        return "Deadline(unlimited)" if left is None else f"Deadline({left:.3f} s left)"


__all__ = ["Deadline"]
