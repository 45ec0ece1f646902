"""The ``nodeloom`` command-line interface (see :mod:`nodeloom.cli.main`)."""
