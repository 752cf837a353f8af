from __future__ import annotations

import subprocess
import sys

SNIPPET = "from hrm.runtime import tune_cpu_allocator; print(tune_cpu_allocator())"


def _run(**env):
    import os

    return subprocess.run(
        [sys.executable, "-c", SNIPPET], capture_output=True, text=True, env={**os.environ, **env}, timeout=60
    ).stdout.strip()


def test_allocator_tuning_applies_on_glibc_linux_and_can_be_turned_off():
    expected = "True" if sys.platform.startswith("linux") else "False"
    assert _run(HRM_NO_MALLOC_TUNING="") == expected
    assert _run(HRM_NO_MALLOC_TUNING="1") == "False"
