"""No tracked text file holds a merge's conflict markers (one once reached README on main)."""
import os
import re
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MARKER = re.compile(r"^(<{7} |>{7} |={7}$)", re.M)


def test_no_conflict_markers():
    try:
        files = subprocess.run(["git", "ls-files", "*.py", "*.md", "*.yaml", "*.cfg", "Makefile"],
                               cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    bad = []
    for name in files:
        with open(os.path.join(ROOT, name), encoding="utf-8", errors="replace") as fh:
            if MARKER.search(fh.read()):
                bad.append(name)
    assert not bad, f"conflict markers in {bad}"
