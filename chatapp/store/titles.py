"""A conversation's automatic title: its first user message, on one line, shortened on a word boundary."""

from __future__ import annotations

TITLE_CHARS = 60
ELLIPSIS = "…"


def title_from(text: str, limit: int = TITLE_CHARS) -> str | None:
    """`text` on one line, at most `limit` characters: cut at a space and ended with "…" when longer.

    None when the text holds nothing but whitespace.
    """
    line = " ".join(text.split())
    if not line:
        return None
    if len(line) <= limit:
        return line
    # One character more than fits, so that a space just past the last fitting word counts.
    cut = line[: limit - len(ELLIPSIS) + 1]
    space = cut.rfind(" ")
    # Back to the last space, unless that loses more than half the title (one very long word).
    head = cut[:space] if space >= limit // 2 else cut[: limit - len(ELLIPSIS)]
    return head.rstrip(" ,;:.-–—") + ELLIPSIS
