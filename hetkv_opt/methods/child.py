"""A step that cannot be interrupted, run where it can be abandoned: a child process.

Some solver calls give no control back until they are done: one OR-Tools min-cost-flow
solve is one C++ call, and its time is not a function of the graph's size alone (418k arcs
took 2 s on a high-turnover drift instance and 34 s on a default one).  A prediction can
admit it, but only a process can be stopped.  :func:`run_in_child` runs
``module:function(*args)`` in a plain ``python -m hetkv_opt.methods.child JOB OUT`` process
(no fork of a process that holds solver threads, no re-import of the caller's script),
waits for it until the deadline, and kills it then (:class:`Abandoned`); :class:`Child`
starts one without waiting, for work that runs beside the caller's on a spare core.  A
child runs in its own process group, and stopping it stops whatever it started too.  The arguments
and the answer travel as pickles in a private temporary folder; the answer is written whole
(temporary file, then rename), so a killed child leaves nothing half-read.  Its standard
output goes nowhere (a ``--format json`` stdout must stay clean).
"""

from __future__ import annotations

import importlib
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hetkv_opt.deadline import Deadline
from hetkv_opt.io.formats import atomic_write_bytes


class Abandoned(Exception):
    """The child did not answer before the deadline (it was killed), or it failed."""


def run_in_child(target: str, args: tuple, deadline: Deadline):
    """``module:function(*args)`` in a child process; its return value, or
    :class:`Abandoned` when the deadline comes first or the child fails (the message says
    which)."""
    with Child(target, args) as child:
        return child.wait(deadline)


class Child:
    """``module:function(*args)`` started in a child process, without waiting for it.

    ``poll()`` is None while it runs, then its return value (:class:`Abandoned` when it
    failed); ``wait(deadline)`` waits until the deadline and kills it then; ``cancel()``
    kills it and whatever processes it started (its own process group), and is idempotent;
    use it as a context manager so that it always is."""

    def __init__(self, target: str, args: tuple):
        self.target = target
        self.started = time.perf_counter()
        self._dir = Path(tempfile.mkdtemp(prefix="hetkv-child-"))
        self._out = self._dir / "answer.pkl"
        self._done = False
        self._value = None
        job = self._dir / "job.pkl"
        with open(job, "wb") as f:
            pickle.dump({"target": target, "args": args}, f, protocol=pickle.HIGHEST_PROTOCOL)
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "hetkv_opt.methods.child", str(job), str(self._out)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True)

    def poll(self):
        """None while the child runs; then its return value (raises :class:`Abandoned`
        when it failed)."""
        if not self._done:
            if self._proc.poll() is None:
                return None
            self._finish()
        if isinstance(self._value, Abandoned):
            raise self._value
        return self._value

    def running(self) -> bool:
        return not self._done and self._proc.poll() is None

    def wait(self, deadline: Deadline):
        """:meth:`poll`, waiting until ``deadline``; then the child is killed and
        :class:`Abandoned` raised."""
        while self.running():
            left = deadline.remaining_s()
            if left is not None and left <= 0:
                self.cancel()
                raise Abandoned(f"{self.target} had not finished at the deadline")
            try:
                self._proc.wait(timeout=0.05 if left is None else min(0.05, max(left, 0.001)))
            except subprocess.TimeoutExpired:
                pass
        return self.poll()

    def cancel(self) -> None:
        if self._proc.poll() is None:
            try:
                os.killpg(self._proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):   # pragma: no cover
                self._proc.kill()
            self._proc.wait()
        if not self._done:
            self._value = Abandoned(f"{self.target} was stopped")
            self._finish(read=False)

    def _finish(self, read: bool = True) -> None:
        self._done = True
        err = b""
        if self._proc.stderr is not None:
            try:
                err = self._proc.stderr.read()[-400:]
            except (OSError, ValueError):
                pass
            self._proc.stderr.close()
        if read:
            try:
                with open(self._out, "rb") as f:
                    self._value = pickle.load(f)
            except (OSError, EOFError, pickle.UnpicklingError):
                why = err.decode(errors="replace").strip().splitlines()
                self._value = Abandoned(f"{self.target} ended with code "
                                        f"{self._proc.returncode}"
                                        + (f": {why[-1]}" if why else ""))
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> "Child":
        return self

    def __exit__(self, *exc) -> None:
        self.cancel()


def _child(job_path: str, out_path: str) -> int:
    with open(job_path, "rb") as f:
        job = pickle.load(f)
    module, name = job["target"].split(":")
    result = getattr(importlib.import_module(module), name)(*job["args"])
    atomic_write_bytes(out_path, pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
    return 0


if __name__ == "__main__":          # the child process
    raise SystemExit(_child(sys.argv[1], sys.argv[2]))
