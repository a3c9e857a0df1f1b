"""The abuse soak's report (bench/abuse.py): time to first token with and without abuse, the
worker's memory and file descriptors, the abusers' totals, and the verdict."""

from __future__ import annotations

import os
from collections import Counter
from typing import TYPE_CHECKING, Any

from bench.stats import percentile

if TYPE_CHECKING:
    from bench.abuse import Outcome

# Growth is judged on the samples taken this long into the abuse and later (by then abusers
# have been admitted, timed out by the header or body timeout, and come back).
WARM_UP_S = 30.0
# How much the worker may grow under abuse, from the first of those samples to the last. A full
# run refuses over a million connections and admits about a thousand: 10 MiB is under 10 bytes a
# refusal, and one descriptor lost in twenty admitted connections would pass 50.
RSS_MARGIN_MIB = 10.0
FD_MARGIN = 50
IDLE_MARGIN = 2  # fds and greenlets once abusers and streams are gone, against the counts before


def sample_line(s: dict[str, Any]) -> str:
    when = f"abuse +{s['into_abuse_s']:.0f} s" if s["phase"] == "abuse" else s["phase"]
    line = (
        f"t={s['t']:>5.0f} s  {when:<14} CPU {s['cpu_pct']:>3}%  RSS {s['rss_mib']:6.1f} MiB"
        f"  fds {s['fds']:>4} ({s['fds_low']}-{s['fds_high']})  streams {s['streams']}"
        f"  greenlets {s['greenlets']}"
    )
    if "abusers" in s:
        a = s["abusers"]
        line += (
            f"  | abusers held {a['held']}, 429 {a['refused_429']}, 408 {a['answered_408']},"
            f" closed unanswered {a['closed_unanswered']}, connect failures {a['connect_failed']}"
        )
    return line


def ttft_table(outcomes: list[Outcome]) -> list[str]:
    base, abuse = (
        [o.ttft_s * 1000 for o in outcomes if o.phase == phase and o.ttft_s is not None]
        for phase in ("baseline", "abuse")
    )
    heads = f"{f'baseline (n={len(base)})':>18}  {f'under abuse (n={len(abuse)})':>21}"
    lines = [f"time to first token  {heads}  ratio"]
    for label, p in (("median", 50), ("p99", 99)):
        b, a = percentile(base, p), percentile(abuse, p)
        lines.append(f"  {label:<18} {b:>15.1f} ms {a:>19.1f} ms  {a / b:.2f}x")
    slow = [sum(t > 1000 for t in phase) for phase in (base, abuse)]
    lines.append(f"  {'over 1 s':<18} {slow[0]:>18} {slow[1]:>22}")
    return lines


def worker_table(samples: list[dict[str, Any]], warmed: list[dict[str, Any]]) -> list[str]:
    under = [s for s in samples if s["phase"] == "abuse"]
    peak = {k: max(s[k] or 0 for s in under) for k in ("rss_mib", "fds", "fds_high", "streams", "greenlets")}
    rows = [(s["phase"], s) for s in samples if s["phase"] == "idle, before"]
    rows += [(f"abuse +{s['into_abuse_s']:.0f} s", s) for s in (warmed[:1] + warmed[-1:] if warmed else [])]
    rows += [("abuse, peak", {**peak, "fds_low": min(s["fds_low"] for s in under)})] if under else []
    rows += [(s["phase"], s) for s in samples if s["phase"] in ("abusers only", "idle, after")]
    lines = [f"worker{'':<16}{'RSS MiB':>9}{'fds':>6}{'fds since last':>16}{'streams':>9}{'greenlets':>11}"]
    for label, s in rows:
        fds_range = f"{s['fds_low']}-{s['fds_high']}"
        lines.append(
            f"  {label:<20}{s['rss_mib']:>9.1f}{s['fds']:>6}{fds_range:>16}"
            f"{s['streams']!s:>9}{s['greenlets']!s:>11}"
        )
    return lines


