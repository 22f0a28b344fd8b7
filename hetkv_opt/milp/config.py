"""Solver settings, and named presets loaded from small TOML files in ``solvers/``.

A preset file looks like::

    description = "prove optimality: no gap left"
    backend = "highs"          # or "pulp"
    mip_rel_gap = 0.0
    [highs]                    # raw HiGHS options, passed through
    mip_heuristic_effort = 0.1

A preset can make a solve faster or slower, never make it prove something false: every
field is checked (``mip_rel_gap`` in [0, 1), ``threads`` 1 to :data:`MAX_THREADS`, ``seed``
a whole number, ``rounding_cuts`` true or false), and ``[highs]`` may hold only
:data:`SAFE_HIGHS_OPTIONS`, each of the type and range HiGHS accepts.  Objective limits,
gaps, tolerances, output and file options are refused by name, with the reason
(:func:`check_config`; :class:`SolverConfig` checks itself when made).
"""

from __future__ import annotations

import dataclasses
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

from hetkv_opt.cluster import check_cluster

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# the repository's solvers/ (editable installs), the installed copy, the working folder's
PRESET_DIRS = (Path(__file__).resolve().parent.parent / "solvers",
               Path(sys.prefix) / "share" / "hetkv" / "solvers", Path.cwd() / "solvers")


@dataclass(frozen=True)
class SolverConfig:
    """How to run the solver.

    Parameters
    ----------
    backend : {"highs", "pulp"}
        ``highs`` passes the numpy-built model straight to highspy; ``pulp`` builds the
        same model through PuLP (for PuLP users, and for CBC).
    pulp_solver : {"HiGHS", "CBC"}
        Which PuLP solver the ``pulp`` backend calls.
    mip_rel_gap : float
        Relative gap at which the MILP stops as optimal.
    threads, seed : int
    lp_method : {"auto", "simplex", "ipm", "pdlp"}
    rounding_cuts : bool
        Add the per-epoch rounding inequalities (see :mod:`hetkv_opt.milp.build`).
    highs : dict
        Raw HiGHS options.
    workers : int
        Local Dask worker processes for the decomposed bound (0: this process).
    scheduler : str, optional
        Address of a running Dask scheduler instead (``tcp://HOST:PORT``).
    """

    name: str = "default"
    description: str = "HiGHS, 1e-4 relative gap"
    backend: str = "highs"
    pulp_solver: str = "HiGHS"
    mip_rel_gap: float = 1e-4
    threads: int = 1
    seed: int = 0
    lp_method: str = "auto"
    rounding_cuts: bool = True
    highs: dict = field(default_factory=dict)
    workers: int = 0
    scheduler: str | None = None

    def __post_init__(self):
        check_config(self)

    def replace(self, **kw) -> "SolverConfig":
        return dataclasses.replace(self, **{k: v for k, v in kw.items() if v is not None})


_FIELDS = {f.name for f in dataclasses.fields(SolverConfig)}

#: threads HiGHS may be given (100,000 made it hang)
MAX_THREADS = 256
#: HiGHS's ``random_seed`` range
MAX_SEED = 2 ** 31 - 1

#: the raw HiGHS options a preset may set: they change how fast a schedule or a proof is
#: found, never what is proven (no tolerance, gap, objective limit, output or file); an
#: iteration, node or solution limit only stops the search early (the result is then
#: ``feasible``, and the bound HiGHS reached is still a bound)
SAFE_HIGHS_OPTIONS = frozenset({
    "presolve", "parallel", "run_crossover", "presolve_reduction_limit",
    "simplex_strategy", "simplex_scale_strategy", "simplex_dual_edge_weight_strategy",
    "simplex_primal_edge_weight_strategy", "simplex_max_concurrency",
    "simplex_iteration_limit", "ipm_iteration_limit", "pdlp_iteration_limit",
    "mip_heuristic_effort", "mip_heuristic_run_feasibility_jump", "mip_heuristic_run_rins",
    "mip_heuristic_run_rens", "mip_heuristic_run_root_reduced_cost",
    "mip_heuristic_run_zi_round", "mip_heuristic_run_shifting", "mip_detect_symmetry",
    "mip_allow_restart", "mip_root_presolve_only", "mip_max_nodes", "mip_max_stall_nodes",
    "mip_max_leaves", "mip_max_improving_sols", "mip_lp_age_limit", "mip_pool_age_limit",
    "mip_pool_soft_limit", "mip_pscost_minreliable",
    "mip_min_cliquetable_entries_for_parallelism",
})

#: why the well-known unsafe options are refused
_UNSAFE = {
    "objective_bound": "stops the search at a chosen objective: the bound it reports is not proven",
    "objective_target": "stops the search at a chosen objective: the bound it reports is not proven",
    "mip_rel_gap": "set the gap with mip_rel_gap at the top level of the preset (in [0, 1))",
    "mip_abs_gap": "an absolute gap in model units would change what 'optimal' proves",
    "time_limit": "the time limit is the command's --time-limit (or a suite's time_limit_s)",
    "threads": "set threads at the top level of the preset",
    "random_seed": "set seed at the top level of the preset",
    "solver": "choose the LP method with lp_method at the top level of the preset",
    "output_flag": "HiGHS's log goes to stderr with --verbose; on stdout it would break -f json",
    "log_to_console": "HiGHS's log goes to stderr with --verbose; on stdout it would break -f json",
}


