"""MkDocs hooks of the documentation site (mkdocs.yml names this file; `make docs` builds it).

Two jobs, so that `mkdocs build --strict` checks every page a reader meets:

- Pages that live outside docs/ join the site: the user guide (README.md), the measurement diary
  (benchmarks/README.md) and the recommender's notes (autodistiller/assets/README.md), with the
  images they show. Links between pages are written as repository paths (README.md links
  ``docs/cache.md``, a page in docs/ links ``../README.md``) so that they work on a code host;
  here each is rewritten to the site path of its target. MkDocs then validates every link and
  anchor as usual; a link to a file the site does not hold stays as written and fails there.
- Markdown that renders wrongly without any warning from MkDocs is reported as a warning, which
  --strict turns into a failed build: a table glued under a line of text (MkDocs renders no
  table) or a line of text glued under a table (it becomes a row), a table row whose cell count
  differs from its header's (GitHub splits cells on every unescaped ``|``, inside code spans too;
  an escaped one inside a code span keeps its backslash in MkDocs), two headings run together on
  one line, and one heading text twice on a page (their anchors collide).
"""
from __future__ import annotations

import logging
import os
import posixpath
import re
from typing import Iterator, List, Optional, Tuple

log = logging.getLogger("mkdocs.hooks.distiller")

# repository path -> site path of the pages kept outside docs/
PAGES = {"README.md": "guide.md", "benchmarks/README.md": "benchmarks.md",
         "autodistiller/assets/README.md": "autodistiller.md"}
# files those pages show, served at their repository path
ASSETS = ("benchmarks/results/results.png",)
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_LINK = re.compile(r"(\]\()([^()\s#]*)(#[^()\s]*)?(\))")
_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_DELIMITER = re.compile(r"^\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")
_CELL_SPLIT = re.compile(r"(?<!\\)\|")
_CODE_SPAN = re.compile(r"`[^`]*`")


def site_path(repo_path: str) -> Optional[str]:
    """Where a repository file is in the site, or None when the site does not hold it."""
    if repo_path in PAGES:
        return PAGES[repo_path]
    if repo_path.startswith("docs/"):
        return repo_path[len("docs/"):]
    return repo_path if repo_path in ASSETS else None


def repo_path(site_uri: str) -> str:
    """The repository path of the page at `site_uri` (the inverse of site_path for pages)."""
    for repo, site in PAGES.items():
        if site == site_uri:
            return repo
    return site_uri if site_uri in ASSETS else "docs/" + site_uri


def _outside_fences(lines: List[str]) -> Iterator[Tuple[int, str]]:
    """(index, line) of the lines that are not inside a fenced code block."""
    fenced = False
    for i, line in enumerate(lines):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield i, line


def rewrite_links(markdown: str, page_repo_path: str) -> str:
    """`markdown` of the page at `page_repo_path` with relative links to repository files the
    site holds rewritten to their site paths, relative to the page's own site path."""
    page_dir = posixpath.dirname(site_path(page_repo_path) or "")

    def swap(match: re.Match) -> str:
        target = match.group(2)
        if not target or ":" in target or target.startswith("/"):
            return match.group(0)  # an anchor on this page, a URL, or an absolute path
        full = posixpath.normpath(posixpath.join(posixpath.dirname(page_repo_path), target))
        site = site_path(full)
        if site is None:
            return match.group(0)
        new = posixpath.relpath(site, page_dir or ".")
        return f"{match.group(1)}{new}{match.group(3) or ''}{match.group(4)}"

    lines = markdown.split("\n")
    for i, line in _outside_fences(lines):
        lines[i] = _LINK.sub(swap, line)
    return "\n".join(lines)


def _cells(row: str) -> int:
    row = row.strip()
    row = row[1:] if row.startswith("|") else row
    row = row[:-1] if row.endswith("|") and not row.endswith("\\|") else row
    return len(_CELL_SPLIT.split(row))


