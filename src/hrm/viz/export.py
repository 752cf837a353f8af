"""What the viewer shows beside a trace, and the self-contained HTML page of one trace.

`annotate(trace)` adds what the page colours cells by: the expected answer (the exact solver's for a
Sudoku, a shortest path for a maze, the label when the puzzle came from a dataset) and, per segment,
whether its answer passes the rule check. `export_html(trace_path, out_path)` writes one HTML file
with the page's CSS and JavaScript inline and the trace embedded (with the descriptions of the puzzle
kinds that `/api/info` gives a served page), which opens without a server:

    hrm viz --export trace.json --out trace.html
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from hrm.errors import DataError, HRMError
from hrm.limits import MAX_SEGMENTS, MAX_TRACE_BYTES, MAX_TRACE_STEPS
from hrm.tasks import KINDS, Grid, describe_tasks, task_named

STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
EMBED_ID = "hrm-embedded-trace"
STYLE_TAG = '<link rel="stylesheet" href="/static/style.css">'
SCRIPT_TAG = '<script src="/static/app.js" defer></script>'


def read_static(name: str) -> str:
    """One of the page's own files (index.html, app.js, style.css)."""
    if name not in STATIC_FILES:
        raise HRMError(f"{name!r} is not one of the viewer's files")
    return (STATIC_DIR / name).read_text(encoding="utf-8")


def annotate(
    trace: dict[str, Any], expected: Grid | None = None, expected_source: str | None = None
) -> dict[str, Any]:
    """What the page needs beside a trace: the expected answer (given, e.g. a dataset label, or from
    the task's exact solver) and the rule check of every segment's answer."""
    task = task_named(trace["kind"])
    grid = trace["puzzle"]["grid"]
    if expected is None:
        expected, expected_source = task.solver_answer(grid)
    checks = [task.check_grid(grid, seg["answer"], expected) for seg in trace["segments"]]
    return {"expected": expected, "expected_source": expected_source, "checks": checks}


# --------------------------------------------------------------------------------------------------
# Reading a trace
# --------------------------------------------------------------------------------------------------


def check_trace(trace: Any, origin: str = "the trace") -> dict[str, Any]:
    """Raise DataError when `trace` lacks what the page draws (schema 1.x) or holds what it cannot draw:
    every grid (the puzzle's, each segment's and each step's answer) must be one of its kind (see
    `Task.check_trace_grid`), with at most MAX_SEGMENTS segments of at most MAX_TRACE_STEPS steps.
    The full schema check is `hrm.inference.validate_trace` (needs jsonschema)."""
    if not isinstance(trace, dict):
        raise DataError(f"{origin}: is not a JSON object")
    version = trace.get("schema_version")
    if not isinstance(version, str) or not version.startswith("1."):
        raise DataError(f"{origin}: schema_version {_short(version)} is not 1.x, which this viewer reads")
    for key in ("model", "kind", "puzzle", "segments", "final"):
        if key not in trace:
            raise DataError(f"{origin}: missing {key!r}")
    if not isinstance(trace["kind"], str) or trace["kind"] not in KINDS:
        raise DataError(f"{origin}: unknown kind {_short(trace['kind'])}")
    task = task_named(trace["kind"])
    segments = trace["segments"]
    if not isinstance(segments, list) or not segments:
        raise DataError(f"{origin}: 'segments' is not a non-empty list")
    if len(segments) > MAX_SEGMENTS:
        raise DataError(f"{origin}: {len(segments)} segments, more than the {MAX_SEGMENTS} a model runs")
    if not isinstance(trace["puzzle"], dict) or not isinstance(trace["puzzle"].get("grid"), list):
        raise DataError(f"{origin}: 'puzzle' has no 'grid'")
    if not isinstance(trace["model"], dict) or not isinstance(trace["final"], dict):
        raise DataError(f"{origin}: 'model' and 'final' must be objects")
    grid = trace["puzzle"]["grid"]
    task.check_trace_grid(grid, f"{origin}: the puzzle")
    for n, seg in enumerate(segments, start=1):
        if not isinstance(seg, dict) or not isinstance(seg.get("steps"), list) or "answer" not in seg:
            raise DataError(f"{origin}: segment {n} has no 'answer' or 'steps'")
        task.check_trace_grid(seg["answer"], f"{origin}: segment {n}", grid)
        if len(seg["steps"]) > MAX_TRACE_STEPS:
            raise DataError(f"{origin}: segment {n} has more than {MAX_TRACE_STEPS} steps")
        for i, step in enumerate(seg["steps"], start=1):
            if not isinstance(step, dict) or "answer" not in step:
                raise DataError(f"{origin}: step {i} of segment {n} has no 'answer'")
            task.check_trace_grid(step["answer"], f"{origin}: step {i} of segment {n}", grid)
    return trace


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


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
    except RecursionError:
        raise DataError(f"{path}: nested too deeply to be a trace") from None
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
    """The viewer page with CSS, JavaScript and `trace` inline (as {"trace", "annotations", "kinds"}):
    it opens from disk, without a server."""
    page = read_static("index.html")
    css = read_static("style.css")
    js = read_static("app.js")
    if "</script" in js.lower() or "</style" in css.lower():
        raise HRMError("the viewer's app.js/style.css contain a closing tag and cannot be inlined")
    if STYLE_TAG not in page or SCRIPT_TAG not in page:
        raise HRMError("index.html lacks the stylesheet or script tag that the export replaces")
    annotations = annotations if annotations is not None else annotate(trace)
    embedded = {"trace": trace, "annotations": annotations, "kinds": describe_tasks()}
    payload = _json_for_script(_sanitize(embedded))
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
    try:
        html = render_html(trace)
    except RecursionError:
        raise DataError(f"{trace_path}: nested too deeply to be a trace") from None
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(html, encoding="utf-8")
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out
