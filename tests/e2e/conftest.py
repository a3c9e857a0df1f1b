"""A real headless Chromium (Debian's package) driven by Playwright, against chatapp under gunicorn."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from harness.gunicorn import GunicornServer
from tests.conftest import ChatappServers
from tests.e2e.chat_page import ChatPage
from tests.support.fake_upstream import Behaviour, FakeUpstream

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


def chromium_path() -> str:
    found = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail("Chromium is not installed: scripts/test installs Debian's chromium package")
    return found


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True)
        yield browser
        browser.close()


@dataclass
class ChatServer:
    server: GunicornServer
    model: str

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture
def chat_server(
    chatapp_server: ChatappServers, upstream: FakeUpstream, tmp_path: Path
) -> Iterator[Callable[..., ChatServer]]:
    """Start chatapp under gunicorn whose default model answers with the given behaviour.

    The page sends no model name, so each test gets a server of its own whose
    CHATAPP_MODEL is a model registered for it on the fake upstream; no other test
    asks for those settings, so it is stopped when the test ends.
    """
    started: list[GunicornServer] = []

    def start(behaviour: Behaviour | None = None, **env: str) -> ChatServer:
        # The store in the test's own folder (the default would be the repository's instance/).
        env.setdefault("DATABASE_URL", f"sqlite:///{tmp_path}/chat.sqlite3")
        model = upstream.model(behaviour or Behaviour(), name="page")
        # `workers` named (as its default): mypy cannot tell that `env` does not hold it.
        server = chatapp_server(upstream, workers=1, CHATAPP_MODEL=model, **env)
        started.append(server)
        return ChatServer(server, model)

    yield start
    for server in started:
        chatapp_server.retire(server)


@pytest.fixture
def page(browser: Browser, chat_server: Callable[..., ChatServer]) -> Iterator[Page]:
    # Depends on chat_server so that it closes first: an open page holds a keep-alive
    # connection, and gunicorn waits for those on SIGTERM.
    # bypass_csp: Playwright's wait_for_function evaluates its predicate with eval, which the page's
    # strict CSP forbids. test_the_page_runs_under_its_content_security_policy uses no bypass.
    context = browser.new_context(viewport={"width": 900, "height": 720}, bypass_csp=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


@pytest.fixture
def chat(page: Page) -> ChatPage:
    """The `page` fixture's tab as a chat page: what a person does there, and what a test waits for."""
    return ChatPage(page)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
