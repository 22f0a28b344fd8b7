"""Shared test set-up.

The helpers that are only for this test suite (``cli_helpers``, ``trace_helpers``) live
next to the tests and are imported by their module name: this folder has no
``__init__.py``, so pytest (default ``prepend`` import mode) puts it first on the import
path when it loads this conftest, before any test module is collected.  The optimality
oracle and the random-instance strategies are public: :mod:`hetkv_opt.testing`.
"""
