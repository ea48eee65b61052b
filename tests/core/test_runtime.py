"""Start-up tuning of a server process."""

from __future__ import annotations

import subprocess
import sys


def test_tune_gc_freezes_startup_objects_and_raises_the_young_threshold() -> None:
    # In a child process: freezing is process-wide and must not leak into the test run.
    code = (
        "import gc\n"
        "from covernet.core.runtime import GC_GEN0_THRESHOLD, tune_gc\n"
        "before = gc.get_freeze_count()\n"
        "tune_gc()\n"
        "assert gc.get_freeze_count() > before\n"
        "assert gc.get_threshold()[0] == GC_GEN0_THRESHOLD\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
