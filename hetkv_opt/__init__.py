"""hetkv_opt: how fast can LLM decoding be with the KV cache spread over heterogeneous memory?

The library API in one place:

>>> from hetkv_opt import tiny_instance, solve
>>> solve(tiny_instance(), "milp").total_time_s
2.0
"""

from hetkv_opt.evaluate import Evaluation, evaluate
from hetkv_opt.instance import Instance, ModelError, Tier, make_instance, tiny_instance
from hetkv_opt.io import (instance_hash, load_instance, load_schedule, save_instance,
                          save_schedule)
from hetkv_opt.milp_model import aggregate_bound_s, build_model
from hetkv_opt.schedule import Schedule, schedule_from_residency
from hetkv_opt.solve import SolveResult, solve
from hetkv_opt.solver_config import SolverConfig, load_preset

__version__ = "0.1.0"

__all__ = ["Evaluation", "Instance", "ModelError", "Schedule", "SolveResult", "SolverConfig",
           "Tier", "aggregate_bound_s", "build_model", "evaluate", "instance_hash",
           "load_instance", "load_preset", "load_schedule", "make_instance", "save_instance",
           "save_schedule", "schedule_from_residency", "solve", "tiny_instance"]
