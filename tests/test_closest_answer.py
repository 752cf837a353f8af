"""Training on the right answer the model finds most likely (`targets: closest_answer`): the maze
task's choice among shortest paths, checked against enumerating every shortest path."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from hrm.data import maze as maze_data
from hrm.tasks import task_named
from hrm.tasks.maze import closest_shortest_paths


def all_shortest_labels(grid: np.ndarray) -> list[np.ndarray]:
    """Every label that marks a shortest S->G path (enumerated; small mazes only)."""
    s = tuple(int(v) for v in np.argwhere(grid == maze_data.START)[0])
    g = tuple(int(v) for v in np.argwhere(grid == maze_data.GOAL)[0])
    from_s = maze_data.bfs_distances(grid != maze_data.WALL, s)
    paths = [[s]]
    for _ in range(int(from_s[g])):
        paths = [
            [*p, (p[-1][0] + dr, p[-1][1] + dc)]
            for p in paths
            for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1))
            if 0 <= p[-1][0] + dr < grid.shape[0]
            and 0 <= p[-1][1] + dc < grid.shape[1]
            and from_s[p[-1][0] + dr, p[-1][1] + dc] == from_s[p[-1]] + 1
        ]
    labels = []
    for p in paths:
        if p[-1] != g:
            continue
        label = grid.copy()
        for cell in p[1:-1]:
            label[cell] = maze_data.PATH
        labels.append(label)
    return labels


def token_loss(label: np.ndarray, logprobs: torch.Tensor) -> float:
    flat = torch.as_tensor(label.reshape(-1)).long()
    return float(-logprobs[torch.arange(flat.numel()), flat].sum())


@pytest.mark.parametrize("seed", range(6))
def test_the_closest_shortest_path_is_the_least_loss_one(seed):
    rng = np.random.default_rng(seed)
    mazes = []
    while len(mazes) < 12:  # mazes with several shortest paths, and a few with one
        grid, label = maze_data.generate_maze(9, rng, min_path_length=8, loop_fraction=0.3)
        count = len(all_shortest_labels(grid))
        if count > 1 or len(mazes) % 4 == 3:
            mazes.append((grid, label))
    inputs = torch.as_tensor(np.stack([g.reshape(-1) for g, _ in mazes])).to(torch.int32)
    labels = torch.as_tensor(np.stack([lab.reshape(-1) for _, lab in mazes])).to(torch.int32)
    logprobs = torch.log_softmax(
        torch.randn(len(mazes), 81, maze_data.VOCAB_SIZE, generator=torch.Generator().manual_seed(seed)) * 3,
        -1,
    )
    chosen = closest_shortest_paths(inputs, labels, logprobs)
    assert chosen.dtype == labels.dtype and chosen.shape == labels.shape
    several = 0
    for row, (grid, _) in enumerate(mazes):
        options = all_shortest_labels(grid)
        several += len(options) > 1
        got = chosen[row].numpy().reshape(9, 9)
        assert maze_data.check_maze_pair(grid, got) is None
        losses = [token_loss(option, logprobs[row].double()) for option in options]
        assert token_loss(got, logprobs[row].double()) == pytest.approx(min(losses), abs=1e-6)
    assert several >= 6
    assert [maze_data.count_shortest_paths(g) for g, _ in mazes] == [
        len(all_shortest_labels(g)) for g, _ in mazes
    ]


def test_a_prediction_that_is_a_shortest_path_becomes_the_label():
    rng = np.random.default_rng(3)
    for _ in range(20):
        grid, label = maze_data.generate_maze(11, rng, min_path_length=10, loop_fraction=0.3)
        for option in all_shortest_labels(grid):
            logprobs = torch.log_softmax(
                torch.nn.functional.one_hot(
                    torch.as_tensor(option.reshape(-1)).long(), maze_data.VOCAB_SIZE
                ).float()
                * 5,
                -1,
            )
            chosen = closest_shortest_paths(
                torch.as_tensor(grid.reshape(1, -1)), torch.as_tensor(label.reshape(1, -1)), logprobs[None]
            )
            assert np.array_equal(chosen[0].numpy(), option.reshape(-1))


def test_rows_that_are_not_mazes_keep_their_labels():
    rng = np.random.default_rng(0)
    grid, label = maze_data.generate_maze(7, rng)
    walled = grid.copy()  # G cut off: no path
    goal = tuple(np.argwhere(walled == maze_data.GOAL)[0])
    for dr, dc in itertools.product((-1, 0, 1), repeat=2):
        r, c = goal[0] + dr, goal[1] + dc
        if (dr or dc) and 0 <= r < 7 and 0 <= c < 7 and walled[r, c] != maze_data.START:
            walled[r, c] = maze_data.WALL
    inputs = torch.as_tensor(np.stack([grid.reshape(-1), walled.reshape(-1), np.zeros(49, np.uint8)]))
    labels = torch.as_tensor(np.stack([label.reshape(-1), label.reshape(-1), np.zeros(49, np.uint8)]))
    chosen = closest_shortest_paths(inputs, labels, torch.zeros(3, 49, maze_data.VOCAB_SIZE))
    assert torch.equal(chosen[1:], labels[1:])
    assert maze_data.count_shortest_paths(walled) == 0
    assert maze_data.check_maze_pair(grid, chosen[0].numpy().reshape(7, 7)) is None


def test_only_tasks_with_several_answers_pick_one():
    assert task_named("maze").several_answers
    assert not task_named("sudoku").several_answers
    with pytest.raises(ValueError, match="one right answer"):
        task_named("sudoku").closest_answer_labels(
            torch.zeros(1, 81), torch.zeros(1, 81), torch.zeros(1, 81, 11)
        )


def two_path_maze() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 7x7 maze with exactly two shortest paths: (input, its stored label, the other path's label)."""
    rng = np.random.default_rng(11)
    while True:
        grid, label = maze_data.generate_maze(7, rng, min_path_length=6, loop_fraction=0.5)
        options = all_shortest_labels(grid)
        if len(options) == 2:
            other = next(o for o in options if not np.array_equal(o, label))
            return grid, label, other


