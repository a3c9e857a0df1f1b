"""The model side stands alone: nothing under chatapp/llm/ imports the rest of chatapp (the web side,
its settings, its errors), only the standard library, the SDK's HTTP stack and orjson."""

import ast
import sys
from pathlib import Path

import pytest

LLM = Path(__file__).resolve().parents[2] / "chatapp" / "llm"
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
