"""Suite-wide hooks: the end-to-end tests run first (the workers then finish together); the test
run is an entry point like `distiller`'s main, so it makes MKL's results thread-count independent
before any torch math (MKL reads the setting at its first call: a later call, such as loading a
teacher after other tests ran, is too late); and a test
that needs the shared real data (taskdata.paths.shared_data) skips with a reason when that data
is not on this machine (a lent GPU machine gets the tree only), instead of failing in its
set-up."""
from __future__ import annotations

import os

import pytest

from distiller.common.seeding import thread_independent_math
from distiller.taskdata.paths import shared_data

thread_independent_math()


def _missing_shared_path(exc: BaseException):
    """The path under the shared data directory that `exc` (or an exception it chains) names and
    that does not exist, else None."""
    root = shared_data()
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        names = [getattr(exc, "filename", None)] + [str(a) for a in getattr(exc, "args", ())]
        for name in names:
            if not isinstance(name, str) or root not in name:
                continue
            path = name[name.index(root):].split("'")[0].split('"')[0].split()[0].rstrip(":,.")
            if not os.path.exists(path):
                return path
        exc = exc.__cause__ or exc.__context__
    return None


def _skip_if_data_missing(outcome) -> None:
    """Only off CI: CI always has the shared data, so there a missing file is a defect (a wrong
    path computed by the code under test), not a machine without the data."""
    if os.environ.get("CI"):
        return
    exc = outcome.exception
    missing = _missing_shared_path(exc) if isinstance(exc, Exception) else None
    if missing:
        outcome.force_exception(pytest.skip.Exception(
            f"shared data absent: {missing} (set DISTILLER_DATA or provide ../shared/data)",
            _use_item_location=True))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    outcome = yield
    _skip_if_data_missing(outcome)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    outcome = yield
    _skip_if_data_missing(outcome)


def pytest_collection_modifyitems(config, items):
    """The end-to-end tests (marked slow, a minute or more each) first, the rest in their order
    after: with `-n 2` both workers start on the long ones and the short ones fill the end, so
    neither waits alone on a long test at the finish."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
