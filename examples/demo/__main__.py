"""`python -m examples.demo` (what `make demo` runs), from the repository root."""
import sys

from examples.demo.cli import main

sys.exit(main())
