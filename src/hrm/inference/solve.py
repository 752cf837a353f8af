"""Solving puzzles with a trained model, and recording how it reasoned.

    import hrm
    model = hrm.load_model("sudoku-9x9")             # a run, a checkpoint, a packaged name
    puzzle = "53..7....6..195....98....6.8...6...34..8.3..17...2...6.6....28....419..5....8..79"
    sol = hrm.solve(model, puzzle)
    print(sol.format(), sol.valid, sol.segments, sol.confidence)

A puzzle is text (a Sudoku string, a maze as rows over `# SGo`), an ARC task (a dict with `train` and
`test`, an `ArcTask`, or the path of a task JSON file), the path of a file holding one puzzle, or a
`hrm.tasks.Puzzle`. Its kind is told by the input and the model's shape, or given as `kind=`; the
kind's `Task` parses, encodes and reads back the answer.

Halting: `halt="adaptive"` lets the Q head stop each puzzle as soon as it says so (Q-halt > Q-continue,
or Q-halt > 0 for a TRM trained without Q-continue), by a margin: `halt_margin`, else the model card's
`halt_margin`, else 0 (the reference rule); `halt="max"` runs every segment, as the published
evaluation does. The answer of a puzzle is the one of the segment where it halted.

Traces (`trace=True`) record every segment and every inner update of a puzzle (see `hrm.inference.trace`).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hrm.checkpoint import LoadedModel, load_model, run_data_path
from hrm.errors import DataError, HRMError
from hrm.inference.runner import check_halt_margin, check_run_options, run_until_halted
from hrm.inference.trace import TraceRecorder, build_trace
from hrm.limits import MAX_VIEWS
from hrm.models import ACTModel, HaltMode
from hrm.tasks import (
    TASKS,
    Answer,
    Encoding,
    Grid,
    Puzzle,
    RowAnswers,
    SolveOptions,
    Task,
    task_for,
    task_named,
)

DEFAULT_BATCH_SIZE = 256


# --------------------------------------------------------------------------------------------------
# Puzzles in
# --------------------------------------------------------------------------------------------------


def read_text(path: Path) -> str:
    """A UTF-8 text file; DataError naming it when it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, not a puzzle file") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from None


def looks_like_path(text: str) -> bool:
    return len(text) < 4096 and "\n" not in text and (text.endswith(".json") or Path(text).is_file())


def parse_puzzle(puzzle: Any, kind: str | None = None, config: Any = None, name: str | None = None) -> Puzzle:
    """Parse a puzzle of `kind` (told from the input and `config` when None); errors are DataErrors
    naming the input. A path is read (a `.json` file is an ARC task whose id is the file's stem)."""
    if isinstance(puzzle, Puzzle):
        return puzzle
    task_id = None
    suffix = ""
    if isinstance(puzzle, Path) or (isinstance(puzzle, str) and looks_like_path(puzzle)):
        path = Path(puzzle)
        name = name or str(path)
        suffix = path.suffix
        task_id = path.stem if suffix else None
        puzzle = read_text(path)
    task = task_named(kind) if kind else task_for(puzzle, config, suffix)
    if not isinstance(puzzle, str) and not task.accepts(puzzle):
        raise DataError(
            f"cannot solve a {type(puzzle).__name__}: give a puzzle string, an ARC task or a path"
        )
    return task.parse(puzzle, name, task_id)


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------


