"""Where the shipped assets (search space, ledger, recommender, report) are: found through the
package's resources, so the same code serves a checkout, an editable install and a wheel."""
from __future__ import annotations

from importlib import resources

__all__ = ["asset"]


def asset(name: str) -> str:
    """The path of one shipped asset file."""
    return str(resources.files(__package__).joinpath("assets", name))
