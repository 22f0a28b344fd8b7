"""Policies from outside the package: a Python file, an importable module, or an installed
package's entry point (docs/policies.md, "Running a policy").

A *policy spec* names a class where a registered name would go:

- ``path/to/file.py:ClassName`` -- the file is imported as a module of its own (once per
  process and resolved path); a relative path is relative to the current folder (to the
  suite file in a bench suite);
- ``package.module:ClassName`` -- imported with :func:`importlib.import_module`;
- an entry point of the group ``hetkv_opt.policies`` in an installed distribution, e.g. in
  its ``pyproject.toml``::

      [project.entry-points."hetkv_opt.policies"]
      my-policy = "my_package.policies:MyPolicy"

  which makes ``my-policy`` a policy name like the built-in ones.

This module only finds and checks classes; naming them and refusing name clashes is the
registry's job (:func:`hetkv_opt.policies.registry.resolve_policy`).  Every failure is a
:class:`PolicyLoadError` whose message is one line: the spec, and what is wrong (the file
does not exist or does not import, the class is missing or is not a policy).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path

from hetkv_opt.policies.base import Policy, ScoredPolicy

#: the entry-point group installed packages declare their policies in
ENTRY_POINT_GROUP = "hetkv_opt.policies"

_FILE_MODULES: dict[str, object] = {}      # resolved path -> module


class PolicyLoadError(ValueError):
    """A policy spec that cannot be used; the message is one line naming the spec and why.

    The spec is followed by a space, never by a colon (``:X:`` would read as an emoji
    code in a rich console).

    >>> str(PolicyLoadError("x.py:Foo", "no such file"))
    'policy x.py:Foo cannot be used: no such file'
    """

    def __init__(self, spec: str, reason: str):
        self.spec = spec
        self.reason = " ".join(str(reason).split())        # one line, whatever the cause
        super().__init__(f"policy {spec} cannot be used: {self.reason}")


def is_spec(text: str) -> bool:
    """True for ``FILE.py:CLASS`` or ``MODULE:CLASS`` (registered names have no colon).

    >>> is_spec("lru"), is_spec("my.py:Mine"), is_spec("pkg.mod:Mine")
    (False, True, True)
    """
    return isinstance(text, str) and ":" in text


def split_spec(spec: str) -> tuple[str, str]:
    """``(target, class_name)`` of a spec; the class is after the *last* colon.

    >>> split_spec("dir/my.py:Mine")
    ('dir/my.py', 'Mine')
    """
    target, _, cname = spec.rpartition(":")
    if not target or not cname or not cname.isidentifier():
        raise PolicyLoadError(spec, "expected FILE.py:CLASS or MODULE:CLASS "
                                    "(e.g. policies/mine.py:MostRead)")
    return target, cname


def is_file_target(target: str) -> bool:
    """A target that names a file (ends in ``.py`` or holds a path separator)."""
    return target.endswith(".py") or "/" in target or "\\" in target


def resolve_file_spec(spec: str, base_dir: str | Path | None) -> str:
    """The spec with a relative file path made absolute against ``base_dir`` (module specs
    and absolute paths are returned as they are)."""
    target, cname = split_spec(spec)
    if not is_file_target(target):
        return spec
    p = Path(target).expanduser()
    if not p.is_absolute():
        p = Path(base_dir or Path.cwd()) / p
    return f"{p.resolve()}:{cname}"


def _import_file(spec: str, target: str):
    path = Path(target).expanduser().resolve()
    key = str(path)
    if key in _FILE_MODULES:
        return _FILE_MODULES[key]
    if not path.is_file():
        raise PolicyLoadError(spec, f"no such file: {target}")
    digest = hashlib.sha256(key.encode()).hexdigest()[:10]
    stem = "".join(c if c.isalnum() else "_" for c in path.stem)
    name = f"hetkv_plugin_{stem}_{digest}"
    mod_spec = importlib.util.spec_from_file_location(name, path)
    if mod_spec is None or mod_spec.loader is None:
        raise PolicyLoadError(spec, f"{target} is not a Python file")
    module = importlib.util.module_from_spec(mod_spec)
    sys.modules[name] = module            # dataclasses and type hints look the module up
    try:
        mod_spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:    # noqa: BLE001 - any failure is the file's
        sys.modules.pop(name, None)
        raise PolicyLoadError(spec, f"{target} does not import: {_describe(exc)}") from None
    _FILE_MODULES[key] = module
    return module


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SyntaxError):
        return f"SyntaxError: {exc.msg} (line {exc.lineno})"
    return f"{type(exc).__name__}: {exc}"


def _import_module(spec: str, target: str):
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as exc:
        if exc.name and target.startswith(exc.name):
            raise PolicyLoadError(spec, f"no module named {target!r} (a file needs the .py "
                                        f"suffix)") from None
        raise PolicyLoadError(spec, f"module {target} does not import: {_describe(exc)}") from None
    except Exception as exc:  # noqa: BLE001
        raise PolicyLoadError(spec, f"module {target} does not import: {_describe(exc)}") from None


def policy_classes(module) -> list[str]:
    """Names of the policy classes defined in a module (for error messages)."""
    return sorted(n for n, v in vars(module).items()
                  if isinstance(v, type) and issubclass(v, Policy) and v.__module__ == module.__name__)


def check_policy_class(spec: str, cls) -> type:
    """``cls`` if it is a usable policy class, else a :class:`PolicyLoadError` saying why."""
    if not isinstance(cls, type) or not issubclass(cls, Policy):
        name = getattr(cls, "__name__", split_spec(spec)[1])
        what = "a class" if isinstance(cls, type) else f"a {type(cls).__name__}"
        raise PolicyLoadError(spec, f"is not a policy: {name} is {what}, not a subclass of "
                                    f"hetkv_opt.policies.Policy (or ScoredPolicy)")
    own_fields = [k for k, v in cls.__dict__.get("__annotations__", {}).items()
                  if "ClassVar" not in str(v)]
    if not dataclasses.is_dataclass(cls) or (own_fields and "__dataclass_fields__" not in cls.__dict__):
        raise PolicyLoadError(spec, f"is not a policy: {cls.__name__} must be a @dataclass "
                                    f"(its fields are its parameters)")
    scored = issubclass(cls, ScoredPolicy)
    if scored and cls.score is ScoredPolicy.score and cls.decide is ScoredPolicy.decide:
        raise PolicyLoadError(spec, f"is not a policy: {cls.__name__} implements neither "
                                    f"score(view) nor decide(view)")
    if not scored and cls.decide is Policy.decide:
        raise PolicyLoadError(spec, f"is not a policy: {cls.__name__} does not implement "
                                    f"decide(view)")
    return cls


def load_class(spec: str) -> tuple[type, str | None]:
    """The class a spec names and the file it came from (None for a module without one).

    Raises
    ------
    PolicyLoadError
        The file does not exist or does not import, the class is missing, or it is not a
        policy (one line).
    """
    target, cname = split_spec(spec)
    module = _import_file(spec, target) if is_file_target(target) else _import_module(spec, target)
    if not hasattr(module, cname):
        there = policy_classes(module)
        hint = f" (policies there: {', '.join(there)})" if there else " (it defines no policy class)"
        raise PolicyLoadError(spec, f"no class {cname!r} in {target}{hint}")
    cls = check_policy_class(spec, getattr(module, cname))
    return cls, getattr(module, "__file__", None)


def forget_file(cls: type) -> None:
    """Drop the cached module a class came from (so a changed file is imported afresh)."""
    for key, mod in list(_FILE_MODULES.items()):
        if getattr(mod, "__name__", None) == cls.__module__:
            del _FILE_MODULES[key]
            sys.modules.pop(cls.__module__, None)


def source_sha256(path: str | None) -> str | None:
    """SHA-256 of a policy's source file (bench cells re-run when the code changes)."""
    if not path:
        return None
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def entry_points() -> list:
    """The installed ``hetkv_opt.policies`` entry points (name, value ``module:Class``)."""
    from importlib.metadata import entry_points as eps
    try:
        found = eps(group=ENTRY_POINT_GROUP)
    except TypeError:  # pragma: no cover - Python < 3.10 API
        found = eps().get(ENTRY_POINT_GROUP, [])
    seen, out = set(), []
    for ep in found:
        if ep.name not in seen:          # a distribution on the path twice
            seen.add(ep.name)
            out.append(ep)
    return out


__all__ = ["ENTRY_POINT_GROUP", "PolicyLoadError", "check_policy_class", "entry_points",
           "forget_file", "is_file_target", "is_spec", "load_class", "policy_classes",
           "resolve_file_spec", "source_sha256", "split_spec"]
