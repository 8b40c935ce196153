"""Committed notebooks carry no outputs; student notebooks carry no solutions or hidden tests."""
import json
import re

from conftest import ROOT

MARKS = ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS")


def notebooks(*folders):
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.ipynb")):
            if ".ipynb_checkpoints" not in path.parts and "_build" not in path.parts:
                yield path


def solution_and_hidden_lines():
    """Every substantial line that stands between solution or hidden-test markers in solutions/."""
    found = set()
    region = re.compile(r"### BEGIN (SOLUTION|HIDDEN TESTS)\n(.*?)### END \1", re.S)
    for path in notebooks("solutions"):
        for cell in json.loads(path.read_text())["cells"]:
            for _, body in region.findall("".join(cell["source"])):
                found.update(line.strip() for line in body.splitlines() if len(line.strip()) >= 12)
    return sorted(found)


def test_there_are_notebooks_to_check():
    assert list(notebooks("book")) and list(notebooks("solutions")) and list(notebooks("notebooks"))


def test_notebooks_are_committed_without_outputs():
    for path in notebooks("book", "notebooks", "solutions"):
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "code":
                assert not cell.get("outputs") and cell.get("execution_count") is None, path


def test_release_has_no_solutions_or_hidden_tests():
    lines = solution_and_hidden_lines()
    assert len(lines) >= 10, "the solution notebooks should have solution and hidden-test regions"
    for path in notebooks("notebooks"):
        text = path.read_text()
        for mark in MARKS:
            assert mark not in text, f"{path}: contains {mark}"
        body = "\n".join("".join(c["source"]) for c in json.loads(text)["cells"])
        for line in lines:
            assert line not in body, f"{path}: contains solution or hidden-test line {line!r}"
