"""``hetkv explain``: where a schedule's time goes, alone or against another schedule.

Added to the main app by :func:`register`.  The attribution is
:func:`hetkv_opt.model.breakdown.breakdown` (docs/model.md section 9): every epoch's τ(e)
goes wholly to the term that binds it, split by the bytes that make up that term; the
causes sum to T exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import typer

from hetkv_opt.cli.common import Format, emit_json, err, fail, load_instance, out

#: colours of the causes and the tiers in the pictures
CAUSE_COLORS = {"compute": "#7f7f7f", "writes": "#2ca02c", "copies": "#d62728"}
DEVICE_COLORS = ["#ff7f0e", "#1f77b4", "#17becf", "#8c564b"]
LINK_COLORS = ["#9467bd", "#9467bd", "#e377c2", "#bcbd22"]
TIER_COLORS = ["#ff7f0e", "#1f77b4", "#8fbc8f", "#bcbd22"]
MAX_BINS = 600            # epochs are summed into at most this many bars
MAX_ROWS = 1200           # items shown in a residency map (evenly sampled beyond)
MAX_COLS = 2400           # epochs shown in a residency map (evenly sampled beyond)


def _load(instance_path: Path, schedule_path: Path, inst):
    from hetkv_opt.io.files import load_schedule
    from hetkv_opt.model.breakdown import breakdown
    from hetkv_opt.model.instance import ModelError
    try:
        sched = load_schedule(schedule_path)
    except ModelError as exc:
        fail(str(exc))
    try:
        b = breakdown(inst, sched)
    except ValueError as exc:
        fail(f"{schedule_path}: {exc}")
    if not b.feasible:
        err.print(f"warning: {schedule_path} is infeasible ({b.evaluation.violations[0]}); "
                  f"its time is shown anyway", markup=False, highlight=False, soft_wrap=True)
    return sched, b


def explain_cmd(
    instance: Path = typer.Argument(..., help="Instance file (.json or .npz)."),
    schedule: Path = typer.Argument(..., help="Schedule file (.json or .npz), e.g. from 'hetkv solve --out' or 'hetkv simulate --out'."),
    vs: Optional[Path] = typer.Option(None, "--vs", help="A second schedule of the same instance: both side by side, and the difference by cause."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write a PNG: tau(e) stacked by cause, and the residency map (needs matplotlib)."),
    fmt: Format = typer.Option(Format.table, "--format", "-f"),
    per_epoch: bool = typer.Option(True, "--per-epoch/--no-per-epoch", help="Include the per-epoch records in the JSON output."),
):
    """Where the time goes: T split by cause (compute floor, each tier's device reads,
    link reads, writes, copies), summing to T exactly; per epoch, tau and its binding
    term (docs/model.md section 9)."""
    if plot is not None and plot.suffix.lower() != ".png":
        fail(f"option '--plot': {plot} must end in .png")
    from hetkv_opt.model.breakdown import compare
    inst = load_instance(instance)
    sched_a, a = _load(instance, schedule, inst)
    d = {"instance": inst.name, "schedule": str(schedule)}
    d.update(a.to_dict(inst, per_epoch=per_epoch))
    b = None
    if vs is not None:
        sched_b, b = _load(instance, vs, inst)
        d["vs"] = {"schedule": str(vs), **b.to_dict(inst, per_epoch=per_epoch)}
        d["difference_s"] = compare(a, b)
        d["difference_total_s"] = a.total_time_s - b.total_time_s
    if plot is not None:
        plt = _pyplot()
        draw(plt, inst, sched_a, a, plot, names=(schedule.name, vs.name if vs else None),
             other=(sched_b, b) if b is not None else None)
        d["plot"] = str(plot)
    if fmt == Format.json:
        emit_json(d)
    else:
        _print(d, a, b, schedule, vs)


def _print(d: dict, a, b, name_a: Path, name_b: Optional[Path]) -> None:
    from rich.table import Table
    from hetkv_opt.bench.report import fmt_time
    T = a.total_time_s
    t = Table(title=f"hetkv explain: {d['instance']}: where the time goes",
              caption="each epoch's tau goes to the term that binds it, split by its bytes "
                      "(docs/model.md section 9)")
    t.add_column("cause")
    t.add_column(name_a.name, justify="right")
    t.add_column("% of T", justify="right")
    if b is not None:
        t.add_column(name_b.name, justify="right")
        t.add_column("% of T", justify="right")
        t.add_column("difference", justify="right")
    for cause, v in a.breakdown_s.items():
        w = b.breakdown_s.get(cause, 0.0) if b is not None else 0.0
        if v == 0 and w == 0:
            continue
        row = [cause, fmt_time(v), f"{100 * v / T:.1f} %" if T > 0 else "-"]
        if b is not None:
            row += [fmt_time(w), f"{100 * w / b.total_time_s:.1f} %" if b.total_time_s > 0 else "-",
                    ("+" if v - w > 0 else "") + fmt_time(v - w)]
        t.add_row(*row)
    row = ["T (total)", fmt_time(T), "100 %"]
    if b is not None:
        row += [fmt_time(b.total_time_s), "100 %",
                ("+" if T - b.total_time_s > 0 else "") + fmt_time(T - b.total_time_s)]
    t.add_row(*row, style="bold")
    out.print(t)
    for label, x in ((name_a.name, a), (name_b.name if name_b else "", b)):
        if x is None:
            continue
        parts = ", ".join(f"{k} {n}" for k, n in sorted(x.binding_epochs.items(),
                                                         key=lambda kv: -kv[1]))
        out.print(f"{label}: binding epochs: {parts}; moves {x.evaluation.num_moves}")
    if d.get("plot"):
        out.print(f"wrote {d['plot']}")


# ----------------------------------------------------------------------------- pictures

def _pyplot():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        fail("--plot needs matplotlib: pip install 'hetkv-opt[plot]'")
    return plt


def cause_colors(causes: list[str], tiers: list[str]) -> dict:
    out = {}
    for c in causes:
        kind, _, name = c.partition(":")
        if kind == "device":
            out[c] = DEVICE_COLORS[tiers.index(name) % len(DEVICE_COLORS)]
        elif kind == "link":
            out[c] = LINK_COLORS[tiers.index(name) % len(LINK_COLORS)]
        else:
            out[c] = CAUSE_COLORS.get(c, "#444444")
    return out


def _binned(parts: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Parts summed into at most MAX_BINS bins of whole epochs: (x, sums, epochs per bin)."""
    E = parts.shape[1]
    per = max(1, -(-E // MAX_BINS))
    nb = -(-E // per)
    pad = np.zeros((parts.shape[0], nb * per))
    pad[:, :E] = parts
    sums = pad.reshape(parts.shape[0], nb, per).sum(axis=2)
    return np.arange(nb) * per, sums, per


def _item_order(inst) -> np.ndarray:
    """Items by (layer label, birth, index): a layer's pages sit together in the map."""
    lay = inst.item_labels.get("layer")
    keys = [np.arange(inst.num_items), inst.birth]
    if lay is not None:
        keys.append(np.asarray(lay))
    return np.lexsort(keys)


def residency_image(inst, sched, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    from hetkv_opt.model.breakdown import residency_dense
    order = np.argsort(rows)
    dense = residency_dense(inst, sched, rows[order])
    img = np.empty_like(dense)
    img[order] = dense
    return img[:, cols]


def draw(plt, inst, sched_a, a, path: Path, names=("schedule", None), other=None) -> Path:
    """The explain picture: stacked tau(e) by cause (each schedule), residency maps."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch
    from hetkv_opt.bench.report import fmt_time
    tiers = [t.name for t in inst.tiers]
    colors = cause_colors(a.causes, tiers)
    layers = np.unique(inst.epoch_labels["layer"]).size if "layer" in inst.epoch_labels else 1
    layered = "epoch" if layers == 1 else f"epoch = (step, layer): {layers} per step"
    both = other is not None
    fig, axes = plt.subplots(2, 2 if both else 1, figsize=(13 if both else 8, 7.6),
                             squeeze=False, layout="constrained")
    # top: tau(e) stacked by cause
    series = [(names[0], a)] + ([(names[1], other[1])] if both else [])
    used = [c for c in a.causes if any(s.breakdown_s.get(c, 0) > 0 for _, s in series)]
    scale, unit = _unit(max(float(s.epoch_time_s.max(initial=0)) for _, s in series))
    top = max(_binned(s.parts_s)[1].sum(axis=0).max(initial=0) for _, s in series) / scale
    for ax, (label, s) in zip(axes[0], series):
        x, sums, per = _binned(s.parts_s)
        ys = [sums[s.causes.index(c)] / scale for c in used]
        ax.stackplot(x, ys, colors=[colors[c] for c in used], step="post", lw=0)
        ax.set_xlim(0, inst.num_epochs)
        ax.set_ylim(0, top * 1.3 if top > 0 else 1)
        what = "tau(e)" if per == 1 else f"tau summed over {per} epochs"
        ax.set_ylabel(f"{what} ({unit})")
        ax.set_xlabel(layered)
        ax.set_title(f"{label}: T = {fmt_time(s.total_time_s)}", fontsize=10)
        handles = [Patch(color=colors[c], label=f"{c} {100 * s.breakdown_s[c] / s.total_time_s:.0f}%"
                         if s.total_time_s > 0 else c) for c in used]
        ax.legend(handles=handles, loc="upper left", fontsize=8, framealpha=0.85,
                  ncol=min(len(handles), 4))
    # bottom: residency maps
    order = _item_order(inst)
    rows = order if order.size <= MAX_ROWS else order[np.linspace(0, order.size - 1, MAX_ROWS).astype(int)]
    E = inst.num_epochs
    cols = np.arange(E) if E <= MAX_COLS else np.linspace(0, E - 1, MAX_COLS).astype(int)
    img_a = residency_image(inst, sched_a, rows, cols)
    K = inst.num_tiers
    cmap = ListedColormap(["white"] + TIER_COLORS[:K])
    extent = (0, E, rows.size, 0)
    ax = axes[1][0]
    ax.imshow(img_a + 1, cmap=cmap, vmin=0, vmax=K, aspect="auto", interpolation="nearest",
              extent=extent)
    ax.set_title(f"{names[0]}: residency (colour = tier)", fontsize=10)
    ax.set_xlabel(layered)
    ax.set_ylabel("item" + (" (by layer, birth)" if "layer" in inst.item_labels else " (by birth)"))
    ax.legend(handles=[Patch(color=TIER_COLORS[k], label=tiers[k]) for k in range(K)],
              loc="lower left", fontsize=8, framealpha=0.85)
    if both:
        img_b = residency_image(inst, other[0], rows, cols)
        diff = np.zeros(img_a.shape, np.int8)          # 0 dead, 1 same tier
        alive = img_a >= 0
        diff[alive] = 1
        diff[alive & (img_a < img_b)] = 2             # a in a faster tier than b
        diff[alive & (img_a > img_b)] = 3             # a in a slower tier than b
        ax = axes[1][1]
        dmap = ListedColormap(["white", "#e6e6e6", TIER_COLORS[0], TIER_COLORS[1]])
        ax.imshow(diff, cmap=dmap, vmin=0, vmax=3, aspect="auto", interpolation="nearest",
                  extent=extent)
        share = float((diff >= 2).sum()) / max(1, int(alive.sum()))
        ax.set_title(f"{names[0]} against {names[1]}: {100 * share:.1f} % of item-epochs "
                     f"in another tier", fontsize=10)
        ax.set_xlabel(layered)
        ax.legend(handles=[Patch(color="#e6e6e6", label="same tier"),
                           Patch(color=TIER_COLORS[0], label=f"{names[0]}: faster tier"),
                           Patch(color=TIER_COLORS[1], label=f"{names[0]}: slower tier")],
                  loc="lower left", fontsize=8, framealpha=0.85)
    fig.suptitle(f"hetkv explain: {inst.name}", fontsize=11)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=80, pil_kwargs={"optimize": True})
    except OSError as exc:
        fail(f"{path}: cannot write the plot ({exc.strerror or exc})")
    finally:
        plt.close(fig)
    return path


def _unit(v: float) -> tuple[float, str]:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9)):
        if v >= scale:
            return scale, unit
    return 1e-9, "ns"


def register(app: typer.Typer) -> None:
    """Add ``explain`` to a typer app (a second call does nothing)."""
    if "explain" not in {c.name for c in app.registered_commands}:
        app.command("explain")(explain_cmd)


__all__ = ["draw", "explain_cmd", "register"]
