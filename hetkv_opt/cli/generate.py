"""``hetkv generate``: a synthetic instance, the drift model or a batch of requests.

Added to the main app by :func:`register`.  The command parses and calls: the options
become generator parameters in :mod:`hetkv_opt.workloads.options`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from hetkv_opt.cli.common import Format, check_output_path, count_progress, emit_json, err, fail
from hetkv_opt.model.instance import ModelError


def generate(
    out_path: Path = typer.Argument(..., help="Where to write the instance (.json, .npz, or .hetkv: a sharded folder, one file per layer; large workloads stream to .npz and .hetkv)."),
    blocks: Optional[int] = typer.Option(None, "--blocks", "-n", help="Drift: KV blocks alive at the end (default 64)."),
    steps: Optional[int] = typer.Option(None, "--steps", "-e", help="Drift: decode steps = epochs (default 32)."),
    sparsity: float = typer.Option(0.6, "--sparsity", help="Fraction of the context NOT read per step (and layer)."),
    hbm_fraction: Optional[float] = typer.Option(None, "--hbm-fraction", help="Tier-0 capacity as a fraction of the cache (drift default 0.3; workload: pinned bytes + fraction of the peak unpinned bytes; default the hardware preset's capacity)."),
    phi: float = typer.Option(0.9, "--phi", help="AR(1) coefficient of the importance drift."),
    persistence: float = typer.Option(1.0, "--persistence", help="Spread of persistent (heavy-hitter) importance."),
    block_tokens: Optional[int] = typer.Option(None, "--block-tokens", help="Tokens per KV block (default 16)."),
    kv_bytes_per_token: Optional[int] = typer.Option(None, "--kv-bytes-per-token", help="Drift: default Llama-3.1-8B, bf16 (4096); workloads take it from --model."),
    sinks: int = typer.Option(1, "--sinks", help="Blocks always read at the start."),
    recent: int = typer.Option(1, "--recent", help="Blocks always read at the end."),
    token_fraction: float = typer.Option(1.0, "--token-fraction", help="Drift: share of a read block's tokens read per step (1 = whole blocks; real token-level top-k reads ~0.4)."),
    hardware: Optional[str] = typer.Option(None, "--hardware", help="Hardware preset name or .toml path (default gh200-paper; see 'hetkv presets')."),
    mode: str = typer.Option("exclusive", "--mode", help="exclusive or inclusive."),
    seed: int = typer.Option(0, "--seed"),
    name: Optional[str] = typer.Option(None, "--name"),
    fmt: Format = typer.Option(Format.table, "--format", "-f"),
    model: Optional[str] = typer.Option(None, "--model", "-M", help="Model preset name or .toml path: build a request workload (see 'hetkv presets')."),
    preset_workload: Optional[str] = typer.Option(None, "--preset-workload", help="'paper': Llama-3.1-8B on gh200-paper, 1 request, 31,299-token prompt, 10,240 steps, 16-token pages, 60% sparsity (other options override)."),
    batch: Optional[int] = typer.Option(None, "--batch", "-b", help="Workload: number of requests (default 1)."),
    prompt_tokens: Optional[str] = typer.Option(None, "--prompt-tokens", help="Workload: N, a comma list (one per request), uniform:LO:HI or lognormal:MEDIAN:SIGMA (default 1024)."),
    output_tokens: Optional[str] = typer.Option(None, "--output-tokens", help="Workload: decode steps per request, same forms (default 128)."),
    arrival: str = typer.Option("0", "--arrival", help="Workload: arrival steps: 0, a comma list, every:K or poisson:RATE."),
    layers: Optional[str] = typer.Option(None, "--layers", help="Workload: first N layers, or a comma list of layer indices (default all)."),
    access: str = typer.Option("drift", "--access", help="Workload read model: drift (block AR(1) + heavy hitters), paper (token top-k, --variation) or trace (recorded attention, --trace, --rule)."),
    trace: Optional[list[Path]] = typer.Option(None, "--trace", help="trace access: a 'hetkv trace' file (repeat for several; request r replays trace r mod n; default lengths: the traces')."),
    rule: str = typer.Option("topk", "--rule", help="trace access: topk, kv-union or quest."),
    variation: str = typer.Option("high", "--variation", help="paper access: low or high variation between steps."),
    weights: str = typer.Option("pinned", "--weights", help="Workload: layer weights pinned (to tier 0), free, or none."),
    experts: str = typer.Option("free", "--experts", help="Workload (MoE models): expert items free or none."),
    compute_floor: bool = typer.Option(False, "--compute-floor", help="Workload: min time per epoch = FLOPs / the hardware's peak_flops."),
    compress_level: int = typer.Option(6, "--compress-level", help="zlib level of streamed NPZ members (1 = fastest)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    params: Optional[Path] = typer.Option(None, "--params", help="Drift: a params file from 'hetkv calibrate --out' (its fitted knobs; --blocks, --steps, --hbm-fraction and --seed given here override it)."),
):
    """Write a synthetic instance: the one-layer drift model, or (with --model, --batch,
    --preset-workload ...) a batch of requests on a model and hardware preset. Same
    options and seed, same bytes."""
    if out_path.suffix.lower() not in (".json", ".npz", ".hetkv"):
        fail(f"{out_path}: the instance file must end in .json or .npz (or .hetkv for a sharded folder)")
    check_output_path(out_path, inputs=[params, *(trace or ())], option="")
    workload = any(x is not None for x in (model, preset_workload, batch, prompt_tokens, output_tokens, layers)) \
        or access != "drift" or bool(trace)
    if params is not None and workload:
        fail("option '--params' is for the drift generator, not for a --model workload")
    if not workload:
        from hetkv_opt.workloads.options import drift_params_from_options
        base = None
        if params is not None:
            from hetkv_opt.workloads.calibrate import load_params
            try:
                base = load_params(params)
            except ModelError as exc:
                fail(str(exc))
        p = drift_params_from_options(
            base, blocks=blocks, steps=steps, hbm_fraction=hbm_fraction, seed=seed,
            sparsity=sparsity, phi=phi, persistence=persistence, block_tokens=block_tokens,
            kv_bytes_per_token=kv_bytes_per_token, sinks=sinks, recent=recent, hardware=hardware,
            mode=mode, token_fraction=token_fraction)
        _generate_drift(out_path, p, name=name, fmt=fmt)
        return
    for opt, val in (("--blocks", blocks), ("--steps", steps), ("--kv-bytes-per-token", kv_bytes_per_token)):
        if val is not None:
            fail(f"option '{opt}' is for the drift generator; a workload takes its sizes from --model "
                 f"and --prompt-tokens/--output-tokens")
    from hetkv_opt.workloads.options import workload_params_from_options
    from hetkv_opt.workloads.requests import write_workload
    try:
        wp = workload_params_from_options(
            model=model, hardware=hardware, preset=preset_workload, batch=batch,
            prompt_tokens=prompt_tokens, output_tokens=output_tokens, block_tokens=block_tokens,
            arrival=arrival, layers=layers, traces=trace or (), seed=seed, access=access,
            sparsity=sparsity, phi=phi, persistence=persistence, sinks=sinks, recent=recent,
            variation=variation, rule=rule, weights=weights, experts=experts,
            compute_floor=compute_floor, hbm_fraction=hbm_fraction, mode=mode)
        progress, stop = count_progress("generate", "steps", enabled=not quiet)
        try:
            d = write_workload(out_path, wp, name=name, progress=progress, compresslevel=compress_level)
        finally:
            stop()
    except ModelError as exc:
        fail(str(exc))
    except ValueError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"{out_path}: {exc.strerror or exc}")
    if fmt == Format.json:
        emit_json(d)
    else:
        err.print(f"wrote {out_path}: {d['requests']} request(s), {d['layers']} layers, {d['items']} items x "
                  f"{d['epochs']} epochs, {d['reads']} reads, {d['writes']} writes", soft_wrap=True)


def _generate_drift(out_path: Path, params, *, name, fmt) -> None:
    """Write the one-layer drift instance of :mod:`hetkv_opt.workloads.drift`."""
    from hetkv_opt.io.files import instance_hash, save_instance
    from hetkv_opt.workloads.drift import drift_instance
    try:
        inst = drift_instance(params, name=name)
    except ValueError as exc:
        fail(str(exc))
    try:
        save_instance(inst, out_path)
    except ModelError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"{out_path}: cannot write the instance ({exc.strerror or exc})")
    d = {"path": str(out_path), "name": inst.name, "items": inst.num_items,
         "epochs": inst.num_epochs, "reads": int(inst.read_bytes.size), "sha256": instance_hash(inst)}
    if fmt == Format.json:
        emit_json(d)
    else:
        err.print(f"wrote {out_path}: {inst.num_items} items x {inst.num_epochs} epochs, "
                  f"{inst.read_bytes.size} reads")


def register(app: typer.Typer) -> None:
    """Add ``generate`` to the ``hetkv`` app."""
    app.command("generate")(generate)


__all__ = ["generate", "register"]
