"""``hetkv simulate`` and ``hetkv policies``: the policy commands of the CLI.

Added to the main app by :func:`register` (``hetkv_opt.cli.app`` calls it).
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer

from hetkv_opt.cli.common import (Format, check_output_path, check_time_limit, emit_json, fail,
                                  fmt_pct, fmt_s, load_instance, out)


from hetkv_opt.bench.bounds import BOUND_METHODS
from hetkv_opt.model.instance import ModelError

#: the proven bounds a policy can be measured against (from hetkv_opt.bench.bounds)
Bound = Enum("Bound", {m: m for m in BOUND_METHODS}, type=str, module=__name__)


def _parse_params(pairs: List[str]) -> dict:
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            fail(f"option '--param': expected key=value, got {pair!r}")
        key = key.strip().replace("-", "_")
        if key in params:
            fail(f"option '--param': {key!r} given twice")
        params[key] = value.strip()
    return params


def simulate_cmd(
    instance: Path = typer.Argument(..., help="Instance file (.json or .npz)."),
    policy: str = typer.Option(..., "--policy", "-p", help="A registered policy (see 'hetkv policies'), or your own: path/to/file.py:ClassName or package.module:ClassName (docs/policies.md)."),
    param: List[str] = typer.Option([], "--param", help="Hyper-parameter key=value (repeatable)."),
    out_path: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the schedule here (.json or .npz)."),
    fmt: Format = typer.Option(Format.table, "--format", "-f"),
    bound: Bound = typer.Option("auto", "--bound", help="The proven bound to measure the policy against: auto (the best proof the portfolio finds in --bound-time-limit), lp, lagrangian, milp or aggregate (the paper's capacity-blind line)."),
    bound_time_limit: float = typer.Option(60.0, "--bound-time-limit", help="Seconds for computing the bound (the whole simulate then takes about this plus the policy)."),
    bound_cache: Optional[Path] = typer.Option(None, "--bound-cache", help="Folder where bounds are kept by instance hash, so that many policies on one instance compute it once (default: $HETKV_CACHE_DIR/bounds or ~/.cache/hetkv/bounds)."),
    no_bound_cache: bool = typer.Option(False, "--no-bound-cache", help="Compute the bound afresh and keep nothing."),
):
    """Simulate an online placement policy; the same result keys as 'solve'.

    The gap is measured against a proven bound, named in the output: by default the best
    proof auto finds in --bound-time-limit (kept on disk by instance hash), or one method's
    with --bound lp|lagrangian|milp|aggregate.
    Your own policy runs the same way: --policy mine.py:MyPolicy --param k=v."""
    from hetkv_opt.io.files import instance_hash, save_schedule
    from hetkv_opt.policies import PolicyError, get_policy, simulate
    params = _parse_params(param)
    bound_time_limit = check_time_limit(bound_time_limit, "--bound-time-limit")
    if out_path is not None:
        check_output_path(out_path, inputs=[instance], suffixes=(".json", ".npz"))
    try:
        pol = get_policy(policy, **params)
    except ValueError as exc:
        fail(str(exc))
    # the compact form (int32 read lists where they fit): the policy engine and the
    # evaluator take it; a bound that needs a solve widens a copy, small beside the solve
    inst = load_instance(instance, compact=True)
    from hetkv_opt.bench.bounds import default_cache_dir, proven_bound
    try:
        source = proven_bound(inst, bound.value, time_limit_s=bound_time_limit,
                              cache_dir=None if no_bound_cache else (bound_cache or
                                                                     default_cache_dir()))
    except ModelError as exc:
        fail(str(exc))
    try:
        res = simulate(inst, pol, bounds=source["bounds_s"])
    except (PolicyError, ValueError) as exc:
        fail(str(exc))
    res.details["bound_source"] = {k: source[k] for k in (
        "asked", "time_limit_s", "bound_method", "bound_s", "cached", "note") if k in source}
    sha = instance_hash(inst)
    if out_path is not None and res.schedule is not None:
        try:
            save_schedule(res.schedule, out_path, extra={
                "method": res.method, "status": res.status, "total_time_s": res.total_time_s,
                "bound_s": res.bound_s, "bound_method": res.bound_method,
                "oracle": res.details.get("oracle"), "params": res.details.get("params"),
                "instance_sha256": sha})
        except OSError as exc:
            fail(f"{out_path}: {exc}")
    d = res.to_dict()
    d["instance_sha256"] = sha
    if fmt == Format.json:
        emit_json(d)
    else:
        _print_result(d)
    if res.status == "error":
        raise typer.Exit(code=1)


def _print_result(d: dict) -> None:
    from rich.table import Table

    det = d["details"]
    t = Table(title=f"hetkv simulate: {d['instance']}", show_header=False)
    t.add_column("what", style="bold")
    t.add_column("value")
    t.add_row("status", d["status"])
    t.add_row("method", d["method"] + ("  (oracle: reads the future)" if det.get("oracle") else ""))
    if det.get("source"):
        t.add_row("source", det["source"])
    params = det.get("params") or {}
    t.add_row("parameters", ", ".join(f"{k}={v}" for k, v in params.items()) or "-")
    t.add_row("total time T (evaluator)", fmt_s(d["total_time_s"]))
    t.add_row("best proven bound", f"{fmt_s(d['bound_s'])} ({d['bound_method'] or '-'})")
    src = det.get("bound_source") or {}
    how = (f"--bound {src['asked']}" + (f", {src['time_limit_s']:g} s" if src.get("time_limit_s")
                                        else "") + (", from the cache" if src.get("cached") else ""))
    t.add_row("gap to the bound", f"{fmt_pct(d['gap'])}  (against {d['bound_method'] or '-'}; {how})"
              if src else fmt_pct(d["gap"]))
    if src.get("note"):
        t.add_row("bound note", src["note"])
    for name, val in sorted(det.get("bounds_s", {}).items()):
        t.add_row(f"bound: {name}", fmt_s(val))
    thr = d["throughput_steps_per_s"]
    t.add_row("throughput", "-" if thr is None else f"{thr:.6g} steps/s")
    share = d["hbm_read_share"]
    t.add_row("tier-0 share of reads", "-" if share is None else f"{share:.4f}")
    t.add_row("moves", "-" if d["num_moves"] is None else str(d["num_moves"]))
    for key, val in (det.get("policy_report") or {}).items():
        t.add_row(f"policy: {key}", str(val))
    t.add_row("runtime", f"{d['runtime_s']:.3f} s")
    if d["message"]:
        t.add_row("note", d["message"])
    out.print(t)


def policies_cmd(fmt: Format = typer.Option(Format.table, "--format", "-f")):
    """List the registered policies: parameters with defaults, and which are oracles."""
    from hetkv_opt.policies import list_policies, plugin_problems
    from hetkv_opt.cli.common import err
    infos = list_policies()
    for line in plugin_problems():
        err.print(f"warning: {line}", markup=False, highlight=False, soft_wrap=True)
    if fmt == Format.json:
        emit_json([i.to_dict() for i in infos])
        return
    from rich.table import Table
    t = Table(title="placement policies")
    for col in ("policy", "oracle", "parameters (defaults)", "what it does"):
        t.add_column(col)
    for i in infos:
        t.add_row(i.name, "yes" if i.oracle else "no",
                  ", ".join(f"{k}={v}" for k, v in i.params.items()) or "-", i.summary)
    out.print(t)


def register(app: typer.Typer) -> None:
    """Add ``simulate`` and ``policies`` to a typer app (a second call does nothing)."""
    have = {c.name for c in app.registered_commands}
    if "simulate" not in have:
        app.command("simulate")(simulate_cmd)
    if "policies" not in have:
        app.command("policies")(policies_cmd)
