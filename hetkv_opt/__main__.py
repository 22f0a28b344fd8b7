"""``python -m hetkv_opt`` runs the ``hetkv`` command."""

from hetkv_opt.cli.app import main

if __name__ == "__main__":
    main()