def _why_unsafe(key: str) -> str:
    if key in _UNSAFE:
        return _UNSAFE[key]
    if key.endswith("_file") or key.startswith("write_") or "file" in key:
        return "makes HiGHS read or write files"
    if "tolerance" in key or key.endswith(("_value", "_bound", "_cost")) or "infinite" in key:
        return ("a tolerance or numerical limit: it can make HiGHS call a schedule feasible "
                "or a bound proven when it is not")
    return ("not an option a preset may set: only options that cannot change what is proven "
            f"are allowed ({', '.join(sorted(SAFE_HIGHS_OPTIONS))})")


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check_gap(value, name: str = "field 'mip_rel_gap'") -> None:
    """A relative MIP gap: a finite number in [0, 1) (ValueError naming ``name``)."""
    if not _is_number(value) or not math.isfinite(value) or not 0 <= value < 1:
        raise ValueError(f"{name}: must be a number in [0, 1) (a relative gap), got {value!r}")


def check_threads(value, name: str = "field 'threads'") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_THREADS:
        raise ValueError(f"{name}: must be a whole number from 1 to {MAX_THREADS}, got {value!r}")


def check_seed(value, name: str = "field 'seed'") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEED:
        raise ValueError(f"{name}: must be a whole number from 0 to {MAX_SEED}, got {value!r}")


def check_highs_options(options) -> None:
    """Raw HiGHS options of a preset: a table of :data:`SAFE_HIGHS_OPTIONS`, each of the
    type and in the range HiGHS accepts (ValueError naming the option)."""
    if not isinstance(options, dict):
        raise ValueError(f"field 'highs': must be a table of HiGHS options ([highs]), got {options!r}")
    if not options:
        return
    from hetkv_opt.milp.highs import new_highs
    h = new_highs()
    for key, val in options.items():
        where = f"field 'highs.{key}'"
        status, kind = h.getOptionType(str(key))
        if getattr(status, "name", str(status)).endswith("kError"):
            raise ValueError(f"{where}: not a HiGHS option")
        if key not in SAFE_HIGHS_OPTIONS:
            raise ValueError(f"{where}: refused: {_why_unsafe(key)}")
        kind = getattr(kind, "name", str(kind))
        ok = {"kBool": isinstance(val, bool),
              "kInt": isinstance(val, int) and not isinstance(val, bool),
              "kDouble": _is_number(val) and math.isfinite(val),
              "kString": isinstance(val, str)}.get(kind, False)
        want = {"kBool": "true or false", "kInt": "a whole number", "kDouble": "a finite number",
                "kString": "a string"}.get(kind, kind)
        if not ok:
            raise ValueError(f"{where}: must be {want}, got {val!r}")
        status = h.setOptionValue(key, val)
        if getattr(status, "name", str(status)).endswith("kError"):
            raise ValueError(f"{where}: HiGHS refuses the value {val!r} (out of its range)")


def check_config(cfg: "SolverConfig") -> None:
    """Every field of a :class:`SolverConfig` (ValueError naming the field)."""
    for key in ("name", "description"):
        if not isinstance(getattr(cfg, key), str):
            raise ValueError(f"field '{key}': must be a string, got {getattr(cfg, key)!r}")
    if cfg.backend not in ("highs", "pulp"):
        raise ValueError("field 'backend': must be 'highs' or 'pulp'")
    if cfg.pulp_solver not in ("HiGHS", "CBC"):
        raise ValueError("field 'pulp_solver': must be 'HiGHS' or 'CBC'")
    if cfg.lp_method not in ("auto", "simplex", "ipm", "pdlp"):
        raise ValueError("field 'lp_method': must be auto, simplex, ipm or pdlp")
    check_gap(cfg.mip_rel_gap)
    check_threads(cfg.threads)
    check_seed(cfg.seed)
    if not isinstance(cfg.rounding_cuts, bool):
        raise ValueError(f"field 'rounding_cuts': must be true or false, got {cfg.rounding_cuts!r}")
    check_highs_options(cfg.highs)
    try:
        check_cluster(cfg.workers, cfg.scheduler)
    except ValueError as exc:
        raise ValueError(f"field 'workers'/'scheduler': {exc}") from None


def list_presets() -> dict[str, Path]:
    """Every preset found in the ``solvers/`` folders, by name."""
    found: dict[str, Path] = {}
    for d in PRESET_DIRS:
        if d.is_dir():
            for p in sorted(d.glob("*.toml")):
                found.setdefault(p.stem, p)
    return found


def load_preset(name_or_path: str) -> SolverConfig:
    """Load a preset by name (``exact``) or by path (``my/preset.toml``).

    Raises
    ------
    ValueError
        Naming the file and the field when the preset is missing or malformed.
    """
    path = Path(name_or_path)
    if path.suffix.lower() == ".toml" or path.exists() or "/" in str(name_or_path):
        if not path.exists():
            raise ValueError(f"solver preset '{name_or_path}': no such file")
        if path.is_dir():
            raise ValueError(f"solver preset '{name_or_path}': is a directory, not a preset "
                             f"file (a .toml file, or the name of one in solvers/)")
        if path.suffix.lower() != ".toml":
            raise ValueError(f"solver preset '{name_or_path}': not a preset file (a solver "
                             f"preset is a .toml file)")
    else:
        presets = list_presets()
        if name_or_path not in presets:
            raise ValueError(f"solver preset '{name_or_path}': no such preset or file "
                             f"(known: {', '.join(sorted(presets)) or 'none'})")
        path = presets[name_or_path]
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid TOML ({exc})") from None
    except OSError as exc:
        raise ValueError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    unknown = set(data) - (_FIELDS - {"name"})
    if unknown:
        raise ValueError(f"{path}: field '{sorted(unknown)[0]}': unknown preset key "
                         f"(known: {', '.join(sorted(_FIELDS - {'name'}))})")
    try:
        return SolverConfig(name=path.stem, **data)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