ABUSER_COLUMNS = {  # key: heading
    "opened": "opened",
    "refused_429": "429",
    "answered_408": "408",
    "closed_unanswered": "closed, no answer",
    "other_answers": "other answers",
    "connect_failed": "connect failed",
    "longest_held_s": "longest held s",
}


def abuser_table(abusers: dict[str, dict[str, Any]]) -> list[str]:
    width = {key: max(9, len(heading) + 2) for key, heading in ABUSER_COLUMNS.items()}
    lines = ["abusers (totals)" + "".join(f"{h:>{width[k]}}" for k, h in ABUSER_COLUMNS.items())]
    for kind, stats in abusers.items():
        lines.append(f"  {kind:<14}" + "".join(f"{stats.get(k, '-')!s:>{width[k]}}" for k in ABUSER_COLUMNS))
    return lines


def judge(samples: list[dict[str, Any]], warmed: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """What the run shows of memory and fds: (report lines, failures).

    Under abuse the fd count swings by hundreds within a second: connections the worker has
    accepted and not yet refused (at most worker_connections). A leak raises the lowest count
    between two samples; a swing does not: so fds are judged on that lowest count."""
    lines, failures = [], []
    if len(warmed) < 2:
        lines.append(f"growth under abuse: not judged (fewer than two samples after {WARM_UP_S:.0f} s)")
    else:
        first, last = warmed[0], warmed[-1]
        span = f"abuse +{first['into_abuse_s']:.0f} s to +{last['into_abuse_s']:.0f} s"
        rss = round(last["rss_mib"] - first["rss_mib"], 1)
        fds = last["fds_low"] - first["fds_low"]
        lines.append(
            f"RSS, {span}: {first['rss_mib']} -> {last['rss_mib']} MiB ({rss:+}; margin {RSS_MARGIN_MIB})"
        )
        lines.append(
            f"lowest fds, {span}: {first['fds_low']} -> {last['fds_low']} ({fds:+}; margin {FD_MARGIN})"
        )
        if rss > RSS_MARGIN_MIB:
            failures.append(f"memory grew by {rss} MiB under abuse")
        if fds > FD_MARGIN:
            failures.append(f"file descriptors grew by {fds} under abuse")
    before = next(s for s in samples if s["phase"] == "idle, before")
    after = next(s for s in samples if s["phase"] == "idle, after")
    for what in ("fds", "greenlets"):
        lines.append(f"{what} idle: {before[what]} before, {after[what]} after (margin {IDLE_MARGIN})")
        if after[what] is None or after[what] > before[what] + IDLE_MARGIN:
            failures.append(f"{what} did not return to their idle count ({before[what]}): {after[what]}")
    return lines, failures


def report(
    heading: str, result: dict[str, Any], outcomes: list[Outcome], samples: list[dict[str, Any]]
) -> tuple[list[str], list[str]]:
    """The printed report under `heading`, and the reasons the run failed (none: it passed)."""
    normal = [o for o in outcomes if o.phase != "warm-up"]
    lost = Counter(o.lost for o in normal if o.lost is not None)
    warmed = [s for s in samples if s["phase"] == "abuse" and s["into_abuse_s"] >= WARM_UP_S]
    lines = [
        heading,
        f"normal streams: started {len(normal)}, completed {len(normal) - lost.total()}, lost {lost.total()}"
        + (f" ({dict(lost)})" if lost else ""),
        *ttft_table(normal),
        *worker_table(samples, warmed),
    ]
    judged, failures = judge(samples, warmed)
    lines += judged + abuser_table(result["abusers"])
    shares = ", ".join(f"{name} {pct}%" for name, pct in result["cpu_pct"].items())
    lines.append(f"CPU under abuse, % of one core ({os.cpu_count()} cores): {shares}")
    if lost:
        failures.insert(0, f"{lost.total()} normal stream(s) lost")
    if any(o.lost for o in outcomes if o.phase == "warm-up"):
        failures.insert(0, "a warm-up stream failed, before any abuse")
    return lines, failures
