"""distiller: the `distiller` command (cli), which registers every package's subcommands.

The top of the import graph: it imports each package's cli module; no package imports it.
"""
