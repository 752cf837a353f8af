"""The `hrm viz` web server: a small Starlette app serving the page and a JSON API.

It serves only its own three static files and what it was given on the command line: one model
(cached once loaded), one run directory (its metrics.jsonl, read incrementally) and one dataset
directory (examples named by split and index, never by path). Every request body is capped, parsed
as JSON and validated with pydantic; errors are `{"error": "..."}` with a fitting status code and
never a traceback.

API (all JSON):
    GET  /api/info                          model, run and dataset summaries, limits
    POST /api/solve                         {"kind", "puzzle" | "example": {"split", "index"}, "halt"}
    GET  /api/trace/{id}                    a trace solved earlier in this session
    POST /api/generate                      {"kind": "sudoku"|"maze", "size", "difficulty"}
    GET  /api/run                           the run's config and checkpoints
    GET  /api/run/metrics?since=N&gen=G     metrics.jsonl records from N on
    GET  /api/dataset                       the dataset's splits and metadata
    GET  /api/dataset/examples?split=&page=&per_page=
    GET  /api/dataset/example?split=&index=&variants=
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pydantic
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hrm.errors import DataError, HRMError
from hrm.viz.export import STATIC_FILES, annotate, read_static

log = logging.getLogger("hrm.viz")

MAX_BODY_BYTES = 64 * 1024
MAX_GRID = 30  # ARC and maze grids: at most 30x30
SUDOKU_SIZES = (4, 6, 9)
MAX_ARC_PAIRS = 16
MAX_TRACES = 16
MAX_PER_PAGE = 48
MAX_VARIANTS = 64
MAX_METRICS_PER_RESPONSE = 5000
GENERATE_MAX_TRIES = 50
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
}
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


class ApiError(Exception):
    """An error for the client: its message is shown to the user as it is."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


# --------------------------------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False)


SPLIT_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"


class ExampleRef(_Strict):
    split: str = Field(default="test", pattern=SPLIT_PATTERN)
    index: int = Field(ge=0, le=2**40)


class SolveRequest(_Strict):
    kind: Literal["sudoku", "maze", "arc"] | None = None
    puzzle: str | dict[str, Any] | None = Field(default=None)
    example: ExampleRef | None = None
    halt: Literal["adaptive", "max"] = "adaptive"
    max_views: int = Field(default=8, ge=1, le=64)

    @model_validator(mode="after")
    def _one_source(self) -> SolveRequest:
        if (self.puzzle is None) == (self.example is None):
            raise ValueError("give either 'puzzle' (text or an ARC task) or 'example' (a dataset example)")
        if isinstance(self.puzzle, str) and len(self.puzzle) > 20000:
            raise ValueError("'puzzle' is longer than 20000 characters")
        return self


class GenerateRequest(_Strict):
    kind: Literal["sudoku", "maze"]
    size: int = Field(ge=4, le=MAX_GRID)
    difficulty: Literal["easy", "medium", "hard"] = "easy"
    min_path_length: int | None = Field(default=None, ge=1, le=MAX_GRID * MAX_GRID)
    seed: int | None = Field(default=None, ge=0, le=2**32)

    @model_validator(mode="after")
    def _sizes(self) -> GenerateRequest:
        if self.kind == "sudoku" and self.size not in SUDOKU_SIZES:
            raise ValueError(f"a sudoku is 4x4, 6x6 or 9x9, not {self.size}x{self.size}")
        if self.kind == "maze" and self.size < 5:
            raise ValueError(f"a maze is at least 5x5, not {self.size}x{self.size}")
        return self


class ExamplesQuery(_Strict):
    split: str = Field(default="test", pattern=SPLIT_PATTERN)
    page: int = Field(default=0, ge=0, le=2**40)
    per_page: int = Field(default=12, ge=1, le=MAX_PER_PAGE)


class ExampleQuery(_Strict):
    split: str = Field(default="test", pattern=SPLIT_PATTERN)
    index: int = Field(ge=0, le=2**40)
    variants: int = Field(default=16, ge=0, le=MAX_VARIANTS)


class MetricsQuery(_Strict):
    since: int = Field(default=0, ge=0, le=2**40)
    gen: int = Field(default=-1, ge=-1, le=2**40)