def test_the_loss_head_scores_the_chosen_answer_as_the_label():
    from hrm.evaluate import evaluate
    from hrm.models import ACTLossHead
    from tiny_models import tiny_model

    grid, label, other = two_path_maze()
    model = tiny_model("trm", seq_len=49, vocab_size=maze_data.VOCAB_SIZE)
    batch = {
        "inputs": torch.as_tensor(grid.reshape(1, -1)).long(),
        "labels": torch.as_tensor(label.reshape(1, -1)).long(),
        "puzzle_identifiers": torch.zeros(1, dtype=torch.long),
    }
    alternative = torch.as_tensor(other.reshape(1, -1)).long()
    seen = []

    def pick_other(inputs, labels, logprobs):
        seen.append((inputs.clone(), labels.clone(), logprobs.shape))
        return alternative

    chosen = ACTLossHead(model, "softmax_cross_entropy", answer_labels=pick_other)
    plain = ACTLossHead(model, "softmax_cross_entropy")
    torch.manual_seed(0)
    a = chosen(chosen.initial_carry(batch), batch)
    torch.manual_seed(0)
    b = plain(plain.initial_carry({**batch, "labels": alternative}), {**batch, "labels": alternative})
    assert torch.equal(seen[0][0], batch["inputs"]) and torch.equal(seen[0][1], batch["labels"])
    assert seen[0][2] == (1, 49, maze_data.VOCAB_SIZE)
    assert torch.allclose(a.loss, b.loss)
    assert all(torch.equal(a.metrics[k], b.metrics[k]) for k in a.metrics)

    # Evaluation scores the same labels as training.
    class OneBatch:
        def __init__(self, labels):
            self.metadata = type("Meta", (), {"sets": ["all"]})()
            self.batch = {**batch, "labels": labels}

        def __iter__(self):
            yield "all", self.batch, 1

    ev_chosen = evaluate(chosen, OneBatch(batch["labels"])).metrics["all"]
    ev_plain = evaluate(plain, OneBatch(alternative)).metrics["all"]
    ev_label = evaluate(plain, OneBatch(batch["labels"])).metrics["all"]
    assert ev_chosen == ev_plain and ev_chosen["lm_loss"] != ev_label["lm_loss"]


