from __future__ import annotations

import re

import pytest


@pytest.mark.slow
def test_demo_trains_solves_and_writes_a_report(tmp_path, capsys):
    from hrm.cli import main

    assert main(["demo", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    match = re.search(r"exact accuracy on 200 held-out puzzles: ([\d.]+)%", out)
    assert match and float(match.group(1)) >= 95.0
    assert "reached the 95% target" in out
    assert out.count("segment 1:") == 3
    report = (tmp_path / "report.html").read_text()
    assert report.startswith("<!doctype html>") and "<svg" in report and 'id="traces"' not in report
    assert "id='traces'" in report and "segment 2" in report
    assert "http" not in report  # self-contained: nothing to fetch