@dataclass
class Solution:
    """What the model answered and whether it is right.

    `answer` is the grid: Sudoku digits (0 where the model wrote no digit), maze characters, or ARC
    colours (the top attempt for the first test input). `valid`: whether it satisfies the puzzle's rules
    (Sudoku, maze) or matches the known output (ARC: each test input by one of its two attempts; None
    when the task has no test outputs). `reason` says why not. `segments`: segments the puzzle ran (over
    several views, the most). `confidence`: sigmoid of the Q-halt logit of the answering segment (over
    views, of the answer's mean). `seconds`: wall time (in `solve_many`, the batch time shared among its
    puzzles).
    """

    kind: str
    puzzle: str
    answer: Grid
    valid: bool | None
    reason: str | None
    segments: int
    max_segments: int
    halt: HaltMode
    confidence: float
    q_halt: float
    seconds: float
    name: str = ""
    attempts: list[Grid] | None = None  # ARC: per test input, up to 2 grids
    votes: list[list[int]] | None = None  # ARC: the votes of those attempts
    trace: dict[str, Any] | None = None
    views: int = 1  # symmetric views solved (see `solve`)
    agreement: int | None = None  # with views > 1: how many views gave this answer
    halt_margin: float = 0.0  # the margin adaptive halting used

    @property
    def task(self) -> Task:
        return task_named(self.kind)

    @property
    def mark(self) -> str:
        return "?" if self.valid is None else ("✓" if self.valid else "✗")

    def verdict(self) -> str:
        """The rule check in words: '✓ valid', '✗ invalid: why', or '? unchecked'."""
        if self.valid is None:
            return "? unchecked (the task has no test output)"
        return "✓ valid" if self.valid else f"✗ invalid: {self.reason}"

    def format(self) -> str:
        """The answer as text (Sudoku with box separators, a maze as rows, ARC attempts as digit rows)."""
        answer = Answer(
            self.answer, self.valid, self.reason, self.q_halt, self.segments, self.attempts, self.votes
        )
        return self.task.format_answer(answer)

    def format_line(self) -> str:
        """The answer on one line where the kind has one (else as `format`)."""
        return self.task.format_line(self.answer) if self.attempts is None else self.format()

    def summary(self) -> str:
        agree = f"; {self.agreement} of {self.views} views agree" if self.views > 1 else ""
        margin = f", margin {self.halt_margin:g}" if self.halt == "adaptive" and self.halt_margin else ""
        return (
            f"{self.verdict()}; segments {self.segments} of {self.max_segments} "
            f"({self.halt} halting{margin}); halting confidence {self.confidence:.3f}{agree}; "
            f"{self.seconds:.3f} s"
        )

    def to_dict(self, include_trace: bool = False) -> dict[str, Any]:
        """JSON-ready: a non-finite number (a model that produced NaN) becomes null."""
        out: dict[str, Any] = {
            "kind": self.kind,
            "name": self.name,
            "puzzle": self.puzzle,
            "answer": self.answer,
            "valid": self.valid,
            "reason": self.reason,
            "segments": self.segments,
            "max_segments": self.max_segments,
            "halt": self.halt,
            "halt_margin": self.halt_margin,
            "confidence": finite(round(self.confidence, 6)),
            "q_halt": finite(round(self.q_halt, 6)),
            "seconds": round(self.seconds, 6),
        }
        if self.attempts is not None:
            out["attempts"] = self.attempts
            out["votes"] = self.votes
        if self.views > 1:
            out["views"] = self.views
            out["agreement"] = self.agreement
        if include_trace and self.trace is not None:
            out["trace"] = self.trace
        return out


def finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def sigmoid(x: float) -> float:
    if math.isnan(x):
        return x
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


# --------------------------------------------------------------------------------------------------
# Models and puzzle identifiers
# --------------------------------------------------------------------------------------------------


@dataclass
class ResolvedModel:
    model: ACTModel
    source: str | None
    label: str
    identifier_names: list[str] | None
    halt_margin: float = 0.0  # the model card's margin for adaptive halting (0: the reference rule)


