"""Online placement policies, their simulator, and the policy registry (issue 4).

A policy is a small ``@dataclass`` (fields = hyper-parameters) with one method; the
simulator runs it epoch by epoch, enforces the model, and returns the same
:class:`~hetkv_opt.solve.SolveResult` as ``solve``, with ``method = "policy:NAME"``.

Families (one module each): :mod:`~hetkv_opt.policies.paper` (static, reactive, page,
sa-guided), :mod:`~hetkv_opt.policies.classic` (lru, lfu, belady),
:mod:`~hetkv_opt.policies.attention` (ema-score, balance).

>>> from hetkv_opt.model.instance import tiny_instance
>>> from hetkv_opt.policies import simulate, get_policy
>>> simulate(tiny_instance(), get_policy("static")).total_time_s
3.5
"""

from hetkv_opt.policies.base import (Accesses, Decision, FutureView, Policy, PolicyError,
                                     ScoredPolicy, View, fill_by_score, policy_name)
from hetkv_opt.policies.registry import (PolicyInfo, get_policy, list_policies, register_policy,
                                         unregister_policy)
from hetkv_opt.policies import attention, classic, paper  # noqa: F401  (register the families)
from hetkv_opt.policies.run import run_policy
from hetkv_opt.policies.simulate import simulate

__all__ = ["Accesses", "Decision", "FutureView", "Policy", "PolicyError", "PolicyInfo",
           "ScoredPolicy", "View", "fill_by_score", "get_policy", "list_policies",
           "policy_name", "register_policy", "run_policy", "simulate", "unregister_policy"]
