"""Generator parameters from ``hetkv generate``'s options: defaults, presets and a params
file merged with what was given, so that the command only parses and calls.

- :func:`drift_params_from_options`: :class:`~hetkv_opt.workloads.drift.DriftParams` (the
  one-layer drift model), optionally on top of a ``hetkv calibrate`` params file;
- :func:`workload_params_from_options`: :class:`~hetkv_opt.workloads.requests.WorkloadParams`
  (a batch of requests on a model and hardware preset).

Neither validates: :func:`~hetkv_opt.workloads.drift.drift_instance` and the workload
builders do, naming the option that is out of range.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

from hetkv_opt.workloads.drift import DriftParams
from hetkv_opt.workloads.requests import PAPER_WORKLOAD, WorkloadParams, make_requests

#: the workload's sizes when neither an option nor ``--preset-workload`` sets them
WORKLOAD_DEFAULTS = {"model": "llama-3.1-8b", "hardware": "gh200-paper", "batch": 1,
                     "prompt_tokens": "1024", "output_tokens": "128", "block_tokens": 16}


def drift_params_from_options(base: DriftParams | None = None, *, blocks: int | None = None,
                              steps: int | None = None, hbm_fraction: float | None = None,
                              seed: int = 0, **options) -> DriftParams:
    """The drift parameters of ``hetkv generate`` (no ``--model``).

    ``base``: the params of a ``hetkv calibrate`` file
    (:func:`hetkv_opt.workloads.calibrate.load_params`); ``blocks``, ``steps``,
    ``hbm_fraction`` (when not None) and ``seed`` (when not 0) override it, and the other
    options are not used.  Without ``base``: the options (any :class:`DriftParams` field),
    None or an empty ``hardware`` standing for the field's default.

    >>> drift_params_from_options(steps=8, sparsity=0.5, block_tokens=None, hardware=None).steps
    8
    >>> p = drift_params_from_options(DriftParams(phi=0.5), blocks=96, seed=3, phi=0.1)
    >>> p.blocks, p.phi, p.seed
    (96, 0.5, 3)
    """
    if base is not None:
        given = {"blocks": blocks, "steps": steps, "hbm_fraction": hbm_fraction,
                 "seed": seed if seed != 0 else None}
        return replace(base, **{k: v for k, v in given.items() if v is not None})
    if not options.get("hardware"):
        options.pop("hardware", None)
    kw = dict(options, blocks=blocks, steps=steps, hbm_fraction=hbm_fraction, seed=seed)
    return DriftParams(**{k: v for k, v in kw.items() if v is not None})


def workload_params_from_options(*, model: str | None = None, hardware: str | None = None,
                                 preset: str | None = None, batch: int | None = None,
                                 prompt_tokens: str | None = None, output_tokens: str | None = None,
                                 block_tokens: int | None = None, arrival: str = "0",
                                 layers: str | None = None, traces: Sequence[str] = (),
                                 seed: int = 0, **options) -> WorkloadParams:
    """The workload parameters of ``hetkv generate --model ...``.

    Sizes come from, first to last: the options given (not None), the ``preset`` workload
    (``"paper"``: :data:`~hetkv_opt.workloads.requests.PAPER_WORKLOAD`, its sparsity
    excepted) and :data:`WORKLOAD_DEFAULTS`.  With ``access="trace"``, the lengths not
    given are those of the trace each request replays.  ``layers``: ``"N"`` (the first N)
    or a comma list of layer indices.  The other ``options`` (``access``, ``sparsity``,
    ``phi``, ...) are :class:`WorkloadParams` fields, passed as they are.

    Raises
    ------
    ValueError
        An unknown preset, a bad ``layers`` or length spec (naming the option).
    ModelError
        A trace file that cannot be read.

    >>> p = workload_params_from_options(model="smollm2-135m", batch=2, prompt_tokens="40,20",
    ...                                  layers="0,3", sparsity=0.5)
    >>> [r.prompt_tokens for r in p.requests], p.layers, p.sparsity
    ([40, 20], (0, 3), 0.5)
    """
    base = dict(WORKLOAD_DEFAULTS)
    if preset is not None:
        if preset != "paper":
            raise ValueError(f"option '--preset-workload': unknown workload {preset!r} (known: paper)")
        base.update({k: (str(v) if k.endswith("_tokens") and k != "block_tokens" else v)
                     for k, v in PAPER_WORKLOAD.items() if k != "sparsity"})
    given = {"model": model, "hardware": hardware, "batch": batch, "prompt_tokens": prompt_tokens,
             "output_tokens": output_tokens, "block_tokens": block_tokens}
    base.update({k: v for k, v in given.items() if v is not None})
    traces = tuple(str(t) for t in traces)
    if options.get("access") == "trace" and traces and (prompt_tokens is None or output_tokens is None):
        # default lengths: each request those of the trace it replays
        from hetkv_opt.trace.capture import load_trace
        lens = [(tr.prompt_tokens, tr.num_steps) for tr in map(load_trace, traces)]
        per = [lens[r % len(lens)] for r in range(int(base["batch"]))]
        if prompt_tokens is None:
            base["prompt_tokens"] = ",".join(str(p) for p, _ in per)
        if output_tokens is None:
            base["output_tokens"] = ",".join(str(o) for _, o in per)
    layer_sel = None
    if layers is not None:
        try:
            vals = [int(x) for x in layers.split(",")]
        except ValueError:
            raise ValueError(f"option '--layers': {layers!r} is not N or a comma list of layer "
                             f"indices") from None
        layer_sel = vals[0] if len(vals) == 1 else tuple(vals)
    reqs = make_requests(base["batch"], base["prompt_tokens"], base["output_tokens"], arrival, seed)
    return WorkloadParams(model=base["model"], hardware=base["hardware"], requests=reqs,
                          block_tokens=base["block_tokens"], layers=layer_sel, traces=traces,
                          seed=seed, **options)


__all__ = ["WORKLOAD_DEFAULTS", "drift_params_from_options", "workload_params_from_options"]
