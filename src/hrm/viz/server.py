"""The `hrm viz` web server: a small Starlette app serving the page and a JSON API.

It serves only its own three static files and what it was given on the command line: one model
(cached once loaded), one run directory (its metrics.jsonl, read incrementally) and one dataset
directory (examples named by split and index, never by path); a file there that links outside its
directory is refused. Every request body is capped in size, time and JSON nesting, parsed and
validated with pydantic; errors are `{"error": "..."}` with a fitting status code and never a
traceback. Solving and generating run in a few daemon threads under a deadline (`hrm.viz.limits`).

API (all JSON):
    GET  /api/info                          model, run and dataset summaries, limits, and "kinds":
                                            how the page draws and offers each puzzle kind
                                            (`hrm.tasks.Task.describe`)
    POST /api/solve                         {"kind", "puzzle" | "example": {"split", "index"}, "halt"}
    GET  /api/trace/{id}                    a trace solved earlier in this session
    POST /api/generate                      {"kind" (a kind that generates), "size", "difficulty"}
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
import re
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import anyio
import numpy as np
import pydantic
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hrm.errors import DataError, HRMError
from hrm.fileio import NON_FINITE_WARNING
from hrm.tasks import (
    KINDS,
    MAX_VIEWER_SIDE,
    TASKS,
    Puzzle,
    Task,
    describe_tasks,
    task_for,
    task_for_shape,
    task_named,
)
from hrm.viz.export import STATIC_FILES, annotate, read_static
from hrm.viz.limits import ClientGone, Job, Limits, WorkError, WorkPool, protocol_class

log = logging.getLogger("hrm.viz")

MAX_BODY_BYTES = 64 * 1024
MAX_ARC_PAIRS = 16
MAX_TRACES = 16
MAX_PER_PAGE = 48
MAX_VARIANTS = 64
MAX_METRICS_PER_RESPONSE = 5000
MAX_JSON_DEPTH = 32  # a pasted task is 5 deep
MAX_NUMBER_DIGITS = 20  # every number the API takes fits; int() of thousands of digits is slow
MAX_QUERY_VALUE = 64
MAX_QUERY_NAME = 32
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


class StrictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False)


SPLIT_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"


class ExampleRef(StrictRequest):
    split: str = Field(default="test", pattern=SPLIT_PATTERN)
    index: int = Field(ge=0, le=2**40)


def _known_kind(kind: str | None) -> str | None:
    if kind is not None and kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    return kind


class SolveRequest(StrictRequest):
    kind: str | None = None
    puzzle: str | dict[str, Any] | None = Field(default=None)
    example: ExampleRef | None = None
    halt: Literal["adaptive", "max"] = "adaptive"
    max_views: int = Field(default=8, ge=1, le=64)

    @model_validator(mode="after")
    def _one_source(self) -> SolveRequest:
        _known_kind(self.kind)
        if (self.puzzle is None) == (self.example is None):
            raise ValueError("give either 'puzzle' (text or an ARC task) or 'example' (a dataset example)")
        if isinstance(self.puzzle, str) and len(self.puzzle) > 20000:
            raise ValueError("'puzzle' is longer than 20000 characters")
        return self


class GenerateRequest(StrictRequest):
    kind: str
    size: int = Field(ge=4, le=MAX_VIEWER_SIDE)
    difficulty: str | None = Field(default=None, max_length=32)  # None: the kind's default
    min_path_length: int | None = Field(default=None, ge=1, le=MAX_VIEWER_SIDE * MAX_VIEWER_SIDE)
    seed: int | None = Field(default=None, ge=0, le=2**32)

    @model_validator(mode="after")
    def _sizes(self) -> GenerateRequest:
        task = task_named(_known_kind(self.kind) or "")
        if not task.generates:
            makers = ", ".join(t.name for t in TASKS if t.generates)
            raise ValueError(f"{task.title} puzzles cannot be generated; kinds that can: {makers}")
        task.check_generate(self.size, self.difficulty)
        return self


class ExamplesQuery(StrictRequest):
    split: str = Field(default="test", pattern=SPLIT_PATTERN)
    page: int = Field(default=0, ge=0, le=2**40)
    per_page: int = Field(default=12, ge=1, le=MAX_PER_PAGE)


class ExampleQuery(StrictRequest):
    split: str = Field(default="test", pattern=SPLIT_PATTERN)
    index: int = Field(ge=0, le=2**40)
    variants: int = Field(default=16, ge=0, le=MAX_VARIANTS)


class MetricsQuery(StrictRequest):
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
    for name, value in params.multi_items():
        if len(name) > MAX_QUERY_NAME:
            raise ApiError(400, "invalid request: unknown query parameter")
        if len(value) > MAX_QUERY_VALUE:
            raise ApiError(400, f"invalid request: {name} is over {MAX_QUERY_VALUE} characters")
    if len(params.multi_items()) != len(params):
        raise ApiError(422, "invalid request: a query parameter is repeated")
    return _validate(model, dict(params))


_JSON_TOKEN = re.compile(r'\\.|["\[\]{}]', re.DOTALL)


def json_depth(text: str, stop_above: int = MAX_JSON_DEPTH) -> int:
    """How deep the arrays and objects of JSON `text` nest (brackets inside strings aside), found in
    one pass without parsing it (json.loads recurses once per level and fails on thousands of them).
    Stops counting past `stop_above`."""
    depth = deepest = 0
    in_string = False
    for match in _JSON_TOKEN.finditer(text):
        token = match.group()
        if token == '"':
            in_string = not in_string
        elif in_string or len(token) == 2:  # (a backslash escape, in a string or not)
            continue
        elif token in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > stop_above:
                    break
        else:
            depth -= 1
    return deepest


class _JsonLimit(ValueError):
    pass


def _bounded_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_NUMBER_DIGITS:
        raise _JsonLimit(f"a number has over {MAX_NUMBER_DIGITS} digits")
    return int(digits)


def _no_constant(name: str) -> Any:
    raise _JsonLimit(f"{name} is not JSON")


def parse_json(text: str, status: int, what: str) -> Any:
    """`text` parsed as strict JSON, at most MAX_JSON_DEPTH deep, with integers of at most
    MAX_NUMBER_DIGITS digits (and no NaN or Infinity); ApiError(status) naming `what` otherwise."""
    if json_depth(text) > MAX_JSON_DEPTH:
        raise ApiError(status, f"{what} nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(text, parse_int=_bounded_int, parse_constant=_no_constant)
    except _JsonLimit as exc:
        raise ApiError(status, f"{what} is not accepted: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ApiError(status, f"{what} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except (ValueError, RecursionError):
        raise ApiError(status, f"{what} is not valid JSON") from None


async def json_body(request: Request, model: type[BaseModel]) -> Any:
    limits: Limits = _state(request).limits
    try:
        with anyio.fail_after(limits.body_timeout_s):
            data = await _read_json_body(request)
    except TimeoutError:
        raise ApiError(408, f"the request body took over {limits.body_timeout_s:g} s to arrive") from None
    return _validate(model, data)


async def _read_json_body(request: Request) -> Any:
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
        text = bytes(body).decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "request body is not UTF-8") from None
    data = parse_json(text, 400, "request body")
    if not isinstance(data, dict):
        raise ApiError(422, "invalid request: the body must be a JSON object")
    return data


# --------------------------------------------------------------------------------------------------
# Files inside the given directories
# --------------------------------------------------------------------------------------------------


def contained(root: Path, path: Path, place: str) -> Path:
    """`path` (under `root`, which is resolved) with its links resolved, when that is still inside
    `root`; ApiError(403) when a link leads out of the `place` directory."""
    real = path.resolve()
    if not real.is_relative_to(root):
        try:
            shown = path.relative_to(root).as_posix()
        except ValueError:
            shown = path.name
        raise ApiError(403, f"{shown} links outside the {place} directory; it is not read")
    return real


# --------------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------------


class ModelSlot:
    """The model named on the command line, loaded on first use and kept; a run directory is
    re-resolved on each use, so a newer checkpoint of a training run is picked up. `within`: a
    directory the checkpoint and its files must lie in (the run directory, when the model is its
    latest checkpoint)."""

    def __init__(
        self, spec: str | None, device: str = "cpu", preloaded: Any = None, within: Path | None = None
    ):
        self.spec = spec
        self.device = device
        self.loaded = preloaded
        self.within = within
        self.key: str | None = None
        if preloaded is not None and spec is not None:
            self.key = self._resolve()
        self.lock = threading.Lock()

    def _resolve(self) -> str:
        from hrm.checkpoint import resolve_checkpoint

        assert self.spec is not None
        if not Path(self.spec).exists():
            return self.spec
        found = resolve_checkpoint(self.spec)
        if self.within is not None:
            real = contained(self.within, found, "run")
            if real.is_dir():
                for entry in real.iterdir():
                    contained(self.within, entry, "run")
        return str(found)

    def get(self, wait_s: float | None = None) -> Any:
        """The model, loaded (again, when the run has a newer checkpoint) if need be. `wait_s`: how
        long to wait for a load in progress in another request (None: until it ends); past it, the
        model loaded before, if any."""
        if self.spec is None and self.loaded is None:
            raise ApiError(
                409,
                "no model loaded: start the viewer with --model PATH (or --run RUN_DIR with a checkpoint) "
                "to solve puzzles",
            )
        if self.spec is None:
            return self.loaded
        from hrm.checkpoint import load_model

        if not self.lock.acquire(timeout=-1 if wait_s is None else max(0.0, wait_s)):
            if self.loaded is not None:
                return self.loaded
            raise ApiError(503, "the model is still loading; try again in a moment")
        try:
            key = self._resolve()
            if self.loaded is None or key != self.key:
                self.loaded = load_model(self.spec, device=self.device)
                self.key = key
        except HRMError as exc:
            raise ApiError(503, f"the model cannot be loaded: {exc}") from None
        finally:
            self.lock.release()
        return self.loaded

    def info(self) -> dict[str, Any]:
        from hrm.models import model_name

        loaded = self.get(wait_s=0)
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
            "kind": _kind_of_shape(c.seq_len, c.vocab_size),
            "side": math.isqrt(int(c.seq_len)) if math.isqrt(int(c.seq_len)) ** 2 == c.seq_len else None,
            "difficulty": _card_difficulty(loaded),
        }


# --------------------------------------------------------------------------------------------------
# The run directory: metrics.jsonl read incrementally
# --------------------------------------------------------------------------------------------------


class MetricsTail:
    """Records of a growing JSONL file. Each read takes only the bytes appended since the last one
    (a line still being written waits for its newline); a file that shrank or was replaced (a
    resumed run rewrites it) is read again from the start under a new generation number."""

    def __init__(self, path: Path, within: Path | None = None):
        self.path = path
        self.within = within
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
            if self.within is not None and self.path.is_symlink():
                contained(self.within, self.path, "run")
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
                    if json_depth(line.decode("utf-8")) > MAX_JSON_DEPTH:
                        raise ValueError("nested too deep")
                    record = json.loads(line)
                except (ValueError, UnicodeDecodeError, RecursionError):  # (JSONDecodeError is one)
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


def _finite(value: Any, replaced: list[Any] | None = None) -> Any:
    """`value` with NaN and infinities as None (JSON has neither), each one noted in `replaced`."""
    if isinstance(value, (float, np.floating)):
        if math.isfinite(value):
            return float(value)
        if replaced is not None:
            replaced.append(value)
        return None
    if isinstance(value, dict):
        return {str(k): _finite(v, replaced) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v, replaced) for v in value]
    return value


class RunView:
    """A training run directory: its config.yaml, checkpoints and metrics.jsonl, each read only where
    it resolves inside the directory."""

    def __init__(self, root: Path):
        self.root = root.resolve()
        self.tail = MetricsTail(self.root / "metrics.jsonl", within=self.root)

    def summary(self) -> dict[str, Any]:
        import yaml

        from hrm.checkpoint import checkpoint_dirs

        errors: list[str] = []
        config: Any = None
        cfg_path = self.root / "config.yaml"
        try:
            if cfg_path.is_file():
                real = contained(self.root, cfg_path, "run")
                config = _finite(yaml.safe_load(real.read_text(encoding="utf-8")))
        except ApiError as exc:
            errors.append(exc.message)
        except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError):
            config = None
        checkpoints: list[str] = []
        try:
            if (self.root / "checkpoints").exists():
                contained(self.root, self.root / "checkpoints", "run")
            for path in checkpoint_dirs(self.root):
                try:
                    contained(self.root, path, "run")
                    checkpoints.append(path.name)
                except ApiError as exc:
                    errors.append(exc.message)
        except ApiError as exc:
            errors.append(exc.message)
        return {
            "name": self.root.name,
            "config": config if isinstance(config, dict) else None,
            "checkpoints": checkpoints,
            "metrics": (self.root / "metrics.jsonl").is_file(),
            "errors": errors,
        }


# --------------------------------------------------------------------------------------------------
# The dataset directory: examples by split and index
# --------------------------------------------------------------------------------------------------


def _card_difficulty(loaded: Any) -> str | None:
    """The generator level a shipped or exported model's card names (its training puzzles'), if any."""
    card = getattr(loaded, "card", None)
    fields = ((card.extra or {}).get("card") if card is not None else None) or {}
    level = fields.get("difficulty") if isinstance(fields, dict) else None
    return level if isinstance(level, str) else None


def _kind_of_shape(seq_len: int, vocab_size: int) -> str | None:
    task = task_for_shape(seq_len, vocab_size)
    return task.name if task is not None else None


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

        if not root.is_dir():
            raise DataError(f"--data {root}: not a directory")
        root = root.resolve()
        self.root = root
        self.split_names = list_splits(root)
        if not self.split_names:
            raise DataError(f"--data {root}: no split with a dataset.json inside; not a dataset directory")
        self.identifiers: list[str] = []
        ident_file = root / IDENTIFIERS_FILE
        if ident_file.is_file():
            try:
                names = json.loads(contained(root, ident_file, "dataset").read_text(encoding="utf-8"))
                if isinstance(names, list):
                    self.identifiers = [str(n) for n in names]
            except ApiError as exc:
                raise DataError(f"--data {root}: {exc.message}") from None
            except (OSError, UnicodeDecodeError, ValueError, RecursionError):
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
                folder = contained(self.root, self.root / name, "dataset")
                for entry in folder.iterdir():
                    contained(self.root, entry, "dataset")
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

    def task(self, split: _Split) -> Task:
        task = task_for_shape(split.meta.seq_len, split.meta.vocab_size)
        if task is None:
            kinds = ", ".join(t.title for t in TASKS)
            raise ApiError(
                422,
                f"the dataset's sequences ({split.meta.seq_len} cells, {split.meta.vocab_size} tokens) are "
                f"none of the puzzle kinds ({kinds})",
            )
        return task

    def summary(self) -> dict[str, Any]:
        splits: dict[str, dict[str, Any]] = {}
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
                "kind": _kind_of_shape(s.meta.seq_len, s.meta.vocab_size),
            }
        return {"name": self.root.name, "splits": splits, "identifiers": len(self.identifiers)}

    def _locate(self, split: _Split, index: int) -> tuple[str, Any, int]:
        if not 0 <= index < split.total:
            raise ApiError(404, f"example {index} is out of range: the split has {split.total} examples")
        k = int(np.searchsorted(split.offsets, index, side="right")) - 1
        name, arrays = split.sets[k]
        return name, arrays, index - split.offsets[k]

    def _identifier(self, ident: int) -> str:
        return self.identifiers[ident] if 0 <= ident < len(self.identifiers) else str(ident)

    def _entry(self, task: Task, split_name: str, index: int, arrays: Any, row: int) -> dict[str, Any]:
        p = int(np.searchsorted(arrays.puzzle_indices, row, side="right")) - 1
        g = int(np.searchsorted(arrays.group_indices, p, side="right")) - 1
        return {
            "split": split_name,
            "index": index,
            "puzzle": p,
            "group": g,
            "position": row - int(arrays.puzzle_indices[p]),
            "name": self._identifier(int(arrays.puzzle_identifiers[p])),
            "kind": task.name,
            "input": task.grid_of_tokens(arrays.inputs[row]),
            "label": task.grid_of_tokens(arrays.labels[row], label=True),
        }

    def page(self, q: ExamplesQuery) -> dict[str, Any]:
        split = self.split(q.split)
        task = self.task(split)
        pages = max(1, math.ceil(split.total / q.per_page))
        if q.page >= pages:
            raise ApiError(404, f"page {q.page} is out of range: there are {pages} pages")
        lo = q.page * q.per_page
        items = []
        for index in range(lo, min(split.total, lo + q.per_page)):
            _, arrays, row = self._locate(split, index)
            items.append(self._entry(task, q.split, index, arrays, row))
        return {
            "split": q.split,
            "kind": task.name,
            "page": q.page,
            "pages": pages,
            "per_page": q.per_page,
            "total": split.total,
            "items": items,
        }

    def example(self, q: ExampleQuery) -> dict[str, Any]:
        split = self.split(q.split)
        task = self.task(split)
        set_name, arrays, row = self._locate(split, q.index)
        entry = self._entry(task, q.split, q.index, arrays, row)
        g = entry["group"]
        lo, hi = int(arrays.group_indices[g]), int(arrays.group_indices[g + 1])
        base = q.index - row  # global index of the set's first example
        variants: list[dict[str, Any]] = []
        for p in range(lo, hi):
            if p == entry["puzzle"] or len(variants) >= q.variants:
                continue
            start, end = int(arrays.puzzle_indices[p]), int(arrays.puzzle_indices[p + 1])
            # The same example of the other puzzle (for ARC: the same pair under another augmentation).
            other = min(start + entry["position"], end - 1)
            if other < start:
                continue
            variants.append(self._entry(task, q.split, base + other, arrays, other))
        entry["variants"] = variants
        entry["group_size"] = hi - lo
        entry["set"] = set_name
        return entry

    def original_task(self, name: str) -> dict[str, Any] | None:
        """The original task of a held-out puzzle, from test_puzzles.json (ARC datasets keep it), when
        there is one and `name` is not an augmented view of it."""
        from hrm.data.arc import parse_name

        with self.lock:
            if self._test_puzzles is None:
                self._test_puzzles = {}
                path = self.root / "test_puzzles.json"
                if path.is_file():
                    try:
                        data = json.loads(contained(self.root, path, "dataset").read_text(encoding="utf-8"))
                        if isinstance(data, dict):
                            self._test_puzzles = data
                    except (ApiError, OSError, UnicodeDecodeError, ValueError, RecursionError):
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


def _check_arc_size(task: Any) -> None:
    """Bounds a pasted task object before it is parsed: at most MAX_ARC_PAIRS pairs per list."""
    if not isinstance(task, dict):
        return
    for key in ("train", "test"):
        pairs = task.get(key)
        if isinstance(pairs, list) and len(pairs) > MAX_ARC_PAIRS:
            raise ApiError(422, f"the task has {len(pairs)} {key} pairs; at most {MAX_ARC_PAIRS}")


def _check_text_size(text: str) -> None:
    """Bounds pasted grid text before it is parsed: N rows, or one line of N*N cells, N <= MAX_VIEWER_SIDE."""
    rows = text.replace("\r", "").strip("\n").split("\n")
    side = len(rows) if len(rows) > 1 else math.isqrt(len(rows[0]))
    if side > MAX_VIEWER_SIDE:
        raise ApiError(422, f"the puzzle is {side}x{side}; at most {MAX_VIEWER_SIDE}x{MAX_VIEWER_SIDE}")


def parse_request_puzzle(req: SolveRequest, config: Any) -> Puzzle:
    """A puzzle from pasted text or a task object, its kind given or told from the characters (and the
    model's shape where they cannot tell). Text is parsed as it is, never read as a file name."""
    raw = req.puzzle
    if isinstance(raw, str) and raw.lstrip().startswith("{"):
        raw = parse_json(raw, 422, "the puzzle")
    task = task_named(req.kind) if req.kind is not None else task_for(raw, config)
    if isinstance(raw, str):
        _check_text_size(raw)
    else:
        _check_arc_size(raw)
        if not task.accepts(raw):
            raise ApiError(422, f"a {task.title} is text, not a JSON object")
    return task.parse(raw, name=f"pasted {task.title}", task_id="pasted")


# --------------------------------------------------------------------------------------------------
# The application
# --------------------------------------------------------------------------------------------------


@dataclass
class VizState:
    model: ModelSlot
    run: RunView | None
    data: DatasetView | None
    limits: Limits = field(default_factory=Limits)
    traces: OrderedDict[str, dict[str, Any]] = field(default_factory=OrderedDict)
    solve_lock: threading.Lock = field(default_factory=threading.Lock)
    static: dict[str, bytes] = field(default_factory=dict)
    work: WorkPool = field(init=False)
    reads: WorkPool = field(init=False)

    def __post_init__(self) -> None:
        self.work = WorkPool(
            "solves and generations",
            self.limits.work_slots,
            self.limits.work_deadline_s,
            " (a smaller puzzle, fewer views, or a longer `hrm viz --deadline` may do)",
        )
        self.reads = WorkPool("reads", self.limits.read_slots, self.limits.read_deadline_s)

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


def json_response(data: Any) -> Response:
    body = json.dumps(data, separators=(",", ":"), allow_nan=False).encode("utf-8")
    return Response(body, media_type="application/json", headers={"cache-control": "no-store"})


async def run_work(request: Request, fn: Callable[[Job], Any]) -> Any:
    """`fn(job)` in one of the work threads (solving, generating): 503 when they are all busy, 504
    past the deadline; the wait ends when the client disconnects."""
    return await _state(request).work.run(request.receive, fn)


async def _read(request: Request, fn: Callable[[], Any]) -> Any:
    """`fn()` in one of the read threads (files, the model's summary), under their deadline."""
    return await _state(request).reads.run(request.receive, lambda job: fn())


async def page(request: Request) -> Response:
    return Response(_state(request).static["index.html"], media_type=STATIC_FILES["index.html"])


async def static(request: Request) -> Response:
    name = request.path_params["name"]
    content = _state(request).static.get(name)
    if content is None:
        raise ApiError(404, "not found")
    return Response(content, media_type=STATIC_FILES[name], headers={"cache-control": "no-cache"})


def _info_sync(st: VizState) -> dict[str, Any]:
    out: dict[str, Any] = {
        "model": None,
        "model_error": None,
        "run": st.run.summary() if st.run else None,
        "data": None,
        "data_error": None,
        "limits": {
            "max_body_bytes": MAX_BODY_BYTES,
            "max_grid": MAX_VIEWER_SIDE,
            "max_arc_pairs": MAX_ARC_PAIRS,
            "max_json_depth": MAX_JSON_DEPTH,
            **st.limits.summary(),
        },
        "kinds": describe_tasks(),
    }
    if st.model.spec is not None or st.model.loaded is not None:
        try:
            out["model"] = st.model.info()
        except ApiError as exc:
            out["model_error"] = exc.message
    if st.data is not None:
        out["data"] = st.data.summary()
    return out


async def info(request: Request) -> Response:
    st = _state(request)
    return json_response(await _read(request, lambda: _info_sync(st)))


def _solve_sync(st: VizState, req: SolveRequest, job: Job | None = None) -> dict[str, Any]:
    from hrm.inference import solve

    job = job or Job(st.limits.work_deadline_s)
    loaded = st.model.get(wait_s=job.remaining())
    job.check()
    model = loaded.model if hasattr(loaded, "model") else loaded
    expected = None
    expected_source = None
    example = None
    if req.example is not None:
        if st.data is None:
            raise ApiError(409, "no dataset: start the viewer with --data DIR to solve dataset examples")
        entry = st.data.example(ExampleQuery(split=req.example.split, index=req.example.index, variants=0))
        task = task_named(entry["kind"])
        name = f"{entry['split']} example {entry['index']}"
        example = {"split": entry["split"], "index": entry["index"], "name": entry["name"]}
        if entry["input"] is None:
            raise ApiError(422, f"{name} holds no {task.title}")
        original = st.data.original_task(entry["name"])
        puzzle = task.puzzle_of_example(entry["input"], entry["label"], name, entry["name"], original)
        if entry["label"] is not None:
            expected, expected_source = entry["label"], "dataset label"
    else:
        puzzle = parse_request_puzzle(req, model.config)
        task = task_named(puzzle.kind)
    known = task.known_answer(puzzle)
    if known is not None:
        expected, expected_source = known, "the task's test output"
    task.check_fits(puzzle, model.config.seq_len, model.config.vocab_size, "the loaded model")
    if not st.solve_lock.acquire(timeout=job.remaining()):
        raise WorkError(503, "busy: another solve is still running; try again when it has finished")
    try:
        job.check()
        solution = solve(loaded, puzzle, halt=req.halt, trace=True, arc_max_views=req.max_views)
    finally:
        st.solve_lock.release()
    job.check()
    trace = solution.trace
    assert trace is not None
    annotations = annotate(trace, expected, expected_source)
    replaced: list[Any] = []
    out = _finite(
        {
            "trace": trace,
            "annotations": annotations,
            "solution": {
                "valid": solution.valid,
                "reason": solution.reason,
                "segments": solution.segments,
                "confidence": solution.confidence,
                "seconds": solution.seconds,
                "verdict": solution.verdict(),
            },
        },
        replaced,
    )
    return {
        "id": st.remember(out["trace"]),
        **out,
        "example": example,
        "warning": NON_FINITE_WARNING if replaced else None,
    }


async def solve_endpoint(request: Request) -> Response:
    st = _state(request)
    req = await json_body(request, SolveRequest)
    return json_response(await run_work(request, lambda job: _solve_sync(st, req, job)))


async def trace_endpoint(request: Request) -> Response:
    trace = _state(request).traces.get(request.path_params["trace_id"])
    if trace is None:
        raise ApiError(404, "no such trace (only the last 16 solved in this session are kept)")
    return json_response(trace)


def _generate_sync(req: GenerateRequest) -> dict[str, Any]:
    made = task_named(req.kind).generate(
        req.size, req.difficulty, np.random.default_rng(req.seed), min_path_length=req.min_path_length
    )
    return {"kind": req.kind, **made}


async def generate(request: Request) -> Response:
    req = await json_body(request, GenerateRequest)
    return json_response(await run_work(request, lambda job: _generate_sync(req)))


def _need_run(request: Request) -> RunView:
    run = _state(request).run
    if run is None:
        raise ApiError(409, "no run: start the viewer with --run RUN_DIR to see training curves")
    return run


async def run_info(request: Request) -> Response:
    return json_response(await _read(request, _need_run(request).summary))


async def run_metrics(request: Request) -> Response:
    q = _query(request, MetricsQuery)
    tail = _need_run(request).tail
    return json_response(await _read(request, lambda: tail.since(q.since, q.gen)))


def _need_data(request: Request) -> DatasetView:
    data = _state(request).data
    if data is None:
        raise ApiError(409, "no dataset: start the viewer with --data DIR to browse examples")
    return data


async def dataset_info(request: Request) -> Response:
    return json_response(await _read(request, _need_data(request).summary))


async def dataset_examples(request: Request) -> Response:
    q = _query(request, ExamplesQuery)
    data = _need_data(request)
    return json_response(await _read(request, lambda: data.page(q)))


async def dataset_example(request: Request) -> Response:
    q = _query(request, ExampleQuery)
    data = _need_data(request)
    return json_response(await _read(request, lambda: data.example(q)))


# --------------------------------------------------------------------------------------------------
# Errors and middleware
# --------------------------------------------------------------------------------------------------


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError | WorkError)
    return _error(exc.status, exc.message)


