"""Training: `train(cfg)` runs (or resumes) a run on CPU, one GPU or many processes (torchrun).

Modules: `loop` (the loop itself, `train`, `train_from_cli`), `build` (a run's parts from its config),
`state` (RNG, carry, exploration draws, sampler position, resume state), `checkpointing` (the run
directory and `Checkpointer`), `ema` (the weight average and evaluating with it) and `metrics`
(metric windows, metrics.jsonl / TensorBoard / W&B, the progress bar).
"""

from hrm.training.build import Training, build_training
from hrm.training.loop import NonFiniteLossError, TrainResult, train, train_from_cli

__all__ = ["NonFiniteLossError", "TrainResult", "Training", "build_training", "train", "train_from_cli"]
