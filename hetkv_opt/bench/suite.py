"""Benchmark suites: one small TOML file per suite, in a registry that refuses duplicate names.

A suite lists instances (files, or generator parameters with optional sweeps) and methods
(solver methods with time limits, and policies with hyper-parameters); every
(instance, method) pair is a *cell*, run and stored on its own by
:func:`hetkv_opt.bench.runner.run_suite`.  A suite file looks like::

    schema = "hetkv-suite"
    schema_version = 1
    description = "drift instances, LP bound vs two policies"
    seed = 0                           # generators, solvers and seeded policies

    [[instances]]
    file = "../../instances/tiny.json"  # relative to this file (or to the current folder)

    [[instances]]
    name = "drift-s{sparsity_pct}"     # {param} and {param_pct} (= round(100 x param))
    group = "drift 64x32"              # series label in reports (default: the name template)
    generator = "drift"                # drift | paper (see GENERATORS)
    params = { blocks = 64, steps = 32 }
    sweep = { sparsity = [0.4, 0.6] }  # one instance per value (cartesian product)

    [[methods]]
    method = "lp"                      # a solve() method (lp, milp, auto, ...) | policy:NAME
    time_limit_s = 60                  # solver methods only (default 60)

    [[methods]]
    name = "auto-ws"                   # the cell label (default: the method)
    method = "auto"
    preset = "fast"                    # a solver preset (solvers/NAME.toml) ...
    config = { mip_rel_gap = 0.01 }    # ... and/or SolverConfig fields
    warm_start = ["static", "lfu"]     # best of these policies' schedules starts the MILP

    [[methods]]
    method = "policy:ema-score"
    params = { decay = 0.5 }

    [[methods]]
    method = "policy:../policies/mine.py:MostRead"   # your own policy: FILE.py:CLASS
    params = { fill = "share" }                      # (relative to this file) or MODULE:CLASS

The suite's name is its file's stem (``benchmarks/suites/NAME.toml``); a ``name`` key, if
present, must equal it.  Every error names the file, the field and the reason.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import itertools
import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from hetkv_opt.io.files import check_header
from hetkv_opt.io.shards import is_sharded_path
from hetkv_opt.model.instance import Instance
from hetkv_opt.solve import METHODS as SOLVER_METHODS

SCHEMA_SUITE = "hetkv-suite"
SCHEMA_VERSION = 1
DEFAULT_TIME_LIMIT_S = 60.0
SUITE_DIRS = (Path(__file__).resolve().parent.parent.parent / "benchmarks" / "suites",
              Path.cwd() / "benchmarks" / "suites")


class SuiteError(ValueError):
    """A suite file or spec that cannot be used: names the file, the field and the reason.

    >>> str(SuiteError("methods[1].time_limit_s", "must be > 0", "s.toml"))
    "s.toml: field 'methods[1].time_limit_s': must be > 0"
    """

    def __init__(self, field: str, reason: str, source: str | None = None):
        self.field = field
        self.reason = reason
        self.source = source
        where = f"{source}: " if source else ""
        text = reason if field == "(file)" else f"field '{field}': {reason}"
        super().__init__(where + text)

    def with_source(self, source: str) -> "SuiteError":
        return SuiteError(self.field, self.reason, source)


# ----------------------------------------------------------------------------- generators

@dataclass(frozen=True)
class Generator:
    """An instance generator a suite may name: a frozen params dataclass and a builder."""

    name: str
    params_cls: type
    build: Callable[..., Instance]   # build(params_obj, name=...) -> Instance
    doc: str = ""

    def defaults(self) -> dict:
        return {f.name: f.default for f in dataclasses.fields(self.params_cls)}


GENERATORS: dict[str, Generator] = {}


def register_generator(gen: Generator) -> Generator:
    """Add a generator to :data:`GENERATORS`; a taken name is an error."""
    if gen.name in GENERATORS:
        raise ValueError(f"a generator named {gen.name!r} is already registered")
    GENERATORS[gen.name] = gen
    return gen


def _builtin_generators() -> None:
    from hetkv_opt.workloads.paper import PaperParams, paper_instance
    from hetkv_opt.workloads.drift import DriftParams, drift_instance
    register_generator(Generator("drift", DriftParams, drift_instance,
                                 "one layer's paged KV cache read by a drifting top-k rule"))
    register_generator(Generator("paper", PaperParams, paper_instance,
                                 "Llama-3.1-8B-like decode on GH200 (Fang et al.), scaled down"))


_builtin_generators()


def build_instance(generator: str, params: Mapping[str, Any], name: str) -> Instance:
    """Build a generated instance from a (validated) spec; deterministic."""
    gen = GENERATORS[generator]
    return gen.build(gen.params_cls(**params), name=name)


# ----------------------------------------------------------------------------- specs

@dataclass(frozen=True)
class InstanceSpec:
    """One instance of a suite: a file, or a generator with its parameters.

    ``params`` are the generator's full parameters (defaults filled in), so a result file
    says exactly what was run.  ``index`` is the position in the suite (report order).
    """

    name: str
    group: str
    index: int
    file: str | None = None
    generator: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)

    def source(self) -> dict:
        if self.file is not None:
            return {"file": self.file}
        return {"generator": self.generator, "params": dict(self.params)}


@dataclass(frozen=True)
class MethodSpec:
    """One method of a suite: a solver method or a policy.

    Attributes
    ----------
    label : str
        The cell's method name in files and reports (unique in the suite).
    method : str
        A :func:`hetkv_opt.solve.solve` method (``lp``, ``milp``, ``auto``, ...) or
        ``policy:NAME`` (NAME may be ``FILE.py:CLASS`` or ``MODULE:CLASS``).
    time_limit_s : float or None
        Solver methods only.
    params : dict
        Policy hyper-parameters.
    preset : str or None
        A solver preset name or path; ``config`` overrides its fields.
    warm_start : tuple of str
        Policies whose best schedule starts the MILP (``milp``/``auto`` only).
    bound, bound_time_limit_s : str or None, float or None
        Policies only: the proven bound their gap is measured against (``auto``, ``lp``,
        ``lagrangian``, ``milp`` or ``aggregate``; :func:`hetkv_opt.bench.bounds.proven_bound`,
        computed once per instance and kept in the results folder), and its time limit.
    source_sha256 : str or None
        For a policy from a file or module (``policy:FILE.py:CLASS``): the SHA-256 of its
        source, so that its cells run again when the code changes.  ``method`` then holds
        the file's absolute path; ``label`` keeps the suite's text.
    """

    label: str
    method: str
    index: int
    time_limit_s: float | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    preset: str | None = None
    config: Mapping[str, Any] = field(default_factory=dict)
    warm_start: tuple = ()
    source_sha256: str | None = None
    bound: str | None = None
    bound_time_limit_s: float | None = None

    @property
    def kind(self) -> str:
        return "policy" if self.method.startswith("policy:") else "solver"

    @property
    def policy(self) -> str | None:
        return self.method.split(":", 1)[1] if self.kind == "policy" else None

    def to_dict(self) -> dict:
        d = {"label": self.label, "method": self.method, "kind": self.kind,
             "time_limit_s": self.time_limit_s, "params": dict(self.params),
             "preset": self.preset, "config": dict(self.config),
             "warm_start": list(self.warm_start)}
        if self.source_sha256 is not None:      # only for plugins: other cells keep their hash
            d["source_sha256"] = self.source_sha256
        if self.bound is not None:              # only when asked: other cells keep their hash
            d["bound"] = self.bound
            d["bound_time_limit_s"] = self.bound_time_limit_s
        return d


@dataclass(frozen=True)
class Suite:
    """A parsed, validated suite (see the module docstring for the file format)."""

    name: str
    instances: tuple
    methods: tuple
    seed: int = 0
    description: str = ""
    source: str | None = None

    def cells(self) -> list[tuple[InstanceSpec, MethodSpec]]:
        """Every (instance, method) pair, instance-major in suite order."""
        return [(i, m) for i in self.instances for m in self.methods]


# ----------------------------------------------------------------------------- parsing

_TOP_KEYS = {"schema", "schema_version", "name", "description", "seed", "instances", "methods"}
_INSTANCE_KEYS = {"name", "group", "file", "generator", "params", "sweep"}
def _bound_spec(entry: dict, where: str) -> tuple[str | None, float | None]:
    """A policy's ``bound`` and ``bound_time_limit_s`` keys, checked."""
    from hetkv_opt.bench.bounds import BOUND_METHODS
    bound = entry.get("bound")
    if bound is None:
        if "bound_time_limit_s" in entry:
            raise SuiteError(f"{where}.bound_time_limit_s", "needs 'bound'")
        return None, None
    if bound not in BOUND_METHODS:
        raise SuiteError(f"{where}.bound", f"must be one of {', '.join(BOUND_METHODS)}, "
                                           f"got {bound!r}")
    tl = entry.get("bound_time_limit_s", DEFAULT_TIME_LIMIT_S)
    if not _is_number(tl) or not tl > 0 or not math.isfinite(tl):
        raise SuiteError(f"{where}.bound_time_limit_s", f"must be a number > 0, got {tl!r}")
    return bound, float(tl)


