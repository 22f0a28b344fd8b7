"""``hetkv bound`` and ``hetkv verify-bound``: the decomposition bound and its certificate.

Added to the main app by :func:`register`.
"""

from __future__ import annotations

import time
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from hetkv_opt.cli.common import (Format, check_output_path, check_time_limit, config_from_options,
                                  emit_json, err,
                                  exit_interrupted, fail, load_instance, out)


class BoundMethod(str, Enum):
    lagrangian = "lagrangian"


class Oracle(str, Enum):
    auto = "auto"
    dense = "dense"
    events = "events"
    layers = "layers"


class Master(str, Enum):
    auto = "auto"
    bundle = "bundle"
    dw = "dw"


def bound_cmd(
    instance: Path = typer.Argument(..., help="Instance file (.json or .npz)."),
    method: BoundMethod = typer.Option(BoundMethod.lagrangian, "--method", "-m",
                                       help="lagrangian: priced time and capacity rows, one shortest path per item."),
    cert: Optional[Path] = typer.Option(None, "--cert", "-c", help="Write the certificate (the prices, .npz) here."),
    iterations: int = typer.Option(300, "--iterations", "-n", help="Oracle calls at most (one shortest path per item each)."),
    time_limit: Optional[float] = typer.Option(None, "--time-limit", "-t", help="Wall-clock seconds (the best prices so far are kept)."),
    master: Master = typer.Option(Master.auto, "--master", help="auto | bundle (scales to any size) | dw (reaches the LP value; small and medium instances)."),
    oracle: Oracle = typer.Option(Oracle.auto, "--oracle", help="auto | dense (every item at every epoch) | events (work only at each item's reads and writes: multi-layer instances; two tiers; used by the bundle master, so pair it with --master bundle on small instances) | layers (the event oracle one layer at a time, here or on --workers)"),
    warm_start: Optional[Path] = typer.Option(None, "--warm-start", help="A certificate of the same instance to start from."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Run the layer parts on this many local Dask workers (oracle layers; the dask extra)."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="tcp://HOST:PORT of a running Dask scheduler instead of local workers."),
    fmt: Format = typer.Option(Format.table, "--format", "-f"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress line on stderr."),
):
    """A proven lower bound on T by Lagrangian decomposition, with a certificate that
    'hetkv verify-bound' checks without trusting the optimiser.  On a layered instance
    (epochs of (step, layer)) the bound runs layer by layer, here or on Dask workers."""
    from hetkv_opt.io.files import instance_hash
    from hetkv_opt.bounds.lagrangian import CertificateError, lagrangian_bound, load_certificate
    from hetkv_opt.model.epoch_bound import per_epoch_bound_s
    from hetkv_opt.model.terms import aggregate_bound_s
    if iterations < 1:
        fail("option '--iterations': must be >= 1")
    time_limit = check_time_limit(time_limit)
    if cert is not None and cert.suffix.lower() != ".npz":
        fail(f"option '--cert': {cert} must end in .npz")
    if cert is not None:
        check_output_path(cert, inputs=[instance, warm_start], option="--cert")
    inst = load_instance(instance)
    prices = None
    if warm_start is not None:
        try:
            prices = load_certificate(warm_start)
        except CertificateError as exc:
            fail(str(exc))
        if prices.instance_sha256 != instance_hash(inst):
            fail(f"{warm_start}: field 'instance_sha256': the certificate is for another instance")
    from hetkv_opt.model.feasibility import capacity_precheck
    pre = capacity_precheck(inst)
    if pre:
        d = {"status": "infeasible", "method": method.value, "instance": inst.name,
             "bound_s": None, "message": pre}
        if fmt == Format.json:
            emit_json(d)
        else:
            err.print(f"infeasible: {pre}")
        raise typer.Exit(code=1)
    state = {"last": time.monotonic()}

    def progress(info):
        now = time.monotonic()
        if quiet or now - state["last"] < 0.5:
            return
        state["last"] = now
        up = info.get("upper_s")
        extra = "" if up is None else f"  master {up:.6g} s"
        err.print(f"[{info['phase']}] call {info['iteration']}  {info['elapsed_s']:.1f} s  "
                  f"bound {info['bound_s']:.6g} s{extra}", highlight=False)

    cfg = config_from_options(None, None, None, None, workers, scheduler)
    from hetkv_opt.cluster import open_client
    try:
        with open_client(cfg.workers, cfg.scheduler) as client:
            bound, certificate = lagrangian_bound(inst, iterations=iterations,
                                                  time_limit_s=time_limit, prices=prices,
                                                  master=master.value, progress=progress,
                                                  oracle=oracle.value, client=client)
    except ValueError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        exit_interrupted("interrupted: no bound, no certificate written")
    if cert is not None:
        try:
            certificate.save(cert)
        except OSError as exc:
            fail(f"{cert}: cannot write the certificate ({exc.strerror or exc})")
    meta = certificate.metadata
    d = {"status": "bound_only", "method": method.value, "instance": inst.name,
         "bound_s": bound, "bound_method": method.value,
         "aggregate_bound_s": aggregate_bound_s(inst),
         "per_epoch_bound_s": per_epoch_bound_s(inst),
         "throughput_bound_steps_per_s": (inst.num_steps / bound) if bound > 0 else None,
         "master": meta.get("master"), "oracle": meta.get("oracle"),
         "oracle_calls": meta.get("oracle_calls"),
         "master_value_s": meta.get("master_value_s"), "gap_to_master": meta.get("gap_to_master"),
         "runtime_s": meta.get("runtime_s"), "certificate": str(cert) if cert else None,
         "instance_sha256": instance_hash(inst)}
    if fmt == Format.json:
        emit_json(d)
        return
    from rich.table import Table
    t = Table(title=f"hetkv bound: {inst.name}", show_header=False)
    t.add_column("what", style="bold")
    t.add_column("value")
    t.add_row("proven bound on T", f"{bound:.9g} s ({method.value}, {d['master']})")
    t.add_row("aggregate-bandwidth bound", f"{d['aggregate_bound_s']:.9g} s")
    t.add_row("per-epoch bound", f"{d['per_epoch_bound_s']:.9g} s (pinned reads in their tier)")
    if d["throughput_bound_steps_per_s"] is not None:
        t.add_row("throughput upper bound", f"{d['throughput_bound_steps_per_s']:.6g} steps/s")
    if d["master_value_s"] is not None:
        t.add_row("no prices exceed", f"{d['master_value_s']:.9g} s (gap {100 * d['gap_to_master']:.4f} %)")
    t.add_row("oracle calls", f"{d['oracle_calls']} ({d['oracle']})")
    t.add_row("runtime", f"{d['runtime_s']:.3f} s")
    t.add_row("certificate", d["certificate"] or "- (use --cert FILE.npz)")
    out.print(t)


def verify_bound_cmd(
    instance: Path = typer.Argument(..., help="Instance file (.json or .npz)."),
    cert: Path = typer.Argument(..., help="Certificate written by 'hetkv bound --cert'."),
    fmt: Format = typer.Option(Format.table, "--format", "-f"),
):
    """Recompute a bound from its certificate's prices alone (exit 2 if it does not hold)."""
    from hetkv_opt.bounds.lagrangian import CertificateError, load_certificate, verify_bound
    inst = load_instance(instance)
    t0 = time.perf_counter()
    try:
        certificate = load_certificate(cert)
    except CertificateError as exc:
        fail(str(exc))
    try:
        bound = verify_bound(inst, certificate)
    except CertificateError as exc:
        fail(str(exc.with_source(str(cert))))
    d = {"status": "verified", "instance": inst.name, "certificate": str(cert), "bound_s": bound,
         "claimed_bound_s": certificate.bound_s,
         "throughput_bound_steps_per_s": (inst.num_steps / bound) if bound > 0 else None,
         "runtime_s": round(time.perf_counter() - t0, 6)}
    if fmt == Format.json:
        emit_json(d)
        return
    out.print(f"verified: T >= {bound:.9g} s for every feasible schedule of {inst.name} "
              f"({d['runtime_s']:.3f} s)")


def register(app: typer.Typer) -> None:
    """Add ``bound`` and ``verify-bound`` to the ``hetkv`` app."""
    app.command("bound")(bound_cmd)
    app.command("verify-bound")(verify_bound_cmd)
