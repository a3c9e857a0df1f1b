"""The layers of chatapp, as the folder tree shows them: `views -> streaming -> llm, store`.

The model side stands alone: nothing under chatapp/llm/ imports the rest of chatapp (the web side,
its settings, its errors), only the standard library, the SDK's HTTP stack and orjson. The model
side, the store and the streaming engine import nothing of Flask, and none of them imports the web
shell (views, errors, state); no view imports another."""

import ast
import sys
from pathlib import Path

import pytest

CHATAPP = Path(__file__).resolve().parents[2] / "chatapp"
LLM = CHATAPP / "llm"
PACKAGE = "chatapp.llm"
# Third-party packages the model side may use: the SDK and the HTTP stack it reads the stream through.
THIRD_PARTY = {"openai", "httpx2", "httpcore2", "h11", "orjson"}


def imported_modules(source: str, package: str) -> list[str]:
    """Every module a module of `package` imports, relative imports resolved to absolute names."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            # `from chatapp import x` imports the module chatapp.x.
            found += [f"{module}.{a.name}" for a in node.names] if module == "chatapp" else [module]
    return found


def outside_the_model_side(module: str) -> bool:
    top = module.split(".")[0]
    if top == "chatapp":
        return module != PACKAGE and not module.startswith(PACKAGE + ".")
    return top not in sys.stdlib_module_names and top not in THIRD_PARTY


def package_of(path: Path) -> str:
    return ".".join(("chatapp", *path.relative_to(LLM.parent).parent.parts))


MODULES = sorted(LLM.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=[p.relative_to(LLM).as_posix() for p in MODULES])
def test_a_model_side_module_imports_nothing_from_the_rest_of_chatapp(path):
    imports = imported_modules(path.read_text(encoding="utf-8"), package_of(path))
    assert [m for m in imports if outside_the_model_side(m)] == []


def test_every_model_side_module_is_checked():
    assert {p.name for p in MODULES} >= {"__init__.py", "base.py", "openai_backend.py", "demo_backend.py"}


@pytest.mark.parametrize(
    "source",
    [
        "from ..config import Settings",
        "from .. import errors",
        "from ...chatapp import x",
        "import chatapp.validation",
        "from chatapp import relay",
        "from chatapp.views.api import bp",
        "def lazy():\n    from ..validation import ChatRequest",
        "import flask",
        "from gevent import sleep",
    ],
)
def test_the_check_catches_an_import_from_outside(source):
    imports = imported_modules(source, PACKAGE)
    assert any(outside_the_model_side(m) for m in imports), imports


@pytest.mark.parametrize(
    "source",
    [
        "from .base import ChatRequest",
        "from . import base",
        "from chatapp.llm.base import Finish",
        "from chatapp import llm",
        "import orjson",
        "import httpx2",
        "from __future__ import annotations",
        "import contextlib",
    ],
)
def test_the_check_lets_the_model_side_import_itself_and_its_dependencies(source):
    assert not any(outside_the_model_side(m) for m in imported_modules(source, PACKAGE))


def modules_under(folder: str) -> list[Path]:
    return sorted((CHATAPP / folder).rglob("*.py"))


def module_name(path: Path) -> str:
    parts = path.relative_to(CHATAPP.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> list[str]:
    package = ".".join(path.relative_to(CHATAPP.parent).parent.parts)
    return imported_modules(path.read_text(encoding="utf-8"), package)


WEB = ("flask", "werkzeug", "flask_limiter", "jinja2")
# The web shell: what turns HTTP into calls of the engine, and answers.
SHELL = (
    "chatapp.views",
    "chatapp.errors",
    "chatapp.state",
    "chatapp.startup",
    "chatapp.stream_responses",
    "chatapp.access",
    "chatapp.security",
    "chatapp.rate_limits",
    "chatapp.validation",
)
INNER = [p for folder in ("llm", "store", "streaming") for p in modules_under(folder)]


def within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


@pytest.mark.parametrize("path", INNER, ids=[p.relative_to(CHATAPP).as_posix() for p in INNER])
def test_the_engine_the_store_and_the_model_side_import_nothing_of_flask_or_the_web_shell(path):
    imports = imports_of(path)
    assert [m for m in imports if within(m, WEB) or within(m, SHELL)] == []


def test_the_store_does_not_import_the_engine():
    found = {
        module_name(p): m
        for p in modules_under("store")
        for m in imports_of(p)
        if within(m, ("chatapp.streaming",))
    }
    assert found == {}


VIEWS = modules_under("views")


@pytest.mark.parametrize("path", VIEWS, ids=[p.name for p in VIEWS])
def test_no_view_imports_another(path):
    others = [m for m in imports_of(path) if within(m, ("chatapp.views",))]
    assert others == []


@pytest.mark.parametrize(
    ("source", "package", "forbidden"),
    [
        ("from flask import request", "chatapp.streaming", WEB),
        ("from ..state import app_state", "chatapp.streaming", SHELL),
        ("from ...errors import ApiError", "chatapp.streaming.coordination", SHELL),
        ("from .api import bp", "chatapp.views", ("chatapp.views",)),
        ("from chatapp.views import pages", "chatapp.views", ("chatapp.views",)),
    ],
)
def test_the_layer_checks_catch_a_forbidden_import(source, package, forbidden):
    assert any(within(m, forbidden) for m in imported_modules(source, package))


def test_every_layer_is_checked():
    assert {module_name(p) for p in INNER} >= {
        "chatapp.streaming.relay",
        "chatapp.streaming.registry",
        "chatapp.streaming.coordination.redis_coordinator",
        "chatapp.store.store",
        "chatapp.llm.openai_backend",
    }
    assert {p.name for p in VIEWS} >= {"api.py", "conversations.py", "pages.py", "reattach.py"}