_METHOD_KEYS = {"name", "method", "time_limit_s", "params", "preset", "config", "warm_start",
                "bound", "bound_time_limit_s"}


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _check_keys(d: Mapping, known: set, where: str) -> None:
    for key in d:
        if key not in known:
            raise SuiteError(f"{where}.{key}" if where else key,
                             f"unknown key (known: {', '.join(sorted(known))})")


def _table(d: Mapping, key: str, where: str) -> dict:
    v = d.get(key, {})
    if not isinstance(v, dict):
        raise SuiteError(f"{where}.{key}", "must be a table (e.g. { a = 1 })")
    return dict(v)


def _coerce_param(value, default, where: str):
    """A generator parameter of its default's type (ints stay ints, ints become floats)."""
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise SuiteError(where, f"must be true or false, got {value!r}")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise SuiteError(where, f"must be a whole number, got {value!r}")
        return value
    if isinstance(default, float):
        if not _is_number(value) or not math.isfinite(float(value)):
            raise SuiteError(where, f"must be a number, got {value!r}")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise SuiteError(where, f"must be a string, got {value!r}")
        return value
    return value


def _format_name(template: str, params: Mapping[str, Any], where: str) -> str:
    fmt = dict(params)
    for k, v in params.items():
        if _is_number(v):
            fmt[f"{k}_pct"] = int(round(100 * float(v)))
    try:
        return template.format(**fmt)
    except (KeyError, IndexError, ValueError) as exc:
        raise SuiteError(where, f"cannot fill the name template {template!r} "
                                f"({type(exc).__name__}: {exc})") from None


