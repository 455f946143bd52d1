"""`python -m distiller`: the `distiller` command."""
import sys

from distiller.cli import main

sys.exit(main())