async def _client_gone(request: Request, exc: Exception) -> Response:
    return _error(499, "the client closed the connection before the answer was ready")


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
    site reaching the local server through DNS rebinding), and adds security headers. `limits`: the
    app's, for the server to apply too (`make_server`)."""

    def __init__(self, app: ASGIApp, allowed_hosts: tuple[str, ...] | None, limits: Limits | None = None):
        self.app = app
        self.allowed_hosts = allowed_hosts
        self.limits = limits or Limits()

    def stop_waiting(self) -> None:
        """The server is shutting down: requests waiting for work are answered 503 now."""
        state = getattr(getattr(self.app, "state", None), "viz", None)
        if isinstance(state, VizState):
            state.work.stop()
            state.reads.stop()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw_headers = scope.get("headers", [])
        if sum(len(k) + len(v) + 4 for k, v in raw_headers) > self.limits.max_header_bytes:
            # (the HTTP parser bounds headers still arriving; these came in one piece)
            message = f"request headers over {self.limits.max_header_bytes // 1024} KB"
            await _error(431, message)(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in raw_headers}
        if self.allowed_hosts is not None:
            host = headers.get("host", "")
            hostname = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if hostname.lower() not in self.allowed_hosts:
                await _error(400, "invalid Host header")(scope, receive, send)
                return
        length = headers.get("content-length")
        if length is not None and length.isdigit() and len(length) > len(str(MAX_BODY_BYTES)):
            length = str(MAX_BODY_BYTES + 1)  # (no int() of a thousand digits)
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
    limits: Limits | None = None,
) -> ASGIApp:
    """The viewer app. `model`: anything `hrm.checkpoint.load_model` takes (a run dir's latest
    checkpoint is re-resolved on each solve); without it, `run_dir`'s checkpoints are used (and must
    lie inside it). `preloaded_model`: an already-loaded model or `ACTModel` to use as is.
    `allowed_hosts`: Host header names accepted (None: any, for a server bound to a public
    interface). `limits`: timeouts, deadlines and how much work runs at once (`hrm.viz.limits`)."""
    limits = limits or Limits()
    spec = str(model) if model is not None else None
    run = None
    within = None
    if run_dir is not None:
        root = Path(run_dir)
        if not root.is_dir():
            raise DataError(f"--run {root}: not a directory")
        run = RunView(root)
        if spec is None and preloaded_model is None:
            spec, within = str(run.root), run.root
    data = DatasetView(Path(data_dir)) if data_dir is not None else None
    state = VizState(
        model=ModelSlot(spec, device, preloaded_model, within=within), run=run, data=data, limits=limits
    )
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
    from hrm.viz import agent_api

    routes += agent_api.routes()
    app = Starlette(
        routes=routes,
        exception_handlers={
            ApiError: _api_error,
            WorkError: _api_error,
            ClientGone: _client_gone,
            HRMError: _user_error,
            HTTPException: _http_error,
            Exception: _internal_error,
        },
    )
    app.state.viz = state
    return GuardMiddleware(app, allowed_hosts, limits)


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


def make_server(app: ASGIApp, limits: Limits | None = None) -> Any:
    """A uvicorn server for `app` (quiet: warnings only, no access log) under `limits` (by default
    the app's own): request-head and idle timeouts, header size, open connections, and how long a
    shutdown waits for requests in flight."""
    import uvicorn

    guard = app if isinstance(app, GuardMiddleware) else None
    if limits is None:
        limits = guard.limits if guard is not None else Limits()
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        http=protocol_class(limits, guard.stop_waiting if guard is not None else None),
        timeout_keep_alive=limits.idle_timeout_s,
        h11_max_incomplete_event_size=limits.max_header_bytes,
        timeout_graceful_shutdown=limits.shutdown_grace_s,
    )
    return uvicorn.Server(config)


def serve(app: ASGIApp, sock: Any, limits: Limits | None = None) -> None:
    """Serve `app` on the bound socket `sock` until interrupted (Ctrl-C, SIGTERM)."""
    make_server(app, limits).run(sockets=[sock])
