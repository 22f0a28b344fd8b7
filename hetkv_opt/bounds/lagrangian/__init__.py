"""The Lagrangian (decomposition) bound: prices on the time and capacity rows, one shortest
path per item, a certificate anyone can check (``verify_bound``)."""

from hetkv_opt.bounds.lagrangian.core import (BoundCertificate, CertificateError, capacity_tiers,
                                              lagrangian_bound, load_certificate,
                                              solve_lagrangian, term_names, time_terms,
                                              verify_bound)

__all__ = ["BoundCertificate", "CertificateError", "capacity_tiers", "lagrangian_bound",
           "load_certificate", "solve_lagrangian", "term_names", "time_terms", "verify_bound"]