def resolve_model(model: Any, identifiers: Any = None) -> ResolvedModel:
    """An `ACTModel` with where it came from, from a model, a `LoadedModel` or what `load_model` takes."""
    if isinstance(model, (str, Path)):
        model = load_model(model)
    if isinstance(model, LoadedModel):
        act, source, extra = model.model, str(model.source), model.card.extra or {}
    elif isinstance(model, ACTModel):
        act, source, extra = model, None, {}
    else:
        raise HRMError(f"expected a model (ACTModel, LoadedModel or a path), got a {type(model).__name__}")
    label = f"model {source}" if source else "the model"
    margin = extra.get("halt_margin", 0.0)
    try:
        check_halt_margin(margin)
    except HRMError as exc:
        raise HRMError(f"{label}: its card's {exc}") from None
    names = identifier_names(act, source, extra, identifiers)
    return ResolvedModel(act, source, label, names, float(margin))


def identifier_names(
    act: ACTModel, source: str | None, extra: dict[str, Any], given: Any
) -> list[str] | None:
    """Puzzle identifier names: given, in the model card, beside the checkpoint, or in the dataset of
    the run the checkpoint belongs to. Only names that match the embedding table count."""
    c = act.config
    if c.puzzle_emb_ndim == 0 or c.num_puzzle_identifiers <= 1:
        return None
    candidates: list[Any] = []
    if given is not None:
        candidates.append(given)
    if extra.get("identifiers"):
        candidates.append(extra["identifiers"])
    if source:
        candidates.append(Path(source).parent / "identifiers.json")
        data = run_data_path(source)
        if data:
            candidates.append(Path(data) / "identifiers.json")
    for cand in candidates:
        names = cand
        if isinstance(cand, (str, Path)):
            path = Path(cand)
            if not path.is_file():
                if cand is given:
                    raise DataError(f"identifiers file {path} does not exist")
                continue
            try:
                names = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                raise DataError(f"{path}: cannot read identifier names ({exc})") from None
        if isinstance(names, list) and len(names) == c.num_puzzle_identifiers:
            return [str(x) for x in names]
        if cand is given:
            raise DataError(
                f"{len(names) if isinstance(names, list) else 'no'} identifier names given but the model "
                f"has {c.num_puzzle_identifiers} puzzle identifiers"
            )
    return None


# --------------------------------------------------------------------------------------------------
# Running rows in batches
# --------------------------------------------------------------------------------------------------


@dataclass
class RowResults:
    """Every row's answer (from the segment where it halted), its batch's time shared among its rows,
    and the trace records of the rows asked for."""

    preds: np.ndarray  # [N, S]
    q_halt: np.ndarray  # [N]
    steps: np.ndarray  # [N]
    seconds: np.ndarray  # [N]
    traces: dict[int, dict[str, Any]] = field(default_factory=dict)

    def rows(self, lo: int, hi: int) -> RowAnswers:
        return RowAnswers(self.preds[lo:hi], self.q_halt[lo:hi], self.steps[lo:hi])


def run_rows(
    model: ACTModel,
    inputs: np.ndarray,
    identifiers: np.ndarray,
    *,
    halt: HaltMode,
    batch_size: int,
    max_segments: int | None,
    trace_rows: Sequence[int] = (),
    halt_margin: float = 0.0,
) -> RowResults:
    """Encoded rows [N, seq_len] through `run_until_halted`, `batch_size` rows at a time."""
    if batch_size < 1:
        raise HRMError(f"batch size must be at least 1, got {batch_size}")
    n = inputs.shape[0]
    device = model.inner.H_init.device
    preds = np.zeros(inputs.shape, dtype=np.int64)
    q_halt = np.zeros(n, dtype=np.float64)
    steps = np.zeros(n, dtype=np.int64)
    seconds = np.zeros(n, dtype=np.float64)
    traces: dict[int, dict[str, Any]] = {}
    wanted = sorted({int(r) for r in trace_rows})
    for lo in range(0, n, batch_size):
        hi = min(n, lo + batch_size)
        started = time.perf_counter()
        batch = {
            "inputs": torch.from_numpy(inputs[lo:hi].astype(np.int32)).to(device),
            "puzzle_identifiers": torch.from_numpy(identifiers[lo:hi].astype(np.int32)).to(device),
        }
        local = [r - lo for r in wanted if lo <= r < hi]
        recorder = TraceRecorder(model, local) if local else None
        out = run_until_halted(
            model, batch, halt=halt, max_segments=max_segments, on_segment=recorder, halt_margin=halt_margin
        )
        preds[lo:hi] = out.preds.cpu().numpy()
        q_halt[lo:hi] = out.q_halt.cpu().numpy()
        steps[lo:hi] = out.steps.cpu().numpy()
        seconds[lo:hi] = (time.perf_counter() - started) / (hi - lo)
        if recorder is not None:
            for r in local:
                traces[r + lo] = recorder.records[r]
    return RowResults(preds, q_halt, steps, seconds, traces)


