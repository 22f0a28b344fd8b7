"""Online placement policies, their simulator, and the policy registry (issue 4).

A policy is a small ``@dataclass`` (fields = hyper-parameters) with one method; the
simulator runs it epoch by epoch, enforces the model, and returns the same
:class:`~hetkv_opt.solve.SolveResult` as ``solve``, with ``method = "policy:NAME"``.

Families (one module each): :mod:`~hetkv_opt.policies.paper` (static, reactive, page,
sa-guided), :mod:`~hetkv_opt.policies.classic` (lru, lfu, belady),
:mod:`~hetkv_opt.policies.attention` (ema-score, step-ema, balance),
:mod:`~hetkv_opt.policies.lookahead` (the forecast base and its look-ahead oracles:
lookahead, lookahead-share).  Policies from outside the package (a file, a module, an
installed entry point) load by :mod:`~hetkv_opt.policies.plugins`.  How to write, test and
run one: docs/policies.md.

>>> from hetkv_opt.model.instance import tiny_instance
>>> from hetkv_opt.policies import simulate, get_policy
>>> simulate(tiny_instance(), get_policy("static")).total_time_s
3.5
"""

from hetkv_opt.policies.base import (Accesses, Decision, FutureView, Moves, Policy,
                                     PolicyError, ScoredPolicy, View, fill_by_score, policy_name)
from hetkv_opt.policies.registry import (PolicyInfo, PolicyLoadError, get_policy, list_policies,
                                         plugin_problems, policy_source, register_policy,
                                         resolve_policy, unregister_policy)
from hetkv_opt.policies import attention, classic, lookahead, paper  # noqa: F401  (register the families)
from hetkv_opt.policies.lookahead import ForecastPolicy
from hetkv_opt.policies.run import PolicyOutOfTime, run_policy
from hetkv_opt.policies.simulate import simulate

__all__ = ["Accesses", "Decision", "ForecastPolicy", "FutureView", "Moves", "Policy", "PolicyError",
           "PolicyInfo", "PolicyLoadError", "PolicyOutOfTime", "ScoredPolicy", "View", "fill_by_score",
           "get_policy", "list_policies", "plugin_problems", "policy_name", "policy_source",
           "register_policy", "resolve_policy", "run_policy", "simulate", "unregister_policy"]
