"""Benchmark sweeps: methods and policies over suites of instances, one result per cell.

- :mod:`~hetkv_opt.bench.suite`: suite files (``benchmarks/suites/NAME.toml``), the
  registry (duplicate names refused) and the instance generators a suite may name;
- :mod:`~hetkv_opt.bench.runner`: :func:`run_suite`: resumable, atomic, local process
  pool or Dask;
- :mod:`~hetkv_opt.bench.report`: ``report(dir)``: the table and the figures (import it
  from there: ``from hetkv_opt.bench.report import report``), ``-f csv`` / ``parquet``;
- :mod:`~hetkv_opt.bench.sweep`: ``sweep(instance, dir, hbm_scales=...)``: capacity
  curves (``hetkv sweep``), every point's cells through :func:`run_suite`;
- :mod:`~hetkv_opt.workloads.paper`: the Llama-3.1-8B / GH200 workload of the
  ``paper`` suite (Fang et al., arXiv 2508.13231).

>>> from hetkv_opt.bench import list_suites
>>> "paper" in list_suites()
True
"""

from hetkv_opt.bench.runner import BenchError, SuiteRun, comparable, run_cell, run_suite
from hetkv_opt.bench.suite import (Suite, SuiteError, list_suites, load_suite, parse_suite,
                                   register_suite, unregister_suite)

__all__ = ["BenchError", "Suite", "SuiteError", "SuiteRun", "comparable", "list_suites",
           "load_suite", "parse_suite", "register_suite", "run_cell", "run_suite",
           "unregister_suite"]
