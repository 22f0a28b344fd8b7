"""The ``hetkv`` command line: :mod:`hetkv_opt.cli.app` (the app and ``main``), one module
per command group, and :mod:`hetkv_opt.cli.common` (what they share)."""