# --------------------------------------------------------------------------------------------------
# Solving
# --------------------------------------------------------------------------------------------------


def solve_many(
    model: Any,
    puzzles: Sequence[Any],
    *,
    halt: HaltMode = "adaptive",
    trace: bool = False,
    kind: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    names: Sequence[str | None] | None = None,
    identifiers: Any = None,
    arc_colour_perms: int = 0,
    arc_max_views: int | None = None,
    seed: int = 0,
    pca: bool = True,
    views: int = 1,
    segments: int | None = None,
    halt_margin: float | None = None,
) -> list[Solution]:
    """Solve many puzzles of one kind in batches of `batch_size` rows; see `solve` for the arguments.
    `names` label each puzzle in errors (e.g. "puzzles.txt line 3"). With `trace`, every puzzle gets
    a trace (memory grows with the batch: trace few puzzles at a time)."""
    check_run_options(halt, segments, 0.0 if halt_margin is None else halt_margin)
    if not isinstance(views, int) or isinstance(views, bool) or not 1 <= views <= MAX_VIEWS:
        raise HRMError(f"views must be a whole number in 1..{MAX_VIEWS}, got {views!r}")
    resolved = resolve_model(model, identifiers)
    margin = resolved.halt_margin if halt_margin is None else float(halt_margin)
    act = resolved.model
    c = act.config
    parsed: list[Puzzle] = []
    for i, raw in enumerate(puzzles):
        p = parse_puzzle(raw, kind, c, names[i] if names is not None else None)
        if parsed and p.kind != parsed[0].kind:
            raise DataError(f"{p.name}: a {p.kind} puzzle among {parsed[0].kind} puzzles")
        task_named(p.kind).check_fits(p, c.seq_len, c.vocab_size, resolved.label)
        parsed.append(p)
    if not parsed:
        return []
    task = task_named(parsed[0].kind)
    if views > 1 and not task.symmetric_views:
        which = ", ".join(t.title for t in TASKS if t.symmetric_views)
        raise HRMError(f"views apply to {which} puzzles, not to a {task.title}")
    options = SolveOptions(views, seed, resolved.identifier_names, arc_colour_perms, arc_max_views)
    encodings: list[Encoding] = [task.encode(p, options) for p in parsed]
    bounds = np.cumsum([0] + [len(e.rows) for e in encodings])
    results = run_rows(
        act,
        np.concatenate([e.rows for e in encodings]),
        np.concatenate([e.identifiers for e in encodings]),
        halt=halt,
        batch_size=batch_size,
        max_segments=segments,
        trace_rows=[int(lo) for lo in bounds[:-1]] if trace else (),
        halt_margin=margin,
    )
    limit = segments or c.halt_max_steps
    solutions = []
    for p, enc, lo, hi in zip(parsed, encodings, bounds[:-1], bounds[1:]):
        ans = task.answer(p, enc, results.rows(lo, hi))
        solution = Solution(
            kind=p.kind,
            puzzle=p.text,
            answer=ans.grid,
            valid=ans.valid,
            reason=None if ans.valid or ans.valid is None else ans.reason,
            segments=ans.segments,
            max_segments=limit,
            halt=halt,
            confidence=sigmoid(ans.q_halt),
            q_halt=ans.q_halt,
            seconds=float(results.seconds[lo:hi].sum()),
            name=p.name,
            attempts=ans.attempts,
            votes=ans.votes,
            views=views if task.symmetric_views else 1,
            agreement=ans.agreement,
            halt_margin=margin,
        )
        record = results.traces.get(int(lo))
        if record is not None:
            final: dict[str, Any] = {
                "answer": solution.answer,
                "valid": solution.valid,
                "reason": solution.reason,
                "segments": solution.segments,
                "q_halt": finite(round(solution.q_halt, 6)),
                "confidence": finite(round(solution.confidence, 6)),
                "seconds": round(solution.seconds, 6),
            }
            if ans.attempts is not None:
                final["attempts"] = ans.attempts
            solution.trace = build_trace(p, act, resolved.source, record, halt, final, enc.view, pca, limit)
        solutions.append(solution)
    return solutions


