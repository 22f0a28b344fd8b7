"""The policy registry: policies by name, with their hyper-parameters parsed.

Built-in families (:mod:`~hetkv_opt.policies.classic`, :mod:`~hetkv_opt.policies.attention`,
:mod:`~hetkv_opt.policies.paper`, :mod:`~hetkv_opt.policies.lookahead`) register themselves
when :mod:`hetkv_opt.policies` is imported, which Python does before any of its
submodules, so every lookup sees them.  Duplicates are an error, never silently replaced.

Wherever a name is accepted, a *policy spec* works too (:mod:`~hetkv_opt.policies.plugins`):
``path/to/file.py:ClassName`` or ``package.module:ClassName``; and the policies that
installed packages declare in the ``hetkv_opt.policies`` entry-point group are found by
their names.  A class loaded from a spec is registered under its own ``name`` attribute if
it sets one, else under its class name; a name that clashes with a registered policy's
(compared without case, ``-`` and ``_``: ``LRU`` clashes with ``lru``) is refused.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any

import numpy as np

from hetkv_opt.policies.base import Policy, ScoredPolicy  # noqa: F401  (ScoredPolicy: doctest)
from hetkv_opt.policies.plugins import (PolicyLoadError, entry_points, forget_file, is_spec,
                                        load_class, resolve_file_spec, source_sha256)

_REGISTRY: dict[str, type] = {}
#: policies loaded from a spec or an entry point: name -> {"spec", "file", "sha256"}
_SOURCES: dict[str, dict] = {}
#: entry points that failed to load when every policy was listed (one line each)
_PLUGIN_PROBLEMS: list[str] = []


def register_policy(name: str, cls: type | None = None):
    """Register a policy class under ``name`` (usable as a decorator above ``@dataclass``).

    Raises
    ------
    ValueError
        If the name is taken (duplicates are an error, never silently replaced), or the
        class is not a dataclass subclass of :class:`Policy`.

    Examples
    --------
    >>> from dataclasses import dataclass
    >>> @register_policy("doc-example")
    ... @dataclass
    ... class DocExample(ScoredPolicy):
    ...     def score(self, view):
    ...         return -view.birth.astype(float)
    >>> register_policy("doc-example", DocExample)
    Traceback (most recent call last):
    ...
    ValueError: a policy named 'doc-example' is already registered (DocExample)
    >>> unregister_policy("doc-example")
    """
    def deco(c: type) -> type:
        if not isinstance(name, str) or not name or any(ch.isspace() for ch in name) \
                or ":" in name:
            raise ValueError(f"policy name must be a non-empty word without ':', got {name!r}")
        if name in _REGISTRY:
            raise ValueError(f"a policy named {name!r} is already registered "
                             f"({_REGISTRY[name].__qualname__})")
        if not (isinstance(c, type) and issubclass(c, Policy) and dataclasses.is_dataclass(c)):
            raise ValueError(f"policy {name!r}: {c!r} must be a @dataclass subclass of Policy")
        if c.__dict__.get("name"):
            raise ValueError(f"policy class {c.__qualname__} is already registered as "
                             f"{c.__dict__['name']!r}")
        c.name = name
        _REGISTRY[name] = c
        return c
    return deco(cls) if cls is not None else deco


def unregister_policy(name: str) -> None:
    """Remove a registered policy (for tests and interactive sessions)."""
    cls = _REGISTRY.pop(name, None)
    if cls is None:
        raise ValueError(f"no policy named {name!r} is registered")
    cls.name = ""
    if _SOURCES.pop(name, None) is not None:
        forget_file(cls)


def _norm(name: str) -> str:
    return name.lower().replace("-", "").replace("_", "")


def _adopt(name: str, cls: type, spec: str, path: str | None) -> type:
    """Register a class loaded from ``spec`` under ``name``, refusing clashes."""
    if _REGISTRY.get(name) is cls:
        return cls
    for other, ocls in _REGISTRY.items():
        if ocls is not cls and _norm(other) == _norm(name):
            raise PolicyLoadError(spec, f"its name {name!r} clashes with the registered policy "
                                        f"{other!r} ({ocls.__module__}.{ocls.__qualname__}); "
                                        f"rename the class or give it name = \"...\"")
    cls.name = name
    _REGISTRY[name] = cls
    _SOURCES[name] = {"spec": spec, "file": path, "sha256": source_sha256(path)}
    return cls


def _load_entry_point(ep) -> type:
    spec = f"{ep.value} (entry point {ep.name!r})"
    try:
        cls, path = load_class(ep.value)
    except PolicyLoadError as exc:
        raise PolicyLoadError(spec, exc.reason) from None
    return _adopt(ep.name, cls, ep.value, path)


def resolve_policy(name_or_spec: str) -> type:
    """The policy class of a registered name, an installed entry point's name, or a spec
    (``FILE.py:CLASS``, ``MODULE:CLASS``; a relative file is relative to the current folder).

    Raises
    ------
    ValueError
        An unknown name; :class:`~hetkv_opt.policies.plugins.PolicyLoadError` (a
        ValueError) when a spec's file does not import, its class is missing or is not a
        policy, or its name clashes with a registered policy's.

    Examples
    --------
    >>> resolve_policy("lru").__name__
    'LRU'
    >>> resolve_policy("hetkv_opt.policies.classic:LFU") is resolve_policy("lfu")
    True
    """
    if not isinstance(name_or_spec, str):
        raise ValueError(f"a policy is named by a string, got {name_or_spec!r}")
    cls = _REGISTRY.get(name_or_spec)
    if cls is not None:
        return cls
    if is_spec(name_or_spec):
        try:
            cls, path = load_class(resolve_file_spec(name_or_spec, None))
        except PolicyLoadError as exc:            # name the spec as the user wrote it
            raise PolicyLoadError(name_or_spec, exc.reason) from None
        own = cls.__dict__.get("name") or ""
        if own and _REGISTRY.get(own) is cls:          # registered by its own file
            return cls
        return _adopt(own or cls.__name__, cls, name_or_spec, path)
    for ep in entry_points():
        if ep.name == name_or_spec:
            return _load_entry_point(ep)
    raise ValueError(f"unknown policy {name_or_spec!r} (known: {', '.join(sorted(_REGISTRY))}; "
                     f"or FILE.py:CLASS, MODULE:CLASS)")


def policy_source(name: str) -> dict | None:
    """Where a policy loaded from a spec or an entry point came from: ``{"spec", "file",
    "sha256"}`` (the file's SHA-256); None for policies registered in code."""
    src = _SOURCES.get(name)
    return dict(src) if src else None


def plugin_problems() -> list[str]:
    """Entry points that failed to load the last time :func:`list_policies` ran."""
    return list(_PLUGIN_PROBLEMS)


def _coerce(policy: str, param: str, value: Any, typ: Any) -> Any:
    """A parameter value of the declared type; strings (from the CLI) are parsed."""
    base = typ
    if typing.get_origin(typ) is typing.Union:
        args = [a for a in typing.get_args(typ) if a is not type(None)]
        base = args[0] if len(args) == 1 else typ
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
    if base not in (int, float, bool, str):
        return value
    if isinstance(value, str) and base is not str:
        text = value.strip().lower()
        try:
            if base is bool:
                if text in ("true", "1", "yes", "on"):
                    return True
                if text in ("false", "0", "no", "off"):
                    return False
                raise ValueError
            return base(text)
        except ValueError:
            raise ValueError(f"policy {policy}: parameter '{param}' must be "
                             f"{base.__name__}, got {value!r}") from None
    ok = (isinstance(value, base) and not (base is not bool and isinstance(value, bool))) or \
        (base is float and isinstance(value, (int, np.integer)) and not isinstance(value, bool))
    if not ok:
        raise ValueError(f"policy {policy}: parameter '{param}' must be {base.__name__}, "
                         f"got {value!r}")
    return float(value) if base is float else value


def get_policy(name: str, **params: Any) -> Policy:
    """A registered policy with the given hyper-parameters (strings are parsed).

    ``name`` may also be a spec, ``FILE.py:CLASS`` or ``MODULE:CLASS``, or the name of an
    installed package's entry point (:func:`resolve_policy`).

    Raises
    ------
    ValueError
        Unknown name, unknown parameter, or a value of the wrong type or range; a spec
        that cannot be loaded (:class:`~hetkv_opt.policies.plugins.PolicyLoadError`).

    Examples
    --------
    >>> get_policy("lru")
    LRU(fill='capacity')
    >>> get_policy("ema-score", decay="0.5").decay
    0.5
    """
    cls = resolve_policy(name)
    name = cls.name or name
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in params.items():
        if key not in fields:
            known = ", ".join(fields) or "none"
            raise ValueError(f"policy {name}: unknown parameter {key!r} (parameters: {known})")
        kwargs[key] = _coerce(name, key, value, hints.get(key, Any))
    try:
        return cls(**kwargs)
    except TypeError as exc:       # e.g. a field without a default: say so in one line
        raise ValueError(f"policy {name}: cannot be built with parameters {kwargs}: "
                         f"{exc}") from None


@dataclass(frozen=True)
class PolicyInfo:
    """One registered policy, as :func:`list_policies` describes it."""

    name: str
    cls: type
    params: dict
    oracle: bool
    summary: str

    def to_dict(self) -> dict:
        d = {"name": self.name, "oracle": self.oracle, "params": dict(self.params),
             "summary": self.summary, "class": f"{self.cls.__module__}.{self.cls.__qualname__}"}
        src = _SOURCES.get(self.name)
        if src:
            d["source"] = src["spec"]
        return d


def list_policies() -> list[PolicyInfo]:
    """Every registered policy, by name: parameters with defaults, oracle flag, summary.

    Installed entry points are loaded first; those that fail are left out and listed by
    :func:`plugin_problems`.
    """
    _PLUGIN_PROBLEMS.clear()
    for ep in entry_points():
        if ep.name in _SOURCES:
            continue
        try:
            _load_entry_point(ep)
        except ValueError as exc:
            _PLUGIN_PROBLEMS.append(str(exc))
    out = []
    for name in sorted(_REGISTRY):
        cls = _REGISTRY[name]
        params = {}
        for f in dataclasses.fields(cls):
            if not f.init:
                continue
            if f.default is not dataclasses.MISSING:
                params[f.name] = f.default
            elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
                params[f.name] = f.default_factory()  # type: ignore[misc]
            else:
                params[f.name] = None
        para = (cls.__doc__ or "").strip().split("\n\n")[0]
        summary = " ".join(line.strip() for line in para.splitlines()).replace("``", "")
        out.append(PolicyInfo(name, cls, params, bool(cls.uses_future), summary))
    return out


__all__ = ["PolicyInfo", "PolicyLoadError", "get_policy", "list_policies", "plugin_problems",
           "policy_source", "register_policy", "resolve_policy", "unregister_policy"]
