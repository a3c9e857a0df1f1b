"""Frame cost of rendering a streamed answer as Markdown: `python -m bench.markdown_frames`
(about a minute), or `--smoke` (seconds).

Streams a long answer full of code blocks and tables (20,000 tokens) through StreamingMarkdown
on the Markdown test page (tests/e2e/pages/markdown.html, served here under the app's
Content-Security-Policy) in headless Chromium, and times the main-thread work of one frame:
update() and flush() (the render), then a forced layout. It streams two windows of 400 tokens,
one token per frame, around token 1,000 and around token 20,000, in two views, their frames
interleaved (so that the load of a shared machine weighs on both alike), after an unmeasured
run to warm the JIT; it prints the median and p90 of each window and their ratio. Streaming
costs the same per frame however long the answer is when the ratio stays near 1 (the target:
at most 1.5).

The page is served cross-origin isolated (COOP and COEP), which gives performance.now() 5 µs
resolution instead of 100 µs.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import json
import os
import re
import shutil
import statistics
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from chatapp.security import CONTENT_SECURITY_POLICY
from harness.processes import ROOT, free_port

PAGE = "/tests/e2e/pages/markdown.html"
BENCH = "([tokens, windows]) => window.markdown.bench(tokens, windows)"
TOKEN = re.compile(r"\s*(?:[A-Za-z]{1,6}|\d{1,3}|[^\sA-Za-z\d])|\s+")


class _StaticHandler(http.server.SimpleHTTPRequestHandler):
    """The repository's files, with the headers the chat page is served with."""

    def end_headers(self) -> None:
        self.send_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        super().end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base class's name)
        pass


@contextlib.contextmanager
def static_server(root: Path = ROOT) -> Iterator[str]:
    """Serve `root` on 127.0.0.1 and a free port, in a thread, until the block ends; its URL."""
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", free_port()), functools.partial(_StaticHandler, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, name="static-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def answer_text(tokens: int) -> str:
    """A long, deterministic answer in the shape models write: headings, prose, code, tables."""
    sections: list[str] = []
    i = 0
    while sum(len(TOKEN.findall(s)) for s in sections) < tokens:
        i += 1
        sections.append(
            f"## Step {i}: tune the batch size\n\n"
            f"With **{i * 8} workers** the `queue_depth` settles at ${i}\\sqrt{{n}}$; see the "
            f"[notes](https://example.com/notes/{i}) for why, and ~~the old rule~~ the new one.\n\n"
            f"```python\ndef step_{i}(items, scale={i}):\n"
            f'    """Rescale the items of step {i}, largest first."""\n'
            f"    result = []\n    for item in items:\n        if item.value > {i}:\n"
            f"            result.append(item.value * scale)\n"
            f"    return sorted(result, reverse=True)\n```\n\n"
            f"| metric | before | after | change |\n|---|--:|--:|--:|\n"
            f"| latency (ms) | {100 + i} | {80 + i} | -{20}% |\n"
            f"| throughput | {1000 + i} | {1300 + i} | +30% |\n"
            f"| errors | {i % 7} | 0 | -100% |\n\n"
            f"- [x] measured step {i}\n- [ ] roll out with `--scale {i}`\n\n"
        )
    return "".join(sections)


def tokenize(text: str) -> list[str]:
    """Cut text into pieces the size of a model's tokens (a short word or a symbol, with the
    whitespace before it)."""
    tokens = TOKEN.findall(text)
    assert "".join(tokens) == text
    return tokens


@dataclass(frozen=True)
class Window:
    around: int
    frames: int
    median_ms: float
    p90_ms: float


def measure(page_url: str, tokens: list[str], windows: list[tuple[int, int]]) -> dict[str, Any]:
    """Stream `tokens` on the test page; the frame times inside each window."""
    from playwright.sync_api import sync_playwright  # the bench's one browser dependency

    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        raise SystemExit("Chromium is not installed (Debian: apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True)
        try:
            page = browser.new_page(viewport={"width": 900, "height": 800})
            page.goto(page_url)
            page.wait_for_selector("body[data-ready]")
            # A first, unmeasured run, so that the first window does not time the JIT warming up.
            page.evaluate(BENCH, [tokens[:2_000], [(0, 1_000), (1_000, 2_000)]])
            measured: dict[str, Any] = page.evaluate(BENCH, [tokens, windows])
            return measured
        finally:
            browser.close()


def run(total: int, at: tuple[int, int], width: int) -> tuple[list[Window], dict[str, Any]]:
    tokens = tokenize(answer_text(total + width))
    windows = [(max(0, n - width // 2), n + width // 2) for n in at]
    with static_server() as url:
        result = measure(url + PAGE, tokens, windows)
    summary = []
    for n, samples in zip(at, result["samples"], strict=True):
        ordered = sorted(samples)
        p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
        summary.append(Window(n, len(samples), statistics.median(samples), p90))
    info = {"tokens": len(tokens), "characters": result["characters"], "elements": result["elements"]}
    return summary, info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="a short run: 2,000 tokens, seconds")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if args.smoke:
        summary, info = run(total=2_000, at=(200, 2_000), width=100)
    else:
        summary, info = run(total=20_000, at=(1_000, 20_000), width=400)
    first, last = summary
    ratio = last.median_ms / first.median_ms if first.median_ms else float("inf")
    print(
        f"markdown frames: {info['tokens']} tokens, {info['characters']} characters, "
        f"{info['elements']} elements at the end"
    )
    for window in summary:
        print(
            f"  around token {window.around:>6}: median {window.median_ms:.3f} ms, "
            f"p90 {window.p90_ms:.3f} ms ({window.frames} frames)"
        )
    verdict = "within" if ratio <= 1.5 else "OVER"
    print(f"  ratio (token {last.around} / token {first.around}): {ratio:.2f} ({verdict} the 1.5 target)")
    if args.json:
        args.json.write_text(json.dumps({**info, "windows": [asdict(w) for w in summary], "ratio": ratio}))


if __name__ == "__main__":
    main()