def test_training_on_closest_answers_runs_and_refuses_a_kind_with_one_answer(tmp_path):
    from hrm.config import load_config
    from hrm.data.maze import build_maze_dataset
    from hrm.data.sudoku import build_sudoku_dataset
    from hrm.errors import ConfigError
    from hrm.evaluate import evaluate_cli
    from hrm.training import train
    from tiny_models import TINY_ARCH

    mazes, sudokus = tmp_path / "maze7", tmp_path / "sudoku4"
    build_maze_dataset(mazes, count=40, test_count=8, size=7, loop_fraction=0.5, seed=0)
    build_sudoku_dataset(sudokus, count=40, size=4, difficulty="easy", test_count=8, seed=0)
    common = [
        "global_batch_size=8",
        "max_steps=3",
        "eval_interval=null",
        "lr_warmup_steps=1",
        "progress=false",
        "tensorboard=false",
        "threads=1",
        "targets=closest_answer",
    ]
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"arch: {dict(TINY_ARCH)}\ndata_path: {mazes}\n")
    result = train(load_config(recipe, [*common, f"run_dir={tmp_path / 'run'}"]))
    assert result.step == 3
    evals = [
        line for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines() if '"eval"' in line
    ]
    assert len(evals) == 1
    with pytest.raises(ConfigError) as err:
        train(load_config(recipe, [*common, f"data_path={sudokus}", f"run_dir={tmp_path / 'run2'}"]))
    message = str(err.value)
    assert "\n" not in message and str(sudokus) in message and "targets=label" in message
    assert not (tmp_path / "run2").exists()

    # hrm eval scores against the label, or (--targets closest_answer) against any shortest path.
    label = evaluate_cli(str(tmp_path / "run"), out=str(tmp_path / "ev1"))
    closest = evaluate_cli(str(tmp_path / "run"), out=str(tmp_path / "ev2"), targets="closest_answer")
    assert (label["targets"], closest["targets"]) == ("label", "closest_answer")
    assert closest["metrics"]["all"]["count"] == label["metrics"]["all"]["count"] == 8
    # Most of these mazes have several shortest paths: the closest one costs less than the stored one.
    assert closest["metrics"]["all"]["lm_loss"] < label["metrics"]["all"]["lm_loss"]
    assert closest["metrics"]["all"]["exact_accuracy"] >= label["metrics"]["all"]["exact_accuracy"]
    sudoku_run = tmp_path / "sudoku_run"
    common[-1] = "targets=label"
    train(load_config(recipe, [*common, f"data_path={sudokus}", f"run_dir={sudoku_run}"]))
    with pytest.raises(ConfigError) as err:
        evaluate_cli(str(sudoku_run), targets="closest_answer")
    message = str(err.value)
    assert "\n" not in message and "--targets closest_answer" in message and str(sudokus) in message


def test_the_eval_command_offers_every_target():
    import argparse

    from hrm.commands import register
    from hrm.config import TARGETS

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    assert parser.parse_args(["eval", "run", "--targets", "closest_answer"]).targets == "closest_answer"
    assert parser.parse_args(["eval", "run"]).targets == "label"
    action = next(
        a for a in parser._subparsers._group_actions[0].choices["eval"]._actions if a.dest == "targets"
    )
    assert tuple(action.choices) == TARGETS
