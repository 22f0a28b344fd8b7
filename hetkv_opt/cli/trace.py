"""``hetkv trace`` and ``hetkv trace-to-instance``: real attention traces and instances.

Added to the main app by :func:`register`.  torch and transformers (the ``trace`` extra)
are imported only inside ``hetkv trace``; ``trace-to-instance`` needs numpy only.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer

from hetkv_opt.cli.common import Format, emit_json, err, fail, out


class Rule(str, Enum):
    topk = "topk"
    kv_union = "kv-union"
    quest = "quest"


class Weights(str, Enum):
    pinned = "pinned"
    none = "none"


def _parse_layers(text: Optional[str], fail) -> Optional[list[int]]:
    """``"0,4,8"`` or ``"0-29"`` or ``"0-29:10"`` (start-end:stride) -> layer indices."""
    if text is None:
        return None
    out: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part:
                span, _, stride = part.partition(":")
                a, b = span.split("-")
                out.extend(range(int(a), int(b) + 1, int(stride) if stride else 1))
            else:
                out.append(int(part))
    except ValueError:
        fail(f"option '--layers': {text!r} is not a list like 0,4,8 or a range like 0-29:10")
    if not out or min(out) < 0:
        fail(f"option '--layers': {text!r} must name layer indices >= 0")
    return sorted(set(out))


def trace_cmd(
    model: str = typer.Option(..., "--model", help="A registered name (smollm2-135m, tiny-random-llama) or a local model folder / .gguf file."),
    prompt_file: Optional[List[Path]] = typer.Option(None, "--prompt-file", "-p", help="A UTF-8 prompt file; repeat for several (then --out is a folder)."),
    prompt: Optional[str] = typer.Option(None, "--prompt", help="The prompt text itself."),
    steps: int = typer.Option(64, "--steps", "-n", help="Decode steps to record."),
    out_path: Path = typer.Option(..., "--out", "-o", help="Trace file (.npz), or a folder for several prompts."),
    max_prompt_tokens: Optional[int] = typer.Option(None, "--max-prompt-tokens", help="Keep only the first N prompt tokens."),
    layers: Optional[str] = typer.Option(None, "--layers", help="Layers to record, e.g. 0,4,8 or 0-29:2 (default: all)."),
    chat: bool = typer.Option(True, "--chat/--raw", help="Wrap the prompt in the model's chat template (when it has one)."),
    stop_at_eos: bool = typer.Option(False, "--stop-at-eos", help="Stop early at the end-of-sequence token."),
    threads: int = typer.Option(1, "--threads", help="torch threads (1: one decode token is too small to share; 2 threads on 2 busy cores were 16x slower)."),
    fmt: Format = typer.Option(Format.table, "--format", "-f"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
):
    """Run a causal LM over prompts, decode greedily, and record every (step, layer)
    attention over the KV cache (needs the 'trace' extra)."""
    from hetkv_opt.trace.capture import MissingTraceExtra, TraceError, check_model, require_trace_extra
    if steps < 1:
        fail("option '--steps': must be >= 1")
    if max_prompt_tokens is not None and max_prompt_tokens < 1:
        fail("option '--max-prompt-tokens': must be >= 1")
    if threads < 1:
        fail("option '--threads': must be >= 1")
    files = list(prompt_file or [])
    if bool(files) == (prompt is not None):
        fail("give the prompt as --prompt TEXT or as one or more --prompt-file F (not both)")
    prompts: list[tuple[str, str]] = []
    for f in files:
        try:
            prompts.append((f.stem, f.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"{f}: cannot read the prompt file ({type(exc).__name__}: "
                 f"{getattr(exc, 'strerror', None) or exc})")
    if prompt is not None:
        prompts.append(("prompt", prompt))
    if not all(text.strip() for _, text in prompts):
        fail("the prompt is empty")
    if len(prompts) > 1:
        if out_path.suffix.lower() == ".npz":
            fail(f"option '--out': several prompts need a folder, not {out_path}")
        targets = [out_path / f"{name}.npz" for name, _ in prompts]
    else:
        if out_path.suffix.lower() != ".npz":
            fail(f"option '--out': {out_path} must end in .npz")
        targets = [out_path]
    layer_list = _parse_layers(layers, fail)
    try:
        check_model(model)
    except TraceError as exc:
        fail(str(exc))
    try:
        require_trace_extra()
    except MissingTraceExtra as exc:
        fail(str(exc))
    from hetkv_opt.trace.capture import capture_trace, encode_prompt, load_model, save_trace
    if not quiet:
        err.print(f"loading {model} ...")
    try:
        lm = load_model(model, quiet=quiet)
    except TraceError as exc:
        fail(str(exc))
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    rows = []
    for (name, text), target in zip(prompts, targets):
        ids = encode_prompt(lm, text, chat=chat)
        if max_prompt_tokens is not None:
            ids = ids[:max_prompt_tokens]
        bar = Progress(TextColumn(f"{name} ({len(ids)} prompt tokens)"), BarColumn(),
                       MofNCompleteColumn(), TimeElapsedColumn(), console=err, disable=quiet,
                       transient=True)
        with bar:
            task = bar.add_task("decode", total=steps)
            try:
                trace = capture_trace(lm, ids, steps, prompt_text=text, prompt_name=name,
                                      layers=layer_list, stop_at_eos=stop_at_eos,
                                      threads=threads,
                                      progress=lambda done, total: bar.update(task, completed=done))
            except TraceError as exc:
                fail(str(exc))
        try:
            save_trace(trace, target)
        except OSError as exc:
            fail(f"{target}: cannot write ({exc.strerror or exc})")
        g, tm = trace.metadata["generation"], trace.metadata["timings_s"]
        rows.append({"trace": str(target), "model": model, "prompt": name,
                     "prompt_tokens": trace.prompt_tokens, "steps": trace.num_steps,
                     "layers": len(trace.layers), "file_bytes": target.stat().st_size,
                     "load_s": tm["load"], "prefill_s": tm["prefill"], "decode_s": tm["decode"],
                     "eos_step": g["eos_step"], "generated_text": g["text"]})
    if fmt == Format.json:
        emit_json(rows[0] if len(rows) == 1 else rows)
        return
    for r in rows:
        out.print(f"{r['trace']}: {r['prompt_tokens']} prompt tokens, {r['steps']} steps x "
                  f"{r['layers']} layers, {r['file_bytes'] / 1e6:.2f} MB; load {r['load_s']:.1f} s, "
                  f"prefill {r['prefill_s']:.1f} s, decode {r['decode_s']:.1f} s")


def trace_to_instance_cmd(
    trace_path: Path = typer.Argument(..., help="A trace file from 'hetkv trace'."),
    rule: Rule = typer.Option(Rule.topk, "--rule", "-r", help="topk: head-averaged top tokens (the paper); kv-union: top tokens of each KV head, united; quest: pages by their max score."),
    sparsity: float = typer.Option(0.6, "--sparsity", "-s", help="Fraction of the context NOT read per (step, layer), in [0, 1)."),
    block_tokens: int = typer.Option(16, "--block-tokens", "-b", help="Tokens per KV page (item)."),
    hardware: str = typer.Option("gh200-paper", "--hardware", help="Hardware preset (tiers)."),
    hbm_fraction: float = typer.Option(0.3, "--hbm-fraction", help="HBM room for KV after the weights, as a fraction of the final KV cache."),
    hbm_bytes: Optional[int] = typer.Option(None, "--hbm-bytes", help="HBM capacity in bytes (instead of --hbm-fraction)."),
    weights: Weights = typer.Option(Weights.pinned, "--weights", help="pinned: one weight item per layer, pinned to HBM, read every epoch of its layer."),
    layers: Optional[str] = typer.Option(None, "--layers", help="Recorded layers to keep, e.g. 0,10,20 or 0-29:3 (default: all)."),
    steps: Optional[int] = typer.Option(None, "--steps", "-n", help="Keep the first N decode steps."),
    dtype_bytes: Optional[int] = typer.Option(None, "--dtype-bytes", help="Bytes per KV / weight element (default: the traced model's dtype)."),
    name: Optional[str] = typer.Option(None, "--name", help="Instance name."),
    out_path: Path = typer.Option(..., "--out", "-o", help="Instance file (.json or .npz)."),
    fmt: Format = typer.Option(Format.table, "--format", "-f"),
):
    """Turn a recorded trace into a placement instance with a read-selection rule."""
    from hetkv_opt.io.files import instance_hash, save_instance
    from hetkv_opt.trace.capture import TraceError, load_trace
    from hetkv_opt.trace.to_instance import TraceInstanceParams, trace_instance
    if out_path.suffix.lower() not in (".json", ".npz"):
        fail(f"option '--out': {out_path} must end in .json or .npz")
    layer_list = _parse_layers(layers, fail)
    params = TraceInstanceParams(
        rule=rule.value, sparsity=sparsity, block_tokens=block_tokens, hardware=hardware,
        hbm_fraction=hbm_fraction, hbm_bytes=hbm_bytes, weights=weights.value,
        layers=tuple(layer_list) if layer_list else None, steps=steps, dtype_bytes=dtype_bytes)
    try:
        params.validate()
        trace = load_trace(trace_path)
        inst = trace_instance(trace, params, name=name, trace_file=trace_path.name)
    except (TraceError, ValueError) as exc:
        fail(str(exc))
    try:
        save_instance(inst, out_path)
    except OSError as exc:
        fail(f"{out_path}: cannot write ({exc.strerror or exc})")
    m = inst.metadata
    d = {"instance": str(out_path), "name": inst.name, "items": inst.num_items,
         "epochs": inst.num_epochs, "reads": int(inst.read_bytes.size),
         "file_bytes": out_path.stat().st_size, "rule": rule.value, "sparsity": sparsity,
         "read_fraction_tokens": m["read_fraction_tokens"],
         "kv_bytes_per_token": m["kv_bytes_per_token"],
         "hbm_capacity_bytes": inst.tiers[0].capacity_bytes,
         "trace_sha256": m["trace_sha256"], "instance_sha256": instance_hash(inst)}
    if fmt == Format.json:
        emit_json(d)
        return
    out.print(f"wrote {out_path}: {inst.num_items} items x {inst.num_epochs} epochs, "
              f"{d['reads']} reads ({rule.value}, sparsity {sparsity:g}: "
              f"{100 * d['read_fraction_tokens']:.1f} % of tokens read), "
              f"{d['file_bytes'] / 1e6:.2f} MB")


def register(app: typer.Typer) -> None:
    """Add ``trace`` and ``trace-to-instance`` to the ``hetkv`` app."""
    app.command("trace")(trace_cmd)
    app.command("trace-to-instance")(trace_to_instance_cmd)
