"""The documentation site's hooks (docs/hooks.py): pages outside docs/ with their links rewritten,
Markdown that renders wrongly reported, the API reference generated; and the repository's own
pages free of such defects. MkDocs itself runs in `make docs`; these checks need none of it."""
from __future__ import annotations

import glob
import importlib.util
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", os.path.join(REPO, "docs",
                                                                             "hooks.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_defects_that_render_silently_are_reported(hooks):
    text = "\n".join([
        "# Title",                                    # 1
        "",
        "| a | b |",                                  # 3
        "|---|---|",
        "| 1 | 2 |",
        "| 1 | 2 | 3 |",                              # 6: one cell too many
        "| `x\\|y` | 2 |",                            # 7: an escaped bar in a code span
        "A paragraph glued to the table.",           # 8
        "",
        "## Cache## Cache",                           # 10
        "## Title",                                   # 11: the same text as line 1
        "```",
        "| not | a | table |",
        "## not a heading",
        "```",
        "Text right above a table.",                 # 16
        "| c |",                                      # 17: no table in MkDocs
        "|---|",
    ])
    problems = hooks.structure_problems(text)
    assert [p.split(":")[0] for p in problems] == ["line 6", "line 7", "line 8", "line 10",
                                                    "line 11", "line 17"]
    assert "3 cells under a header of 2" in problems[0]
    assert "glued under a table" in problems[2]


def test_clean_markdown_passes(hooks):
    text = "\n".join(["# T", "", "| a | b |", "|---|---|", "| `c` \\| d | e |", "",
                      "text", "", "## Other", "```", "## Other", "```"])
    assert hooks.structure_problems(text) == []


def test_repository_links_become_site_links(hooks):
    readme = ("[c](docs/cache.md#spec) [d](benchmarks/README.md#headline-figures) "
              "[s](builders/cache/store.py) [u](https://example.org/x.md) [a](#here)\n"
              "```\n[c](docs/cache.md)\n```")
    assert hooks.rewrite_links(readme, "README.md") == (
        "[c](cache.md#spec) [d](benchmarks.md#headline-figures) [s](builders/cache/store.py) "
        "[u](https://example.org/x.md) [a](#here)\n```\n[c](docs/cache.md)\n```")
    page = "[g](../README.md#install) ![r](../benchmarks/results/results.png) [m](method.md)"
    assert hooks.rewrite_links(page, "docs/results.md") == (
        "[g](guide.md#install) ![r](benchmarks/results/results.png) [m](method.md)")
    assert hooks.rewrite_links("[t](../../docs/tasks.md)", "autodistiller/assets/README.md") \
        == "[t](tasks.md)"


def test_api_pages_cover_every_module_of_the_namespace(hooks, tmp_path):
    for path in ("distiller/__init__.py", "distiller/cli.py", "distiller/part/__init__.py",
                 "distiller/part/a.py", "distiller/part/sub/__init__.py",
                 "distiller/part/sub/b.py", "distiller/part/data/x.txt"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("")
    pages = hooks.api_pages(str(tmp_path))
    assert sorted(pages) == ["api/distiller.md", "api/part.md"]
    directives = [line for line in pages["api/part.md"].splitlines() if line.startswith(":::")]
    assert directives == ["::: distiller.part", "::: distiller.part.a", "::: distiller.part.sub",
                          "::: distiller.part.sub.b"]
    assert "::: distiller.cli" in pages["api/distiller.md"]


def test_the_repositorys_pages_render_as_written(hooks):
    pages = (["README.md", "benchmarks/README.md", "autodistiller/assets/README.md"]
             + sorted(glob.glob("docs/*.md", root_dir=REPO)))
    problems = []
    for page in pages:
        with open(os.path.join(REPO, page), encoding="utf-8") as fh:
            problems += [f"{page}, {p}" for p in hooks.structure_problems(fh.read())]
    assert problems == []
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as fh:
        assert len(fh.read().splitlines()) <= 300  # README is a guide; the rest lives in docs/
