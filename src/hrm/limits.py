"""The limits every input is held to, in one place. A recipe, a model card (`model.json`), a
reference config, a command-line option or a trace that asks for more is refused with one line,
before anything is allocated or written, instead of exhausting memory or running for hours.

Models (checked whenever an architecture is validated: recipes at load, model cards, `init_from`):

    MAX_MODEL_BYTES   8 GiB    weights and buffers in float32, estimated from the config before the
                               model is built (`RecursiveConfig.weight_bytes`)
    MAX_CYCLES        32       H_cycles, L_cycles (the published recipes use 2 to 6)
    MAX_LAYERS        64       H_layers, L_layers (published: 1 to 8)
    MAX_SEGMENTS      256      halt_max_steps and `hrm solve --segments` (published: 16)
    MAX_HALT_MARGIN   100      |halting margin| (`hrm solve --halt-margin`, a card's halt_margin)
    MAX_SEQ_LEN       16384    positions of a sequence, puzzle-embedding positions included
                               (ARC and 30x30 mazes use 900 + 16)

Training (TrainConfig; every float must also be finite):

    MAX_COUNT         2**40    epochs, max_steps and every interval or step count
    MAX_SEED          2**63-1  seed (and seeds must be >= 0)
    MAX_THREADS       1024     threads
    MAX_MINUTES       1e6      max_minutes (about two years; must be > 0)
    global_batch_size          at most the examples one epoch of the training split supplies

Commands:

    MAX_BATCH_ROWS    65536    `--batch-size` of `hrm eval` and `hrm solve`
    MAX_VIEWS         1024     `hrm solve --views`; ARC's 8 dihedral views x (1 + `--colour-perms`)
    MAX_RECIPE_BYTES  1 MiB    a recipe or a run's config.yaml
    MAX_CARD_BYTES    1 MiB    a model card (model.json)
    MAX_TRACE_BYTES   64 MiB   a trace read by `hrm viz --export`
    MAX_TRACE_STEPS   4096     inner steps of one segment of a trace
"""

from __future__ import annotations

MAX_MODEL_BYTES = 8 << 30
MAX_CYCLES = 32
MAX_LAYERS = 64
MAX_SEGMENTS = 256
MAX_HALT_MARGIN = 100.0
MAX_SEQ_LEN = 16384

MAX_COUNT = 1 << 40
MAX_SEED = (1 << 63) - 1
MAX_THREADS = 1024
MAX_MINUTES = 1e6

MAX_BATCH_ROWS = 65536
MAX_VIEWS = 1024
MAX_RECIPE_BYTES = 1 << 20
MAX_CARD_BYTES = 1 << 20
MAX_TRACE_BYTES = 64 << 20
MAX_TRACE_STEPS = 4096


def gib(n: int) -> str:
    """A byte count in GiB for messages ("8.0 GiB")."""
    return f"{n / (1 << 30):.1f} GiB"