def _parse_instances(raw, base_dir: Path, seed: int, only: str | None = None) -> list[InstanceSpec]:
    if not isinstance(raw, list) or not raw:
        raise SuiteError("instances", "must be a non-empty list of tables ([[instances]])")
    out: list[InstanceSpec] = []
    for n, entry in enumerate(raw):
        where = f"instances[{n}]"
        if not isinstance(entry, dict):
            raise SuiteError(where, "must be a table")
        _check_keys(entry, _INSTANCE_KEYS, where)
        has_file, has_gen = "file" in entry, "generator" in entry
        if has_file == has_gen:
            raise SuiteError(where, "needs exactly one of 'file' or 'generator'")
        template = entry.get("name")
        if template is not None and (not isinstance(template, str) or not template):
            raise SuiteError(f"{where}.name", "must be a non-empty string")
        group = entry.get("group")
        if group is not None and not isinstance(group, str):
            raise SuiteError(f"{where}.group", "must be a string")
        if has_file:
            for key in ("params", "sweep"):
                if key in entry:
                    raise SuiteError(f"{where}.{key}", "only for generated instances")
            f = entry["file"]
            if not isinstance(f, str) or not f:
                raise SuiteError(f"{where}.file", "must be a path")
            path = Path(f)

            def present(p: Path) -> bool:        # a file, or a sharded folder (NAME.hetkv/)
                return p.is_file() or (is_sharded_path(p) and p.is_dir())
            if not path.is_absolute():
                cands = [base_dir / path, Path.cwd() / path]
                path = next((c for c in cands if present(c)), cands[0])
            name = template or path.stem
            # a missing file matters only to a run that includes it (``only``: a name
            # pattern, as ``hetkv bench --only``; the caller drops the rest)
            if not present(path) and (only is None or fnmatch.fnmatchcase(name, only)):
                raise SuiteError(f"{where}.file", f"no such file: {f}")
            out.append(InstanceSpec(name=name, group=group or name, index=len(out),
                                    file=str(path.resolve())))
            continue
        gname = entry["generator"]
        if gname not in GENERATORS:
            raise SuiteError(f"{where}.generator", f"unknown generator {gname!r} "
                                                   f"(known: {', '.join(sorted(GENERATORS))})")
        gen = GENERATORS[gname]
        defaults = gen.defaults()
        params = _table(entry, "params", where)
        sweep = _table(entry, "sweep", where)
        for key, value in params.items():
            if key not in defaults:
                raise SuiteError(f"{where}.params.{key}", f"unknown parameter of generator "
                                 f"{gname} (known: {', '.join(defaults)})")
            params[key] = _coerce_param(value, defaults[key], f"{where}.params.{key}")
        for key, values in sweep.items():
            if key not in defaults:
                raise SuiteError(f"{where}.sweep.{key}", f"unknown parameter of generator "
                                 f"{gname} (known: {', '.join(defaults)})")
            if key in params:
                raise SuiteError(f"{where}.sweep.{key}", "also set in params")
            if not isinstance(values, list) or not values:
                raise SuiteError(f"{where}.sweep.{key}", "must be a non-empty list")
            sweep[key] = [_coerce_param(v, defaults[key], f"{where}.sweep.{key}")
                          for v in values]
        if "seed" in defaults and "seed" not in params and "seed" not in sweep:
            params["seed"] = seed
        if template is None:
            template = gname + "".join(f"-{k}{{{k}}}" for k in sweep)
        keys = list(sweep)
        for combo in itertools.product(*(sweep[k] for k in keys)):
            full = {**defaults, **params, **dict(zip(keys, combo))}
            try:
                gen.params_cls(**full).validate()
            except ValueError as exc:
                m = re.search(r"option '([A-Za-z_]+)'", str(exc))
                key = m.group(1) if m else None
                sub = ("sweep" if key in sweep else "params") if key else "params"
                raise SuiteError(f"{where}.{sub}.{key}" if key else f"{where}.params",
                                 str(exc)) from None
            name = _format_name(template, full, f"{where}.name")
            out.append(InstanceSpec(name=name, group=group or template, index=len(out),
                                    generator=gname, params=full))
    seen: dict[str, int] = {}
    for spec in out:
        if spec.name in seen:
            raise SuiteError("instances", f"two instances are named {spec.name!r}; give each "
                             f"entry a distinct 'name' (templates may use {{param}})")
        seen[spec.name] = spec.index
    return out