def _first_error(exc: pydantic.ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ()) if p != "__root__")
    msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
    return f"{where}: {msg}" if where else msg


def _validate(model: type[BaseModel], data: Any) -> Any:
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise ApiError(422, f"invalid request: {_first_error(exc)}") from None


def _query(request: Request, model: type[BaseModel]) -> Any:
    params = request.query_params
    if len(params.multi_items()) != len(params):
        raise ApiError(422, "invalid request: a query parameter is repeated")
    return _validate(model, dict(params))


async def _json_body(request: Request, model: type[BaseModel]) -> Any:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise ApiError(415, "send the request body as JSON (Content-Type: application/json)")
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > MAX_BODY_BYTES:
                raise ApiError(413, f"request body over {MAX_BODY_BYTES // 1024} KB")
        except ValueError:
            raise ApiError(400, "bad Content-Length header") from None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise ApiError(413, f"request body over {MAX_BODY_BYTES // 1024} KB")
    try:
        data = json.loads(bytes(body).decode("utf-8"))
    except UnicodeDecodeError:
        raise ApiError(400, "request body is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"request body is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise ApiError(422, "invalid request: the body must be a JSON object")
    return _validate(model, data)


# --------------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------------


class ModelSlot:
    """The model named on the command line, loaded on first use and kept; a run directory is
    re-resolved on each use, so a newer checkpoint of a training run is picked up."""

    def __init__(self, spec: str | None, device: str = "cpu", preloaded: Any = None):
        self.spec = spec
        self.device = device
        self.loaded = preloaded
        self.key: str | None = None
        if preloaded is not None and spec is not None:
            self.key = self._resolve()
        self.lock = threading.Lock()

    def _resolve(self) -> str:
        from hrm.checkpoint import resolve_checkpoint

        assert self.spec is not None
        return str(resolve_checkpoint(self.spec)) if Path(self.spec).exists() else self.spec

    def get(self) -> Any:
        if self.spec is None and self.loaded is None:
            raise ApiError(
                409,
                "no model loaded: start the viewer with --model PATH (or --run RUN_DIR with a checkpoint) "
                "to solve puzzles",
            )
        if self.spec is None:
            return self.loaded
        from hrm.checkpoint import load_model

        with self.lock:
            try:
                key = self._resolve()
                if self.loaded is None or key != self.key:
                    self.loaded = load_model(self.spec, device=self.device)
                    self.key = key
            except HRMError as exc:
                raise ApiError(503, f"the model cannot be loaded: {exc}") from None
            return self.loaded

    def info(self) -> dict[str, Any]:
        from hrm.models import model_name
        from hrm.solve import kind_for_config

        loaded = self.get()
        model = loaded.model if hasattr(loaded, "model") else loaded
        c = model.config
        return {
            "name": model_name(model),
            "source": str(getattr(loaded, "source", "") or "") or None,
            "seq_len": int(c.seq_len),
            "vocab_size": int(c.vocab_size),
            "hidden_size": int(c.hidden_size),
            "H_cycles": int(getattr(c, "H_cycles", 1)),
            "L_cycles": int(getattr(c, "L_cycles", 1)),
            "halt_max_steps": int(c.halt_max_steps),
            "kind": kind_for_config(c) or ("sudoku" if c.seq_len == 16 else None),
            "side": math.isqrt(int(c.seq_len)) if math.isqrt(int(c.seq_len)) ** 2 == c.seq_len else None,
        }


# --------------------------------------------------------------------------------------------------
# The run directory: metrics.jsonl read incrementally
# --------------------------------------------------------------------------------------------------


class MetricsTail:
    """Records of a growing JSONL file. Each read takes only the bytes appended since the last one
    (a line still being written waits for its newline); a file that shrank or was replaced (a
    resumed run rewrites it) is read again from the start under a new generation number."""

    def __init__(self, path: Path):
        self.path = path
        self.records: list[dict[str, Any]] = []
        self.offset = 0
        self.partial = b""
        self.inode: int | None = None
        self.generation = 0
        self.skipped = 0
        self.lock = threading.Lock()

    def _reset(self) -> None:
        self.records, self.offset, self.partial, self.skipped = [], 0, b"", 0
        self.generation += 1

    def refresh(self) -> None:
        with self.lock:
            try:
                st = self.path.stat()
            except FileNotFoundError:
                if self.records or self.offset:
                    self._reset()
                self.inode = None
                return
            if (self.inode is not None and st.st_ino != self.inode) or st.st_size < self.offset:
                self._reset()
            self.inode = st.st_ino
            if st.st_size == self.offset:
                return
            with self.path.open("rb") as f:
                f.seek(self.offset)
                chunk = f.read(st.st_size - self.offset)
            self.offset += len(chunk)
            lines = (self.partial + chunk).split(b"\n")
            self.partial = lines.pop()
            for line in lines:
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except (json.JSONDecodeError, UnicodeDecodeError):
                    self.skipped += 1
                    continue
                if isinstance(record, dict):
                    self.records.append(_finite(record))

    def since(self, since: int, generation: int) -> dict[str, Any]:
        self.refresh()
        with self.lock:
            reset = generation != self.generation
            start = 0 if reset else min(since, len(self.records))
            chunk = self.records[start : start + MAX_METRICS_PER_RESPONSE]
            return {
                "records": chunk,
                "start": start,
                "total": len(self.records),
                "gen": self.generation,
                "reset": reset,
                "more": start + len(chunk) < len(self.records),
                "skipped_lines": self.skipped,
                "exists": self.inode is not None,
            }


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


@dataclass
class RunView:
    root: Path
    tail: MetricsTail = field(init=False)

    def __post_init__(self) -> None:
        self.tail = MetricsTail(self.root / "metrics.jsonl")

    def summary(self) -> dict[str, Any]:
        import yaml

        from hrm.checkpoint import checkpoint_dirs

        config: Any = None
        cfg_path = self.root / "config.yaml"
        if cfg_path.is_file():
            try:
                config = _finite(yaml.safe_load(cfg_path.read_text(encoding="utf-8")))
            except (OSError, UnicodeDecodeError, yaml.YAMLError):
                config = None
        return {
            "name": self.root.name,
            "config": config if isinstance(config, dict) else None,
            "checkpoints": [p.name for p in checkpoint_dirs(self.root)],
            "metrics": (self.root / "metrics.jsonl").is_file(),
        }


# --------------------------------------------------------------------------------------------------
# The dataset directory: examples by split and index
# --------------------------------------------------------------------------------------------------


def dataset_kind(seq_len: int, vocab_size: int) -> str | None:
    """The puzzle kind of a dataset's metadata (a 16-cell, 6-token set is a 4x4 Sudoku: mazes are
    at least 5x5)."""
    from hrm.data import arc, maze, sudoku

    side = math.isqrt(seq_len)
    if seq_len == arc.SEQ_LEN and vocab_size == arc.VOCAB_SIZE:
        return "arc"
    if side * side != seq_len:
        return None
    if side in sudoku.SIZES and vocab_size == sudoku.VOCAB_SIZE[side]:
        return "sudoku"
    if vocab_size == maze.VOCAB_SIZE and maze.MIN_SIZE <= side <= MAX_GRID:
        return "maze"
    return None


@dataclass
class _Split:
    meta: Any
    sets: list[tuple[str, Any]]
    offsets: list[int]  # first global example index of each set, plus the total

    @property
    def total(self) -> int:
        return self.offsets[-1]


class DatasetView:
    def __init__(self, root: Path):
        from hrm.data.format import IDENTIFIERS_FILE, list_splits

        self.root = root
        if not root.is_dir():
            raise DataError(f"--data {root}: not a directory")
        self.split_names = list_splits(root)
        if not self.split_names:
            raise DataError(f"--data {root}: no split with a dataset.json inside; not a dataset directory")
        self.identifiers: list[str] = []
        ident_file = root / IDENTIFIERS_FILE
        if ident_file.is_file():
            try:
                names = json.loads(ident_file.read_text(encoding="utf-8"))
                if isinstance(names, list):
                    self.identifiers = [str(n) for n in names]
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                self.identifiers = []
        self._splits: dict[str, _Split] = {}
        self._test_puzzles: dict[str, Any] | None = None
        self.lock = threading.Lock()

    def split(self, name: str) -> _Split:
        from hrm.data.format import load_split

        if name not in self.split_names:
            raise ApiError(404, f"the dataset has no split {name!r} (splits: {', '.join(self.split_names)})")
        with self.lock:
            if name not in self._splits:
                try:
                    meta, sets = load_split(self.root, name)
                except DataError as exc:
                    raise ApiError(500, f"the dataset cannot be read: {exc}") from None
                ordered = [(s, sets[s]) for s in meta.sets]
                offsets = [0]
                for _, arrays in ordered:
                    offsets.append(offsets[-1] + arrays.num_examples)
                self._splits[name] = _Split(meta, ordered, offsets)
            return self._splits[name]

    def kind(self, split: _Split) -> str:
        kind = dataset_kind(split.meta.seq_len, split.meta.vocab_size)
        if kind is None:
            raise ApiError(
                422,
                f"the dataset's sequences ({split.meta.seq_len} cells, {split.meta.vocab_size} tokens) are "
                "neither Sudoku, maze nor ARC",
            )
        return kind

    def summary(self) -> dict[str, Any]:
        splits = {}
        for name in self.split_names:
            try:
                s = self.split(name)
            except ApiError as exc:
                splits[name] = {"error": exc.message}
                continue
            splits[name] = {
                "examples": s.total,
                "puzzles": sum(a.num_puzzles for _, a in s.sets),
                "groups": sum(a.num_groups for _, a in s.sets),
                "seq_len": s.meta.seq_len,
                "vocab_size": s.meta.vocab_size,
                "sets": s.meta.sets,
                "kind": dataset_kind(s.meta.seq_len, s.meta.vocab_size),
            }
        return {"name": self.root.name, "splits": splits, "identifiers": len(self.identifiers)}

    def _locate(self, split: _Split, index: int) -> tuple[str, Any, int]:
        if not 0 <= index < split.total:
            raise ApiError(404, f"example {index} is out of range: the split has {split.total} examples")
        k = int(np.searchsorted(split.offsets, index, side="right")) - 1
        name, arrays = split.sets[k]
        return name, arrays, index - split.offsets[k]

    def decode(self, kind: str, tokens: np.ndarray, label: bool = False) -> Any:
        tokens = np.asarray(tokens).reshape(-1).astype(np.int64)
        if kind == "sudoku":
            from hrm.solve import sudoku_digits

            grid = sudoku_digits(tokens, math.isqrt(tokens.size)).astype(int).tolist()
            return grid if not (label and not any(any(r) for r in grid)) else None
        if kind == "maze":
            from hrm.solve import _maze_chars

            if label and not tokens.any():
                return None
            return _maze_chars(tokens, math.isqrt(tokens.size))
        from hrm.data.arc import seq_to_grid

        try:
            return seq_to_grid(tokens).astype(int).tolist()
        except ValueError:
            return None

    def _identifier(self, ident: int) -> str:
        return self.identifiers[ident] if 0 <= ident < len(self.identifiers) else str(ident)

    def _entry(self, kind: str, split_name: str, index: int, arrays: Any, row: int) -> dict[str, Any]:
        p = int(np.searchsorted(arrays.puzzle_indices, row, side="right")) - 1
        g = int(np.searchsorted(arrays.group_indices, p, side="right")) - 1
        return {
            "split": split_name,
            "index": index,
            "puzzle": p,
            "group": g,
            "position": row - int(arrays.puzzle_indices[p]),
            "name": self._identifier(int(arrays.puzzle_identifiers[p])),
            "kind": kind,
            "input": self.decode(kind, arrays.inputs[row]),
            "label": self.decode(kind, arrays.labels[row], label=True),
        }

    def page(self, q: ExamplesQuery) -> dict[str, Any]:
        split = self.split(q.split)
        kind = self.kind(split)
        pages = max(1, math.ceil(split.total / q.per_page))
        if q.page >= pages:
            raise ApiError(404, f"page {q.page} is out of range: there are {pages} pages")
        lo = q.page * q.per_page
        items = []
        for index in range(lo, min(split.total, lo + q.per_page)):
            _, arrays, row = self._locate(split, index)
            items.append(self._entry(kind, q.split, index, arrays, row))
        return {
            "split": q.split,
            "kind": kind,
            "page": q.page,
            "pages": pages,
            "per_page": q.per_page,
            "total": split.total,
            "items": items,
        }

    def example(self, q: ExampleQuery) -> dict[str, Any]:
        split = self.split(q.split)
        kind = self.kind(split)
        set_name, arrays, row = self._locate(split, q.index)
        entry = self._entry(kind, q.split, q.index, arrays, row)
        g = entry["group"]
        lo, hi = int(arrays.group_indices[g]), int(arrays.group_indices[g + 1])
        base = q.index - row  # global index of the set's first example
        variants = []
        for p in range(lo, hi):
            if p == entry["puzzle"] or len(variants) >= q.variants:
                continue
            start, end = int(arrays.puzzle_indices[p]), int(arrays.puzzle_indices[p + 1])
            # The same example of the other puzzle (for ARC: the same pair under another augmentation).
            other = min(start + entry["position"], end - 1)
            if other < start:
                continue
            variants.append(self._entry(kind, q.split, base + other, arrays, other))
        entry["variants"] = variants
        entry["group_size"] = hi - lo
        entry["set"] = set_name
        return entry

    def arc_task(self, name: str) -> dict[str, Any] | None:
        """The original task of a held-out ARC puzzle, from test_puzzles.json, when there is one."""
        from hrm.data.arc import parse_name

        with self.lock:
            if self._test_puzzles is None:
                self._test_puzzles = {}
                path = self.root / "test_puzzles.json"
                if path.is_file():
                    try:
                        data = json.loads(path.read_text(encoding="utf-8"))
                        if isinstance(data, dict):
                            self._test_puzzles = data
                    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                        pass
        try:
            task_id, tid, mapping = parse_name(name)
        except ValueError:
            return None
        task = self._test_puzzles.get(task_id)
        if tid != 0 or (mapping is not None and not (mapping == np.arange(10)).all()):
            return None  # an augmented view: the original task would be in another frame
        return task if isinstance(task, dict) else None


# --------------------------------------------------------------------------------------------------
# Puzzles from requests
# --------------------------------------------------------------------------------------------------


def _guess_kind(text: str, model_kind: str | None) -> str:
    """The kind of pasted text, told from its characters only (never by looking on disk)."""
    stripped = text.strip()
    if stripped.startswith("{"):
        return "arc"
    if set("#SGo") & set(stripped):
        return "maze"
    if stripped.replace(".", "").translate(str.maketrans("", "", " \t\r\n|-+")).isdigit():
        return "sudoku"
    return model_kind or "sudoku"


def _check_arc_size(task: Any) -> None:
    if not isinstance(task, dict):
        raise ApiError(422, "an ARC puzzle is a task object with 'train' and 'test' lists")
    for key in ("train", "test"):
        pairs = task.get(key)
        if isinstance(pairs, list) and len(pairs) > MAX_ARC_PAIRS:
            raise ApiError(422, f"the ARC task has {len(pairs)} {key} pairs; at most {MAX_ARC_PAIRS}")


def parse_request_puzzle(req: SolveRequest, model_kind: str | None) -> Any:
    """A `hrm.solve.Puzzle` from pasted text or an ARC task object. Text is parsed here, never
    handed to `solve` as it is, since `solve` would read a string that names a file."""
    from hrm.solve import parse_arc, parse_maze, parse_sudoku

    raw = req.puzzle
    kind = req.kind or ("arc" if isinstance(raw, dict) else _guess_kind(str(raw), model_kind))
    if kind == "arc":
        task = raw
        if isinstance(raw, str):
            try:
                task = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise ApiError(422, f"the ARC task is not valid JSON ({exc.msg})") from None
        _check_arc_size(task)
        return parse_arc(task, name="pasted ARC task", task_id="pasted")
    if not isinstance(raw, str):
        raise ApiError(422, f"a {kind} puzzle is text, not a JSON object")
    if kind == "maze":
        rows = raw.replace("\r", "").split("\n")
        while rows and not rows[0]:
            rows.pop(0)
        while rows and not rows[-1]:
            rows.pop()
        side = len(rows) if len(rows) > 1 else math.isqrt(len(rows[0]) if rows else 0)
        if side > MAX_GRID:
            raise ApiError(422, f"the maze is {side}x{side}; at most {MAX_GRID}x{MAX_GRID}")
        if len(rows) > 1 and all(len(row) == side for row in rows):
            # A full N x N block goes over as one line, so that a row of open cells (all spaces)
            # at the top or bottom is kept rather than taken for a blank line.
            raw = "".join(rows)
        return parse_maze(raw, name="pasted maze")
    return parse_sudoku(raw, name="pasted sudoku")


# --------------------------------------------------------------------------------------------------
# The application
# --------------------------------------------------------------------------------------------------


@dataclass
class VizState:
    model: ModelSlot
    run: RunView | None
    data: DatasetView | None
    traces: OrderedDict[str, dict[str, Any]] = field(default_factory=OrderedDict)
    solve_lock: threading.Lock = field(default_factory=threading.Lock)
    static: dict[str, bytes] = field(default_factory=dict)

    def remember(self, trace: dict[str, Any]) -> str:
        trace_id = uuid.uuid4().hex[:16]
        self.traces[trace_id] = trace
        while len(self.traces) > MAX_TRACES:
            self.traces.popitem(last=False)
        return trace_id


def _state(request: Request) -> VizState:
    return request.app.state.viz


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _json(data: Any) -> Response:
    body = json.dumps(data, separators=(",", ":"), allow_nan=False).encode("utf-8")
    return Response(body, media_type="application/json", headers={"cache-control": "no-store"})


async def page(request: Request) -> Response:
    return Response(_state(request).static["index.html"], media_type=STATIC_FILES["index.html"])


async def static(request: Request) -> Response:
    name = request.path_params["name"]
    content = _state(request).static.get(name)
    if content is None:
        raise ApiError(404, "not found")
    return Response(content, media_type=STATIC_FILES[name], headers={"cache-control": "no-cache"})


async def info(request: Request) -> Response:
    st = _state(request)
    out: dict[str, Any] = {
        "model": None,
        "model_error": None,
        "run": st.run.summary() if st.run else None,
        "data": None,
        "data_error": None,
        "limits": {
            "max_body_bytes": MAX_BODY_BYTES,
            "max_grid": MAX_GRID,
            "sudoku_sizes": list(SUDOKU_SIZES),
            "max_arc_pairs": MAX_ARC_PAIRS,
        },
    }
    if st.model.spec is not None or st.model.loaded is not None:
        try:
            out["model"] = await run_in_threadpool(st.model.info)
        except ApiError as exc:
            out["model_error"] = exc.message
    if st.data is not None:
        out["data"] = await run_in_threadpool(st.data.summary)
    return _json(out)


def _solve_sync(st: VizState, req: SolveRequest) -> dict[str, Any]:
    from hrm.solve import check_fits, parse_maze, parse_sudoku, solve

    loaded = st.model.get()
    model = loaded.model if hasattr(loaded, "model") else loaded
    expected = None
    expected_source = None
    example = None
    if req.example is not None:
        if st.data is None:
            raise ApiError(409, "no dataset: start the viewer with --data DIR to solve dataset examples")
        entry = st.data.example(ExampleQuery(split=req.example.split, index=req.example.index, variants=0))
        kind, name = entry["kind"], f"{entry['split']} example {entry['index']}"
        example = {"split": entry["split"], "index": entry["index"], "name": entry["name"]}
        if kind == "sudoku":
            puzzle = parse_sudoku("".join(str(d) for row in entry["input"] for d in row), name=name)
        elif kind == "maze":
            text = "\n".join("".join(row) for row in entry["input"])
            if "?" in text:
                raise ApiError(422, f"{name} holds PAD tokens; it is not a maze")
            puzzle = parse_maze(text, name=name)
        else:
            from hrm.solve import parse_arc

            task = st.data.arc_task(entry["name"])
            if task is None:
                pair = {"input": entry["input"]}
                if entry["label"] is not None:
                    pair["output"] = entry["label"]
                task = {"train": [dict(pair, output=entry["label"] or entry["input"])], "test": [pair]}
            puzzle = parse_arc(task, name=name, task_id=entry["name"].replace("|||", "_"))
        if kind != "arc" or puzzle.task is None:
            expected = entry["label"]
            expected_source = "dataset label" if expected is not None else None
    else:
        model_kind = None
        try:
            from hrm.solve import kind_for_config

            model_kind = kind_for_config(model.config)
        except Exception:  # the kind is only a hint for ambiguous text
            model_kind = None
        puzzle = parse_request_puzzle(req, model_kind)
    if puzzle.kind == "arc" and puzzle.task is not None and puzzle.task.test[0][1] is not None:
        expected = puzzle.task.test[0][1].astype(int).tolist()
        expected_source = "the task's test output"
    check_fits(puzzle, model, "the loaded model")
    with st.solve_lock:
        solution = solve(loaded, puzzle, halt=req.halt, trace=True, arc_max_views=req.max_views)
    trace = solution.trace
    assert trace is not None
    annotations = annotate(trace, expected, expected_source)
    trace_id = st.remember(trace)
    return {
        "id": trace_id,
        "trace": _finite(trace),
        "annotations": annotations,
        "example": example,
        "solution": {
            "valid": solution.valid,
            "reason": solution.reason,
            "segments": solution.segments,
            "confidence": solution.confidence,
            "seconds": solution.seconds,
            "verdict": solution.verdict(),
        },
    }


async def solve_endpoint(request: Request) -> Response:
    req = await _json_body(request, SolveRequest)
    return _json(await run_in_threadpool(_solve_sync, _state(request), req))


async def trace_endpoint(request: Request) -> Response:
    trace = _state(request).traces.get(request.path_params["trace_id"])
    if trace is None:
        raise ApiError(404, "no such trace (only the last 16 solved in this session are kept)")
    return _json(_finite(trace))


def _generate_sync(req: GenerateRequest) -> dict[str, Any]:
    rng = np.random.default_rng(req.seed)
    if req.kind == "sudoku":
        from hrm.data import sudoku as sudoku_data

        s = sudoku_data.generate_sudoku(
            req.size, req.difficulty, rng=rng, max_tries=GENERATE_MAX_TRIES, min_clues=0
        )
        n = req.size
        return {
            "kind": "sudoku",
            "text": sudoku_data.format_grid(s.puzzle),
            "grid": s.puzzle.reshape(n, n).astype(int).tolist(),
            "solution": s.solution.reshape(n, n).astype(int).tolist(),
            "difficulty": s.difficulty,
        }
    from hrm.data import maze as maze_data

    inp, label = maze_data.generate_maze(req.size, rng, min_path_length=req.min_path_length, max_tries=200)
    from hrm.solve import _maze_chars

    return {
        "kind": "maze",
        "text": maze_data.render_maze(inp),
        "grid": _maze_chars(inp.reshape(-1), req.size),
        "solution": _maze_chars(label.reshape(-1), req.size),
    }


async def generate(request: Request) -> Response:
    req = await _json_body(request, GenerateRequest)
    return _json(await run_in_threadpool(_generate_sync, req))


def _need_run(request: Request) -> RunView:
    run = _state(request).run
    if run is None:
        raise ApiError(409, "no run: start the viewer with --run RUN_DIR to see training curves")
    return run


async def run_info(request: Request) -> Response:
    return _json(await run_in_threadpool(_need_run(request).summary))


async def run_metrics(request: Request) -> Response:
    q = _query(request, MetricsQuery)
    return _json(await run_in_threadpool(_need_run(request).tail.since, q.since, q.gen))


def _need_data(request: Request) -> DatasetView:
    data = _state(request).data
    if data is None:
        raise ApiError(409, "no dataset: start the viewer with --data DIR to browse examples")
    return data


async def dataset_info(request: Request) -> Response:
    return _json(await run_in_threadpool(_need_data(request).summary))


async def dataset_examples(request: Request) -> Response:
    q = _query(request, ExamplesQuery)
    return _json(await run_in_threadpool(_need_data(request).page, q))


async def dataset_example(request: Request) -> Response:
    q = _query(request, ExampleQuery)
    return _json(await run_in_threadpool(_need_data(request).example, q))


# --------------------------------------------------------------------------------------------------
# Errors and middleware
# --------------------------------------------------------------------------------------------------


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return _error(exc.status, exc.message)


async def _user_error(request: Request, exc: Exception) -> Response:
    return _error(422, str(exc))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    messages = {404: "not found", 405: "method not allowed"}
    return _error(exc.status_code, messages.get(exc.status_code, str(exc.detail)))


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.error("error serving %s %s", request.method, request.url.path, exc_info=exc)
    return _error(500, "internal server error (see the server's log)")


class GuardMiddleware:
    """Refuses bodies over the cap and Host headers other than the served ones (a page on another
    site reaching the local server through DNS rebinding), and adds security headers."""

    def __init__(self, app: ASGIApp, allowed_hosts: tuple[str, ...] | None):
        self.app = app
        self.allowed_hosts = allowed_hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if self.allowed_hosts is not None:
            host = headers.get("host", "")
            hostname = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if hostname.lower() not in self.allowed_hosts:
                await _error(400, "invalid Host header")(scope, receive, send)
                return
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
            await _error(413, f"request body over {MAX_BODY_BYTES // 1024} KB")(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                existing = {k.lower() for k, _ in message.get("headers", [])}
                extra = [
                    (k.encode(), v.encode())
                    for k, v in SECURITY_HEADERS.items()
                    if k.encode() not in existing
                ]
                message = dict(message, headers=[*message.get("headers", []), *extra])
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(
    model: str | os.PathLike[str] | None = None,
    run_dir: str | os.PathLike[str] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    device: str = "cpu",
    preloaded_model: Any = None,
    allowed_hosts: tuple[str, ...] | None = LOCAL_HOSTS,
) -> ASGIApp:
    """The viewer app. `model`: anything `hrm.checkpoint.load_model` takes (a run dir's latest
    checkpoint is re-resolved on each solve); without it, `run_dir`'s checkpoints are used.
    `preloaded_model`: an already-loaded model or `ACTModel` to use as is. `allowed_hosts`: Host
    header names accepted (None: any, for a server bound to a public interface)."""
    spec = str(model) if model is not None else None
    run = None
    if run_dir is not None:
        root = Path(run_dir)
        if not root.is_dir():
            raise DataError(f"--run {root}: not a directory")
        run = RunView(root)
        if spec is None and preloaded_model is None:
            spec = str(root)
    data = DatasetView(Path(data_dir)) if data_dir is not None else None
    state = VizState(model=ModelSlot(spec, device, preloaded_model), run=run, data=data)
    state.static = {name: read_static(name).encode("utf-8") for name in STATIC_FILES}
    routes = [
        Route("/", page, methods=["GET", "HEAD"]),
        Route("/static/{name}", static, methods=["GET", "HEAD"]),
        Route("/api/info", info, methods=["GET"]),
        Route("/api/solve", solve_endpoint, methods=["POST"]),
        Route("/api/trace/{trace_id:str}", trace_endpoint, methods=["GET"]),
        Route("/api/generate", generate, methods=["POST"]),
        Route("/api/run", run_info, methods=["GET"]),
        Route("/api/run/metrics", run_metrics, methods=["GET"]),
        Route("/api/dataset", dataset_info, methods=["GET"]),
        Route("/api/dataset/examples", dataset_examples, methods=["GET"]),
        Route("/api/dataset/example", dataset_example, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={
            ApiError: _api_error,
            HRMError: _user_error,
            HTTPException: _http_error,
            Exception: _internal_error,
        },
    )
    app.state.viz = state
    return GuardMiddleware(app, allowed_hosts)


def bind(host: str = "127.0.0.1", port: int = 0) -> tuple[Any, str]:
    """A listening socket on host:port (port 0: a free one) and the URL to open. Connections made
    before the server runs wait in the backlog, so the URL can be printed at once."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise HRMError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    bound = sock.getsockname()[1]
    shown = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(host, f"[{host}]" if ":" in host else host)
    return sock, f"http://{shown}:{bound}/"


def make_server(app: ASGIApp) -> Any:
    """A uvicorn server for `app` (quiet: warnings only, no access log)."""
    import uvicorn

    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    return uvicorn.Server(config)


def serve(app: ASGIApp, sock: Any) -> None:
    """Serve `app` on the bound socket `sock` until interrupted (Ctrl-C)."""
    make_server(app).run(sockets=[sock])
