"""Time and peak memory of building the paper-scale workload, streamed to NPZ.

Run from the repository root::

    python benchmarks/bench_workload.py                         # the paper's workload, drift reads
    python benchmarks/bench_workload.py --access paper          # token-level reads (slower)
    python benchmarks/bench_workload.py --out /tmp/paper.npz --keep --compress-level 1

It runs ``/usr/bin/time -v hetkv generate OUT.npz --preset-workload paper --access A
-q -f json`` (Llama-3.1-8B on gh200-paper, one request, 31,299-token prompt, 10,240
decode steps, 32 layers, 16-token pages, 60 % sparsity) in a subprocess and prints one
JSON object: wall seconds, peak resident memory, file size, and the command's own summary
(items, epochs, reads, sha256).  The issue's targets: <= 10 min and <= 8 GB.  The output
file (several GB) is deleted unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=None, help="Output .npz (default: a temp folder).")
    ap.add_argument("--access", default="drift", choices=("drift", "paper"))
    ap.add_argument("--compress-level", type=int, default=6)
    ap.add_argument("--keep", action="store_true", help="Keep the output file.")
    ap.add_argument("extra", nargs="*", help="More 'hetkv generate' options (after --).")
    a = ap.parse_args(argv)
    tmpdir = None
    out = a.out
    if out is None:
        tmpdir = tempfile.mkdtemp(prefix="bench_workload.")
        out = Path(tmpdir) / "paper.npz"
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "hetkv_opt", "generate", str(out),
           "--preset-workload", "paper", "--access", a.access, "--compress-level",
           str(a.compress_level), "-q", "-f", "json", *a.extra]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        return proc.returncode
    summary = json.loads(proc.stdout)
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", proc.stderr).group(1)
    parts = [float(x) for x in wall.split(":")]
    wall_s = sum(x * 60 ** k for k, x in enumerate(reversed(parts)))
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    result = {"command": " ".join(cmd[2:]).replace(sys.executable, "python"),
              "wall_s": round(wall_s, 1), "peak_rss_MB": round(rss_kb / 1024, 1),
              "file_MB": round(out.stat().st_size / 2 ** 20, 1), **summary}
    print(json.dumps(result, indent=2))
    if not a.keep:
        os.unlink(out)
        if tmpdir:
            os.rmdir(tmpdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