def resolve_policy_spec(name: str, base_dir: Path | None) -> str:
    """A policy name as given, or a ``FILE.py:CLASS`` spec with its file made absolute:
    relative to ``base_dir`` (the suite's folder) if the file is there, else to the
    current folder (as instance files are)."""
    from hetkv_opt.policies.plugins import is_file_target, is_spec, resolve_file_spec, split_spec
    if not is_spec(name):
        return name
    target, _ = split_spec(name)
    if not is_file_target(target) or Path(target).is_absolute():
        return resolve_file_spec(name, None)
    here = resolve_file_spec(name, base_dir or Path.cwd())
    if Path(split_spec(here)[0]).is_file():
        return here
    cwd = resolve_file_spec(name, Path.cwd())
    return cwd if Path(split_spec(cwd)[0]).is_file() else here


def _policy_source(name: str) -> str | None:
    """SHA-256 of the source file of a policy loaded from a spec (read now: an edited file
    changes the cells' hashes), None for registered policies."""
    from hetkv_opt.policies import policy_source, resolve_policy
    from hetkv_opt.policies.plugins import source_sha256
    cls = resolve_policy(name)
    src = policy_source(cls.name) if cls.name else None
    return source_sha256(src["file"]) if src else None


def _policy_check(name: str, params: dict, where: str) -> None:
    try:
        from hetkv_opt.policies import get_policy
    except ImportError as exc:  # pragma: no cover - the policies package ships with hetkv_opt
        raise SuiteError(f"{where}.method", f"policies are not available ({exc})") from None
    try:
        get_policy(name, **params)
    except ValueError as exc:
        from hetkv_opt.policies import PolicyLoadError
        text = str(exc)
        m = re.search(r"parameter '([A-Za-z_0-9]+)'|parameter '?([A-Za-z_0-9]+)'?", text)
        if text.startswith("unknown policy") or isinstance(exc, PolicyLoadError):
            raise SuiteError(f"{where}.method", text) from None
        key = next((g for g in (m.groups() if m else ()) if g), None)
        raise SuiteError(f"{where}.params.{key}" if key and key in params else f"{where}.params",
                         text) from None


