"""chatapp against an earlier revision of itself, side by side: `python -m bench.ab --against <rev>`.

Both run under gunicorn (one gevent worker each) in front of one bench upstream:
the working tree, and `<rev>` checked out into a temporary git worktree. Rounds
of the same load go to each in turn (A, B, A, B, ...), so that both see the same
machine; the report is each one's median CPU per relayed token and the ratio.
That is how a refactor shows it cost nothing: measured in one run, not against
figures from another day.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import tempfile
from pathlib import Path

from bench.__main__ import Load, Target, run_load, warm_up
from bench.processes import BenchUpstream, chatapp_server, process_cpu_seconds
from harness.processes import ROOT


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", required=True, help="the git revision to compare with")
    parser.add_argument("--streams", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    load = Load(streams=args.streams, tokens_per_s=20, tokens=200, ramp_s=3.0)

    with tempfile.TemporaryDirectory() as folder:
        worktree = Path(folder) / "before"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(worktree), args.against], cwd=ROOT, check=True
        )
        try:
            with (
                BenchUpstream() as upstream,
                chatapp_server(upstream) as now,
                chatapp_server(upstream, cwd=worktree) as before,
            ):
                assert upstream.process is not None
                targets = {}
                for name, server in (("now", now), (args.against[:12], before)):
                    assert server.process is not None
                    pids = [server.process.pid, *server.worker_pids()]
                    targets[name] = Target(name, server.port, "/api/chat", pids)
                    asyncio.run(warm_up(targets[name]))
                cpu: dict[str, list[float]] = {name: [] for name in targets}
                for _ in range(args.rounds):
                    for name, target in targets.items():
                        before_cpu = process_cpu_seconds(target.pids)
                        result = asyncio.run(run_load(target, load, upstream.process.pid))
                        used = process_cpu_seconds(target.pids) - before_cpu
                        cpu[name].append(used / result.tokens * 1e6)
                        figure = f"cpu {cpu[name][-1]:.1f} us/token"
                        print(f"{name:<14} N={load.streams} errors={result.errors} {figure}", flush=True)
                medians = {name: statistics.median(values) for name, values in cpu.items()}
                (a, b) = medians.values()
                print("\nmedian cpu per token: " + ", ".join(f"{n} {m:.1f} us" for n, m in medians.items()))
                print(f"ratio now / {args.against[:12]}: {a / b:.2f}x")
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=ROOT, check=False)


if __name__ == "__main__":
    main()
