"""The LP relaxation in a second process, while the portfolio works on in this one.

``auto`` runs single-threaded; on a machine with a spare core the LP relaxation (the
strongest bound the toolkit has below the MILP, and a schedule by rounding) can run beside
the Lagrangian bound and the search instead of before them.  Then the LP no longer has to
be *predicted* to finish in a share of the time: it gets all of it, and when it does not
finish, nothing else was given up for it.

The child is a plain ``python -m hetkv_opt.methods.background IN OUT`` process (not a
``multiprocessing`` fork or spawn: no re-import of the caller's script, no fork of a process
that holds solver threads).  The instance goes to it as a pickle in a private temporary
folder; the child writes its answer whole (temporary file, then rename) and exits; its
standard output goes nowhere (HiGHS's banner must not reach a ``--format json`` stdout).
The parent polls, and kills the child when the deadline has passed or the caller is done.

The bound the child sends back is the weak-duality bound of :func:`solve_lp`: a proof
whatever happened in the child.  Its rounded schedule is re-scored by the caller's
evaluator like every other offer.
"""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hetkv_opt.deadline import Deadline
from hetkv_opt.io.formats import atomic_write_bytes
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
    """The LP relaxation of ``instance`` (and its rounding) in a child process, stopped at
    ``deadline`` less :data:`COLLECT_RESERVE_S`.

    ``poll()`` returns None while it runs, then once its answer: a dict with ``status``
    (``done``, ``failed``), ``bound_s`` (the weak-duality LP bound or None), ``schedule``
    (the rounded LP solution or None), ``lp`` (the LP's details) and ``runtime_s``.
    ``cancel()`` kills it (idempotent); use it as a context manager so that it always is.
    """

    def __init__(self, instance: Instance, config: SolverConfig, deadline: Deadline):
        self.started = time.perf_counter()
        self._dir = Path(tempfile.mkdtemp(prefix="hetkv-lp-"))
        self._out = self._dir / "answer.pkl"
        self._answer: dict | None = None
        left = deadline.remaining_s()
        limit = None if left is None else max(0.0, left - COLLECT_RESERVE_S)
        self.limit_s = limit
        with open(self._dir / "job.pkl", "wb") as f:
            pickle.dump({"instance": instance, "config": config, "limit_s": limit}, f,
                        protocol=pickle.HIGHEST_PROTOCOL)
        self._proc = subprocess.Popen(
            _child_argv(self._dir / "job.pkl", self._out),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def running(self) -> bool:
        return self._answer is None and self._proc.poll() is None

    def poll(self) -> dict | None:
        """The child's answer once it has ended (the same dict on every later call)."""
        if self._answer is not None:
            return self._answer
        code = self._proc.poll()
        if code is None:
            return None
        self._answer = self._read(code)
        self._cleanup()
        return self._answer

    def wait(self, deadline: Deadline) -> dict | None:
        """Wait for the answer until ``deadline`` (then kill the child and return None)."""
        while self.poll() is None:
            left = deadline.remaining_s()
            if left is not None and left <= 0:
                self.cancel()
                return None
            try:
                self._proc.wait(timeout=0.05 if left is None else min(0.05, max(left, 0.001)))
            except subprocess.TimeoutExpired:
                pass
        return self._answer

    def cancel(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._cleanup()

    def _read(self, code: int) -> dict:
        runtime = time.perf_counter() - self.started
        try:
            with open(self._out, "rb") as f:
                ans = pickle.load(f)
        except (OSError, EOFError, pickle.UnpicklingError):
            err = b""
            if self._proc.stderr is not None:
                try:
                    err = self._proc.stderr.read()[-400:]
                except (OSError, ValueError):
                    pass
            why = err.decode(errors="replace").strip().splitlines()
            return {"status": "failed", "bound_s": None, "schedule": None, "lp": {},
                    "runtime_s": runtime,
                    "message": f"the LP process ended with code {code}"
                               + (f": {why[-1]}" if why else "")}
        ans["runtime_s"] = runtime
        return ans

    def _cleanup(self) -> None:
        if self._proc.stderr is not None and self._proc.poll() is not None:
            try:
                self._proc.stderr.close()
            except OSError:       # pragma: no cover
                pass
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> "BackgroundLP":
        return self

    def __exit__(self, *exc) -> None:
        self.cancel()


def _child_argv(job: Path, out: Path) -> list[str]:
    """The child's command line."""
    return [sys.executable, "-m", "hetkv_opt.methods.background", str(job), str(out)]


def _child(job_path: str, out_path: str) -> int:
    from hetkv_opt.methods.exact import solve_lp
    with open(job_path, "rb") as f:
        job = pickle.load(f)
    rounded: list = []
    res = solve_lp(job["instance"], time_limit_s=job["limit_s"], config=job["config"],
                   rounding=rounded)
    bound = res.details.get("bounds_s", {}).get("lp")
    ans = {"status": "infeasible" if res.status == "infeasible" else "done",
           "bound_s": bound, "schedule": rounded[0] if rounded else None,
           "lp": res.details.get("lp") or {}, "message": res.message}
    atomic_write_bytes(out_path, pickle.dumps(ans, protocol=pickle.HIGHEST_PROTOCOL))
    return 0


if __name__ == "__main__":          # the child process
    raise SystemExit(_child(sys.argv[1], sys.argv[2]))