def _parse_methods(raw, seed: int, base_dir: Path | None = None) -> list[MethodSpec]:
    from hetkv_opt.milp.config import SolverConfig, load_preset
    if not isinstance(raw, list) or not raw:
        raise SuiteError("methods", "must be a non-empty list of tables ([[methods]])")
    cfg_fields = {f.name for f in dataclasses.fields(SolverConfig)} - {"name", "description"}
    out: list[MethodSpec] = []
    for n, entry in enumerate(raw):
        where = f"methods[{n}]"
        if not isinstance(entry, dict):
            raise SuiteError(where, "must be a table")
        _check_keys(entry, _METHOD_KEYS, where)
        method = entry.get("method")
        if not isinstance(method, str):
            raise SuiteError(f"{where}.method", f"missing: one of {', '.join(SOLVER_METHODS)} "
                                                f"or policy:NAME")
        label = entry.get("name", method)
        if not isinstance(label, str) or not label:
            raise SuiteError(f"{where}.name", "must be a non-empty string")
        params = _table(entry, "params", where)
        config = _table(entry, "config", where)
        if method.startswith("policy:"):
            for key in ("time_limit_s", "preset", "config", "warm_start"):
                if key in entry:
                    raise SuiteError(f"{where}.{key}", "only for solver methods, not policies")
            pname = resolve_policy_spec(method.split(":", 1)[1], base_dir)
            _policy_check(pname, params, where)
            from hetkv_opt.policies import get_policy
            pol = get_policy(pname, **params)
            if "seed" in pol.params() and "seed" not in params:
                params["seed"] = seed
            bound, btl = _bound_spec(entry, where)
            out.append(MethodSpec(label=label, method=f"policy:{pname}", index=n,
                                  params=params, source_sha256=_policy_source(pname),
                                  bound=bound, bound_time_limit_s=btl))
            continue
        for key in ("bound", "bound_time_limit_s"):
            if key in entry:
                raise SuiteError(f"{where}.{key}", "only for policies (a solver method "
                                                   "reports its own bound)")
        if method not in SOLVER_METHODS:
            raise SuiteError(f"{where}.method", f"unknown method {method!r} (known: "
                             f"{', '.join(SOLVER_METHODS)}, policy:NAME)")
        if params:
            raise SuiteError(f"{where}.params", "only for policies; solver settings go in "
                                                "'config' or 'preset'")
        tl = entry.get("time_limit_s", DEFAULT_TIME_LIMIT_S)
        if not _is_number(tl) or not tl > 0 or not math.isfinite(tl):
            raise SuiteError(f"{where}.time_limit_s", f"must be a number > 0, got {tl!r}")
        preset = entry.get("preset")
        if preset is not None:
            if not isinstance(preset, str):
                raise SuiteError(f"{where}.preset", "must be a preset name or path")
            try:
                load_preset(preset)
            except ValueError as exc:
                raise SuiteError(f"{where}.preset", str(exc)) from None
        for key in config:
            if key not in cfg_fields:
                raise SuiteError(f"{where}.config.{key}", f"unknown solver setting (known: "
                                 f"{', '.join(sorted(cfg_fields))})")
        try:
            SolverConfig(**config)
        except (TypeError, ValueError) as exc:   # a bad value: named by SolverConfig
            raise SuiteError(f"{where}.config", str(exc)) from None
        if "seed" not in config:
            config["seed"] = seed
        ws = entry.get("warm_start", [])
        if ws and method not in ("milp", "auto"):
            raise SuiteError(f"{where}.warm_start", "only for milp and auto")
        if not isinstance(ws, list) or not all(isinstance(p, str) for p in ws):
            raise SuiteError(f"{where}.warm_start", "must be a list of policy names")
        ws = [resolve_policy_spec(p, base_dir) for p in ws]
        for p in ws:
            _policy_check(p, {}, f"{where}.warm_start")
        out.append(MethodSpec(label=label, method=method, index=n, time_limit_s=float(tl),
                              preset=preset, config=config, warm_start=tuple(ws)))
    labels = [m.label for m in out]
    for lab in labels:
        if labels.count(lab) > 1:
            raise SuiteError("methods", f"two methods are labelled {lab!r}; give one a "
                                        f"distinct 'name'")
    return out


