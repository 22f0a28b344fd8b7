"""Solver settings, and named presets loaded from small TOML files in ``solvers/``.

A preset file looks like::

    description = "prove optimality: no gap left"
    backend = "highs"          # or "pulp"
    mip_rel_gap = 0.0
    [highs]                    # raw HiGHS options, passed through
    mip_heuristic_effort = 0.1
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path

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

    def replace(self, **kw) -> "SolverConfig":
        return dataclasses.replace(self, **{k: v for k, v in kw.items() if v is not None})


_FIELDS = {f.name for f in dataclasses.fields(SolverConfig)}


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
    if not (path.suffix == ".toml" and path.is_file()):
        presets = list_presets()
        if name_or_path not in presets:
            raise ValueError(f"solver preset '{name_or_path}': no such preset or file "
                             f"(known: {', '.join(sorted(presets)) or 'none'})")
        path = presets[name_or_path]
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid TOML ({exc})") from None
    unknown = set(data) - _FIELDS
    if unknown:
        raise ValueError(f"{path}: field '{sorted(unknown)[0]}': unknown preset key "
                         f"(known: {', '.join(sorted(_FIELDS - {'name'}))})")
    if data.get("backend", "highs") not in ("highs", "pulp"):
        raise ValueError(f"{path}: field 'backend': must be 'highs' or 'pulp'")
    if data.get("pulp_solver", "HiGHS") not in ("HiGHS", "CBC"):
        raise ValueError(f"{path}: field 'pulp_solver': must be 'HiGHS' or 'CBC'")
    if data.get("lp_method", "auto") not in ("auto", "simplex", "ipm", "pdlp"):
        raise ValueError(f"{path}: field 'lp_method': must be auto, simplex, ipm or pdlp")
    gap = data.get("mip_rel_gap", 1e-4)
    if not isinstance(gap, (int, float)) or gap < 0:
        raise ValueError(f"{path}: field 'mip_rel_gap': must be a number >= 0")
    return SolverConfig(name=path.stem, **data)
