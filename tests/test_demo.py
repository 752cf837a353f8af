from __future__ import annotations

import re

import pytest


@pytest.mark.slow
def test_demo_trains_solves_and_writes_a_report(demo_run):
    assert demo_run.returncode == 0
    out = demo_run.out
    # part 1: the shipped model on new 9x9 puzzles of rising difficulty, segment by segment
    for level in ("easy", "medium", "hard"):
        assert re.search(rf"\n {{5}}{level}, \d+ givens: ", out)
    assert re.search(r"easy, \d+ givens: ✓ valid; halted after segment \d+ of 128", out)
    # part 2/3: a fresh model trained to the target, then solving new puzzles
    match = re.search(r"exact accuracy on 200 held-out puzzles: ([\d.]+)%", out)
    assert match and float(match.group(1)) >= 95.0
    assert "reached the 95% target" in out
    assert len(re.findall(r"\n {5}\d+ givens: ", out)) == 3
    assert out.count("segment 1: q ") == 6
    report = (demo_run.workdir / "report.html").read_text()
    assert report.startswith("<!doctype html>") and "<svg" in report
    assert "id='traces'" in report and "9x9 easy" in report and "4x4, 6 givens" in report
    assert "http" not in report  # self-contained: nothing to fetch


def test_segments_print_side_by_side():
    from hrm.demo import segments_text

    grid = [[1, 2, 3, 4], [3, 4, 1, 2], [2, 1, 4, 3], [4, 3, 2, 1]]
    wrong = [row[:] for row in grid]
    wrong[0][0], wrong[1][1] = 0, 0
    segments = [
        {"index": i + 1, "q_halt": q, "answer": a} for i, (q, a) in enumerate([(-2.0, wrong), (3.0, grid)])
    ]
    lines = segments_text({"segments": segments}).splitlines()
    assert len(lines) == 6  # header + 5 grid lines: the two grids sit side by side
    assert lines[0].startswith("segment 1: q -2.0") and lines[0].endswith("segment 2: q +3.0 Δ2")
    assert lines[1].split() == [".", "2", "|", "3", "4", "1", "2", "|", "3", "4"]
    many = segments_text({"segments": segments * 3}, per_row=4).splitlines()
    assert len(many) == 6 + 1 + 6  # six grids: a row of four, a blank line, a row of two