def parse_suite(data: Mapping[str, Any], name: str, base_dir: Path | None = None,
                source: str | None = None, only: str | None = None) -> Suite:
    """Validate a parsed suite mapping (the TOML's content) and build a :class:`Suite`.

    Raises
    ------
    SuiteError
        Naming the field and the reason (and ``source``, the file, when given).

    Examples
    --------
    >>> s = parse_suite({"schema": "hetkv-suite", "schema_version": 1,
    ...     "instances": [{"generator": "drift", "params": {"blocks": 8, "steps": 4}}],
    ...     "methods": [{"method": "lp"}, {"method": "policy:lru"}]}, name="doc")
    >>> [(i.name, m.label) for i, m in s.cells()]
    [('drift', 'lp'), ('drift', 'policy:lru')]
    """
    try:
        if not isinstance(data, Mapping):
            raise SuiteError("(top level)", "must be a table")
        _check_keys(data, _TOP_KEYS, "")
        check_header(data, schema=SCHEMA_SUITE, versions=SCHEMA_VERSION, error=SuiteError)
        if "name" in data and data["name"] != name:
            raise SuiteError("name", f"must match the file name {name!r}, got {data['name']!r}")
        desc = data.get("description", "")
        if not isinstance(desc, str):
            raise SuiteError("description", "must be a string")
        seed = data.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise SuiteError("seed", f"must be a whole number >= 0, got {seed!r}")
        instances = _parse_instances(data.get("instances"), base_dir or Path.cwd(), seed, only)
        methods = _parse_methods(data.get("methods"), seed, base_dir)
    except SuiteError as exc:
        raise (exc.with_source(source) if source else exc) from None
    return Suite(name=name, instances=tuple(instances), methods=tuple(methods), seed=seed,
                 description=desc, source=source)


def load_suite_file(path: str | Path, only: str | None = None) -> Suite:
    """Load and validate a suite file; its name is the file's stem (``only``: the
    instances a run will use, by name pattern; another's file may be missing)."""
    path = Path(path)
    if not path.is_file():
        raise SuiteError("(file)", "no such suite file", str(path))
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SuiteError("(file)", f"not valid TOML ({exc})", str(path)) from None
    return parse_suite(data, name=path.stem, base_dir=path.resolve().parent, source=str(path),
                       only=only)


# ----------------------------------------------------------------------------- registry

_REGISTERED: dict[str, Suite] = {}


def register_suite(suite: Suite) -> Suite:
    """Register a suite built in code; a name already taken (in code or by a suite file)
    is an error, never silently replaced."""
    if suite.name in _REGISTERED or suite.name in list_suite_files():
        raise ValueError(f"a suite named {suite.name!r} is already registered")
    _REGISTERED[suite.name] = suite
    return suite


def unregister_suite(name: str) -> None:
    """Remove a suite registered in code (tests, interactive sessions)."""
    if _REGISTERED.pop(name, None) is None:
        raise ValueError(f"no suite named {name!r} is registered in code")


def list_suite_files(dirs=None) -> dict[str, Path]:
    """Suite files by name (file stem) in ``dirs`` (default :data:`SUITE_DIRS`).

    Raises
    ------
    SuiteError
        When two different files carry the same name.
    """
    found: dict[str, Path] = {}
    for d in (SUITE_DIRS if dirs is None else dirs):
        d = Path(d)
        if not d.is_dir():
            continue
        for p in sorted(d.glob("*.toml")):
            prev = found.get(p.stem)
            if prev is not None and prev.resolve() != p.resolve():
                raise SuiteError("(file)", f"duplicate suite name {p.stem!r}: also defined by "
                                           f"{prev}", str(p))
            found[p.stem] = p
    return found


def list_suites(dirs=None) -> list[str]:
    """Every suite name: suite files and suites registered in code."""
    names = set(list_suite_files(dirs)) | set(_REGISTERED)
    return sorted(names)


def load_suite(name_or_path: str | Path, dirs=None, only: str | None = None) -> Suite:
    """A suite by name (registered, or ``benchmarks/suites/NAME.toml``) or by path.

    Raises
    ------
    SuiteError
        Unknown name, or a malformed file (naming the file, the field and the reason).
    """
    if isinstance(name_or_path, str) and name_or_path in _REGISTERED:
        return _REGISTERED[name_or_path]
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.is_file():
        return load_suite_file(path, only)
    files = list_suite_files(dirs)
    if str(name_or_path) not in files:
        known = sorted(set(files) | set(_REGISTERED))
        raise SuiteError("(file)", f"no suite named {str(name_or_path)!r} and no such file "
                                   f"(known suites: {', '.join(known) or 'none'})")
    return load_suite_file(files[str(name_or_path)], only)


def spec_json(obj: Any) -> str:
    """Canonical JSON of a spec (for hashing)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


__all__ = ["DEFAULT_TIME_LIMIT_S", "GENERATORS", "Generator", "InstanceSpec", "MethodSpec",
           "SCHEMA_SUITE", "SOLVER_METHODS", "Suite", "SuiteError", "build_instance",
           "list_suite_files", "list_suites", "load_suite", "load_suite_file", "parse_suite",
           "register_generator", "register_suite", "spec_json", "unregister_suite"]
