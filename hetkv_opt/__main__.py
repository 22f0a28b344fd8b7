"""``python -m hetkv_opt`` runs the ``hetkv`` command."""

from hetkv_opt.cli import main

main()
