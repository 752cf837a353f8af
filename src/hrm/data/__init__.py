"""Puzzle datasets.

Modules:

* `hrm.data.format`: the on-disk format (metadata, writing, reading, validation); torch-free.
* `hrm.data.dataset`: `PuzzleDataset`, the training and evaluation batches (imports torch).
* `hrm.data.build`: what the builders share: `BuildResult`, the output-directory check, constants.
* `hrm.data.sudoku`, `hrm.data.maze`, `hrm.data.arc`: the builders (`build_sudoku_dataset`,
  `build_maze_dataset`, `build_arc_dataset`) and their puzzle code; `hrm.data.augment` holds the grid
  symmetries that maze and ARC share; `hrm.data.arc_eval` scores ARC predictions.
* `hrm.data.cli`: the `hrm data ...` commands.

Importing this package imports nothing else; import the module you need.
"""
