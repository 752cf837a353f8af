"""ARC tasks: colour grids up to 30x30 on a 30x30 canvas (PAD=0, EOS=1, colour c = c + 2, the
reference's). HRM maps a test input alone under the puzzle embedding of its task; the answer is voted
over augmented views of the task, as in evaluation, and the top two candidates are the attempts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from hrm.data.arc import (
    MAX_GRID_SIZE,
    SEPARATOR,
    SEQ_LEN,
    TEST_PUZZLES_FILE,
    VOCAB_SIZE,
    ArcTask,
    augmented_name,
    forward_transform,
    grid_to_seq,
    inverse_transform,
    parse_name,
    parse_task,
    seq_to_grid,
)
from hrm.data.arc_eval import crop_prediction, grid_key, score_arc, vote
from hrm.data.augment import NUM_DIHEDRAL, inverse_dihedral_transform, random_colour_permutation
from hrm.data.build import BLANK_IDENTIFIER
from hrm.data.format import IDENTIFIERS_FILE
from hrm.errors import DataError
from hrm.tasks.base import Answer, DatasetScore, Encoding, Grid, Puzzle, RowAnswers, SolveOptions, Task

IDENTITY_COLOURS = np.arange(10, dtype=np.uint8)
# Dihedral transforms that swap rows and columns.
TRANSPOSING = frozenset((1, 3, 6, 7))


def arc_views(
    task: ArcTask, names: list[str] | None, colour_perms: int = 0, max_views: int | None = None, seed: int = 0
) -> list[tuple[str, int]]:
    """The augmented views an ARC task is solved under: (view name, model puzzle identifier).

    A task the model was trained on (its id among the identifier names) is seen under every variant
    of it in training, each with its own embedding, as in evaluation. Any other task is seen under
    the 8 dihedral transforms times (1 + `colour_perms`) colour permutations (the first the identity),
    all with the blank identifier 0: the model has no embedding for a task it never saw. The first
    view is always the task as given."""
    views: list[tuple[str, int]] = []
    augmented: dict[int, bool] = {}
    if names:
        for ident, name in enumerate(names):
            if ident == 0 or name == BLANK_IDENTIFIER:
                continue
            try:
                base, tid, mapping = parse_name(name)
            except ValueError:
                continue
            if base == task.id:
                views.append((name, ident))
                augmented[ident] = tid != 0 or mapping is not None
        views.sort(key=lambda v: (augmented[v[1]], v[1]))
    if not views:
        rng = np.random.default_rng(seed)
        mappings = [IDENTITY_COLOURS] + [random_colour_permutation(rng) for _ in range(max(colour_perms, 0))]
        for m_index, mapping in enumerate(mappings):
            for tid in range(NUM_DIHEDRAL):
                plain = tid == 0 and m_index == 0
                views.append((task.id if plain else augmented_name(task.id, tid, mapping), 0))
    if max_views is not None:
        views = views[: max(1, max_views)]
    return views


def grid_list(grid: np.ndarray) -> list[list[int]]:
    return np.asarray(grid).astype(int).tolist()


class ARCTask(Task):
    name = "arc"
    title = "ARC task"
    file_suffixes = (".json",)
    scores_datasets = True
    # pass@2 is the figure both papers report for ARC, under TRM's rule and under HRM's.
    score_series = ("pass@1", "pass@2", "all_tests_pass@2")
    menu_order = 2

    def fits(self, seq_len: int, vocab_size: int) -> bool:
        return seq_len == SEQ_LEN and vocab_size == VOCAB_SIZE

    def claims(self, text: str) -> bool:
        return text.lstrip().startswith("{")

    def accepts(self, raw: Any) -> bool:
        return isinstance(raw, (dict, ArcTask))

    def parse(self, raw: Any, name: str | None = None, task_id: str | None = None) -> Puzzle:
        """A task from a dict ({"train": [...], "test": [...]}), its JSON text or an `ArcTask`."""
        if isinstance(raw, ArcTask):
            task = raw
            origin = name or f"ARC task {task.id}"
        else:
            origin = name or "ARC task"
            if isinstance(raw, str):
                try:
                    raw = json.loads(raw)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{origin}: invalid JSON ({exc.msg})") from None
            task = parse_task(raw, (task_id or "task").replace(SEPARATOR, "_"), origin)
        grid = task.test[0][0].astype(int).tolist()
        return Puzzle(self.name, origin, task.id, grid, task)

    def read_collection(self, text: str, origin: str) -> list[tuple[str, Puzzle]] | None:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{origin} line {exc.lineno}: invalid JSON ({exc.msg})") from None
        if isinstance(data, dict) and "test" in data:
            return [(origin, self.parse(data, origin, Path(origin).stem))]
        if isinstance(data, dict) and data and all(isinstance(v, dict) for v in data.values()):
            named = [(f"{origin} task {key}", key, value) for key, value in data.items()]
            return [(name, self.parse(value, name, key)) for name, key, value in named]
        raise DataError(f"{origin}: neither an ARC task (train/test) nor a JSON object of tasks keyed by id")

    def shape(self, puzzle: Puzzle) -> tuple[int, int, str]:
        return SEQ_LEN, VOCAB_SIZE, f"an ARC task ({MAX_GRID_SIZE}x{MAX_GRID_SIZE} canvas, {SEQ_LEN} cells)"

    def encode(self, puzzle: Puzzle, options: SolveOptions) -> Encoding:
        task: ArcTask = puzzle.payload
        named = arc_views(
            task, options.identifier_names, options.colour_perms, options.max_views, options.seed
        )
        rows, ids = [], []
        for name, ident in named:  # view-major, test input minor: the order `vote` expects
            for inp, _ in task.test:
                rows.append(grid_to_seq(forward_transform(name, inp)))
                ids.append(ident)
        return Encoding(np.stack(rows).astype(np.int64), np.array(ids, dtype=np.int64), named, named[0][0])

    def answer(self, puzzle: Puzzle, encoding: Encoding, rows: RowAnswers) -> Answer:
        """Votes over the views; a test input is solved when one of its two attempts equals its known
        output (None when the task has no test output)."""
        task: ArcTask = puzzle.payload
        named: list[tuple[str, int]] = encoding.context
        names = [BLANK_IDENTIFIER, *(name for name, _ in named)]
        n_tests = len(task.test)
        local_ids = np.repeat(np.arange(1, len(named) + 1), n_tests)
        ranked = vote(local_ids, encoding.rows, rows.preds, rows.q_halt, names)
        attempts: list[Grid] = []
        votes: list[list[int]] = []
        reasons: list[str] = []
        top_q: list[float] = []
        checked = solved = 0
        for t, (question, expected) in enumerate(task.test):
            cands = ranked.get((task.id, grid_key(question)), [])[:2]
            attempts.append([grid_list(c.grid) for c in cands] or [[]])
            votes.append([c.votes for c in cands] or [0])
            if cands:
                top_q.append(cands[0].q_mean)
            if expected is not None:
                checked += 1
                target = grid_key(expected)
                if any(grid_key(c.grid) == target for c in cands):
                    solved += 1
                else:
                    shape = "x".join(str(s) for s in expected.shape)
                    label = f"test input {t + 1}: " if n_tests > 1 else ""
                    reasons.append(f"{label}neither attempt matches the expected {shape} output")
        valid = None if checked == 0 else solved == checked
        q = float(np.mean(top_q)) if top_q else float(rows.q_halt[0])
        return Answer(
            attempts[0][0], valid, "; ".join(reasons) or None, q, int(rows.steps.max()), attempts, votes
        )

    def decode(self, puzzle: Puzzle, tokens: np.ndarray, view: str | None = None) -> Grid:
        grid = crop_prediction(tokens)
        return grid_list(inverse_transform(view, grid) if view else grid)

    def decode_confidence(
        self, puzzle: Puzzle, confidence: np.ndarray, answer: Grid, view: str | None = None
    ) -> list[list[float]]:
        canvas = np.asarray(confidence).reshape(MAX_GRID_SIZE, MAX_GRID_SIZE)
        rows = len(answer)
        cols = len(answer[0]) if rows else 0
        # The crop is taken in the view's frame; only the dihedral part moves cells.
        tid = parse_name(view)[1] if view else 0
        shape = (cols, rows) if tid in TRANSPOSING else (rows, cols)
        grid = inverse_dihedral_transform(canvas[: shape[0], : shape[1]], tid) if rows else canvas[:0, :0]
        return np.round(grid.astype(np.float64), 4).tolist()

    cell_values = frozenset(range(10))

    def check_grid(self, puzzle_grid: Grid, answer: Grid, expected: Grid | None = None) -> dict[str, Any]:
        """Equality with the expected output (no rules to check without it)."""
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

    def format(self, grid: Grid) -> str:
        return "\n".join("".join(str(int(v)) for v in row) for row in grid) if len(grid) else "(empty)"

    def format_answer(self, answer: Answer) -> str:
        """Every attempt of every test input, with its votes."""
        attempts = answer.attempts or [[answer.grid]]
        parts = []
        for t, grids in enumerate(attempts):
            for k, grid in enumerate(grids):
                head = f"test {t + 1} attempt {k + 1}" if len(attempts) > 1 else f"attempt {k + 1}"
                count = f" ({answer.votes[t][k]} votes)" if answer.votes else ""
                parts.append(f"{head}{count}:\n{self.format(grid)}")
        return "\n".join(parts)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": "ARC task",
            "style": "colours",
            "cell_px": 26,
            "boxes": None,
            "generate": None,
            "input_hint": "an ARC task as JSON",
            "json_input": True,
            "score_series": list(self.score_series),
        }

    def grid_of_tokens(self, tokens: np.ndarray, label: bool = False) -> Grid | None:
        try:
            return grid_list(seq_to_grid(np.asarray(tokens).reshape(-1)))
        except ValueError:
            return None

    def puzzle_of_example(
        self, grid: Grid, label: Grid | None, name: str, identifier: str, original: dict[str, Any] | None
    ) -> Puzzle:
        """The original task when the dataset keeps it (test_puzzles.json), else the example alone."""
        task = original
        if task is None:
            pair: dict[str, Any] = {"input": grid}
            if label is not None:
                pair["output"] = label
            task = {"train": [dict(pair, output=label or grid)], "test": [pair]}
        return self.parse(task, name=name, task_id=identifier)

    def score_dataset(
        self, predictions: dict[str, dict[str, np.ndarray]], data_dir: Path
    ) -> DatasetScore | None:
        """pass@k after voting over the dataset's held-out tasks, under both task rules (`pass@k`:
        fraction of a task's test inputs solved, TRM and the ARC Prize; `all_tests_pass@k`: all of
        them, HRM), and the Kaggle `submission.json`. The tasks come from test_puzzles.json, or from
        the test split of a dataset without it (HRM's builder)."""
        if not any((Path(data_dir) / f).exists() for f in (TEST_PUZZLES_FILE, IDENTIFIERS_FILE)):
            return None
        score = score_arc(predictions, Path(data_dir))
        return DatasetScore(score.summary, score.format(), {"submission.json": score.submission()})

    def known_answer(self, puzzle: Puzzle) -> Grid | None:
        expected = puzzle.payload.test[0][1]
        return None if expected is None else grid_list(expected)
