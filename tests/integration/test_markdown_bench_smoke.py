"""The Markdown frame benchmark still runs in Chromium and reports every figure."""

import json
import re
import subprocess
import sys

import pytest

from harness.processes import ROOT
from tests.integration.test_bench_smoke import DEADLINE_S

pytestmark = pytest.mark.timeout(DEADLINE_S + 60)


def test_markdown_frame_bench_smoke_run(tmp_path):
    out = tmp_path / "frames.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench.markdown_frames", "--smoke", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,  # only to end a run that hangs (see test_bench_smoke)
    )
    assert run.returncode == 0, run.stdout + run.stderr
    window = r"around token +200: median \d+\.\d+ ms, p90 \d+\.\d+ ms \(100 frames\)"
    assert re.search(window, run.stdout), run.stdout
    assert re.search(r"around token +2000: median \d+\.\d+ ms", run.stdout), run.stdout
    assert re.search(r"ratio \(token 2000 / token 200\): \d+\.\d+", run.stdout), run.stdout
    figures = json.loads(out.read_text())
    assert [w["frames"] for w in figures["windows"]] == [100, 100]
    assert all(w["median_ms"] > 0 for w in figures["windows"])
    assert figures["tokens"] >= 2_000
