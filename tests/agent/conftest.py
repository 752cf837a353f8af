from __future__ import annotations

import pytest

pytest.importorskip("minigrid", reason="the agent tests need the agent extra (minigrid)")

_TINY = {
    "hidden_size": 16,
    "num_heads": 2,
    "expansion": 1.0,
    "cell_dim": 4,
    "conv_channels": 4,
}


@pytest.fixture
def tiny():
    """A tiny policy architecture (PolicyConfig fields) for quick tests."""
    return dict(_TINY)


@pytest.fixture(scope="session")
def tiny_demos(tmp_path_factory):
    """Bot demonstrations of UnlockLocal: 6 train and 3 held-out episodes."""
    from hrm.agent import demos

    root = tmp_path_factory.mktemp("agent-demos")
    train = demos.save(demos.generate("UnlockLocal", 6, progress=False), root / "train")
    test = demos.save(demos.generate("UnlockLocal", 3, split="test", progress=False), root / "test")
    return train, test
