"""The book builds strictly with `make book`, and what it builds is what a reader should get."""
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import ROOT, make

pytestmark = pytest.mark.book
HTML = ROOT / "_build" / "html"
CACHE = ROOT / "_build" / ".jupyter_cache"


def _chapters():
    toc = (ROOT / "_toc.yml").read_text()
    files = re.findall(r"file:\s*(\S+)", toc)
    return [f for f in files if (ROOT / f"{f}.ipynb").exists()]


def test_book_has_intro_and_index(built):
    assert (HTML / "index.html").exists()
    intro = (HTML / "book" / "intro.html").read_text()
    assert "Neural networks with memory" in intro


def test_every_chapter_page_is_built_with_its_figures(built):
    chapters = _chapters()
    assert chapters, "no chapter notebooks in _toc.yml"
    for chapter in chapters:
        page = HTML / f"{chapter}.html"
        assert page.exists(), page
        text = page.read_text()
        images = re.findall(r'<img[^>]+src="([^"]+\.png)"', text)
        assert images, f"{chapter}: no figure in the built page"
        for src in images:
            assert (page.parent / src).resolve().exists(), src


def test_math_and_citations_render(built):
    page = (HTML / "book" / "01-rnn" / "01-f-and-the-naive-rnn.html").read_text()
    assert 'class="math' in page and "mathjax" in page.lower()
    bib = (HTML / "book" / "bibliography.html").read_text()
    assert "finding structure in time" in bib.lower()  # pybtex sets titles in sentence case
    assert 'href="bibliography.html#id' in (HTML / "book" / "intro.html").read_text()


def test_each_chapter_executes_within_120_seconds(built):
    from jupyter_cache import get_cache

    records = {Path(r.uri).resolve(): r for r in get_cache(str(CACHE)).list_cache_records()}
    for chapter in _chapters():
        record = records.get((ROOT / f"{chapter}.ipynb").resolve())
        assert record is not None, f"{chapter} was not executed into the cache"
        seconds = record.data["execution_seconds"]
        assert seconds <= 120, f"{chapter} took {seconds:.0f} s to execute (budget 120 s)"


def test_second_build_is_fast_and_does_not_re_execute(built):
    from jupyter_cache import get_cache

    before = {r.uri: r.created for r in get_cache(str(CACHE)).list_cache_records()}
    start = time.perf_counter()
    result = make("book")
    elapsed = time.perf_counter() - start
    assert result.returncode == 0, result.stdout[-3000:]
    after = {r.uri: r.created for r in get_cache(str(CACHE)).list_cache_records()}
    assert after == before, "a build with nothing changed re-executed a notebook"
    assert elapsed < 30, f"a warm `make book` took {elapsed:.1f} s (budget 30 s)"


def test_cache_key_follows_the_library(tmp_path):
    """The key that invalidates the execution cache changes with any file in lib/seqmem."""
    for name in ("Makefile", "requirements.txt", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "lib", tmp_path / "lib", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))

    def key():
        result = subprocess.run(["make", "-s", "book-key"], cwd=tmp_path, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    first = key()
    assert re.fullmatch(r"[0-9a-f]{16}", first)
    assert key() == first
    with open(tmp_path / "lib" / "seqmem" / "rnn.py", "a") as f:
        f.write("\n# touched\n")
    assert key() != first


def test_the_book_never_contains_solutions(built):
    from test_hygiene import solution_and_hidden_lines

    html = "\n".join(p.read_text(errors="ignore") for p in HTML.rglob("*") if p.suffix in {".html", ".txt", ".js", ".ipynb"})
    assert not (HTML / "solutions").exists() and not (HTML / "notebooks").exists()
    for line in solution_and_hidden_lines():
        assert line not in html, f"solution or hidden test text in the built book: {line!r}"


def test_no_cell_writes_to_stderr(built):
    """Warnings (a missing glyph, a deprecation, a numerical warning) reach the page as stderr: none may."""
    import json

    for path in sorted((ROOT / "_build" / "jupyter_execute").rglob("*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            for out in cell.get("outputs", []):
                if out.get("name") == "stderr":
                    text = "".join(out["text"])
                    raise AssertionError(f"{path.relative_to(ROOT)} wrote to stderr: {text[:500]}")


def test_tables_that_cells_display_render_as_tables(built):
    """A table a cell displays as Markdown (paper vs ours) must reach the reader as a <table>, not
    as rows of pipes: no cell output holds a Markdown table's separator row as text."""
    from bs4 import BeautifulSoup

    displayed = 0
    for chapter in _chapters():
        soup = BeautifulSoup((HTML / f"{chapter}.html").read_text(), "html.parser")
        for output in soup.select("div.cell_output"):
            text = output.get_text()
            assert not re.search(r"\|\s*-{3,}\s*\|", text), f"{chapter}: a Markdown table shown as text: {text[:300]}"
            displayed += len(output.find_all("table"))
    assert displayed > 0, "no cell output displays a table: the check above checked nothing"
