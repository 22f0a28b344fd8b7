"""hetkv_opt: how fast can LLM decoding be with the KV cache spread over heterogeneous memory?

The library API in one place:

>>> from hetkv_opt import tiny_instance, solve
>>> solve(tiny_instance(), "milp").total_time_s
2.0
"""

from hetkv_opt.model.evaluate import Evaluation, evaluate
from hetkv_opt.model.instance import Instance, ModelError, Tier, make_instance, tiny_instance
from hetkv_opt.io.files import (instance_hash, load_instance, load_schedule, save_instance,
                          save_schedule)
from hetkv_opt.io.shards import open_sharded, save_sharded
from hetkv_opt.model.terms import aggregate_bound_s
from hetkv_opt.milp.build import build_model
from hetkv_opt.model.schedule import Schedule, schedule_from_residency
from hetkv_opt.result import SolveResult, Status
from hetkv_opt.solve import solve
from hetkv_opt.milp.config import SolverConfig, load_preset

__version__ = "0.1.0"

__all__ = ["Evaluation", "Instance", "ModelError", "Schedule", "SolveResult", "SolverConfig", "Status",
           "Tier", "aggregate_bound_s", "build_model", "evaluate", "instance_hash",
           "load_instance", "load_preset", "load_schedule", "make_instance", "open_sharded",
           "save_instance", "save_schedule", "save_sharded", "schedule_from_residency", "solve", "tiny_instance"]
