"""Running a probe: a Python script in a subprocess of its own, where gevent may monkey-patch the
world without touching the test process, which prints its report as JSON on its last line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from harness.processes import ROOT


def run_probe(
    args: list[str], *, env: dict[str, str] | None = None, timeout_s: float = 120
) -> dict[str, Any]:
    """`python <args>` from the repository root; its report, with what it wrote to stderr as "stderr".
    A probe that fails shows its stderr."""
    result = subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return {**report, "stderr": result.stderr}
