"""README examples are run, and its set-up commands are the ones CI uses."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_python_examples_run():
    code = blocks("python")
    assert code, "README has a library example"
    for src in code:
        exec(compile(src, "README.md", "exec"), {"__name__": "readme"})


def test_setup_commands_exist_and_ci_runs_the_test_command():
    bash = [b.strip() for b in blocks("bash")]
    install = next(b for b in bash if b.startswith("pip install"))
    test_cmd = next(b for b in bash if "pytest" in b)
    instance = re.search(r"hetkv solve (\S+)", install).group(1)
    assert (ROOT / instance).is_file()
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_cmd in ci


def test_shipped_instances_are_listed():
    listed = (ROOT / "instances" / "README.md").read_text()
    for p in (ROOT / "instances").iterdir():
        if p.suffix in (".json", ".npz"):
            assert f"`{p.name}`" in listed, p.name
