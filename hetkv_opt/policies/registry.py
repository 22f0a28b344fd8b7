"""The policy registry: policies by name, with their hyper-parameters parsed.

Built-in families (:mod:`~hetkv_opt.policies.classic`, :mod:`~hetkv_opt.policies.attention`,
:mod:`~hetkv_opt.policies.paper`) register themselves when :mod:`hetkv_opt.policies` is
imported, which Python does before any of its submodules, so every lookup sees them.
Duplicates are an error, never silently replaced.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any

import numpy as np

from hetkv_opt.policies.base import Policy, ScoredPolicy  # noqa: F401  (ScoredPolicy: doctest)

_REGISTRY: dict[str, type] = {}


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
        if not isinstance(name, str) or not name or any(ch.isspace() for ch in name):
            raise ValueError(f"policy name must be a non-empty word, got {name!r}")
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

    Raises
    ------
    ValueError
        Unknown name, unknown parameter, or a value of the wrong type or range.

    Examples
    --------
    >>> get_policy("lru")
    LRU(fill='capacity')
    >>> get_policy("ema-score", decay="0.5").decay
    0.5
    """
    cls = _REGISTRY.get(name)
    if cls is None:
        raise ValueError(f"unknown policy {name!r} (known: {', '.join(sorted(_REGISTRY))})")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in params.items():
        if key not in fields:
            known = ", ".join(fields) or "none"
            raise ValueError(f"policy {name}: unknown parameter {key!r} (parameters: {known})")
        kwargs[key] = _coerce(name, key, value, hints.get(key, Any))
    return cls(**kwargs)


@dataclass(frozen=True)
class PolicyInfo:
    """One registered policy, as :func:`list_policies` describes it."""

    name: str
    cls: type
    params: dict
    oracle: bool
    summary: str

    def to_dict(self) -> dict:
        return {"name": self.name, "oracle": self.oracle, "params": dict(self.params),
                "summary": self.summary, "class": f"{self.cls.__module__}.{self.cls.__qualname__}"}


def list_policies() -> list[PolicyInfo]:
    """Every registered policy, by name: parameters with defaults, oracle flag, summary."""
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


__all__ = ["PolicyInfo", "get_policy", "list_policies", "register_policy", "unregister_policy"]
