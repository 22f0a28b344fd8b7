"""The Lagrangian (decomposition) bound: a lower bound on T, with a certificate anyone can
check (:func:`verify_bound`).

The idea (issue 3, part 1).  Price the rows that couple the items:

- the **time rows** ``tau_e >= term_{e,j}`` (every device and link term of docs/model.md
  section 4, and the per-epoch rounding cut of :func:`hetkv_opt.model.terms.rounding_cut`,
  also a row of the MILP) with ``lambda_{e,j} >= 0``, ``sum_j lambda_{e,j} <= 1``;
- the **capacity rows** of every bounded tier with ``mu_{k,e} >= 0``.

For every feasible schedule ``tau_e >= max(c_e, terms) >= (1 - sum_j lambda) c_e +
sum_j lambda_j term_j`` and ``0 >= mu (occupancy - room)``, and every term is a sum of
per-item traffic plus constants.  Hence, for *any* such prices,

``T >= L = sum_e c_e (1 - sum_j lambda_{e,j}) + sum_{e,j} lambda_{e,j} const_{e,j}
+ sum_items SP_i - sum_{k,e} mu_{k,e} room_{k,e}``

where ``SP_i`` is the cheapest path of item i alone through its own time line (one state
per tier per epoch, pins and initial tier respected) when reads, writes, copies and
residency are charged at the prices.  That is weak duality: no solver tolerance enters,
and the best prices reach the value of the LP relaxation of the MILP (the item paths of
the relaxation are convex combinations of integral paths).  The capacity ``room`` is
rounded down to a multiple of the gcd of the free items' sizes (only whole items move),
like the MILP's capacity rows.

:func:`lagrangian_bound` maximises L over the prices (a proximal bundle method or
Dantzig-Wolfe column generation; the oracle solves every item's shortest path at once with
numpy, one step per epoch, or event by event) and returns the bound and a
:class:`BoundCertificate` holding the prices.  :func:`verify_bound` recomputes L from the
prices alone with a separate, deliberately plain implementation (full K x K transitions,
no shared arithmetic with the optimizer's oracle) and refuses a certificate that does not
hold.

Floating point: both subtract a margin far larger than the rounding of the sums, so the
number they return stays a proof.

The modules, bottom to top (each imports only from those above it in this list, and from
:mod:`hetkv_opt.model`, :mod:`hetkv_opt.io`, :mod:`hetkv_opt.milp`,
:mod:`hetkv_opt.result`):

- :mod:`~hetkv_opt.bounds.lagrangian.problem`: the prepared ``Problem``, the oracles'
  shared pieces (``Eval``, ``tier_prices``, ``constant_term``, ``gradient_from_traffic``)
  and the rounding margin (``finish_value``);
- :mod:`~hetkv_opt.bounds.lagrangian.oracle`: the dense oracle (``evaluate``);
- :mod:`~hetkv_opt.bounds.lagrangian.events`: the event-compressed oracle (two tiers);
- :mod:`~hetkv_opt.bounds.lagrangian.master`: the bundle and Dantzig-Wolfe masters;
- :mod:`~hetkv_opt.bounds.lagrangian.certificate`: :class:`BoundCertificate`, its file;
- :mod:`~hetkv_opt.bounds.lagrangian.verify`: :func:`verify_bound`;
- :mod:`~hetkv_opt.bounds.lagrangian.bound`: :func:`lagrangian_bound`,
  :func:`solve_lagrangian`.

The time terms, the capacity rooms and the rounding cut are facts of the model:
:mod:`hetkv_opt.model.terms` (re-exported here: ``time_terms``, ``term_names``,
``capacity_tiers``).

Examples
--------
>>> from hetkv_opt.model.instance import tiny_instance
>>> bound, cert = lagrangian_bound(tiny_instance(), iterations=50)
>>> 1.0 <= bound <= 2.0
True
>>> abs(verify_bound(tiny_instance(), cert) - bound) <= 1e-9 * bound
True
"""

from hetkv_opt.bounds.lagrangian.bound import lagrangian_bound, solve_lagrangian
from hetkv_opt.bounds.lagrangian.certificate import (BoundCertificate, CertificateError,
                                                     load_certificate)
from hetkv_opt.bounds.lagrangian.verify import verify_bound
from hetkv_opt.model.terms import capacity_tiers, term_names, time_terms

__all__ = ["BoundCertificate", "CertificateError", "capacity_tiers", "lagrangian_bound",
           "load_certificate", "solve_lagrangian", "term_names", "time_terms", "verify_bound"]