def structure_problems(markdown: str) -> List[str]:
    """What renders wrongly without a warning from MkDocs, one line each ("line N: ...")."""
    problems: List[str] = []
    seen = {}
    lines = markdown.split("\n")
    header_cells = None   # inside a table: its header's cell count
    previous = -2         # index of the last line outside fences
    for i, line in _outside_fences(lines):
        stripped = line.strip()
        follows, previous = i == previous + 1, i
        if header_cells is not None and stripped and follows:
            if not stripped.startswith("|"):
                problems.append(f"line {i + 1}: text glued under a table becomes one of its "
                                "rows; put a blank line before it")
                header_cells = None
            elif any("\\|" in span for span in _CODE_SPAN.findall(stripped)):
                problems.append(f"line {i + 1}: a '\\|' inside a code span of a table shows its "
                                "backslash in MkDocs (and an unescaped one splits the cell on "
                                "GitHub): keep the bar outside the code span")
            elif _cells(stripped) != header_cells and not _DELIMITER.match(stripped):
                problems.append(f"line {i + 1}: a table row of {_cells(stripped)} cells under "
                                f"a header of {header_cells} (write a '|' inside a cell as "
                                "'\\|')")
            continue
        header_cells = None
        nxt = lines[i + 1].strip() if i + 1 < len(lines) else ""
        if stripped.startswith("|") and _DELIMITER.match(nxt):
            header_cells = _cells(stripped)
            if i and lines[i - 1].strip() and follows:
                problems.append(f"line {i + 1}: a table right under a line of text is no table "
                                "in MkDocs; put a blank line before it")
            if _cells(nxt) != header_cells:
                problems.append(f"line {i + 2}: the table's delimiter row has {_cells(nxt)} "
                                f"cells, its header {header_cells}")
            continue
        heading = _HEADING.match(line)
        if heading:
            text = heading.group(2)
            if re.search(r"#{2,}\s*\S", text):
                problems.append(f"line {i + 1}: two headings on one line: {stripped!r}")
            elif text in seen:
                problems.append(f"line {i + 1}: heading {text!r} again (first at line "
                                f"{seen[text]}); their anchors collide")
            seen.setdefault(text, i + 1)
    return problems


def _modules(package_dir: str, dotted: str) -> Iterator[str]:
    """Dotted names of the modules of a package directory and of its subpackages, sorted."""
    for name in sorted(os.listdir(package_dir)):
        path = os.path.join(package_dir, name)
        if name.endswith(".py") and name not in ("__init__.py", "__main__.py"):
            yield f"{dotted}.{name[:-3]}"
        elif os.path.isfile(os.path.join(path, "__init__.py")):
            yield f"{dotted}.{name}"
            yield from _modules(path, f"{dotted}.{name}")


def api_pages(root: str = _REPO, namespace: str = "distiller") -> dict:
    """{site path: markdown} of the API reference: one page per part of the namespace (each
    subpackage of ``distiller/``, and ``distiller`` itself for its own modules), rendering the
    package's docstring and every module in it with mkdocstrings."""
    top = os.path.join(root, namespace)
    parts = [name for name in sorted(os.listdir(top))
             if os.path.isfile(os.path.join(top, name, "__init__.py"))]
    pages = {}
    own = [f"{namespace}.{name[:-3]}" for name in sorted(os.listdir(top))
           if name.endswith(".py") and name not in ("__init__.py", "__main__.py")]
    pages[f"api/{namespace}.md"] = _api_page(namespace, own)
    for part in parts:
        dotted = f"{namespace}.{part}"
        pages[f"api/{part}.md"] = _api_page(dotted, list(_modules(os.path.join(top, part),
                                                                  dotted)))
    return pages


def _api_page(package: str, modules: List[str]) -> str:
    head = [f"# `{package}`", "", f"::: {package}", "    options:", "      members: false",
            "      show_root_heading: false", ""]
    return "\n".join(head + [f"::: {module}\n" for module in modules])


# ---------------------------------------------------------------------------- MkDocs events
def on_files(files, config):
    """Add the pages kept outside docs/, the images they show and the API reference."""
    from mkdocs.structure.files import File

    for site, text in api_pages().items():
        files.append(File.generated(config, site, content=text))
    for repo, site in PAGES.items():
        with open(os.path.join(_REPO, repo), encoding="utf-8") as fh:
            files.append(File.generated(config, site, content=fh.read()))
    for asset in ASSETS:
        files.append(File.generated(config, asset, abs_src_path=os.path.join(_REPO, asset)))
    return files


def on_page_markdown(markdown, page, config, files):
    """Report what renders wrongly; rewrite repository links to site links."""
    where = repo_path(page.file.src_uri)
    for problem in structure_problems(markdown):
        log.warning("%s, %s", where, problem)
    return rewrite_links(markdown, where)
