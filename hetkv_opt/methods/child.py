"""A step that cannot be interrupted, run where it can be abandoned: a child process.

Some solver calls give no control back until they are done: one OR-Tools min-cost-flow
solve is one C++ call, and its time is not a function of the graph's size alone (418k arcs
took 2 s on a high-turnover drift instance and 34 s on a default one).  A prediction can
admit it, but only a process can be stopped.  :func:`run_in_child` runs
``module:function(*args)`` in a plain ``python -m hetkv_opt.methods.child JOB OUT`` process
(no fork of a process that holds solver threads, no re-import of the caller's script),
waits for it until the deadline, and kills it then (:class:`Abandoned`).  The arguments
and the answer travel as pickles in a private temporary folder; the answer is written whole
(temporary file, then rename), so a killed child leaves nothing half-read.  Its standard
output goes nowhere (a ``--format json`` stdout must stay clean).
"""

from __future__ import annotations

import importlib
import pickle
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from hetkv_opt.deadline import Deadline
from hetkv_opt.io.formats import atomic_write_bytes


class Abandoned(Exception):
    """The child did not answer before the deadline (it was killed), or it failed."""


def run_in_child(target: str, args: tuple, deadline: Deadline):
    """``module:function(*args)`` in a child process; its return value, or
    :class:`Abandoned` when the deadline comes first or the child fails (the message says
    which)."""
    folder = Path(tempfile.mkdtemp(prefix="hetkv-child-"))
    try:
        job, out = folder / "job.pkl", folder / "answer.pkl"
        with open(job, "wb") as f:
            pickle.dump({"target": target, "args": args}, f, protocol=pickle.HIGHEST_PROTOCOL)
        proc = subprocess.Popen([sys.executable, "-m", "hetkv_opt.methods.child", str(job),
                                 str(out)], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            while True:
                left = deadline.remaining_s()
                if left is not None and left <= 0:
                    raise Abandoned(f"{target} had not finished at the deadline")
                try:
                    proc.wait(timeout=0.05 if left is None else min(0.05, max(left, 0.001)))
                    break
                except subprocess.TimeoutExpired:
                    continue
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            err = b""
            if proc.stderr is not None:
                try:
                    err = proc.stderr.read()[-400:]
                except (OSError, ValueError):
                    pass
                proc.stderr.close()
        try:
            with open(out, "rb") as f:
                return pickle.load(f)
        except (OSError, EOFError, pickle.UnpicklingError):
            why = err.decode(errors="replace").strip().splitlines()
            raise Abandoned(f"{target} ended with code {proc.returncode}"
                            + (f": {why[-1]}" if why else "")) from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _child(job_path: str, out_path: str) -> int:
    with open(job_path, "rb") as f:
        job = pickle.load(f)
    module, name = job["target"].split(":")
    result = getattr(importlib.import_module(module), name)(*job["args"])
    atomic_write_bytes(out_path, pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
    return 0


if __name__ == "__main__":          # the child process
    raise SystemExit(_child(sys.argv[1], sys.argv[2]))
