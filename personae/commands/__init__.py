"""The ``personae`` command's subcommands, by theme; :mod:`personae.cli` registers them."""
