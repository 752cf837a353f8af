"""What the viewer shows beside a trace, and the self-contained HTML page of one trace.

`annotate(trace)` adds what the page colours cells by: the expected answer (the exact solver's for a
Sudoku, a shortest path for a maze, the label when the puzzle came from a dataset) and, per segment,
whether its answer passes the rule check. `export_html(trace_path, out_path)` writes one HTML file
with the page's CSS and JavaScript inline and the trace embedded, which opens without a server:

    hrm viz --export trace.json --out trace.html
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from hrm.errors import DataError, HRMError

STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
EMBED_ID = "hrm-embedded-trace"
STYLE_TAG = '<link rel="stylesheet" href="/static/style.css">'
SCRIPT_TAG = '<script src="/static/app.js" defer></script>'
MAX_TRACE_BYTES = 256 * 1024 * 1024

Grid = list[list[Any]]


def read_static(name: str) -> str:
    """One of the page's own files (index.html, app.js, style.css)."""
    if name not in STATIC_FILES:
        raise HRMError(f"{name!r} is not one of the viewer's files")
    return (STATIC_DIR / name).read_text(encoding="utf-8")


# --------------------------------------------------------------------------------------------------
# Expected answers and rule checks
# --------------------------------------------------------------------------------------------------


def _maze_tokens(grid: Grid) -> np.ndarray | None:
    """Token ids of a maze grid of characters; None when a cell is not a maze character ('?' = PAD)."""
    from hrm.data import maze as maze_data

    n = len(grid)
    flat = "".join(str(ch) for row in grid for ch in row)
    if n == 0 or len(flat) != n * n:
        return None
    try:
        return maze_data.encode_maze(flat, n)
    except ValueError:
        return None


def _maze_grid(tokens: np.ndarray) -> Grid:
    from hrm.data import maze as maze_data

    n = tokens.shape[0]
    text = maze_data.decode_maze(tokens)
    return [list(text[i : i + n]) for i in range(0, n * n, n)]


def solver_expected(kind: str, puzzle_grid: Grid) -> tuple[Grid | None, str | None]:
    """The exact answer of a Sudoku (the solver's; the first of several when it is not unique) or
    maze (one shortest path), with a word on where it came from; (None, None) for ARC."""
    if kind == "sudoku":
        from hrm.data import sudoku as sudoku_data

        cells = np.asarray(puzzle_grid, dtype=np.uint8)
        n = cells.shape[0] if cells.ndim == 2 else 0
        if n not in sudoku_data.SIZES or cells.shape != (n, n):
            return None, None
        result = sudoku_data.solve_exact(cells.reshape(-1), limit=2, size=n)
        if result.solution is None:
            return None, "the solver found no solution"
        source = "solver" if result.unique else "solver (one of several solutions)"
        return result.solution.reshape(n, n).astype(int).tolist(), source
    if kind == "maze":
        from hrm.data import maze as maze_data

        tokens = _maze_tokens(puzzle_grid)
        if tokens is None:
            return None, None
        tokens = np.where(tokens == maze_data.PATH, maze_data.OPEN, tokens).astype(np.uint8)
        try:
            return _maze_grid(maze_data.solve_maze(tokens)), "solver (a shortest path)"
        except ValueError:
            return None, "G cannot be reached from S"
    return None, None


def check_answer(kind: str, puzzle_grid: Grid, answer: Grid, expected: Grid | None) -> dict[str, Any]:
    """{"valid": bool | None, "reason": str | None} for one answer: the rules for Sudoku and maze
    (any valid solution counts, not only the expected one), equality with `expected` for ARC."""
    from hrm.solve import check_maze, check_sudoku

    if kind == "sudoku":
        reason = check_sudoku(np.asarray(puzzle_grid), np.asarray(answer))
        return {"valid": reason is None, "reason": reason}
    if kind == "maze":
        question, tokens = _maze_tokens(puzzle_grid), _maze_tokens(answer)
        if question is None:
            return {"valid": None, "reason": "the puzzle is not a maze"}
        if tokens is None:
            return {"valid": False, "reason": "the answer holds cells that are not maze characters"}
        reason = check_maze(question, tokens)
        return {"valid": reason is None, "reason": reason}
    if expected is None:
        return {"valid": None, "reason": None}
    if answer == expected:
        return {"valid": True, "reason": None}
    shape = f"{len(answer)}x{len(answer[0]) if answer else 0}"
    want = f"{len(expected)}x{len(expected[0]) if expected else 0}"
    if shape != want:
        return {"valid": False, "reason": f"the answer is {shape} but the expected output is {want}"}
    wrong = sum(a != e for ra, re in zip(answer, expected) for a, e in zip(ra, re))
    return {"valid": False, "reason": f"{wrong} cell(s) differ from the expected output"}


