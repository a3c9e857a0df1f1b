"""The chat page as every browser test drives it, after flaskr's `AuthActions`: what a person does
(send, stop), what a test waits for (an answer started, grown, marked, stored), what the page shows
and what the server stored; and `CspViolations`, the one recorder of Content-Security-Policy
violations.

Each wait is on a condition in the page, under Playwright's deadline; none sleeps a fixed time.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from playwright.sync_api import Dialog, Locator, Page
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.support.fake_upstream import RequestRecord

LAST_ANSWER = "#log > .message.assistant:last-child"
LAST_USER = "#log > .message.user >> nth=-1"

# How soon after Stop is pressed the model's request must be closed. From before the click, a stop
# took 41-103 ms in a full e2e run on the 2-core development VM (the click, the page's POST, the
# server closing the upstream): 3 s holds on a machine 4x slower with room to spare, and is still far
# below what a Stop that did not reach the model would take (the rest of a slow answer, 10 s or more;
# a heartbeat, 15 s; a silent model, until it gives up).
STOP_REACHES_THE_MODEL_WITHIN_S = 3.0

# The Markdown as the page's own renderer (the module chat.js uses) renders it in one piece: answers
# are Markdown, so what they show is not the model's characters.
_RENDERED = """async (text) => {
  const { renderMarkdown } = await import("/static/js/markdown.js");
  const box = document.createElement("div");
  box.append(renderMarkdown(text));
  return box.innerHTML;
}"""

# Resolves after the next paint. Playwright reports a page's errors and dialogs in order with its
# answers, so once this returns, whatever the page did up to that paint has been reported.
_AFTER_NEXT_PAINT = "() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))"

_LONGER_THAN = """([selector, chars]) =>
  (document.querySelector(selector + " .message-text")?.textContent.length ?? 0) > chars"""


class CspViolations:
    """The Content-Security-Policy violations a page reports. Made before the page's `goto`, it
    listens from before the first byte, so a violation while the page loads counts too."""

    _LISTEN = """window.__cspViolations = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI} ${e.sample}`));"""

    def __init__(self, page: Page) -> None:
        self._page = page
        page.add_init_script(self._LISTEN)

    def seen(self) -> list[str] | None:
        """What was reported so far, in order: directive, blocked address, sample. None when the
        listener is missing (the page was not loaded after this recorder was made)."""
        seen: list[str] | None = self._page.evaluate("() => window.__cspViolations ?? null")
        return seen


class ChatPage:
    """One chat page in a browser tab. Made as soon as the tab is, it records the page's problems
    (uncaught errors, and dialogs, which it dismisses) in `problems`."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.problems: list[str] = []
        page.on("pageerror", lambda error: self.problems.append(str(error)))
        page.on("dialog", self._dismiss)

    def _dismiss(self, dialog: Dialog) -> None:
        self.problems.append(f"dialog: {dialog.message}")
        dialog.dismiss()

    # --- what a person does ------------------------------------------------------------------

    def send(self, text: str, *, tap: bool = False) -> None:
        """Type `text` and send it with Enter, or with `tap` by tapping Send (as on a phone, where
        Enter makes a new line)."""
        # After a click that navigated (New chat), the new page's script runs only once it has
        # loaded: an Enter before that is a new line in the field, and nothing is sent.
        self.page.wait_for_load_state()
        self.page.fill("#prompt", text)
        if tap:
            self.page.click("#send")
        else:
            self.page.press("#prompt", "Enter")

    def stop(self) -> float:
        """Press Stop (the Send button, in its Stop mode); when, in `time.monotonic()`: taken before
        the click, so the time a stop takes includes the click's own."""
        stop = self.page.locator("#send[data-mode=stop]")
        stop.wait_for()
        pressed_at = time.monotonic()
        stop.click()
        return pressed_at

    # --- what a test waits for ---------------------------------------------------------------

    def wait_for_answer_started(self) -> None:
        """Until the last answer has its stream's id: the server started it (the model may not have
        said a word yet)."""
        self.page.wait_for_selector(f"{LAST_ANSWER}[data-stream-id]")

    def wait_for_answer_longer_than(self, chars: int) -> None:
        """Until the last answer shows more than `chars` characters."""
        self.page.wait_for_function(_LONGER_THAN, arg=[LAST_ANSWER, chars])

    def wait_for_answer_marked(self, state: str, timeout_ms: float | None = None) -> str:
        """The last answer's text once the page marks it `state`, whether or not it shows what the
        server stored yet (a dropped answer is marked before the stored text is read back)."""
        return self._wait_for_answer(f"{LAST_ANSWER}[data-state='{state}']", state, timeout_ms)

    def wait_for_answer_stored(self, state: str = "complete", timeout_ms: float | None = None) -> str:
        """The last answer's text once it is `state` and shows what the server stored: its id is known
        and no read-back is under way (after a stop the page reads the stored text back, and the model
        sees that next)."""
        selector = f"{LAST_ANSWER}[data-state='{state}'][data-id]:not([data-syncing])"
        return self._wait_for_answer(selector, state, timeout_ms)

    def _wait_for_answer(self, selector: str, state: str, timeout_ms: float | None) -> str:
        try:
            self.page.wait_for_selector(selector, timeout=timeout_ms)
        except PlaywrightTimeoutError:
            last = self.page.locator("#log > .message").last
            seen = last.evaluate("e => e.outerHTML.slice(0, 600)") if last.count() else "no message"
            status = self.page.locator("#status").text_content()
            pytest.fail(f"no {state} answer ({selector}); the page says {status!r}: {seen}")
        return self.answer_text()

    def after_next_paint(self) -> None:
        """Until the page has painted once more: what it did before has been reported by then."""
        self.page.evaluate(_AFTER_NEXT_PAINT)

    # --- what the page shows -----------------------------------------------------------------

    @property
    def last_answer(self) -> Locator:
        return self.page.locator(LAST_ANSWER)

    def answer_text(self) -> str:
        """The text the last answer shows."""
        return self.page.locator(f"{LAST_ANSWER} .message-text").text_content() or ""

    def answer_html(self, part: str = ".message-text") -> str:
        return self.page.locator(f"{LAST_ANSWER} {part}").inner_html()

    def rendered(self, markdown: str) -> str:
        """The HTML the page's own renderer makes of `markdown` in one piece."""
        html: str = self.page.evaluate(_RENDERED, markdown)
        return html

    def shows(self, markdown: str) -> bool:
        """Does the last answer show exactly this Markdown, rendered?"""
        return self.answer_html() == self.rendered(markdown)

    def shown(self) -> list[str]:
        """The text of every message on the page, in order."""
        return self.page.locator("#log > .message .message-text").all_text_contents()

    # --- what the server stored --------------------------------------------------------------

    def conversation_id(self) -> str:
        match = re.search(r"/c/([0-9a-f]{32})$", self.page.url)
        assert match, f"not a conversation's address: {self.page.url}"
        return match.group(1)

    def stored_answer(self) -> dict[str, Any]:
        """The last answer as the server stored it (what the model is told next time)."""
        origin = self.page.url.split("/c/", 1)[0]
        stored = self.page.request.get(f"{origin}/api/conversations/{self.conversation_id()}").json()
        answer_id = self.last_answer.get_attribute("data-id")
        return next(m for m in stored["messages"] if m["id"] == answer_id)


def assert_the_model_stopped(record: RequestRecord, stopped_at: float) -> None:
    """The model's request was closed by its client (chatapp), soon after Stop was pressed."""
    assert record.ended.wait(STOP_REACHES_THE_MODEL_WITHIN_S + 2), "the upstream request is still open"
    assert record.outcome == "client_closed"
    assert record.ended_at is not None
    took = record.ended_at - stopped_at
    assert took < STOP_REACHES_THE_MODEL_WITHIN_S, f"the model stopped {took:.2f} s after Stop"