def solve(
    model: Any,
    puzzle: Any,
    *,
    halt: HaltMode = "adaptive",
    trace: bool = False,
    kind: str | None = None,
    identifiers: Any = None,
    arc_colour_perms: int = 0,
    arc_max_views: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    seed: int = 0,
    pca: bool = True,
    views: int = 1,
    segments: int | None = None,
    halt_margin: float | None = None,
) -> Solution:
    """Solve one puzzle with `model` (an `ACTModel`, a `LoadedModel` from `hrm.load_model`, or anything
    `load_model` takes).

    `puzzle`: a Sudoku string, maze text, or an ARC task (dict, JSON text, `ArcTask`, path of a task
    JSON); `kind` (a name of `hrm.tasks.KINDS`) overrides detection. `halt`: "adaptive" stops when the
    Q head says so, "max" runs all `halt_max_steps` segments. `trace=True` attaches a reasoning trace
    (`solution.trace`, see docs/TRACE_SCHEMA.md; `pca=False` leaves out its 2-D projection).

    ARC: HRM maps the test input alone (the demonstrations are not shown to it) under the puzzle
    embedding of the task. A task the model was trained on is solved under all its training variants
    with their embeddings, found through `identifiers` (a list of names or an identifiers.json path;
    by default the model card, the checkpoint directory, or the run's dataset). A task not among the
    training identifiers uses the blank identifier 0 under the 8 dihedral views, each times
    `arc_colour_perms` extra random colour permutations (drawn from `seed`). The views' predictions are
    mapped back and voted as in evaluation (`hrm.data.arc_eval.vote`); the top two are the attempts.
    `arc_max_views` caps the number of views; they run in batches of `batch_size` rows.

    Sudoku, `views` > 1: the puzzle is also solved under `views - 1` random symmetric transforms of it
    (drawn from `seed`), each answer is mapped back, and the answer kept is one that satisfies the
    rules, else the one most views gave (`solution.agreement` views). The trace is the first view's.

    `segments` runs at most that many segments instead of the model's `halt_max_steps` (a recursive
    model can go on refining past the number it was trained with). `halt_margin`: adaptive halting
    stops a puzzle once Q-halt exceeds Q-continue (or 0) by this much; None: the model card's
    `halt_margin` (the shipped Sudoku model's is 4: benchmarks/halting.py), else 0.
    """
    started = time.perf_counter()
    (solution,) = solve_many(
        model,
        [puzzle],
        halt=halt,
        trace=trace,
        kind=kind,
        batch_size=batch_size,
        identifiers=identifiers,
        arc_colour_perms=arc_colour_perms,
        arc_max_views=arc_max_views,
        seed=seed,
        pca=pca,
        views=views,
        segments=segments,
        halt_margin=halt_margin,
    )
    solution.seconds = time.perf_counter() - started
    if solution.trace is not None:
        solution.trace["final"]["seconds"] = round(solution.seconds, 6)
    return solution