def annotate(
    trace: dict[str, Any], expected: Grid | None = None, expected_source: str | None = None
) -> dict[str, Any]:
    """What the page needs beside a trace: the expected answer (given, e.g. a dataset label, or from
    the solver) and the rule check of every segment's answer."""
    kind = trace["kind"]
    grid = trace["puzzle"]["grid"]
    if expected is None:
        expected, expected_source = solver_expected(kind, grid)
    checks = [check_answer(kind, grid, seg["answer"], expected) for seg in trace["segments"]]
    return {"expected": expected, "expected_source": expected_source, "checks": checks}


# --------------------------------------------------------------------------------------------------
# Reading a trace
# --------------------------------------------------------------------------------------------------


def check_trace(trace: Any, origin: str = "the trace") -> dict[str, Any]:
    """Raise DataError when `trace` lacks what the page draws (schema 1.x); the full schema check is
    `hrm.solve.validate_trace` (needs jsonschema)."""
    if not isinstance(trace, dict):
        raise DataError(f"{origin}: is not a JSON object")
    version = trace.get("schema_version")
    if not isinstance(version, str) or not version.startswith("1."):
        raise DataError(f"{origin}: schema_version {version!r} is not 1.x, which this viewer reads")
    for key in ("model", "kind", "puzzle", "segments", "final"):
        if key not in trace:
            raise DataError(f"{origin}: missing {key!r}")
    if trace["kind"] not in ("sudoku", "maze", "arc"):
        raise DataError(f"{origin}: unknown kind {trace['kind']!r}")
    segments = trace["segments"]
    if not isinstance(segments, list) or not segments:
        raise DataError(f"{origin}: 'segments' is not a non-empty list")
    for n, seg in enumerate(segments, start=1):
        if not isinstance(seg, dict) or not isinstance(seg.get("steps"), list) or "answer" not in seg:
            raise DataError(f"{origin}: segment {n} has no 'answer' or 'steps'")
    if not isinstance(trace["puzzle"], dict) or not isinstance(trace["puzzle"].get("grid"), list):
        raise DataError(f"{origin}: 'puzzle' has no 'grid'")
    return trace


def read_trace(path: str | os.PathLike[str]) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such trace file")
    if path.stat().st_size > MAX_TRACE_BYTES:
        raise DataError(f"{path}: larger than {MAX_TRACE_BYTES // (1024 * 1024)} MB; not a trace")
    try:
        trace = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} line {exc.lineno}: invalid JSON ({exc.msg})") from None
    return check_trace(trace, str(path))


# --------------------------------------------------------------------------------------------------
# The self-contained page
# --------------------------------------------------------------------------------------------------


def _json_for_script(value: Any) -> str:
    """JSON that is safe inside a <script> element: no '<' (so no '</script>'), no bare U+2028/9."""
    text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def _sanitize(value: Any) -> Any:
    """NaN and infinities become None, since strict JSON has no place for them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _sanitize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_sanitize(v) for v in value]
    return value


def render_html(trace: dict[str, Any], annotations: dict[str, Any] | None = None) -> str:
    """The viewer page with CSS, JavaScript and `trace` inline: it opens from disk, without a server."""
    page = read_static("index.html")
    css = read_static("style.css")
    js = read_static("app.js")
    if "</script" in js.lower() or "</style" in css.lower():
        raise HRMError("the viewer's app.js/style.css contain a closing tag and cannot be inlined")
    if STYLE_TAG not in page or SCRIPT_TAG not in page:
        raise HRMError("index.html lacks the stylesheet or script tag that the export replaces")
    annotations = annotations if annotations is not None else annotate(trace)
    payload = _json_for_script(_sanitize({"trace": trace, "annotations": annotations}))
    name = str(trace.get("puzzle", {}).get("name", "trace"))
    title = f"hrm trace: {name}".replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    page = page.replace("<title>hrm viz</title>", f"<title>{title}</title>")
    page = page.replace(STYLE_TAG, f"<style>\n{css}\n</style>")
    page = page.replace(
        SCRIPT_TAG,
        f'<script type="application/json" id="{EMBED_ID}">{payload}</script>\n<script>\n{js}\n</script>',
    )
    return page


def export_html(trace_path: str | os.PathLike[str], out_path: str | os.PathLike[str]) -> Path:
    """Write the self-contained page of the trace file `trace_path` to `out_path`, atomically."""
    trace = read_trace(trace_path)
    out = Path(out_path)
    if out.is_dir():
        raise HRMError(f"cannot write the page to {out}: it is a directory")
    if not out.parent.is_dir():
        raise HRMError(f"cannot write the page to {out}: directory {out.parent} does not exist")
    html = render_html(trace)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(html, encoding="utf-8")
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out
