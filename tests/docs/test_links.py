"""Every relative link in the README, docs/*.md and examples/*/README.md resolves.

A link is ``[text](target)``, ``![alt](target)`` or a reference definition
``[name]: target``, outside fenced code blocks and inline code. Links with a
scheme (``https:``, ``mailto:``…) are not fetched. A relative target must name an
existing file or folder (relative to the page); a ``#fragment`` must be an anchor
of the target page (or of the page itself for ``#fragment`` alone): a heading,
slugged the way GitHub does it, or an ``<a id=…>``/``<a name=…>``.

The checker is tested on pages with a broken file, a broken anchor and a good
link, so a test that always passes would show up.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from urllib.parse import unquote

import pytest

REPO = Path(__file__).resolve().parents[2]

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.M | re.S)
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1", re.S)
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.M)
HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.+?)[ \t#]*$", re.M)
HTML_ANCHOR = re.compile(r"<a\s+[^>]*(?:id|name)\s*=\s*[\"']([^\"']+)[\"']", re.I)
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def pages() -> list[Path]:
    found = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")),
             *sorted((REPO / "examples").glob("*/README.md"))]
    return [p for p in found if p.is_file()]


def _without_code(text: str) -> str:
    """``text`` with fenced blocks and inline code blanked (line numbers kept)."""
    def blank(m: re.Match[str]) -> str:
        return re.sub(r"[^\n]", " ", m.group(0))

    return INLINE_CODE.sub(blank, FENCE.sub(blank, text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to ``-``."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    kept = []
    for ch in text:
        if ch in " -_" or ch.isalnum() or unicodedata.category(ch).startswith("M"):
            kept.append(ch)
    return "".join(kept).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = page.read_text(encoding="utf-8")
    plain = FENCE.sub("", text)
    out: set[str] = set()
    seen: dict[str, int] = {}
    for m in HEADING.finditer(plain):
        base = slug(m.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    out.update(HTML_ANCHOR.findall(plain))
    return out


def links(page: Path) -> list[tuple[int, str]]:
    """``(line, target)`` of every link on ``page``."""
    text = _without_code(page.read_text(encoding="utf-8"))
    found = [(m.start(), m.group(1)) for m in INLINE_LINK.finditer(text)]
    found += [(m.start(), m.group(1)) for m in REFERENCE.finditer(text)]
    return sorted((text.count("\n", 0, pos) + 1, target) for pos, target in found)


def broken_links(page: Path, root: Path = REPO) -> list[str]:
    """One line per relative link on ``page`` that names no file, folder or anchor."""
    problems = []
    for line, target in links(page):
        if SCHEME.match(target) or target.startswith("//"):
            continue
        path_part, _, fragment = target.partition("#")
        where = f"{page.relative_to(root)}:{line}: {target}"
        if path_part:
            dest = (page.parent / unquote(path_part)).resolve()
            if not dest.exists():
                problems.append(f"{where}: no such file or folder")
                continue
        else:
            dest = page
        if fragment:
            if dest.is_dir() or dest.suffix.lower() != ".md":
                problems.append(f"{where}: an anchor on something that is not a Markdown page")
            elif unquote(fragment).lower() not in anchors(dest):
                problems.append(f"{where}: no heading or anchor #{fragment} in {dest.name}")
    return problems


def test_there_are_pages_with_links() -> None:
    assert (REPO / "README.md") in pages()
    assert sum(len(links(p)) for p in pages()) > 10


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(page: Path) -> None:
    assert broken_links(page) == []


# --------------------------------------------------------------------------- the checker itself


def test_slug_is_githubs() -> None:
    assert slug("In a cluster: the sidecar") == "in-a-cluster-the-sidecar"
    assert slug("Compiling: `mora check` beside `docker-compose config`") == \
        "compiling-mora-check-beside-docker-compose-config"
    assert slug("Reach the services by name") == "reach-the-services-by-name"
    assert slug("5. Deploy") == "5-deploy"
    assert slug("volume inside a service") == "volume-inside-a-service"


def test_the_checker_finds_broken_links(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "other.md").write_text("# Other page\n\n## A section\n", encoding="utf-8")
    page = tmp_path / "README.md"
    page.write_text(
        "# Top\n\n## Twice\n\n## Twice\n\n"
        "[ok](docs/other.md) [ok](docs/other.md#a-section) [ok](#top) [ok](#twice-1)\n"
        "[ok](docs) [web](https://example.com/missing.md) `[code](missing.md)`\n"
        "[gone](docs/missing.md)\n"
        "[bad anchor](docs/other.md#no-such-section)\n"
        "[bad local](#nowhere)\n"
        "```sh\n[in a block](nothing.md)\n```\n"
        "[ref]: docs/also-missing.md\n",
        encoding="utf-8",
    )
    problems = broken_links(page, root=tmp_path)
    assert problems == [
        "README.md:9: docs/missing.md: no such file or folder",
        "README.md:10: docs/other.md#no-such-section: no heading or anchor #no-such-section "
        "in other.md",
        "README.md:11: #nowhere: no heading or anchor #nowhere in README.md",
        "README.md:15: docs/also-missing.md: no such file or folder",
    ]
