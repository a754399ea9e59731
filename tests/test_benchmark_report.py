"""BENCHMARKS.md is assembled from one module per section; a section whose
results are missing says so and names the command that measures it."""

import re
import shutil

import pytest

from benchmarks import common
from benchmarks import report


def test_every_section_says_how_to_measure_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "RESULTS_DIR", str(tmp_path))
    headings = []
    for section in report.SECTIONS:
        lines = section("full", str(tmp_path / "BENCHMARKS.md"))
        text = "\n".join(lines)
        headings.append(re.match(r"## (\d+)\.", lines[0]).group(1))
        assert re.search(r"(Not measured|No grid results)", text), text
        assert re.search(r"`(make bench[\w-]*|(KERAS_BACKEND=\w+ )?python -m benchmarks\.\w+)",
                         text), text
        assert "lent" not in text  # no sentence that belongs to one moment
    assert headings == [str(i) for i in range(1, 12)]


@pytest.mark.parametrize("grid", ["full", "quick"])
def test_the_report_assembles_the_committed_results(grid, tmp_path, monkeypatch):
    # A copy: the report redraws its plots beside the results.
    results = tmp_path / "results"
    shutil.copytree(common.RESULTS_DIR, results)
    monkeypatch.setattr(common, "RESULTS_DIR", str(results))
    out = tmp_path / "BENCHMARKS.md"
    monkeypatch.setattr(report.grid, "update_readme", lambda text, path: False)
    report.FLAGS(["report", f"--grid={grid}", f"--out={out}"])
    report.main([])
    text = out.read_text()
    assert [int(n) for n in re.findall(r"^## (\d+)\.", text, re.M)] == list(range(1, 12))
