"""A conversation's automatic title (chatapp/store/titles.py)."""

from __future__ import annotations

import pytest

from chatapp.store.titles import title_from


@pytest.mark.parametrize(
    ("text", "title"),
    [
        ("hi", "hi"),
        ("  several\n\tlines  here ", "several lines here"),
        ("word " * 20, "word word word word word word word word word word word word…"),
        ("x" * 80, "x" * 59 + "…"),
        ("   ", None),
    ],
)
def test_title_from_keeps_one_line_and_cuts_on_a_word_boundary(text: str, title: str | None) -> None:
    assert title_from(text) == title
